//! The shadow step's task part: before the canary's first real percent,
//! the engine turns on the route's shadow mirror (`ShadowHandles::
//! set_stepping`; the data plane then copies `percent` of the route's
//! requests to the canary pool and compares), judges the shadow window
//! with `shadow::check` / `shadow::decide` at the engine's pace, and either
//! goes on to step 1 or ends the rollout with the measured reason and a
//! few mismatch samples in the history. The split stays 100 % stable all
//! along: no user is answered by the canary.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{check, decide};
use crate::config::{RolloutConfig, ShadowStepConfig};
use crate::control::ChangeError;
use crate::event::Action;
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
    /// Runs the shadow step of `route`'s rollout; see the module doc.
    pub(in crate::rollout) async fn shadow_step(
        &self,
        route: &str,
        cfg: &RolloutConfig,
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
        let started = Instant::now();
        let started_ms = unix_ms(std::time::SystemTime::now());
        self.update(route, |e| {
            e.status.phase = Phase::Shadow;
            e.status.canary_weight = 0;
        });
        self.event(
            route,
            Action::RolloutStart,
            format!(
                "started with the shadow step: {}% of requests copied to {} for {:?}, answers compared",
                step_cfg.percent, cfg.canary, step_cfg.duration
            ),
        )
        .await;
        self.judge_shadow(
            route,
            cfg,
            &step_cfg,
            &stepping.0,
            (started, started_ms),
            rx,
        )
        .await
    }

    async fn judge_shadow(
        &self,
        route: &str,
        cfg: &RolloutConfig,
        step_cfg: &ShadowStepConfig,
        handles: &ShadowHandles,
        (started, started_ms): (Instant, u64),
        rx: &mut mpsc::UnboundedReceiver<Command>,
    ) -> StepEnd {
        let tick =
            (step_cfg.duration / 4).clamp(Duration::from_millis(50), Duration::from_millis(250));
        let mut failed = 0;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return StepEnd::Over,
                cmd = rx.recv() => match cmd {
                    Some(Command::Abort) | None => {
                        self.finish(route, cfg, false, "aborted by the operator in the shadow step".into()).await;
                        return StepEnd::Over;
                    }
                    Some(Command::Promote) => {
                        self.finish(route, cfg, true, "promoted by the operator in the shadow step".into()).await;
                        return StepEnd::Over;
                    }
                    // Pausing a shadow step changes nothing a user sees.
                    Some(Command::Pause | Command::Resume) => continue,
                },
                _ = tokio::time::sleep(tick) => {}
            }
            let now = Instant::now();
            let stats = handles
                .window()
                .since(clock::secs(started), clock::secs(now));
            let check = check(step_cfg, &stats);
            let (verdict, now_failed) = decide(cfg, step_cfg, started.elapsed(), failed, &check);
            failed = now_failed;
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
                Verdict::Rollback(why) | Verdict::Pause(why) => {
                    // A shadow step that cannot pass ends the rollout: the
                    // split never moved, so there is nothing to hold.
                    let mut samples = handles.samples().newest_first();
                    samples.retain(|s| s.at_ms >= started_ms);
                    let mut reason = format!("shadow step: {why} ({})", summary(&stats));
                    if !samples.is_empty() {
                        reason.push_str("; samples: ");
                        reason.push_str(&quote(&samples));
                    }
                    self.finish(route, cfg, false, reason).await;
                    return StepEnd::Over;
                }
            }
        }
    }
}
