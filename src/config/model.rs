//! The validated configuration: typed, defaulted, and internally consistent.
//! Built only by `validate`; everything downstream (routing table, servers,
//! health) reads these types and never the raw TOML.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;

/// A whole, valid configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub admin: AdminConfig,
    /// Health-check defaults; each pool carries its merged copy.
    pub health: HealthConfig,
    /// Pools in the order they were declared.
    pub pools: Vec<PoolConfig>,
    /// Routes in the order they were declared (that order breaks ties).
    pub routes: Vec<RouteConfig>,
}

impl Config {
    pub fn pool(&self, name: &str) -> Option<&PoolConfig> {
        self.pools.iter().find(|p| p.name == name)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Plain HTTP listener. Changing it needs a restart.
    pub listen: SocketAddr,
    /// Worker threads, each with its own runtime and listening socket;
    /// 0 means one per CPU.
    pub workers: usize,
    /// How long in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// TCP connect to a backend.
    pub connect_timeout: Duration,
    /// From sending the request until the backend's response headers.
    pub upstream_timeout: Duration,
    /// Idle upstream keep-alive connections are closed after this; it must
    /// stay below the backends' own keep-alive timeout (uvicorn: 5 s).
    pub upstream_idle_timeout: Duration,
    /// Idle upstream connections kept per backend and worker.
    pub upstream_max_idle: usize,
    /// A client must send its request headers within this time.
    pub client_header_timeout: Duration,
    /// Upper bound on the request head (request line and headers).
    pub max_header_bytes: usize,
    /// Upper bound on the number of request headers.
    pub max_headers: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            workers: 0,
            shutdown_grace: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(2),
            upstream_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(4),
            upstream_max_idle: 256,
            client_header_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_headers: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct AdminConfig {
    pub listen: SocketAddr,
    /// Environment variable holding the bearer token.
    pub token_env: Option<String>,
    /// File holding the bearer token (trailing whitespace ignored).
    pub token_file: Option<PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token_env: None,
            token_file: None,
        }
    }
}

/// Active health-check settings (mirroring an AWS target group's).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthConfig {
    pub enabled: bool,
    pub path: String,
    /// Host header for probes; the backend address when unset.
    pub host: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    pub expect_status: StatusSet,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/health".to_owned(),
            host: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            healthy_threshold: 2,
            unhealthy_threshold: 2,
            expect_status: StatusSet(vec![(200, 299)]),
        }
    }
}

/// Accepted status codes: "200", "200-299", "200,204".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet(pub Vec<(u16, u16)>);

impl StatusSet {
    pub fn contains(&self, status: u16) -> bool {
        self.0.iter().any(|&(lo, hi)| lo <= status && status <= hi)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    pub backends: Vec<BackendConfig>,
    pub balance: Balance,
    pub health: HealthConfig,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendConfig {
    pub addr: SocketAddr,
    /// Relative share inside the pool, 1..=100.
    pub weight: u32,
}

/// How a pool spreads requests over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Two random choices, the one with fewer requests in flight wins.
    #[default]
    LeastRequest,
    RoundRobin,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    pub name: String,
    pub host: Option<HostMatch>,
    /// Raw prefix match on the path, "/" when unset.
    pub path_prefix: String,
    /// Pool name and weight, in the order written; weights may be 0.
    pub split: Vec<(String, u32)>,
    pub sticky: Option<StickyConfig>,
    pub force_header: Option<HeaderName>,
}

/// A route's host matcher; names are stored lower-case, without a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    Exact(String),
    /// `*.example.com` stored as ".example.com": matches any name ending in it.
    Suffix(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct StickyConfig {
    pub header: Option<HeaderName>,
    pub cookie: Option<String>,
}
