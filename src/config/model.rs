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
    /// Passive-ejection defaults; each pool carries its merged copy.
    pub outlier: OutlierConfig,
    /// Retry defaults; each pool carries its merged copy.
    pub retry: RetryConfig,
    /// Pools in the order they were declared.
    pub pools: Vec<PoolConfig>,
    /// Routes in the order they were declared (that order breaks ties).
    pub routes: Vec<RouteConfig>,
    /// Certificates of the HTTPS listener (`server.listen_tls`).
    pub tls: Option<TlsConfig>,
    /// `[[notify]]`: webhooks that deployment events are posted to.
    pub notify: Vec<super::NotifyConfig>,
    /// `[cluster]`: replicas coordinated through etcd; `None`: stand-alone.
    pub cluster: Option<super::ClusterConfig>,
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
    /// Header names with `_` are passed on (default: dropped, as nginx's
    /// `underscores_in_headers off`; issue 18).
    pub underscores_in_headers: bool,
    /// How the configuration file is watched for edits.
    pub watch: WatchMode,
    /// Polling period (for `poll`, and the safety-net poll of `auto`).
    pub watch_interval: Duration,
    /// HTTPS listener (with `[tls]`). Changing it needs a restart.
    pub listen_tls: Option<SocketAddr>,
    /// The plain listener answers 308 to the https URL.
    pub redirect: Option<RedirectConfig>,
    /// `Strict-Transport-Security` value added to responses over TLS.
    pub hsts: Option<String>,
    /// Where the access log goes (`None`: off).
    pub access_log: Option<AccessLogDest>,
    pub access_log_format: AccessLogFormat,
    /// Lines that may wait for the writer before new ones are dropped.
    pub access_log_buffer: usize,
    /// Request body limit of routes without their own (`None`: no limit).
    pub max_body_bytes: Option<u64>,
    /// The listeners read a PROXY protocol header (v1 or v2) from peers in
    /// `trusted_proxies` (`config::http`).
    pub proxy_protocol: bool,
    /// Peers whose PROXY header and `X-Forwarded-For` are believed.
    pub trusted_proxies: super::TrustedProxies,
    /// Which HTTP/1.1 server serves clients (restart to change).
    pub http1: Http1Engine,
}

/// The HTTP/1.1 implementation of the client side (`server.http1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1Engine {
    /// hyper's HTTP/1 server and client (`proxy::Proxy::handle`).
    Hyper,
    /// switchyard's own byte-level path (`proxy::h1`).
    #[default]
    Lean,
}

/// Where access-log lines are written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogDest {
    Stdout,
    File(PathBuf),
}

/// Access-log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AccessLogFormat {
    #[default]
    Json,
    /// nginx's `combined`, followed by switchyard's fields as key=value.
    Combined,
}

/// How edits of the configuration file are noticed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WatchMode {
    /// File-system events on the file's directory, plus a slow metadata
    /// poll that catches what events miss (single-file bind mounts, some
    /// network file systems).
    #[default]
    Auto,
    /// File-system events only.
    Notify,
    /// Metadata polling only.
    Poll,
    /// Reload on SIGHUP and `POST /api/v1/reload` only.
    Off,
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
            underscores_in_headers: false,
            watch: WatchMode::Auto,
            watch_interval: Duration::from_secs(1),
            listen_tls: None,
            redirect: None,
            hsts: None,
            access_log: None,
            access_log_format: AccessLogFormat::Json,
            access_log_buffer: 8192,
            max_body_bytes: Some(super::DEFAULT_MAX_BODY_BYTES),
            proxy_protocol: false,
            trusted_proxies: Default::default(),
            http1: Http1Engine::default(),
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
    /// Deployment events are appended here as JSON lines, when set.
    pub history_file: Option<PathBuf>,
    /// Record and serve Prometheus metrics (`GET /metrics`).
    pub metrics: bool,
    /// Serve `/metrics` without the token to clients on loopback.
    pub metrics_open: bool,
    /// Host names (lower case, no port) the admin answers to besides IP
    /// literals and localhost (`admin::guard`: DNS rebinding).
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 9901)),
            token_env: None,
            token_file: None,
            history_file: None,
            metrics: true,
            metrics_open: false,
            allowed_hosts: Vec::new(),
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

/// Passive outlier ejection: a backend that fails `consecutive_failures`
/// requests in a row (connect failures, resets, timeouts, 5xx answers) is
/// taken out of rotation for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierConfig {
    /// 0 turns passive ejection off.
    pub consecutive_failures: u32,
    /// The first ejection's length; the n-th ejection in a row lasts n times
    /// as long, up to `max_ejection_time`.
    pub ejection_time: Duration,
    pub max_ejection_time: Duration,
    /// At most this share of a pool's backends is ejected at once (rounded
    /// down: at 50 %, a pool of one backend is never ejected).
    pub max_ejected_percent: u32,
}

impl Default for OutlierConfig {
    fn default() -> Self {
        Self {
            consecutive_failures: 5,
            ejection_time: Duration::from_secs(30),
            max_ejection_time: Duration::from_secs(300),
            max_ejected_percent: 50,
        }
    }
}

