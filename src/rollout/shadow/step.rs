//! The shadow step's task part: before the canary's first real percent,
//! the engine turns on the route's shadow mirror (`ShadowHandles::
//! set_stepping`; the data plane then copies `percent` of the route's
//! requests to the canary pool and compares), judges the shadow window
//! with `shadow::check` / `shadow::decide` at the engine's pace, and either
//! goes on to step 1 or ends the rollout with the measured reason and a
//! few mismatch samples in the history. The split stays 100 % stable all
//! along: no user is answered by the canary.
//!
//! Like a canary step: `pause` stops judging (the copies go on, as a
//! paused canary keeps its weight) and `resume` starts the step over; too
//! few pairs after `duration + max_wait` pause it with
//! `on_insufficient_traffic = "hold"` and end it otherwise. The status
//! carries the step's progress (`RolloutStatus::shadow`) and the state
//! file that the rollout is in it, so a restart runs the step again.
//!
//! `[cluster]`: only the leader runs this; the stored state says the
//! rollout is in its shadow step, so every replica copies too
//! (`cluster::shadow`), and the step judges the sum of every replica's
//! shadow counts since it began (`Coordinator::shadow_snapshot`), as a
//! canary step does. The mismatch samples quoted are the leader's own:
//! samples stay with the replica that took them.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{check, decide};
use crate::api::ShadowProgress;
use crate::config::{RolloutConfig, ShadowStepConfig};
use crate::control::ChangeError;
use crate::event::Action;
use crate::rollout::coordinate::{delta, Snapshot};
use crate::rollout::judge::Verdict;
use crate::rollout::state::unix_ms;
use crate::rollout::{Command, Phase, Rollouts};
use crate::shadow::Sample;
use crate::stats::clock;
use crate::stats::shadow::{ShadowHandles, ShadowStats};

/// How the shadow step ended.
pub(in crate::rollout) enum StepEnd {
    /// Passed: go to the first canary step.
    Passed,
    /// The rollout is over (rolled back, aborted, promoted, shut down).
    Over,
}

/// Mismatch samples quoted in a failed step's history event.
const QUOTED_SAMPLES: usize = 3;

/// Turns the step's mirroring off when the step ends, however it ends.
struct Stepping(Arc<ShadowHandles>);

impl Drop for Stepping {
    fn drop(&mut self) {
        self.0.set_stepping(false);
    }
}

