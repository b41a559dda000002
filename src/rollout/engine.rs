//! One rollout's task: sets each step's split, waits, judges the canary's
//! window and moves on, rolls back or promotes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::coordinate::{delta, Snapshot};
use super::judge::{self, Verdict};
use super::shadow::step::StepEnd;
use super::state::{now_rfc3339, unix_ms};
use super::{Command, Judgement, Live, Phase, Rollouts, Saved};
use crate::config::RolloutConfig;
use crate::control::{Change, ChangeError};
use crate::event::{Action, ChangeSource, Event, Outcome};
use crate::stats::{clock, Stats};
use crate::table::TableWatch;
use crate::telemetry::ROLLOUTS;

impl Rollouts {
    pub(super) async fn event(&self, route: &str, action: Action, detail: String) {
        tracing::info!(%route, %action, %detail, "rollout");
        let mut ev = Event::new(0, ChangeSource::Rollout, action, Outcome::Applied);
        ev.route = Some(route.to_owned());
        ev.detail = Some(detail);
        self.control.record(ev).await;
    }

    pub(super) async fn set_weight(
        &self,
        route: &str,
        cfg: &RolloutConfig,
        canary: u32,
    ) -> Result<(), ChangeError> {
        let split = vec![
            (cfg.stable.clone(), 100 - canary),
            (cfg.canary.clone(), canary),
        ];
        let change = Change::SetSplit {
            route: route.to_owned(),
            split,
        };
        match self
            .control
            .change(ChangeSource::Rollout, None, change)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(%route, error = %e, "the rollout could not set the split");
                Err(e)
            }
        }
    }

    /// `[cluster]`: the final split must be stored in the cluster. While
    /// the store is unreachable a rollback falls back to stable on this
    /// replica at once (and says so) and the write is retried until it
    /// lands; a promotion just waits. `false`: this replica no longer
    /// leads (the new leader decides; nothing is finished here).
    async fn settle(&self, route: &str, cfg: &RolloutConfig, promoted: bool) -> bool {
        let mut fell_back = false;
        loop {
            match self.final_split(route, cfg, promoted).await {
                Ok(()) => return true,
                Err(ChangeError::NotLeader) => return false,
                Err(ChangeError::Unavailable(why)) if self.coordinator().is_some() => {
                    if !promoted && !fell_back {
                        fell_back = true;
                        let change = Change::LocalFallback {
                            route: route.to_owned(),
                            split: vec![(cfg.stable.clone(), 100), (cfg.canary.clone(), 0)],
                            reason: format!(
                                "rolled back to {} on this replica only: the cluster's store \
                                 is unreachable ({why}); the rollback is stored when it answers",
                                cfg.stable
                            ),
                        };
                        if let Err(e) = self
                            .control
                            .change(ChangeSource::Rollout, None, change)
                            .await
                        {
                            tracing::error!(%route, error = %e, "local fall-back to stable failed");
                        }
                    }
                    if self.coordinator().is_some_and(|c| c.leads().is_err()) {
                        return false;
                    }
                    tokio::select! {
                        _ = self.shutdown.cancelled() => return false,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                }
                // Without a cluster, or refused for another reason: as
                // before, the rollout ends with what the table has.
                Err(_) => return true,
            }
        }
    }

    /// The rollout's last change: a rollback's split (100 % stable), or a
    /// promotion — all traffic to the canary, the stable pool kept as the
    /// route's standby (the way back, issue 14).
    async fn final_split(
        &self,
        route: &str,
        cfg: &RolloutConfig,
        promoted: bool,
    ) -> Result<(), ChangeError> {
        if !promoted {
            return self.set_weight(route, cfg, 0).await;
        }
        let change = Change::Promote {
            route: route.to_owned(),
            to: cfg.canary.clone(),
            stable: cfg.stable.clone(),
        };
        match self
            .control
            .change(ChangeSource::Rollout, None, change)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                tracing::error!(%route, error = %e, "the rollout could not set the promoted split");
                Err(e)
            }
        }
    }

    /// Ends the rollout: the final split, the event, the metric.
    pub(super) async fn finish(
        &self,
        route: &str,
        cfg: &RolloutConfig,
        promoted: bool,
        reason: String,
    ) {
        if !self.settle(route, cfg, promoted).await {
            self.hand_over(route);
            return;
        }
        let (action, result) = if promoted {
            (Action::RolloutPromote, "promoted")
        } else {
            (Action::RolloutRollback, "rolled_back")
        };
        self.update(route, |e| {
            e.tx = None;
            e.status.phase = if promoted {
                Phase::Promoted
            } else {
                Phase::RolledBack
            };
            e.status.canary_weight = if promoted { 100 } else { 0 };
            e.status.reason = Some(reason.clone());
        });
        if let Some(t) = &self.telemetry {
            t.counter(ROLLOUTS, &[("route", route), ("result", result)])
                .increment(1);
        }
        self.event(route, action, reason).await;
    }

    /// This replica stopped leading: its task ends, the leader resumes the
    /// rollout from the cluster's stored progress.
    pub(super) fn hand_over(&self, route: &str) {
        tracing::info!(%route, "this replica no longer leads the cluster; the new leader drives the rollout");
        self.update(route, |e| {
            e.tx = None;
            e.status.reason = Some("handed over to the cluster's new leader".into());
        });
    }

    /// The canary's and stable's counts since the step began: this
    /// replica's windows, or with `[cluster]` the sum over every replica
    /// since `base` (`None`: the store cannot be read; hold).
    async fn counts(
        &self,
        route: &str,
        cfg: &RolloutConfig,
        started: Instant,
        base: &mut Option<(Snapshot, Snapshot)>,
    ) -> Option<(Stats, Stats)> {
        let Some(c) = self.coordinator() else {
            let table = self.control.table().load();
            let window = |name: &str| {
                table
                    .window(route, name)
                    .map(|w| w.since(clock::secs(started), clock::secs(Instant::now())))
                    .unwrap_or_default()
            };
            return Some((window(&cfg.canary), window(&cfg.stable)));
        };
        let canary = c.snapshot(route, &cfg.canary).await.ok()?;
        let stable = c.snapshot(route, &cfg.stable).await.ok()?;
        match base {
            Some((bc, bs)) => Some((delta(&canary, bc), delta(&stable, bs))),
            None => {
                // The step's first reading is its baseline.
                *base = Some((canary, stable));
                Some((Stats::default(), Stats::default()))
            }
        }
    }

    pub(super) async fn run(
        self: Arc<Self>,
        route: String,
        saved: Saved,
        mut rx: mpsc::UnboundedReceiver<Command>,
    ) {
        let Some(mut run) = Run::begin(&self, route, &saved, &mut rx).await else {
            return;
        };
        let mut tables = self.control.watch();
        // The judgement timer: `failure_threshold` counts failed checks in
        // a row at this pace. A new table (a reload may have changed the
        // thresholds or removed the rollout) is followed at once, but is no
        // judgement.
        let tick = (run.cfg.step_interval / 4)
            .clamp(Duration::from_millis(50), Duration::from_millis(250));
        let mut next_judgement = Instant::now() + tick;
        loop {
            let (cmd, judge_now) = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                c = rx.recv() => (c, true),
                _ = tables.changed() => (None, false),
                _ = tokio::time::sleep_until(next_judgement) => (None, true),
            };
            if judge_now {
                next_judgement = Instant::now() + tick;
            }
            if self.coordinator().is_some_and(|c| c.leads().is_err()) {
                self.hand_over(&run.route);
                return;
            }
            if run.follow_config().await == Flow::Done {
                return;
            }
            if let Some(cmd) = cmd {
                if run.command(cmd).await == Flow::Done {
                    return;
                }
            }
            if run.paused {
                continue;
            }
            if run.step(&tables, judge_now).await == Flow::Done {
                return;
            }
        }
    }
}

