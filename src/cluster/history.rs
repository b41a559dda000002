//! The cluster's history: every replica's changes and the leader's
//! decisions, each with the instance that made it, under `P/history/`
//! (one key per event, named so that key order is time order). Any replica
//! reads the same list (`ctl history` on any of them). A leader's decision
//! is written in the same fenced transaction as the decision itself
//! (`event_op`), so an ex-leader's judgement can never appear in it.
//! The leader trims the list to `KEEP` events.

use std::sync::atomic::{AtomicU64, Ordering};

use etcd_client::{DeleteOptions, GetOptions, SortOrder, SortTarget, TxnOp};
use serde::{Deserialize, Serialize};

use super::connect::rpc;
use super::error::ClusterError;
use super::store::{unix_ms, Store};

/// Events kept in etcd (the local ring keeps as many).
pub const KEEP: usize = 1000;

/// One event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterEvent {
    /// The replica that made the change or decision.
    pub instance: String,
    /// When (Unix ms, that replica's clock).
    pub at_ms: u64,
    /// The history event itself (the admin API's JSON form).
    pub event: serde_json::Value,
}

/// Appends and reads the cluster's history.
pub struct History {
    store: Store,
    /// Tie-breaker for events of one millisecond.
    seq: AtomicU64,
}

impl History {
    pub fn new(store: Store) -> Self {
        History {
            store,
            seq: AtomicU64::new(0),
        }
    }

    /// The put of `event` (for a fenced transaction, or `append`).
    pub fn event_op(&self, event: serde_json::Value) -> Result<TxnOp, ClusterError> {
        let at_ms = unix_ms();
        // Relaxed: only uniqueness matters, not ordering with other memory.
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let e = ClusterEvent {
            instance: self.store.instance().to_owned(),
            at_ms,
            event,
        };
        let value = serde_json::to_vec(&e).map_err(|e| ClusterError::Config(e.to_string()))?;
        let key = self
            .store
            .keys()
            .history_event(at_ms, self.store.instance(), n);
        Ok(Store::put_op(key, value, None))
    }

    /// Appends an event that needs no fencing (a replica's own change).
    pub async fn append(&self, event: serde_json::Value) -> Result<(), ClusterError> {
        let op = self.event_op(event)?;
        let mut c = self.store.client();
        rpc(c.txn(etcd_client::Txn::new().and_then([op]))).await?;
        Ok(())
    }

    /// The newest `limit` events, oldest first.
    pub async fn recent(&self, limit: usize) -> Result<Vec<ClusterEvent>, ClusterError> {
        let mut c = self.store.client();
        let opts = GetOptions::new()
            .with_prefix()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(limit as i64);
        let resp = rpc(c.get(self.store.keys().history(), Some(opts))).await?;
        let mut out: Vec<ClusterEvent> = resp
            .kvs()
            .iter()
            .filter_map(|kv| serde_json::from_slice(kv.value()).ok())
            .collect();
        out.reverse();
        Ok(out)
    }

    /// Deletes all but the newest `keep` events (the leader does this now
    /// and then; two replicas trimming at once delete the same keys).
    pub async fn trim(&self, keep: usize) -> Result<usize, ClusterError> {
        let dir = self.store.keys().history();
        let mut c = self.store.client();
        let opts = GetOptions::new()
            .with_prefix()
            .with_keys_only()
            .with_sort(SortTarget::Key, SortOrder::Descend)
            .with_limit(keep as i64 + 1);
        let resp = rpc(c.get(dir.clone(), Some(opts))).await?;
        let Some(oldest_kept) = resp.kvs().get(keep).map(|kv| kv.key().to_vec()) else {
            return Ok(0);
        };
        // Delete [dir, oldest_kept]: everything up to and including the
        // first key beyond the newest `keep`.
        let mut end = oldest_kept;
        end.push(0);
        let del = DeleteOptions::new().with_range(end);
        let r = rpc(c.delete(dir, Some(del))).await?;
        Ok(r.deleted() as usize)
    }
}
