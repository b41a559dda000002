//! The canary's judgement as pure functions: `check` compares one window
//! of the canary (and of stable, over the same seconds) with the route's
//! thresholds; `decide` turns a check and the step's progress into what
//! the engine does next.

use std::time::Duration;

use crate::api::{Check, Metric};
use crate::config::{InsufficientTraffic, RolloutConfig};
use crate::stats::Stats;

/// What the engine does after a check.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep the weights and check again later.
    Hold,
    /// Go to the next step.
    Advance,
    /// The last step passed: promote (100 % canary).
    Done,
    /// Back to 100 % stable, for this reason.
    Rollback(String),
    /// Stop judging at this step until an operator acts, for this reason.
    Pause(String),
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Judges `canary` (and `stable`, for the relative thresholds) against
/// `cfg`. Relative thresholds apply only when stable has at least
/// `min_requests` (and at least one) requests in the same window.
pub fn check(cfg: &RolloutConfig, canary: &Stats, stable: &Stats) -> Check {
    if canary.requests < cfg.min_requests || canary.requests == 0 {
        return Check::Insufficient {
            requests: canary.requests,
            needed: cfg.min_requests.max(1),
        };
    }
    let rate = canary.error_rate();
    if rate > cfg.max_error_rate {
        return Check::Fail {
            metric: Metric::ErrorRate,
            value: rate,
            limit: cfg.max_error_rate,
        };
    }
    let p99 = canary.percentile(0.99).unwrap_or_default();
    if p99 > cfg.max_p99_latency {
        return Check::Fail {
            metric: Metric::P99LatencySeconds,
            value: secs(p99),
            limit: secs(cfg.max_p99_latency),
        };
    }
    let compare = stable.requests > 0 && stable.requests >= cfg.min_requests;
    if let (Some(limit), true) = (cfg.max_error_rate_increase, compare) {
        let increase = rate - stable.error_rate();
        if increase > limit {
            return Check::Fail {
                metric: Metric::ErrorRateIncrease,
                value: increase,
                limit,
            };
        }
    }
    if let (Some(limit), true) = (cfg.max_latency_ratio, compare) {
        let base = stable.percentile(0.99).unwrap_or_default();
        if !base.is_zero() {
            let ratio = secs(p99) / secs(base);
            if ratio > limit {
                return Check::Fail {
                    metric: Metric::P99LatencyRatio,
                    value: ratio,
                    limit,
                };
            }
        }
    }
    Check::Pass
}

/// The next move at step `step` (0-based) after `check`, `elapsed` into
/// the step, with `failed` failed checks in a row before this one.
/// Answers the verdict and the new count of failed checks in a row.
pub fn decide(
    cfg: &RolloutConfig,
    step: usize,
    elapsed: Duration,
    failed: u32,
    check: &Check,
) -> (Verdict, u32) {
    if elapsed < cfg.step_interval {
        // A step cannot pass before its interval, but a canary already
        // failing on `min_requests` requests counts now: a bad release is
        // not left serving its share of errors until the step ends.
        return match check {
            Check::Fail { .. } => fail(cfg, failed, check),
            Check::Pass => (Verdict::Hold, 0),
            Check::Insufficient { .. } => (Verdict::Hold, failed),
        };
    }
    match check {
        Check::Pass if step + 1 >= cfg.steps.len() => (Verdict::Done, 0),
        Check::Pass => (Verdict::Advance, 0),
        Check::Fail { .. } => fail(cfg, failed, check),
        Check::Insufficient { .. } if elapsed >= cfg.step_interval + cfg.max_wait => {
            let why = format!("{} after {:?}", check.describe(), elapsed);
            match cfg.on_insufficient_traffic {
                InsufficientTraffic::Rollback => (Verdict::Rollback(why), failed),
                InsufficientTraffic::Hold => (Verdict::Pause(why), failed),
            }
        }
        Check::Insufficient { .. } => (Verdict::Hold, failed),
    }
}

