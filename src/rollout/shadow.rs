//! The shadow step's judgement as pure functions, like `judge` for the
//! canary's steps: `check` compares the shadow window of the canary pool
//! (mirrored from stable since the step began) with the step's limits;
//! `decide` turns a check and the time spent into what the engine does.
//! A shadow step that passes goes to the first canary step; one that fails
//! rolls back, which at this point changes no split: no user has been
//! answered by the canary.

use std::time::Duration;

use super::judge::Verdict;
use crate::api::{Check, Metric};
use crate::config::{InsufficientTraffic, RolloutConfig, ShadowStepConfig};
use crate::stats::shadow::ShadowStats;

/// The quantile whose mirror/primary ratio `max_latency_ratio` limits.
pub const LATENCY_QUANTILE: f64 = 0.99;

/// Judges the shadow window `s` against `cfg`. Order: enough pairs, then
/// the mirror's error rate (errors and 5xx), the mismatch rate, and the
/// latency ratio.
pub fn check(cfg: &ShadowStepConfig, s: &ShadowStats) -> Check {
    let ended = s.ended();
    if ended < cfg.min_requests || ended == 0 {
        return Check::Insufficient {
            requests: ended,
            needed: cfg.min_requests.max(1),
        };
    }
    let errors = s.error_rate();
    if errors > cfg.max_error_rate {
        return Check::Fail {
            metric: Metric::ShadowErrorRate,
            value: errors,
            limit: cfg.max_error_rate,
        };
    }
    let mismatches = s.mismatch_rate();
    if mismatches > cfg.max_mismatch_rate {
        return Check::Fail {
            metric: Metric::ShadowMismatchRate,
            value: mismatches,
            limit: cfg.max_mismatch_rate,
        };
    }
    if let (Some(limit), Some(ratio)) = (cfg.max_latency_ratio, s.latency_ratio(LATENCY_QUANTILE)) {
        if ratio > limit {
            return Check::Fail {
                metric: Metric::ShadowP99LatencyRatio,
                value: ratio,
                limit,
            };
        }
    }
    Check::Pass
}

/// The next move of a shadow step `elapsed` into it, after `check`, with
/// `failed` failed checks in a row before this one. `Advance` goes to the
/// first canary step; `Rollback` ends the rollout before any user saw the
/// canary. Answers the verdict and the new count of failed checks.
pub fn decide(
    rollout: &RolloutConfig,
    shadow: &ShadowStepConfig,
    elapsed: Duration,
    failed: u32,
    check: &Check,
) -> (Verdict, u32) {
    if let Check::Fail { .. } = check {
        // Like a canary step, a failure on `min_requests` pairs counts at
        // once: nothing is gained by mirroring a broken release longer.
        let failed = failed + 1;
        return match failed >= rollout.failure_threshold {
            true => (Verdict::Rollback(check.describe()), failed),
            false => (Verdict::Hold, failed),
        };
    }
    if elapsed < shadow.duration {
        return match check {
            Check::Pass => (Verdict::Hold, 0),
            _ => (Verdict::Hold, failed),
        };
    }
    match check {
        Check::Pass => (Verdict::Advance, 0),
        Check::Insufficient { .. } if elapsed >= shadow.duration + rollout.max_wait => {
            let why = format!("{} after {:?}", check.describe(), elapsed);
            match rollout.on_insufficient_traffic {
                InsufficientTraffic::Rollback => (Verdict::Rollback(why), failed),
                InsufficientTraffic::Hold => (Verdict::Pause(why), failed),
            }
        }
        _ => (Verdict::Hold, failed),
    }
}

pub(super) mod step;

#[cfg(test)]
mod tests;