/// Retries on another backend of the same pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryConfig {
    /// Extra tries after the first, each on a backend not tried yet.
    pub retries: u32,
    /// Limit of one try (until response headers); `None`: only the
    /// overall `server.upstream_timeout` applies.
    pub per_try_timeout: Option<Duration>,
    /// Retries in any 10 s window stay below this percentage of the pool's
    /// requests in that window (and at least 10 are always allowed).
    pub budget_percent: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            retries: 2,
            per_try_timeout: None,
            budget_percent: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub name: String,
    /// Backends given as IP:port.
    pub backends: Vec<BackendConfig>,
    /// Backends given as DNS names: each name becomes one backend per
    /// address it resolves to (the controller expands them).
    pub names: Vec<NamedBackend>,
    /// How often names are resolved again.
    pub resolve_interval: Duration,
    pub balance: Balance,
    pub health: HealthConfig,
    pub outlier: OutlierConfig,
    pub retry: RetryConfig,
    /// A backend that becomes healthy (after being unhealthy, ejected, or
    /// added by a reload) has its share ramped up linearly over this time.
    pub slow_start: Option<Duration>,
    /// TLS to the backends (`https://` backends or `tls = true`).
    pub tls: Option<PoolTls>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackendConfig {
    pub addr: SocketAddr,
    /// Relative share inside the pool, 1..=100.
    pub weight: u32,
    /// Taken out of rotation by an operator (persisted by the admin API).
    pub drain: bool,
}

/// A backend given as `host:port` with a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NamedBackend {
    pub host: String,
    pub port: u16,
    pub weight: u32,
    pub drain: bool,
}

/// How a pool spreads requests over its backends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Balance {
    /// Two random choices, the one with fewer requests in flight wins.
    #[default]
    LeastRequest,
    RoundRobin,
}

impl Balance {
    /// The name the file uses for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Balance::LeastRequest => "least_request",
            Balance::RoundRobin => "round_robin",
        }
    }
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
    /// When a pool of the split has no available backend, its share goes
    /// to the route's other pools (default true).
    pub failover: bool,
    /// `[routes.rollout]`: the automated canary of this route.
    pub rollout: Option<RolloutConfig>,
    /// Body limit, rewrites, header rules, rate limit, fixed answers,
    /// standby (`config::http`).
    pub http: super::RouteHttp,
    /// `mirror`: copies of some requests to another pool, compared.
    pub mirror: Option<super::MirrorConfig>,
}

/// `[routes.rollout]`: how the canary engine walks a route's split from
/// `stable` to `canary` and judges each step (see `rollout`).
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutConfig {
    pub canary: String,
    pub stable: String,
    /// Percent on the canary pool at each step, rising, each 1..=100.
    pub steps: Vec<u32>,
    pub step_interval: std::time::Duration,
    /// Canary requests a step needs before it can pass.
    pub min_requests: u64,
    pub max_error_rate: f64,
    pub max_p99_latency: std::time::Duration,
    /// Canary error rate minus stable's, over the same window.
    pub max_error_rate_increase: Option<f64>,
    /// Canary p99 divided by stable's, over the same window.
    pub max_latency_ratio: Option<f64>,
    /// Failed checks in a row before rolling back.
    pub failure_threshold: u32,
    /// How long past `step_interval` a step may wait for `min_requests`.
    pub max_wait: std::time::Duration,
    pub on_insufficient_traffic: InsufficientTraffic,
    /// `shadow`: a mirrored, judged phase before the first step.
    pub shadow: Option<super::ShadowStepConfig>,
}

/// What happens when a step has not seen `min_requests` after `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsufficientTraffic {
    /// Roll back to 100 % stable.
    Rollback,
    /// Pause at the current step until an operator resumes, promotes or
    /// aborts.
    Hold,
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

/// `server.redirect_http`: plain requests are answered 308 to https.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedirectConfig {
    /// `server.redirect_https_port`: the port in the `Location` when it is
    /// not the one `listen_tls` is bound to (e.g. 443 published to 8443 by
    /// a container runtime). 443 is left out of the URL.
    pub https_port: Option<u16>,
    /// ACME http-01 challenges (`/.well-known/acme-challenge/`) are routed
    /// normally instead of redirected.
    pub acme_passthrough: bool,
}

/// `[tls]`: the HTTPS listener's certificates. The files are read at start
/// and reloaded when they change; the table itself takes effect on restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsConfig {
    /// `[tls]` cert/key (no hosts) first when given, then `[[tls.certs]]`.
    pub certs: Vec<CertConfig>,
    /// The certificate for clients whose SNI names no entry (or who send
    /// none): `[tls]` cert/key, else the first `[[tls.certs]]`.
    pub default: usize,
}

/// One certificate of the HTTPS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertConfig {
    /// SNI names this certificate is served for.
    pub hosts: Vec<HostMatch>,
    /// PEM: the certificate, then its intermediates.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
}

/// TLS from the proxy to a pool's backends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolTls {
    /// Trust anchors from `ca_file`; `None`: the system's CA certificates.
    pub ca: Option<CaFile>,
    /// Name sent as SNI and checked against the certificate:
    /// `tls_server_name`, else the pool's DNS host name; `None`: each
    /// backend's IP address.
    pub server_name: Option<String>,
    /// `tls_insecure_skip_verify`: certificates are not verified.
    pub insecure_skip_verify: bool,
}

/// A CA bundle, read when the configuration is validated.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    pub path: PathBuf,
    pub certs: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFile")
            .field("path", &self.path)
            .field("certs", &self.certs.len())
            .finish()
    }
}
