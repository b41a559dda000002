//! One rollout's task: sets each step's split, waits, judges the canary's
//! window and moves on, rolls back or promotes.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::judge::{self, Verdict};
use super::state::{now_rfc3339, unix_ms};
use super::{Command, Judgement, Live, Phase, Rollouts, Saved};
use crate::config::RolloutConfig;
use crate::control::Change;
use crate::event::{Action, ChangeSource, Event, Outcome};
use crate::stats::clock;
use crate::telemetry::ROLLOUTS;

impl Rollouts {
    async fn event(&self, route: &str, action: Action, detail: String) {
        tracing::info!(%route, %action, %detail, "rollout");
        let mut ev = Event::new(0, ChangeSource::Rollout, action, Outcome::Applied);
        ev.route = Some(route.to_owned());
        ev.detail = Some(detail);
        self.control.record(ev).await;
    }

    async fn set_weight(&self, route: &str, cfg: &RolloutConfig, canary: u32) -> bool {
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
            Ok(_) => true,
            Err(e) => {
                tracing::error!(%route, error = %e, "the rollout could not set the split");
                false
            }
        }
    }

    /// Ends the rollout: the final split, the event, the metric.
    async fn finish(&self, route: &str, cfg: &RolloutConfig, promoted: bool, reason: String) {
        self.set_weight(route, cfg, if promoted { 100 } else { 0 })
            .await;
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

    pub(super) async fn run(
        self: Arc<Self>,
        route: String,
        saved: Saved,
        mut rx: mpsc::UnboundedReceiver<Command>,
    ) {
        let Some(mut cfg) = self.config(&route) else {
            return;
        };
        let mut tables = self.control.watch();
        let mut step = saved.step;
        let mut paused = saved.paused;
        // The step's start, carried over a restart from the saved time, but
        // at most one interval back: the step's statistics died with the
        // old process, and `max_wait` counts from now.
        let ago = SystemTime::now()
            .duration_since(UNIX_EPOCH + Duration::from_millis(saved.step_started_ms))
            .unwrap_or_default();
        let mut started = Instant::now()
            .checked_sub(ago.min(cfg.step_interval))
            .unwrap_or_else(Instant::now);
        let mut failed = 0;
        self.set_weight(&route, &cfg, cfg.steps[step]).await;
        let (action, what) = if step == 0 && ago < cfg.step_interval {
            (Action::RolloutStart, "started")
        } else {
            (Action::RolloutStep, "resumed")
        };
        self.event(
            &route,
            action,
            format!(
                "{what} at step {} ({}% on {})",
                step + 1,
                cfg.steps[step],
                cfg.canary
            ),
        )
        .await;
        // The judgement timer: `failure_threshold` counts failed checks in
        // a row at this pace. A new table (a reload may have changed the
        // thresholds or removed the rollout) is followed at once, but is no
        // judgement.
        let tick =
            (cfg.step_interval / 4).clamp(Duration::from_millis(50), Duration::from_millis(250));
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
            // Thresholds follow the file: a reload may have changed them.
            match self.config(&route) {
                Some(c) => {
                    cfg = c;
                    // A reload may have shortened `steps`.
                    step = step.min(cfg.steps.len() - 1);
                }
                None => {
                    self.finish(
                        &route,
                        &cfg,
                        false,
                        "the route's [routes.rollout] was removed".into(),
                    )
                    .await;
                    return;
                }
            }
            match cmd {
                Some(Command::Pause) if !paused => {
                    paused = true;
                    self.update(&route, |e| e.status.phase = Phase::Paused);
                    self.event(
                        &route,
                        Action::RolloutPause,
                        format!("paused at step {} by the operator", step + 1),
                    )
                    .await;
                }
                Some(Command::Resume) if paused => {
                    paused = false;
                    started = Instant::now();
                    failed = 0;
                    let ms = unix_ms(SystemTime::now());
                    self.update(&route, |e| {
                        e.status.phase = Phase::Progressing;
                        e.status.step_started_ms = ms;
                        e.status.current = None;
                    });
                    self.event(
                        &route,
                        Action::RolloutResume,
                        format!("resumed at step {}; the step starts over", step + 1),
                    )
                    .await;
                }
                Some(Command::Promote) => {
                    self.finish(
                        &route,
                        &cfg,
                        true,
                        format!("promoted by the operator at step {}", step + 1),
                    )
                    .await;
                    return;
                }
                Some(Command::Abort) => {
                    self.finish(
                        &route,
                        &cfg,
                        false,
                        format!("aborted by the operator at step {}", step + 1),
                    )
                    .await;
                    return;
                }
                _ => {}
            }
            if paused {
                continue;
            }
            let table = tables.load();
            let canary_up = table
                .pools()
                .iter()
                .find(|p| *p.name == *cfg.canary)
                .is_some_and(|p| p.backends.iter().any(|b| b.is_available()));
            if !canary_up {
                self.finish(
                    &route,
                    &cfg,
                    false,
                    format!("canary pool {:?} has no available backend", cfg.canary),
                )
                .await;
                return;
            }
            if !judge_now || !table.routes().iter().any(|r| *r.name == *route) {
                continue;
            }
            let window = |name: &str| {
                table
                    .window(&route, name)
                    .map(|w| w.since(clock::secs(started), clock::secs(Instant::now())))
                    .unwrap_or_default()
            };
            let (canary, stable) = (window(&cfg.canary), window(&cfg.stable));
            // What `ctl rollout watch` shows between judgements.
            let live = Live::new(&canary, &stable);
            self.update_live(&route, live, &cfg);
            let elapsed = started.elapsed();
            let check = judge::check(&cfg, &canary, &stable);
            let (verdict, now_failed) = judge::decide(&cfg, step, elapsed, failed, &check);
            failed = now_failed;
            // Before the interval only a failure acts; nothing to record.
            if elapsed < cfg.step_interval && verdict == Verdict::Hold {
                continue;
            }
            let judgement = Judgement {
                time: now_rfc3339(),
                step,
                check: check.clone(),
                canary_requests: canary.requests,
                canary_error_rate: canary.error_rate(),
                canary_p99_seconds: canary.percentile(0.99).map(|d| d.as_secs_f64()),
                stable_requests: stable.requests,
            };
            self.update(&route, |e| e.status.last = Some(judgement));
            match verdict {
                Verdict::Hold => {}
                Verdict::Advance => {
                    step += 1;
                    self.set_weight(&route, &cfg, cfg.steps[step]).await;
                    started = Instant::now();
                    let ms = unix_ms(SystemTime::now());
                    let weight = cfg.steps[step];
                    self.update(&route, |e| {
                        e.status.step = step;
                        e.status.canary_weight = weight;
                        e.status.step_started_ms = ms;
                        e.status.current = None;
                    });
                    self.event(
                        &route,
                        Action::RolloutStep,
                        format!(
                            "step {} passed ({} requests, error rate {:.4}); step {} ({}% on {})",
                            step,
                            canary.requests,
                            canary.error_rate(),
                            step + 1,
                            weight,
                            cfg.canary
                        ),
                    )
                    .await;
                }
                Verdict::Done => {
                    self.finish(
                        &route,
                        &cfg,
                        true,
                        format!(
                            "every step passed; the last with {} requests, error rate {:.4}",
                            canary.requests,
                            canary.error_rate()
                        ),
                    )
                    .await;
                    return;
                }
                Verdict::Rollback(why) => {
                    self.finish(&route, &cfg, false, format!("step {}: {why}", step + 1))
                        .await;
                    return;
                }
                Verdict::Pause(why) => {
                    paused = true;
                    self.update(&route, |e| {
                        e.status.phase = Phase::Paused;
                        e.status.reason = Some(why.clone());
                    });
                    self.event(
                        &route,
                        Action::RolloutPause,
                        format!("step {}: {why}; waiting for the operator", step + 1),
                    )
                    .await;
                }
            }
        }
    }
}
