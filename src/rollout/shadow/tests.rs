use proptest::prelude::*;

use super::*;
use crate::config::MirrorOptions;
use crate::stats::window::{bucket_of, BUCKETS};

fn shadow() -> ShadowStepConfig {
    ShadowStepConfig {
        duration: Duration::from_secs(60),
        percent: 20.0,
        max_mismatch_rate: 0.01,
        max_error_rate: 0.01,
        max_latency_ratio: Some(1.5),
        min_requests: 500,
        copy: MirrorOptions::default(),
    }
}

fn rollout() -> RolloutConfig {
    RolloutConfig {
        canary: "green".into(),
        stable: "blue".into(),
        steps: vec![10, 100],
        step_interval: Duration::from_secs(60),
        min_requests: 100,
        max_error_rate: 0.01,
        max_p99_latency: Duration::from_secs(2),
        max_error_rate_increase: None,
        max_latency_ratio: None,
        failure_threshold: 1,
        max_wait: Duration::from_secs(30),
        on_insufficient_traffic: InsufficientTraffic::Rollback,
        shadow: Some(shadow()),
    }
}

/// `compared` pairs (of which `mismatched` body mismatches and `fivexx`
/// mirror 5xx), `errors` failed copies, latencies spread around `p_ms`
/// for the primary and `m_ms` for the mirror.
fn stats(
    compared: u64,
    mismatched: u64,
    fivexx: u64,
    errors: u64,
    p_ms: u64,
    m_ms: u64,
) -> ShadowStats {
    let mut s = ShadowStats {
        mirrored: compared + errors,
        compared,
        errors,
        mirror_5xx: fivexx,
        ..ShadowStats::default()
    };
    s.mismatched[2] = mismatched;
    let spread = |hist: &mut [u64; BUCKETS], ms: u64| {
        for i in 0..compared {
            hist[bucket_of(ms * 1000 + (i % 50) * ms * 20)] += 1;
        }
    };
    spread(&mut s.primary, p_ms);
    spread(&mut s.mirror, m_ms);
    s
}

#[test]
fn each_limit_fails_with_its_measured_value() {
    let c = shadow();
    assert_eq!(check(&c, &stats(1000, 0, 0, 0, 10, 10)), Check::Pass);
    assert_eq!(
        check(&c, &stats(100, 0, 0, 0, 10, 10)),
        Check::Insufficient {
            requests: 100,
            needed: 500
        }
    );
    match check(&c, &stats(980, 0, 0, 20, 10, 10)) {
        Check::Fail {
            metric: Metric::ShadowErrorRate,
            value,
            limit,
        } => {
            assert!((value - 0.02).abs() < 1e-9 && limit == 0.01, "{value}");
        }
        other => panic!("{other:?}"),
    }
    // 1.5 % mirror 5xx: an error rate failure (it also mismatches).
    let mut s = stats(1000, 0, 15, 0, 10, 10);
    s.mismatched[0] = 15;
    assert!(matches!(
        check(&c, &s),
        Check::Fail {
            metric: Metric::ShadowErrorRate,
            ..
        }
    ));
    match check(&c, &stats(1000, 20, 0, 0, 10, 10)) {
        Check::Fail {
            metric: Metric::ShadowMismatchRate,
            value,
            ..
        } => {
            assert!((value - 0.02).abs() < 1e-9)
        }
        other => panic!("{other:?}"),
    }
    match check(&c, &stats(1000, 0, 0, 0, 10, 20)) {
        Check::Fail {
            metric: Metric::ShadowP99LatencyRatio,
            value,
            limit,
        } => {
            // Twice as slow, measured within a bucket's width (≈ 1.3).
            assert!(
                (2.0 / 1.3..2.0 * 1.3).contains(&value) && limit == 1.5,
                "{value}"
            );
        }
        other => panic!("{other:?}"),
    }
    let no_ratio = ShadowStepConfig {
        max_latency_ratio: None,
        ..shadow()
    };
    assert_eq!(check(&no_ratio, &stats(1000, 0, 0, 0, 10, 20)), Check::Pass);
    // Exactly at a limit passes.
    assert_eq!(check(&c, &stats(1000, 10, 0, 0, 10, 10)), Check::Pass);
}

#[test]
fn a_passing_shadow_advances_only_after_its_duration() {
    let (r, s) = (rollout(), shadow());
    let early = Duration::from_secs(30);
    let late = Duration::from_secs(61);
    assert_eq!(decide(&r, &s, early, 0, &Check::Pass), (Verdict::Hold, 0));
    assert_eq!(decide(&r, &s, late, 0, &Check::Pass), (Verdict::Advance, 0));
    let insufficient = Check::Insufficient {
        requests: 3,
        needed: 500,
    };
    assert_eq!(decide(&r, &s, late, 0, &insufficient), (Verdict::Hold, 0));
}

#[test]
fn a_failing_shadow_rolls_back_at_once_or_after_the_threshold() {
    let s = shadow();
    let fail = Check::Fail {
        metric: Metric::ShadowMismatchRate,
        value: 0.2,
        limit: 0.01,
    };
    let early = Duration::from_secs(5);
    match decide(&rollout(), &s, early, 0, &fail) {
        (Verdict::Rollback(why), 1) => {
            assert_eq!(why, "shadow_mismatch_rate 0.2000 exceeds the limit 0.0100")
        }
        other => panic!("{other:?}"),
    }
    let patient = RolloutConfig {
        failure_threshold: 3,
        ..rollout()
    };
    assert_eq!(decide(&patient, &s, early, 0, &fail), (Verdict::Hold, 1));
    assert_eq!(decide(&patient, &s, early, 1, &fail), (Verdict::Hold, 2));
    assert!(matches!(
        decide(&patient, &s, early, 2, &fail),
        (Verdict::Rollback(_), 3)
    ));
    // A pass in between starts the count over.
    assert_eq!(
        decide(&patient, &s, early, 2, &Check::Pass),
        (Verdict::Hold, 0)
    );
}

#[test]
fn too_little_traffic_ends_as_the_rollout_says() {
    let s = shadow();
    let insufficient = Check::Insufficient {
        requests: 3,
        needed: 500,
    };
    let way_late = Duration::from_secs(91);
    match decide(&rollout(), &s, way_late, 0, &insufficient) {
        (Verdict::Rollback(why), 0) => assert!(why.starts_with("insufficient traffic: "), "{why}"),
        other => panic!("{other:?}"),
    }
    let hold = RolloutConfig {
        on_insufficient_traffic: InsufficientTraffic::Hold,
        ..rollout()
    };
    assert!(matches!(
        decide(&hold, &s, way_late, 0, &insufficient),
        (Verdict::Pause(_), 0)
    ));
}

proptest! {
    /// With enough pairs, the check passes exactly when every rate is
    /// within its limit.
    #[test]
    fn passes_exactly_within_the_limits(
        compared in 500u64..5000,
        mismatched in 0u64..100,
        errors in 0u64..100,
    ) {
        let mismatched = mismatched.min(compared);
        let c = ShadowStepConfig { max_latency_ratio: None, ..shadow() };
        let s = stats(compared, mismatched, 0, errors, 10, 10);
        let within = s.error_rate() <= c.max_error_rate && s.mismatch_rate() <= c.max_mismatch_rate;
        prop_assert_eq!(check(&c, &s) == Check::Pass, within);
        // Never Advance before the duration, never Done.
        let (v, _) = decide(&rollout(), &c, Duration::from_secs(59), 0, &check(&c, &s));
        prop_assert!(v != Verdict::Advance && v != Verdict::Done);
    }
}
