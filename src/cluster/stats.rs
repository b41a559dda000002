//! Judging on all the traffic: each replica publishes its per-(route, pool)
//! counts under its lease at `P/stats/<instance>` a few times a second
//! (only when they changed: at rest nothing is written), and the leader
//! sums them.
//!
//! What is published is *cumulative* since the replica started (its
//! `epoch`): requests, failures and the latency histogram, whose buckets
//! are the same everywhere (`buckets`, checked on read: a replica of
//! another version with another layout is left out and named). The leader
//! takes a `Baseline` when a step starts and judges the sum of
//! `current − baseline` over the replicas; a replica that restarted (new
//! epoch) or joined since counts from zero. Cumulative counters make a
//! lost or late publication harmless: the next one carries everything.
//!
//! The shadow windows travel the same way (`Publication::shadow`: mirrored,
//! compared, mismatched by kind, errors, mirror 5xx, dropped, both latency
//! histograms per (route, mirror pool)), so the leader judges a shadow
//! step on every replica's copies. Mismatch samples are not published:
//! each replica keeps its own.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::error::ClusterError;
use super::store::Store;
use crate::stats::shadow::ShadowStats;

/// Counts of one (route, pool) on one replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub requests: u64,
    pub failures: u64,
    /// Latency histogram (time to response headers), the bucket layout of
    /// the statistics module; overflow last.
    pub buckets: Vec<u64>,
}

impl Counts {
    /// `self + other`, bucket by bucket.
    pub fn add(&mut self, other: &Counts) {
        self.requests += other.requests;
        self.failures += other.failures;
        if self.buckets.len() < other.buckets.len() {
            self.buckets.resize(other.buckets.len(), 0);
        }
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }

    /// `self − base`; saturating, since a baseline from an older epoch is
    /// never subtracted (see `delta`).
    pub fn minus(&self, base: &Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_sub(base.requests),
            failures: self.failures.saturating_sub(base.failures),
            buckets: self
                .buckets
                .iter()
                .enumerate()
                .map(|(i, v)| v.saturating_sub(base.buckets.get(i).copied().unwrap_or(0)))
                .collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.requests == 0
    }
}

/// (route, pool) names.
pub type PoolKey = (String, String);

/// One replica's publication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publication {
    pub instance: String,
    /// When the replica started counting (Unix ms): the counts are since then.
    pub epoch: u64,
    /// When this publication was made (Unix ms).
    pub at_ms: u64,
    /// Number of histogram buckets every `Counts` has.
    pub buckets: usize,
    /// Counts by route, then pool.
    pub windows: BTreeMap<String, BTreeMap<String, Counts>>,
    /// Shadow counts by route, then mirror pool (the same cumulative
    /// scheme; absent from a replica of an older version, which then
    /// counts as having mirrored nothing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub shadow: BTreeMap<String, BTreeMap<String, ShadowStats>>,
}

impl Publication {
    pub fn get(&self, route: &str, pool: &str) -> Option<&Counts> {
        self.windows.get(route)?.get(pool)
    }

    /// The shadow counts of `route` mirrored to `pool`.
    pub fn shadow_of(&self, route: &str, pool: &str) -> Option<&ShadowStats> {
        self.shadow.get(route)?.get(pool)
    }
}

/// What the leader remembered of each replica when a step started:
/// instance → (epoch, counts of the route's pools).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Baseline {
    pub replicas: BTreeMap<String, (u64, BTreeMap<String, Counts>)>,
}

impl Baseline {
    /// The baseline of `route` from the current publications.
    pub fn take(route: &str, pubs: &[Publication]) -> Baseline {
        Baseline {
            replicas: pubs
                .iter()
                .map(|p| {
                    let pools = p.windows.get(route).cloned().unwrap_or_default();
                    (p.instance.clone(), (p.epoch, pools))
                })
                .collect(),
        }
    }
}

/// A replica's counts of (route, pool) since `base` (from zero if it has
/// restarted or joined since).
pub fn delta(p: &Publication, route: &str, pool: &str, base: &Baseline) -> Counts {
    let now = p.get(route, pool).cloned().unwrap_or_default();
    match base.replicas.get(&p.instance) {
        Some((epoch, pools)) if *epoch == p.epoch => match pools.get(pool) {
            Some(b) => now.minus(b),
            None => now,
        },
        _ => now,
    }
}

/// The cluster's counts of (route, pool) since `base`: the sum over the
/// publications, and each replica's own share.
pub fn sum(
    pubs: &[Publication],
    route: &str,
    pool: &str,
    base: &Baseline,
) -> (Counts, Vec<(String, Counts)>) {
    let mut total = Counts::default();
    let mut each = Vec::with_capacity(pubs.len());
    for p in pubs {
        let d = delta(p, route, pool, base);
        total.add(&d);
        each.push((p.instance.clone(), d));
    }
    (total, each)
}

/// Writes this replica's publication under its lease.
pub async fn publish(store: &Store, p: &Publication, lease: i64) -> Result<(), ClusterError> {
    let value = serde_json::to_vec(p).map_err(|e| ClusterError::Config(e.to_string()))?;
    let mut c = store.client();
    let opts = etcd_client::PutOptions::new().with_lease(lease);
    super::connect::rpc(c.put(store.keys().stats_of(store.instance()), value, Some(opts))).await?;
    Ok(())
}

/// Every replica's current publication with `buckets` histogram buckets;
/// others are left out with a warning (another version's layout).
pub async fn collect(store: &Store, buckets: usize) -> Result<Vec<Publication>, ClusterError> {
    let kvs = store.list(&store.keys().stats()).await?;
    let mut out = Vec::with_capacity(kvs.len());
    for kv in &kvs {
        match serde_json::from_slice::<Publication>(kv.value()) {
            Ok(p) if p.buckets == buckets => out.push(p),
            Ok(p) => tracing::warn!(
                instance = %p.instance,
                buckets = p.buckets,
                expected = buckets,
                "leaving out statistics with another histogram layout"
            ),
            Err(e) => tracing::warn!(
                key = %String::from_utf8_lossy(kv.key()),
                error = %e,
                "unreadable statistics publication"
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
