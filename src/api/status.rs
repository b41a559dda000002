//! `GET /status`, `POST .../probe`, and `Applied` (the answer to every
//! change of the controller).

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::cluster::ClusterStatus;
use super::rollout::{FlipStatus, RolloutStatus};
use crate::event::{names, Action, ChangeSource, Split};

/// `GET /api/v1/status`: the routing state in force.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The generation of the routing table in force (also the `ETag`).
    pub generation: u64,
    pub routes: Vec<RouteStatus>,
    pub pools: Vec<PoolStatus>,
    /// Client connections open on the proxy's listeners.
    pub connections: u64,
    /// Whether the controller task still runs (a stopped one applies no
    /// change until a restart).
    pub controller: ControllerStatus,
    pub last_reload: LastReload,
    /// Keys of the file in force that apply only after a restart (they
    /// differ from the configuration the process started with).
    pub restart_needed: Vec<String>,
    /// The HTTPS listener's certificates (null without one).
    pub tls: Option<TlsStatus>,
    /// Every known rollout (running or finished), by route name.
    pub rollouts: Vec<RolloutStatus>,
    /// The latest verified flip of each route.
    pub flips: Vec<FlipStatus>,
    /// This replica's cluster (`[cluster]`; null without it).
    #[serde(default)]
    pub cluster: Option<ClusterStatus>,
    /// Changes applied in memory that the configuration file does not
    /// hold yet, oldest first (left out while there are none). Each is
    /// written on top of the file by its next successful reload.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unsaved: Vec<UnsavedChange>,
}

/// A change in force that the configuration file does not hold yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnsavedChange {
    /// RFC 3339, UTC: when it was applied.
    pub time: String,
    pub source: ChangeSource,
    pub action: Action,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// `pool/addr` of a drain or undrain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// What it set, as `key = value` phrases (`web.split = green 100`).
    pub sets: Vec<String>,
    /// Why the file does not hold it.
    pub reason: String,
}

impl Status {
    /// The pool called `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolStatus> {
        self.pools.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouteStatus {
    pub name: String,
    pub path_prefix: String,
    pub split: Split,
    /// The pool that takes the route's traffic while no pool of the split
    /// has an available backend (`null`: none).
    #[serde(default)]
    pub standby: Option<String>,
    /// The standby is taking the traffic now.
    #[serde(default)]
    pub standby_active: bool,
    /// The route answers its `maintenance_response` (`ctl maintenance`).
    #[serde(default)]
    pub maintenance: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolStatus {
    pub name: String,
    pub backends: Vec<BackendStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackendStatus {
    pub addr: SocketAddr,
    pub health: Health,
    pub draining: bool,
    pub in_flight: u64,
}

impl BackendStatus {
    /// Takes traffic now: healthy and not drained.
    pub fn in_service(&self) -> bool {
        !self.draining && self.health == Health::Healthy
    }
}

names! {
    /// A backend's health as its probes last found it.
    Health {
        /// Not probed yet (or checks are off and it never failed).
        Unknown = "unknown",
        Healthy = "healthy",
        Unhealthy = "unhealthy",
    }
}

/// The controller task: running, or stopped and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ControllerStatus {
    pub running: bool,
    /// Why it stopped (`null` while it runs).
    pub error: Option<String>,
}

/// The latest reload attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastReload {
    pub generation: u64,
    /// `null` before the first reload.
    pub source: Option<ChangeSource>,
    /// Why the file was rejected (`null`: it was applied).
    pub error: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TlsStatus {
    pub certificates: Vec<CertStatus>,
}

/// One certificate of `[tls]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CertStatus {
    pub hosts: Vec<String>,
    pub default: bool,
    pub cert: String,
    pub key: String,
    /// When the certificate being served was loaded (Unix seconds).
    pub loaded_at: u64,
    /// Successful reloads since start.
    pub reloads: u64,
    /// Why the files on disk are not being served, when they are not.
    pub error: Option<String>,
}

/// The answer to an accepted change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Applied {
    /// The generation in force now.
    pub generation: u64,
    /// False when the change was a no-op (same text as running).
    pub changed: bool,
    /// Whether the file now holds the change (`None`: nothing to write).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persisted: Option<bool>,
    /// Why the file does not hold the change when `persisted` is false
    /// (it holds an invalid edit, kept changing, or is read-only). The
    /// change is kept and written on top of the file once it can be (see
    /// `Status::unsaved`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_error: Option<String>,
    /// The route's split after the change, for split/flip/rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<Split>,
    /// The route's split before the change, for split/flip/rollback.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_split: Option<Split>,
    /// With `[cluster]`: the revision of the cluster's configuration that
    /// holds the change (stored in etcd before this answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revision: Option<i64>,
    /// The route's standby pool after the change, for split/flip/rollback
    /// and standby changes (`null`: none, or not a route's change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standby: Option<String>,
    /// A drain that left its pool with no available backend: who serves
    /// the routes it served.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backend: Option<LastBackend>,
}

/// A pool left with no available backend (by a drain), and who takes over
/// each route it served (by weight, or as the standby).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastBackend {
    pub pool: String,
    pub routes: Vec<Takeover>,
}

/// Who serves a route now that one of its pools has no available backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Takeover {
    pub route: String,
    pub by: TakenBy,
    /// The pool that takes over (`null` with `nobody`).
    pub pool: Option<String>,
}

names! {
    /// How a route is served once a pool has no available backend.
    TakenBy {
        /// Another pool of the split takes the pool's share.
        Failover = "failover",
        /// The route's standby takes its traffic.
        Standby = "standby",
        /// No pool can: the route answers 503.
        Nobody = "nobody",
    }
}

impl Applied {
    /// Nothing changed; `generation` stays in force.
    pub fn unchanged(generation: u64) -> Self {
        Applied {
            generation,
            changed: false,
            persisted: None,
            persist_error: None,
            split: None,
            previous_split: None,
            revision: None,
            standby: None,
            last_backend: None,
        }
    }
}

names! {
    /// How a one-off probe checked the backend.
    ProbeCheck {
        /// The pool's HTTP health check.
        Http = "http",
        /// A TCP connect (the pool's checks are off).
        Tcp = "tcp",
    }
}

/// `POST /backends/{pool}/{addr}/probe`: a probe made when the request
/// arrived, and the proxy's own view of the backend read after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeAnswer {
    pub pool: String,
    pub addr: SocketAddr,
    pub check: ProbeCheck,
    /// The probe passed: fresh evidence that the backend serves.
    pub ok: bool,
    /// The HTTP status of an HTTP check that got an answer.
    pub status: Option<u16>,
    /// Why the probe failed.
    pub failure: Option<String>,
    pub elapsed_ms: u64,
    pub health: Health,
    pub draining: bool,
    pub ejected: bool,
    pub in_flight: u64,
}

impl ProbeAnswer {
    /// The proxy will route to it once undrained: a fresh probe passed,
    /// its health checks agree, and outlier detection has not ejected it.
    pub fn ready(&self) -> bool {
        self.ok && self.health == Health::Healthy && !self.ejected
    }
}
