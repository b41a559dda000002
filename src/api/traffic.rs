//! `GET /traffic`: what the web console shows that the status does not
//! (built by `admin::console::traffic`).

use serde::{Deserialize, Serialize};

/// The whole answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Traffic {
    /// The routing table generation read.
    pub generation: u64,
    /// Seconds summed in each pool's `requests_per_second`, `error_rate`
    /// and `p99_seconds` (the last complete ones).
    pub recent_seconds: u64,
    /// Length of each series: one point per complete second, oldest first,
    /// the newest being the second before the current one.
    pub series_seconds: u64,
    pub routes: Vec<RouteTraffic>,
    /// Backends' states that the status leaves out, by pool and address.
    pub backends: Vec<BackendState>,
}

/// One route's settings and its pools' traffic.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RouteTraffic {
    pub name: String,
    pub path_prefix: String,
    /// `sticky = { header, cookie }`, when set.
    pub sticky: Option<Sticky>,
    /// The header that forces a pool, when set.
    pub force_header: Option<String>,
    /// A dead pool's share goes to the other pools.
    pub failover: bool,
    /// `[routes.rollout]`, when the route has one (a rollout can start).
    pub rollout: Option<RolloutPlan>,
    /// Pools with weight, in the order written, then pools without weight
    /// that served this route in the series (forced requests, failover).
    pub pools: Vec<PoolTraffic>,
    /// Its shadow traffic over the last `recent_seconds` (up to the
    /// current one), per mirror pool, without samples (those are at
    /// `GET /routes/{route}/shadow`); empty without shadow traffic.
    #[serde(default)]
    pub shadow: Vec<super::ShadowPool>,
}

/// A route's sticky settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Sticky {
    pub header: Option<String>,
    pub cookie: Option<String>,
}

/// What a route's rollout would do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RolloutPlan {
    pub canary: String,
    pub stable: String,
    pub steps: Vec<u32>,
    pub step_interval_ms: u64,
}

/// One pool's traffic on one route.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PoolTraffic {
    pub pool: String,
    /// Its weight in the split in force (0: not in the split).
    pub weight: u32,
    pub requests_per_second: f64,
    /// Failures (every 5xx) / requests; 0 without requests.
    pub error_rate: f64,
    /// `None` without requests.
    pub p99_seconds: Option<f64>,
    pub series: Series,
}

/// Per-second points, oldest first (columns of equal length).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Series {
    pub requests: Vec<u64>,
    pub failures: Vec<u64>,
    /// p99 of each second in milliseconds; `None` for a second without
    /// requests.
    pub p99_ms: Vec<Option<f64>>,
}

/// A backend's states that `/api/v1/status` does not show.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BackendState {
    pub pool: String,
    pub addr: String,
    /// Out of rotation by passive outlier detection.
    pub ejected: bool,
    /// Percent of its weight while in slow start; `None` at full weight.
    pub slow_start_percent: Option<f64>,
    /// Why the latest probe failed; `None` when it passed or none ran.
    pub probe_failure: Option<String>,
}
