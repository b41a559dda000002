//! Membership: every replica keeps `P/members/<instance>` under its lease
//! with the revision it last applied and when it was last seen, so any
//! replica can list the cluster and flag one that lags. The record is
//! written when the applied revision changes and otherwise once per TTL
//! (the "last seen" heartbeat: three replicas at the default 5 s TTL are
//! 0.6 writes/s at rest).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::error::ClusterError;
use super::store::{unix_ms, Store};

/// One replica's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub instance: String,
    /// The document revision this replica serves (0: none applied yet).
    pub applied_revision: i64,
    /// When this record was last written (Unix ms, the member's clock).
    pub last_seen_ms: u64,
    /// When the replica started (Unix ms); a new value is a restart.
    pub started_ms: u64,
    /// The replica's admin listener, as it knows it.
    #[serde(default)]
    pub admin: Option<String>,
    /// switchyard's version on that replica.
    #[serde(default)]
    pub version: String,
}

/// Keeps this replica's record up to date until `shutdown` (the lease's
/// revocation then removes it).
pub async fn run(
    store: Store,
    mut lease: watch::Receiver<Option<i64>>,
    mut applied: watch::Receiver<i64>,
    started_ms: u64,
    admin: Option<String>,
    interval: Duration,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        let id = *lease.borrow_and_update();
        if let Some(id) = id {
            let m = Member {
                instance: store.instance().to_owned(),
                applied_revision: *applied.borrow_and_update(),
                last_seen_ms: unix_ms(),
                started_ms,
                admin: admin.clone(),
                version: env!("CARGO_PKG_VERSION").to_owned(),
            };
            if let Err(e) = put(&store, &m, id).await {
                tracing::debug!(error = %e, "member record not written");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
            r = lease.changed() => if r.is_err() { return },
            r = applied.changed() => if r.is_err() { return },
        }
    }
}

async fn put(store: &Store, m: &Member, lease: i64) -> Result<(), ClusterError> {
    let value = serde_json::to_vec(m).map_err(|e| ClusterError::Config(e.to_string()))?;
    let opts = etcd_client::PutOptions::new().with_lease(lease);
    let mut c = store.client();
    super::connect::rpc(c.put(store.keys().member(&m.instance), value, Some(opts))).await?;
    Ok(())
}

/// Reads the member list every second into `out` until `shutdown` (what
/// the status shows; a failed read keeps the last list).
pub async fn follow(
    store: Store,
    out: watch::Sender<Vec<Member>>,
    health: super::health::Health,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let r = list(&store).await;
        super::bridge::note(&health, &r);
        if let Ok(m) = r {
            out.send_replace(m);
        }
    }
}

/// Every member's record (unreadable ones are skipped with a warning).
pub async fn list(store: &Store) -> Result<Vec<Member>, ClusterError> {
    let dir = store.keys().members();
    let kvs = store.list(&dir).await?;
    Ok(kvs
        .iter()
        .filter_map(|kv| match serde_json::from_slice::<Member>(kv.value()) {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(key = %String::from_utf8_lossy(kv.key()), error = %e, "unreadable member record");
                None
            }
        })
        .collect())
}

/// The members that have not applied `revision` although it was written
/// more than `bound` ago (`revision_at_ms`, the writer's clock; `now_ms`).
pub fn stale(
    members: &[Member],
    revision: i64,
    revision_at_ms: u64,
    now_ms: u64,
    bound: Duration,
) -> Vec<&Member> {
    let overdue = now_ms.saturating_sub(revision_at_ms) > bound.as_millis() as u64;
    members
        .iter()
        .filter(|m| overdue && m.applied_revision < revision)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, applied: i64) -> Member {
        Member {
            instance: name.into(),
            applied_revision: applied,
            last_seen_ms: 0,
            started_ms: 0,
            admin: None,
            version: String::new(),
        }
    }

    #[test]
    fn lagging_members_are_stale_only_after_the_bound() {
        let ms = [m("a", 7), m("b", 6), m("c", 8)];
        let bound = Duration::from_secs(2);
        assert!(stale(&ms, 7, 10_000, 11_000, bound).is_empty());
        let s: Vec<&str> = stale(&ms, 7, 10_000, 12_001, bound)
            .iter()
            .map(|m| m.instance.as_str())
            .collect();
        assert_eq!(s, ["b"]);
    }
}