/// Whether a rollout's task goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Continue,
    Done,
}

/// One rollout's state between two wake-ups of its task.
struct Run<'a> {
    rollouts: &'a Rollouts,
    route: String,
    /// The route's `[routes.rollout]`, re-read at every wake-up.
    cfg: RolloutConfig,
    step: usize,
    paused: bool,
    /// The step's start: its statistics are counted from here.
    started: Instant,
    /// Failed checks in a row (`failure_threshold`).
    failed: u32,
    /// `[cluster]`: every replica's counts when the step began.
    base: Option<(Snapshot, Snapshot)>,
}

impl<'a> Run<'a> {
    /// Sets the (saved) step's split and says so, after the shadow step
    /// when a fresh start has one; `None` when the route has no
    /// `[routes.rollout]` any more, the shadow step ended the rollout, or
    /// (`[cluster]`) this replica does not lead.
    async fn begin(
        rollouts: &'a Rollouts,
        route: String,
        saved: &Saved,
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Option<Run<'a>> {
        let cfg = rollouts.config(&route)?;
        // The step's start, carried over a restart from the saved time, but
        // at most one interval back: the step's statistics died with the
        // old process, and `max_wait` counts from now.
        let ago = SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_millis(saved.step_started_ms))
            .unwrap_or_default();
        let started = Instant::now()
            .checked_sub(ago.min(cfg.step_interval))
            .unwrap_or_else(Instant::now);
        let mut run = Run {
            rollouts,
            route,
            cfg,
            step: saved.step,
            paused: saved.paused,
            started,
            failed: 0,
            base: None,
        };
        // A fresh start with a shadow step judges the canary on copies first.
        // A restart in the shadow step runs it again (its pairs died with
        // the old process), paused if it was.
        let fresh = run.step == 0 && ago < run.cfg.step_interval;
        let shadowed = (fresh || saved.shadow) && run.cfg.shadow.is_some();
        if shadowed {
            match rollouts
                .shadow_step(&run.route, &run.cfg, run.paused, rx)
                .await
            {
                StepEnd::Passed => {
                    run.started = Instant::now();
                    run.paused = false;
                }
                StepEnd::Over => return None,
            }
            let weight = run.cfg.steps[run.step];
            rollouts.update(&run.route, |e| {
                e.status.phase = Phase::Progressing;
                e.status.canary_weight = weight;
            });
        }
        let first = run.cfg.steps[run.step];
        if let Err(ChangeError::NotLeader) = rollouts.set_weight(&run.route, &run.cfg, first).await
        {
            rollouts.hand_over(&run.route);
            return None;
        }
        let (action, what) = if fresh && !shadowed {
            (Action::RolloutStart, "started")
        } else {
            (Action::RolloutStep, "resumed")
        };
        let detail = format!(
            "{what} at step {} ({}% on {})",
            run.step + 1,
            run.cfg.steps[run.step],
            run.cfg.canary
        );
        rollouts.event(&run.route, action, detail).await;
        Some(run)
    }

    /// Thresholds follow the file: a reload may have changed them, or
    /// removed the rollout.
    async fn follow_config(&mut self) -> Flow {
        match self.rollouts.config(&self.route) {
            Some(c) => {
                self.cfg = c;
                // A reload may have shortened `steps`.
                self.step = self.step.min(self.cfg.steps.len() - 1);
                Flow::Continue
            }
            None => {
                let why = "the route's [routes.rollout] was removed".into();
                self.finish(false, why).await
            }
        }
    }

    async fn finish(&self, promoted: bool, reason: String) -> Flow {
        self.rollouts
            .finish(&self.route, &self.cfg, promoted, reason)
            .await;
        Flow::Done
    }

    async fn event(&self, action: Action, detail: String) {
        self.rollouts.event(&self.route, action, detail).await;
    }

    /// An operator's command.
    async fn command(&mut self, cmd: Command) -> Flow {
        let step = self.step + 1;
        match cmd {
            Command::Pause if !self.paused => {
                self.paused = true;
                self.rollouts
                    .update(&self.route, |e| e.status.phase = Phase::Paused);
                let detail = format!("paused at step {step} by the operator");
                self.event(Action::RolloutPause, detail).await;
            }
            Command::Resume if self.paused => {
                self.paused = false;
                self.started = Instant::now();
                self.base = None;
                self.failed = 0;
                let ms = unix_ms(SystemTime::now());
                self.rollouts.update(&self.route, |e| {
                    e.status.phase = Phase::Progressing;
                    e.status.step_started_ms = ms;
                    e.status.current = None;
                });
                let detail = format!("resumed at step {step}; the step starts over");
                self.event(Action::RolloutResume, detail).await;
            }
            Command::Promote => {
                let why = format!("promoted by the operator at step {step}");
                return self.finish(true, why).await;
            }
            Command::Abort => {
                let why = format!("aborted by the operator at step {step}");
                return self.finish(false, why).await;
            }
            Command::Pause | Command::Resume => {}
        }
        Flow::Continue
    }

    /// Looks at the table in force: a canary with no available backend
    /// ends the rollout at once; at a judgement, the step's counts (this
    /// replica's windows, or with `[cluster]` every replica's) are judged
    /// and acted on.
    async fn step(&mut self, tables: &TableWatch, judge_now: bool) -> Flow {
        let (canary_up, has_route) = {
            let table = tables.load();
            let up = table
                .pools()
                .iter()
                .find(|p| *p.name == *self.cfg.canary)
                .is_some_and(|p| p.backends.iter().any(|b| b.is_available()));
            (up, table.routes().iter().any(|r| *r.name == *self.route))
        };
        if !canary_up {
            let why = format!("canary pool {:?} has no available backend", self.cfg.canary);
            return self.finish(false, why).await;
        }
        if !judge_now || !has_route {
            return Flow::Continue;
        }
        let counts = self
            .rollouts
            .counts(&self.route, &self.cfg, self.started, &mut self.base)
            .await;
        let Some((canary, stable)) = counts else {
            // The cluster's counts cannot be read: the rollout holds.
            return Flow::Continue;
        };
        self.judge(&canary, &stable).await
    }

    /// Judges the step's windows, records the judgement and acts on it.
    async fn judge(&mut self, canary: &Stats, stable: &Stats) -> Flow {
        // What `ctl rollout watch` shows between judgements.
        let live = Live::new(canary, stable);
        self.rollouts.update_live(&self.route, live, &self.cfg);
        let elapsed = self.started.elapsed();
        let check = judge::check(&self.cfg, canary, stable);
        let (verdict, now_failed) =
            judge::decide(&self.cfg, self.step, elapsed, self.failed, &check);
        self.failed = now_failed;
        // Before the interval only a failure acts; nothing to record.
        if elapsed < self.cfg.step_interval && verdict == Verdict::Hold {
            return Flow::Continue;
        }
        let judgement = Judgement {
            time: now_rfc3339(),
            step: self.step,
            check,
            canary_requests: canary.requests,
            canary_error_rate: canary.error_rate(),
            canary_p99_seconds: canary.percentile(0.99).map(|d| d.as_secs_f64()),
            stable_requests: stable.requests,
        };
        self.rollouts
            .update(&self.route, |e| e.status.last = Some(judgement));
        match verdict {
            Verdict::Hold => Flow::Continue,
            Verdict::Advance => self.advance(canary).await,
            Verdict::Done => {
                let why = format!(
                    "every step passed; the last with {} requests, error rate {:.4}",
                    canary.requests,
                    canary.error_rate()
                );
                self.finish(true, why).await
            }
            Verdict::Rollback(why) => {
                let why = format!("step {}: {why}", self.step + 1);
                self.finish(false, why).await
            }
            Verdict::Pause(why) => {
                self.paused = true;
                self.rollouts.update(&self.route, |e| {
                    e.status.phase = Phase::Paused;
                    e.status.reason = Some(why.clone());
                });
                let detail = format!("step {}: {why}; waiting for the operator", self.step + 1);
                self.event(Action::RolloutPause, detail).await;
                Flow::Continue
            }
        }
    }

    /// The step passed: the next step's split, a fresh window.
    async fn advance(&mut self, canary: &Stats) -> Flow {
        let weight = self.cfg.steps[self.step + 1];
        match self
            .rollouts
            .set_weight(&self.route, &self.cfg, weight)
            .await
        {
            Ok(()) => {}
            Err(ChangeError::NotLeader) => {
                self.rollouts.hand_over(&self.route);
                return Flow::Done;
            }
            // [cluster] store unreachable: hold at this step, judged again
            // (and written) at the next tick.
            Err(ChangeError::Unavailable(_)) => return Flow::Continue,
            Err(_) => {}
        }
        self.step += 1;
        self.started = Instant::now();
        self.base = None;
        let ms = unix_ms(SystemTime::now());
        let step = self.step;
        self.rollouts.update(&self.route, |e| {
            e.status.step = step;
            e.status.canary_weight = weight;
            e.status.step_started_ms = ms;
            e.status.current = None;
        });
        let detail = format!(
            "step {} passed ({} requests, error rate {:.4}); step {} ({}% on {})",
            step,
            canary.requests,
            canary.error_rate(),
            step + 1,
            weight,
            self.cfg.canary
        );
        self.event(Action::RolloutStep, detail).await;
        Flow::Continue
    }
}
