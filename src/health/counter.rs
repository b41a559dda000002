//! The threshold counter: the pure core of active health checking. Given
//! a backend's state, the streak of probe results that disagree with it and
//! a new result, it answers the next state and streak.
//!
//! - Unknown (never probed): the first result decides at once — a pass
//!   makes the backend Healthy, a failure Unhealthy. A backend added by a
//!   reload therefore takes traffic after its first passing probe, and a
//!   backend that is down at start-up is out of rotation after one probe.
//! - Healthy: `unhealthy_threshold` failures in a row make it Unhealthy;
//!   any pass resets the streak.
//! - Unhealthy: `healthy_threshold` passes in a row make it Healthy; any
//!   failure resets the streak.

use crate::table::Health;

/// Thresholds of a pool's health checks (both at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thresholds {
    pub healthy: u32,
    pub unhealthy: u32,
}

/// The state after one more probe result, and the new streak (results in a
/// row that disagree with the state).
pub fn step(state: Health, streak: u32, passed: bool, t: Thresholds) -> (Health, u32) {
    match (state, passed) {
        (Health::Unknown, true) => (Health::Healthy, 0),
        (Health::Unknown, false) => (Health::Unhealthy, 0),
        (Health::Healthy, true) | (Health::Unhealthy, false) => (state, 0),
        (Health::Healthy, false) => flip(state, Health::Unhealthy, streak, t.unhealthy),
        (Health::Unhealthy, true) => flip(state, Health::Healthy, streak, t.healthy),
    }
}

fn flip(state: Health, to: Health, streak: u32, threshold: u32) -> (Health, u32) {
    let streak = streak.saturating_add(1);
    if streak >= threshold.max(1) {
        (to, 0)
    } else {
        (state, streak)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: Thresholds = Thresholds {
        healthy: 2,
        unhealthy: 3,
    };

    fn run(start: Health, results: &[bool], t: Thresholds) -> Vec<Health> {
        let (mut state, mut streak) = (start, 0);
        results
            .iter()
            .map(|&r| {
                (state, streak) = step(state, streak, r, t);
                state
            })
            .collect()
    }

    #[test]
    fn unknown_is_decided_by_the_first_probe() {
        assert_eq!(step(Health::Unknown, 0, true, T), (Health::Healthy, 0));
        assert_eq!(step(Health::Unknown, 0, false, T), (Health::Unhealthy, 0));
    }

    #[test]
    fn thresholds_must_be_met_in_a_row() {
        use Health::*;
        assert_eq!(
            run(Healthy, &[false, false, true, false, false, false], T),
            [Healthy, Healthy, Healthy, Healthy, Healthy, Unhealthy]
        );
        assert_eq!(
            run(Unhealthy, &[true, false, true, true], T),
            [Unhealthy, Unhealthy, Unhealthy, Healthy]
        );
    }

    #[test]
    fn alternating_results_never_flip_with_thresholds_above_one() {
        let results: Vec<bool> = (0..100).map(|i| i % 2 == 0).collect();
        assert!(run(Health::Healthy, &results, T)
            .iter()
            .all(|&h| h == Health::Healthy));
    }

    fn thresholds() -> impl Strategy<Value = Thresholds> {
        (1u32..6, 1u32..6).prop_map(|(healthy, unhealthy)| Thresholds { healthy, unhealthy })
    }

    proptest! {
        /// After the first decision, the state changes only after as many
        /// disagreeing results in a row as the threshold asks, and always
        /// then.
        #[test]
        fn flips_exactly_at_the_threshold(
            results in proptest::collection::vec(any::<bool>(), 1..200),
            t in thresholds(),
        ) {
            let states = run(Health::Unknown, &results, t);
            prop_assert_eq!(states[0], if results[0] { Health::Healthy } else { Health::Unhealthy });
            let mut run_len = 0u32;
            for i in 1..results.len() {
                let before = states[i - 1];
                let disagrees = results[i] != (before == Health::Healthy);
                run_len = if disagrees { run_len + 1 } else { 0 };
                let needed = if before == Health::Healthy { t.unhealthy } else { t.healthy };
                if run_len >= needed {
                    prop_assert_ne!(states[i], before, "threshold met at {} without a flip", i);
                    run_len = 0;
                } else {
                    prop_assert_eq!(states[i], before, "flip at {} before the threshold", i);
                }
            }
        }

        /// The state never changes twice within min(thresholds) results.
        #[test]
        fn no_faster_oscillation_than_the_thresholds(
            results in proptest::collection::vec(any::<bool>(), 1..200),
            t in thresholds(),
        ) {
            let states = run(Health::Unknown, &results, t);
            let flips: Vec<usize> = (1..states.len()).filter(|&i| states[i] != states[i - 1]).collect();
            for w in flips.windows(2) {
                prop_assert!(w[1] - w[0] >= t.healthy.min(t.unhealthy) as usize);
            }
        }
    }
}
