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
//! carries everything).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;

use super::Saved;
use crate::stats::Stats;

/// A boxed future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Per replica: (epoch, cumulative counts) of one (route, pool).
pub type Snapshot = BTreeMap<String, (u64, Stats)>;

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

    /// Stores the running rollouts' progress in the cluster (the newest
    /// call wins; fenced: only while this replica leads).
    fn save(&self, state: HashMap<String, Saved>);
}

/// The counts of `now` since `base`, summed over the replicas.
pub fn delta(now: &Snapshot, base: &Snapshot) -> Stats {
    let mut total = Stats::default();
    for (instance, (epoch, counts)) in now {
        let mut d = counts.clone();
        if let Some((e, b)) = base.get(instance) {
            if e == epoch {
                d.requests = d.requests.saturating_sub(b.requests);
                d.failures = d.failures.saturating_sub(b.failures);
                for (x, y) in d.hist.iter_mut().zip(b.hist.iter()) {
                    *x = x.saturating_sub(*y);
                }
            }
        }
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
