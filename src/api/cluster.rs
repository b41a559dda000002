//! The `cluster` object of `GET /status` (`[cluster]`): this replica's
//! place in its cluster — the leader, every member with the revision it
//! serves, the newest revision, the store's health, replicas that lag, and
//! whether the cluster's configuration won over this replica's file.

use serde::{Deserialize, Serialize};

use crate::event::names;

names! {
    /// This replica's part in the leader election.
    Role {
        /// Runs the rollout engine, the verified flips' judgements and the
        /// webhooks for the cluster.
        Leader = "leader",
        Follower = "follower",
    }
}

names! {
    /// Whose events a `GET /history` answer lists.
    HistoryScope {
        /// Every replica's changes and the leader's decisions.
        Cluster = "cluster",
        /// Only this replica's (the cluster's history is unreadable now).
        Replica = "replica",
    }
}

/// `status.cluster`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterStatus {
    /// False until the replica reached etcd once (it serves its own file
    /// until then and refuses changes).
    pub joined: bool,
    /// This replica's name (`[cluster] instance`).
    #[serde(default)]
    pub instance: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    /// The leader's instance name (null while there is none).
    #[serde(default)]
    pub leader: Option<String>,
    /// The newest revision of the shared configuration received.
    #[serde(default)]
    pub revision: i64,
    /// The instance that wrote it.
    #[serde(default)]
    pub revision_by: Option<String>,
    /// The revision this replica serves.
    pub applied_revision: i64,
    #[serde(default)]
    pub members: Vec<MemberStatus>,
    /// Members that have not applied the newest revision within the bound.
    #[serde(default)]
    pub stale: Vec<String>,
    pub store: StoreStatus,
    #[serde(default)]
    pub lease_ttl_s: u64,
    /// True: this replica seeded the cluster from its file; false: the
    /// cluster's configuration won over its file (null: not known yet).
    #[serde(default)]
    pub seeded_here: Option<bool>,
    /// The table differs from the cluster's revision: the rollout's local
    /// fall-back to stable while the store was unreachable.
    #[serde(default)]
    pub local_override: Option<String>,
    /// The last file edit that conflicted (the cluster's version was kept).
    #[serde(default)]
    pub conflict: Option<String>,
    /// Why the newest revision is not applied here (it did not validate).
    #[serde(default)]
    pub error: Option<String>,
}

/// One member of `status.cluster.members`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberStatus {
    pub instance: String,
    pub applied_revision: i64,
    /// When its record was last written (Unix ms, its clock).
    pub last_seen_ms: u64,
    /// Its admin listener, as it knows it.
    #[serde(default)]
    pub admin: Option<String>,
    #[serde(default)]
    pub version: String,
    /// Has not applied the newest revision within the bound.
    pub stale: bool,
}

/// The store's health as this replica sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoreStatus {
    pub reachable: bool,
    /// Since when (Unix ms) it is reachable, or not.
    #[serde(default)]
    pub since_ms: u64,
    /// Why the last request failed, while unreachable.
    #[serde(default)]
    pub error: Option<String>,
}