/// One line per sample: request, both statuses, the diff.
fn quote(samples: &[Sample]) -> String {
    samples
        .iter()
        .take(QUOTED_SAMPLES)
        .map(|s| {
            format!(
                "{} {}: {} vs {} ({}) {}",
                s.method,
                s.target,
                s.primary.status,
                s.mirror.status,
                s.kind,
                s.diff.join("; ")
            )
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn summary(s: &ShadowStats) -> String {
    let ratio = s
        .latency_ratio(super::LATENCY_QUANTILE)
        .map_or("-".into(), |r| format!("{r:.2}"));
    format!(
        "{} pairs compared, mismatch rate {:.4}, mirror error rate {:.4}, p99 ratio {ratio}",
        s.compared,
        s.mismatch_rate(),
        s.error_rate()
    )
}

impl Rollouts {
    /// Runs the shadow step of `route`'s rollout (paused from the start
    /// when `paused`: a restart of a rollout paused in the step); see the
    /// module doc.
    pub(in crate::rollout) async fn shadow_step(
        &self,
        route: &str,
        cfg: &RolloutConfig,
        paused: bool,
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) -> StepEnd {
        let Some(step_cfg) = cfg.shadow.clone() else {
            return StepEnd::Passed;
        };
        let handles = {
            let table = self.control.table().load();
            table
                .routes()
                .iter()
                .find(|r| *r.name == *route)
                .and_then(|r| r.mirror.as_deref()?.step())
                .map(|t| t.handles.clone())
        };
        let Some(handles) = handles else {
            self.finish(
                route,
                cfg,
                false,
                "shadow step: the canary pool is not in the table".into(),
            )
            .await;
            return StepEnd::Over;
        };
        // Nobody is answered by the canary during the step.
        if let Err(ChangeError::NotLeader) = self.set_weight(route, cfg, 0).await {
            self.hand_over(route);
            return StepEnd::Over;
        }
        let stepping = Stepping(handles);
        stepping.0.set_stepping(true);
        let mut step = Shadowing {
            route,
            cfg,
            step_cfg: &step_cfg,
            handles: &stepping.0,
            started: Instant::now(),
            started_ms: unix_ms(std::time::SystemTime::now()),
            paused,
            failed: 0,
            base: None,
        };
        // [cluster]: every replica's counts as the step starts (the
        // replicas begin copying once they read the stored state below).
        self.shadow_counts(&mut step).await;
        self.update(route, |e| {
            e.status.phase = if paused { Phase::Paused } else { Phase::Shadow };
            e.status.canary_weight = 0;
            e.status.shadow = Some(step.progress(&ShadowStats::default()));
        });
        self.event(
            route,
            Action::RolloutStart,
            format!(
                "started with the shadow step: {}% of requests copied to {} for {:?}, answers compared{}",
                step_cfg.percent,
                cfg.canary,
                step_cfg.duration,
                if paused { " (paused)" } else { "" }
            ),
        )
        .await;
        let end = self.judge_shadow(&mut step, rx).await;
        if let StepEnd::Passed = end {
            self.update(route, |e| e.status.shadow = None);
        }
        end
    }

    async fn judge_shadow(
        &self,
        step: &mut Shadowing<'_>,
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) -> StepEnd {
        let tick = (step.step_cfg.duration / 4)
            .clamp(Duration::from_millis(50), Duration::from_millis(250));
        let route = step.route;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return StepEnd::Over,
                cmd = rx.recv() => match cmd {
                    Some(Command::Abort) | None => {
                        self.finish(route, step.cfg, false, "aborted by the operator in the shadow step".into()).await;
                        return StepEnd::Over;
                    }
                    Some(Command::Promote) => {
                        self.finish(route, step.cfg, true, "promoted by the operator in the shadow step".into()).await;
                        return StepEnd::Over;
                    }
                    Some(Command::Pause) if !step.paused => {
                        step.paused = true;
                        self.update(route, |e| e.status.phase = Phase::Paused);
                        self.event(route, Action::RolloutPause, "paused in the shadow step by the operator".into()).await;
                    }
                    Some(Command::Resume) if step.paused => {
                        step.restart();
                        let progress = step.progress(&ShadowStats::default());
                        self.update(route, |e| {
                            e.status.phase = Phase::Shadow;
                            e.status.reason = None;
                            e.status.shadow = Some(progress);
                        });
                        self.event(route, Action::RolloutResume, "resumed in the shadow step; the step starts over".into()).await;
                    }
                    Some(Command::Pause | Command::Resume) => {}
                },
                _ = tokio::time::sleep(tick) => {}
            }
            if self.coordinator().is_some_and(|c| c.leads().is_err()) {
                self.hand_over(route);
                return StepEnd::Over;
            }
            if step.paused {
                continue;
            }
            let Some(stats) = self.shadow_counts(step).await else {
                // The cluster's counts cannot be read: the step holds.
                continue;
            };
            let progress = step.progress(&stats);
            self.update_shadow(route, progress);
            let check = check(step.step_cfg, &stats);
            let (verdict, failed) = decide(
                step.cfg,
                step.step_cfg,
                step.started.elapsed(),
                step.failed,
                &check,
            );
            step.failed = failed;
            match verdict {
                Verdict::Hold => {}
                Verdict::Advance | Verdict::Done => {
                    self.event(
                        route,
                        Action::RolloutStep,
                        format!("shadow step passed ({})", summary(&stats)),
                    )
                    .await;
                    return StepEnd::Passed;
                }
                Verdict::Pause(why) => {
                    // `on_insufficient_traffic = "hold"`: the copies go
                    // on, the operator decides (resume starts it over).
                    step.paused = true;
                    let why = format!("shadow step: {why} ({})", summary(&stats));
                    self.update(route, |e| {
                        e.status.phase = Phase::Paused;
                        e.status.reason = Some(why.clone());
                    });
                    let detail = format!("{why}; waiting for the operator");
                    self.event(route, Action::RolloutPause, detail).await;
                }
                Verdict::Rollback(why) => {
                    // The split never moved: ending the rollout is all.
                    let mut samples = step.handles.samples().newest_first();
                    samples.retain(|s| s.at_ms >= step.started_ms);
                    let mut reason = format!("shadow step: {why} ({})", summary(&stats));
                    if !samples.is_empty() {
                        reason.push_str("; samples: ");
                        reason.push_str(&quote(&samples));
                    }
                    self.finish(route, step.cfg, false, reason).await;
                    return StepEnd::Over;
                }
            }
        }
    }
}

impl Rollouts {
    /// The step's pairs since it began: this replica's shadow window, or
    /// with `[cluster]` the sum over every replica since `step.base` (the
    /// first reading is the baseline, counted as nothing yet; `None`: the
    /// store cannot be read).
    async fn shadow_counts(&self, step: &mut Shadowing<'_>) -> Option<ShadowStats> {
        let Some(c) = self.coordinator() else {
            let now = clock::secs(Instant::now());
            return Some(step.handles.window().since(clock::secs(step.started), now));
        };
        let now = c.shadow_snapshot(step.route, &step.cfg.canary).await.ok()?;
        match &step.base {
            Some(base) => Some(delta(&now, base)),
            None => {
                step.base = Some(now);
                Some(ShadowStats::default())
            }
        }
    }
}

/// One shadow step between two wake-ups of its task.
struct Shadowing<'a> {
    route: &'a str,
    cfg: &'a RolloutConfig,
    step_cfg: &'a ShadowStepConfig,
    handles: &'a ShadowHandles,
    /// The step's (or its last resume's) start: pairs are counted from here.
    started: Instant,
    started_ms: u64,
    paused: bool,
    /// Failed checks in a row (`failure_threshold`).
    failed: u32,
    /// `[cluster]`: every replica's shadow counts when the step began.
    base: Option<Snapshot<ShadowStats>>,
}

impl Shadowing<'_> {
    /// `resume`: the step starts over.
    fn restart(&mut self) {
        self.paused = false;
        self.started = Instant::now();
        self.started_ms = unix_ms(std::time::SystemTime::now());
        self.failed = 0;
        self.base = None;
    }

    /// What the status shows of the step with `stats` since it began.
    fn progress(&self, stats: &ShadowStats) -> ShadowProgress {
        let c = self.step_cfg;
        ShadowProgress {
            pool: self.cfg.canary.clone(),
            percent: c.percent,
            started_ms: self.started_ms,
            duration_ms: u64::try_from(c.duration.as_millis()).unwrap_or(u64::MAX),
            min_requests: c.min_requests,
            max_mismatch_rate: c.max_mismatch_rate,
            max_error_rate: c.max_error_rate,
            max_latency_ratio: c.max_latency_ratio,
            window: stats.totals(),
        }
    }
}
