//! The seam between the controller and a store shared by several replicas
//! (`[cluster]`, implemented by `cluster::bridge`). The controller stays
//! the single writer of this replica's table and file; with a store it
//! *proposes* the shared part of each change there (a compare-and-swap on
//! the revision the change was planned on) and applies it once stored,
//! and it applies every revision the store delivers through the same
//! validate-then-swap path as a file reload (`Change::Shared`).
//!
//! What the controller publishes about it (`SharedState`): the revision it
//! serves, whether its table differs from the cluster's (a local fallback
//! while the store is unreachable), the last conflict of a file edit.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;

use crate::event::{ChangeSource, Event};

/// A boxed future (the trait is used as `dyn`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why the store did not take a proposal.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShareError {
    /// The store is unreachable or did not answer; nothing is known stored.
    #[error("{0}")]
    Unavailable(String),
    /// The shared document is at another revision than planned.
    #[error("the cluster's configuration changed meanwhile (planned on revision {planned}, now {current})")]
    Conflict { planned: i64, current: i64 },
    /// A leader-only write (the rollout engine's) by a replica that is no
    /// longer the leader: refused, nothing written.
    #[error("this replica is not the cluster's leader")]
    NotLeader,
}

/// One revision of the shared part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedDocument {
    pub revision: i64,
    /// The shared tables, TOML.
    pub text: String,
    /// The instance that wrote it.
    pub by: String,
}

/// The store's side of the seam.
pub trait Shared: Send + Sync + 'static {
    /// `Err(reason)` when a proposal cannot be made now (the store is
    /// unreachable): the mutation is answered 503 without waiting.
    fn ready(&self) -> Result<(), String>;

    /// Stores `text` as the revision after `planned`; answers the new
    /// revision once the store holds it. Changes of `ChangeSource::Rollout`
    /// are leadership writes (fenced).
    fn propose<'a>(
        &'a self,
        planned: i64,
        text: &'a str,
        source: ChangeSource,
    ) -> BoxFuture<'a, Result<i64, ShareError>>;

    /// The store's current document (after a conflict).
    fn current(&self) -> BoxFuture<'_, Result<Option<SharedDocument>, ShareError>>;

    /// Adds an event this replica made to the cluster's history (never
    /// waits; best effort).
    fn record(&self, event: &Event);
}

/// What the controller tells about its place in the cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SharedState {
    /// The revision of the shared document this replica serves (0: none
    /// yet — it serves its own file until the store answers).
    pub revision: i64,
    /// The table differs from the cluster's revision: the rollout
    /// engine fell back to stable locally while the store was unreachable.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_override: Option<String>,
    /// The last file edit that conflicted with the cluster (the cluster's
    /// version was kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conflict: Option<String>,
    /// Why the latest revision is not applied (it did not validate here).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}
