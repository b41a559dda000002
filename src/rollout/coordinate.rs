//! The seam to a cluster of replicas (`[cluster]`, implemented by
//! `cluster::drive`): with a `Coordinator`, rollouts run only on the
//! replica that leads, judge the sum of every replica's traffic, and keep
//! their progress in the cluster so that a new leader resumes them at the
//! same step.
//!
//! Cluster-wide counts come as a `Snapshot` per (route, pool): each
//! replica's cumulative counts since it started (its epoch). A step takes
//! one when it starts and judges `delta(now, base)`: a replica that
//! restarted (new epoch) or joined since counts from zero, one that left
//! drops out, and a late or lost publication is harmless (the next one
//! carries everything). The shadow step is judged the same way on every
//! replica's shadow counts (`Coordinator::shadow_snapshot`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use super::Saved;
use crate::stats::shadow::ShadowStats;
use crate::stats::Stats;

/// A boxed future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Per replica: (epoch, cumulative counts) of one (route, pool): the
/// canary windows' `Stats`, or the shadow step's `ShadowStats`.
pub type Snapshot<T = Stats> = BTreeMap<String, (u64, T)>;

/// What the rollout engine needs of a cluster.
pub trait Coordinator: Send + Sync + 'static {
    /// `Err(who leads)` when this replica does not drive rollouts now.
    fn leads(&self) -> Result<(), String>;

    /// Every replica's counts of `route`'s `pool` now (`Err`: the store
    /// cannot be read; the rollout holds).
    fn snapshot<'a>(
        &'a self,
        route: &'a str,
        pool: &'a str,
    ) -> BoxFuture<'a, Result<Snapshot, String>>;

    /// Every replica's shadow counts of `route` mirrored to `pool` now
    /// (the shadow step's; `Err` as for `snapshot`).
    fn shadow_snapshot<'a>(
        &'a self,
        route: &'a str,
        pool: &'a str,
    ) -> BoxFuture<'a, Result<Snapshot<ShadowStats>, String>>;

    /// Stores the running rollouts' progress in the cluster (the newest
    /// call wins; fenced: only while this replica leads).
    fn save(&self, state: HashMap<String, Saved>);
}

/// Cumulative counts that can be summed and taken from a baseline.
pub trait Cumulative: Clone + Default {
    fn add(&mut self, other: &Self);
    /// `self − base`, saturating.
    fn minus(&self, base: &Self) -> Self;
}

impl Cumulative for Stats {
    fn add(&mut self, other: &Self) {
        Stats::add(self, other);
    }

    fn minus(&self, base: &Self) -> Self {
        let mut d = self.clone();
        d.requests = d.requests.saturating_sub(base.requests);
        d.failures = d.failures.saturating_sub(base.failures);
        for (x, y) in d.hist.iter_mut().zip(base.hist.iter()) {
            *x = x.saturating_sub(*y);
        }
        d
    }
}

impl Cumulative for ShadowStats {
    fn add(&mut self, other: &Self) {
        ShadowStats::add(self, other);
    }

    fn minus(&self, base: &Self) -> Self {
        ShadowStats::minus(self, base)
    }
}

/// The counts of `now` since `base`, summed over the replicas.
pub fn delta<T: Cumulative>(now: &Snapshot<T>, base: &Snapshot<T>) -> T {
    let mut total = T::default();
    for (instance, (epoch, counts)) in now {
        let d = match base.get(instance) {
            Some((e, b)) if e == epoch => counts.minus(b),
            _ => counts.clone(),
        };
        total.add(&d);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(requests: u64, failures: u64) -> Stats {
        let mut s = Stats {
            requests,
            failures,
            ..Stats::default()
        };
        s.hist[3] = requests;
        s
    }

    #[test]
    fn delta_sums_replicas_and_counts_a_restarted_or_new_one_from_zero() {
        let base: Snapshot = [
            ("a".to_owned(), (1, stats(100, 1))),
            ("b".to_owned(), (1, stats(50, 0))),
            ("gone".to_owned(), (1, stats(70, 7))),
        ]
        .into();
        let now: Snapshot = [
            ("a".to_owned(), (1, stats(130, 4))),
            // b restarted: its counts are since then.
            ("b".to_owned(), (2, stats(10, 1))),
            ("new".to_owned(), (5, stats(20, 0))),
        ]
        .into();
        let d = delta(&now, &base);
        assert_eq!((d.requests, d.failures), (30 + 10 + 20, 3 + 1));
        assert_eq!(d.hist[3], 60);
    }
}