/// One more failed check in a row: roll back at `failure_threshold`.
fn fail(cfg: &RolloutConfig, failed: u32, check: &Check) -> (Verdict, u32) {
    let failed = failed + 1;
    if failed >= cfg.failure_threshold {
        (Verdict::Rollback(check.describe()), failed)
    } else {
        (Verdict::Hold, failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::window::{bucket_of, BUCKETS};
    use proptest::prelude::*;

    fn cfg() -> RolloutConfig {
        RolloutConfig {
            canary: "canary".into(),
            stable: "blue".into(),
            steps: vec![10, 50, 100],
            step_interval: Duration::from_secs(10),
            min_requests: 100,
            max_error_rate: 0.01,
            max_p99_latency: Duration::from_millis(500),
            max_error_rate_increase: None,
            max_latency_ratio: None,
            failure_threshold: 1,
            max_wait: Duration::from_secs(30),
            on_insufficient_traffic: InsufficientTraffic::Rollback,
            shadow: None,
        }
    }

    fn stats(requests: u64, failures: u64, latency_ms: u64) -> Stats {
        let mut hist = [0; BUCKETS];
        hist[bucket_of(latency_ms * 1000)] = requests;
        Stats {
            requests,
            failures,
            hist,
        }
    }

    const LATE: Duration = Duration::from_secs(11);

    #[test]
    fn thresholds() {
        let c = cfg();
        let none = Stats::default();
        assert_eq!(check(&c, &stats(200, 1, 10), &none), Check::Pass);
        assert!(matches!(
            check(&c, &stats(200, 10, 10), &none),
            Check::Fail { metric: Metric::ErrorRate, value, .. } if (value - 0.05).abs() < 1e-9
        ));
        assert!(matches!(
            check(&c, &stats(200, 0, 900), &none),
            Check::Fail {
                metric: Metric::P99LatencySeconds,
                ..
            }
        ));
        assert_eq!(
            check(&c, &stats(99, 0, 10), &none),
            Check::Insufficient {
                requests: 99,
                needed: 100
            }
        );
        // Relative thresholds, only with stable traffic in the window.
        let mut rel = cfg();
        rel.max_error_rate = 0.5;
        rel.max_p99_latency = Duration::from_secs(10);
        rel.max_error_rate_increase = Some(0.02);
        rel.max_latency_ratio = Some(2.0);
        assert!(matches!(
            check(&rel, &stats(200, 20, 10), &stats(1000, 10, 10)),
            Check::Fail {
                metric: Metric::ErrorRateIncrease,
                ..
            }
        ));
        assert!(matches!(
            check(&rel, &stats(200, 0, 100), &stats(1000, 0, 10)),
            Check::Fail {
                metric: Metric::P99LatencyRatio,
                ..
            }
        ));
        assert_eq!(check(&rel, &stats(200, 20, 100), &none), Check::Pass);
    }

    #[test]
    fn steps_advance_then_finish() {
        let c = cfg();
        assert_eq!(
            decide(&c, 0, Duration::from_secs(1), 0, &Check::Pass).0,
            Verdict::Hold
        );
        assert_eq!(decide(&c, 0, LATE, 0, &Check::Pass).0, Verdict::Advance);
        assert_eq!(decide(&c, 2, LATE, 0, &Check::Pass).0, Verdict::Done);
    }

    #[test]
    fn failures_in_a_row_and_insufficient_traffic() {
        let mut c = cfg();
        let fail = Check::Fail {
            metric: Metric::ErrorRate,
            value: 0.2,
            limit: 0.01,
        };
        assert!(
            matches!(decide(&c, 0, LATE, 0, &fail).0, Verdict::Rollback(r) if r.contains("error_rate 0.2000"))
        );
        c.failure_threshold = 3;
        assert_eq!(decide(&c, 0, LATE, 0, &fail), (Verdict::Hold, 1));
        assert_eq!(decide(&c, 0, LATE, 1, &Check::Pass), (Verdict::Advance, 0));
        assert!(matches!(
            decide(&c, 0, LATE, 2, &fail).0,
            Verdict::Rollback(_)
        ));
        let few = Check::Insufficient {
            requests: 3,
            needed: 100,
        };
        assert_eq!(decide(&c, 0, LATE, 0, &few).0, Verdict::Hold);
        let late = Duration::from_secs(40);
        assert!(
            matches!(decide(&c, 0, late, 0, &few).0, Verdict::Rollback(r) if r.contains("insufficient"))
        );
        c.on_insufficient_traffic = InsufficientTraffic::Hold;
        assert!(matches!(decide(&c, 0, late, 0, &few).0, Verdict::Pause(_)));
    }

    #[test]
    fn a_failing_canary_is_rolled_back_before_the_step_ends() {
        let mut c = cfg();
        let early = Duration::from_secs(1);
        let fail = Check::Fail {
            metric: Metric::ErrorRate,
            value: 0.5,
            limit: 0.01,
        };
        assert!(matches!(
            decide(&c, 0, early, 0, &fail).0,
            Verdict::Rollback(_)
        ));
        // In a row, like after the interval; an early pass resets the count
        // but never advances.
        c.failure_threshold = 2;
        assert_eq!(decide(&c, 0, early, 0, &fail), (Verdict::Hold, 1));
        assert_eq!(decide(&c, 0, early, 1, &Check::Pass), (Verdict::Hold, 0));
        assert!(matches!(
            decide(&c, 0, early, 1, &fail).0,
            Verdict::Rollback(_)
        ));
        // Too little traffic to judge is never a failure early.
        let few = Check::Insufficient {
            requests: 3,
            needed: 100,
        };
        assert_eq!(decide(&c, 0, early, 1, &few), (Verdict::Hold, 1));
    }

    proptest! {
        /// A canary within every threshold is never rolled back, and one
        /// over the error-rate limit never advances.
        #[test]
        fn verdicts_follow_the_error_rate(requests in 100u64..10_000, failures in 0u64..10_000,
                                         step in 0usize..3, late in 10u64..100) {
            let failures = failures.min(requests);
            let c = cfg();
            let chk = check(&c, &stats(requests, failures, 5), &Stats::default());
            let (v, _) = decide(&c, step, Duration::from_secs(late), 0, &chk);
            if failures as f64 / requests as f64 > c.max_error_rate {
                prop_assert!(matches!(v, Verdict::Rollback(_)));
            } else {
                prop_assert!(matches!(v, Verdict::Advance | Verdict::Done));
            }
        }
    }
}
