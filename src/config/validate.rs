//! Raw TOML → validated `Config`. Collects every problem it can find (not
//! just the first), each pointing at the line, column and key concerned.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::backend::{BackendAddr, Schemes};
use super::error::{position, Diagnostic};
use super::model::*;
use super::raw::*;
use super::values::{ms, secs, DAY, HOUR, MS};

/// Largest per-backend weight; the pool expands weights into a slot array.
const MAX_BACKEND_WEIGHT: i64 = 100;

pub(crate) struct Validator<'a> {
    text: &'a str,
    pub(crate) diags: Vec<Diagnostic>,
    /// Relative paths in the file are relative to this (its directory).
    pub(crate) base: PathBuf,
}

impl<'a> Validator<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self {
            text,
            diags: Vec::new(),
            base: PathBuf::new(),
        }
    }

    /// Resolves relative paths against `dir`.
    pub(crate) fn with_base(mut self, dir: &std::path::Path) -> Self {
        self.base = dir.to_owned();
        self
    }

    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        let (line, column) = position(self.text, span.start);
        self.diags.push(Diagnostic {
            line,
            column,
            key: key.into(),
            message: message.into(),
            hint,
        });
    }

    pub(crate) fn config(&mut self, raw: RawConfig) -> Option<Config> {
        let mut server = self.server(&raw.server);
        let tls = self.tls(&raw, &mut server);
        self.server_http(&raw.server, &mut server);
        let admin = self.admin(&raw.admin);
        let health = self.health("health", &raw.health, &HealthConfig::default());
        let outlier = self.outlier("outlier", &raw.outlier, &OutlierConfig::default());
        let retry = self.retry("retry", &raw.retry, &RetryConfig::default());
        let pools = self.pools(&raw.pools, &health, &outlier, &retry);
        let routes = self.routes(&raw.routes, &pools);
        let notify = self.notify(&raw.notify);
        let cluster = self.cluster(raw.cluster.as_ref(), server.listen.port());
        if raw.routes.is_empty() {
            self.error(
                0..0,
                "routes",
                "no routes are defined, so every request would get 404",
                Some("add a [[routes]] table with a name and a split".into()),
            );
        }
        if !self.diags.is_empty() {
            return None;
        }
        Some(Config {
            server,
            admin,
            health,
            outlier,
            retry,
            pools,
            routes,
            tls,
            notify,
            cluster,
        })
    }

    fn server(&mut self, raw: &RawServer) -> ServerConfig {
        let d = ServerConfig::default();
        ServerConfig {
            listen: self.socket_addr("server.listen", raw.listen.as_ref(), d.listen),
            workers: self.int("server.workers", raw.workers.as_ref(), 0, 256, 0) as usize,
            shutdown_grace: self.duration_in(
                "server.shutdown_grace",
                raw.shutdown_grace.as_ref(),
                d.shutdown_grace,
                Duration::ZERO..=HOUR,
            ),
            connect_timeout: self.duration_in(
                "server.connect_timeout",
                raw.connect_timeout.as_ref(),
                d.connect_timeout,
                MS..=secs(300),
            ),
            upstream_timeout: self.duration_in(
                "server.upstream_timeout",
                raw.upstream_timeout.as_ref(),
                d.upstream_timeout,
                MS..=DAY,
            ),
            upstream_idle_timeout: self.duration_in(
                "server.upstream_idle_timeout",
                raw.upstream_idle_timeout.as_ref(),
                d.upstream_idle_timeout,
                Duration::ZERO..=HOUR,
            ),
            upstream_max_idle: self.int(
                "server.upstream_max_idle",
                raw.upstream_max_idle.as_ref(),
                0,
                100_000,
                d.upstream_max_idle as i64,
            ) as usize,
            client_header_timeout: self.duration_in(
                "server.client_header_timeout",
                raw.client_header_timeout.as_ref(),
                d.client_header_timeout,
                ms(100)..=HOUR,
            ),
            max_header_bytes: self.int(
                "server.max_header_bytes",
                raw.max_header_bytes.as_ref(),
                8192,
                1 << 20,
                d.max_header_bytes as i64,
            ) as usize,
            max_headers: self.int(
                "server.max_headers",
                raw.max_headers.as_ref(),
                1,
                10_000,
                d.max_headers as i64,
            ) as usize,
            underscores_in_headers: raw
                .underscores_in_headers
                .as_ref()
                .map_or(d.underscores_in_headers, |b| *b.get_ref()),
            watch: match raw.watch.as_ref() {
                None => d.watch,
                Some(w) => match w.get_ref().as_str() {
                    "auto" => WatchMode::Auto,
                    "notify" => WatchMode::Notify,
                    "poll" => WatchMode::Poll,
                    "off" => WatchMode::Off,
                    other => {
                        self.error(
                            w.span(),
                            "server.watch",
                            format!("unknown watch mode {other:?}"),
                            Some("use \"auto\" (default), \"notify\", \"poll\" or \"off\"".into()),
                        );
                        d.watch
                    }
                },
            },
            watch_interval: self.duration_in(
                "server.watch_interval",
                raw.watch_interval.as_ref(),
                d.watch_interval,
                ms(10)..=HOUR,
            ),
            // Filled in by `tls` (config/tls.rs), which checks them together.
            listen_tls: None,
            redirect: None,
            hsts: None,
            // Filled in by `server_http` (config/http/validate.rs).
            max_body_bytes: d.max_body_bytes,
            proxy_protocol: false,
            trusted_proxies: Default::default(),
            access_log: match raw.access_log.as_ref().map(|v| (v, v.get_ref().as_str())) {
                None | Some((_, "off")) => None,
                Some((_, "stdout")) => Some(AccessLogDest::Stdout),
                Some((v, "")) => {
                    self.error(
                        v.span(),
                        "server.access_log",
                        "empty access log path",
                        Some("use \"off\", \"stdout\" or a file path".into()),
                    );
                    None
                }
                Some((_, path)) => Some(AccessLogDest::File(PathBuf::from(path))),
            },
            access_log_format: match raw.access_log_format.as_ref() {
                None => AccessLogFormat::Json,
                Some(f) => match f.get_ref().as_str() {
                    "json" => AccessLogFormat::Json,
                    "combined" => AccessLogFormat::Combined,
                    other => {
                        self.error(
                            f.span(),
                            "server.access_log_format",
                            format!("unknown format {other:?}"),
                            Some("use \"json\" or \"combined\"".into()),
                        );
                        AccessLogFormat::Json
                    }
                },
            },
            access_log_buffer: self.int(
                "server.access_log_buffer",
                raw.access_log_buffer.as_ref(),
                1,
                1 << 20,
                d.access_log_buffer as i64,
            ) as usize,
            http1: match raw.http1.as_ref() {
                None => d.http1,
                Some(v) => match v.get_ref().as_str() {
                    "hyper" => Http1Engine::Hyper,
                    "lean" => Http1Engine::Lean,
                    other => {
                        self.error(
                            v.span(),
                            "server.http1",
                            format!("unknown HTTP/1 engine {other:?}"),
                            Some("use \"lean\" or \"hyper\"".into()),
                        );
                        d.http1
                    }
                },
            },
        }
    }

    fn admin(&mut self, raw: &RawAdmin) -> AdminConfig {
        let d = AdminConfig::default();
        let listen = self.socket_addr("admin.listen", raw.listen.as_ref(), d.listen);
        let token_env = raw.token_env.as_ref().map(|s| s.get_ref().clone());
        let token_file = raw.token_file.as_ref().map(|s| PathBuf::from(s.get_ref()));
        if let Some(env) = &raw.token_env {
            if env.get_ref().is_empty() {
                self.error(env.span(), "admin.token_env", "empty variable name", None);
            }
        }
        if !listen.ip().is_loopback() && token_env.is_none() && token_file.is_none() {
            let span = raw.listen.as_ref().map_or(0..0, |s| s.span());
            self.error(
                span,
                "admin.listen",
                format!("admin listener {listen} is not loopback and no token is configured"),
                Some(
                    "set admin.token_env (e.g. \"SWITCHYARD_ADMIN_TOKEN\") or admin.token_file, \
                     or listen on 127.0.0.1"
                        .into(),
                ),
            );
        }
        AdminConfig {
            listen,
            token_env,
            token_file,
            history_file: raw
                .history_file
                .as_ref()
                .map(|s| PathBuf::from(s.get_ref())),
            metrics: raw.metrics.unwrap_or(d.metrics),
            metrics_open: raw.metrics_open.unwrap_or(d.metrics_open),
            allowed_hosts: self.allowed_hosts(raw.allowed_hosts.as_ref()),
        }
    }

    /// `admin.allowed_hosts`: DNS names, lower-cased, without a port.
    fn allowed_hosts(&mut self, raw: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
        let mut out = Vec::new();
        for (i, h) in raw
            .map(|r| r.get_ref().as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            let name = h.get_ref().trim_end_matches('.');
            let label_ok = |l: &str| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            };
            if name.len() > 253 || !name.split('.').all(label_ok) {
                self.error(
                    h.span(),
                    format!("admin.allowed_hosts[{i}]"),
                    format!("{:?} is not a host name", h.get_ref()),
                    Some("list DNS names without scheme or port, e.g. [\"admin.internal\"]; IP addresses and localhost are always allowed".into()),
                );
                continue;
            }
            out.push(name.to_ascii_lowercase());
        }
        out
    }

    pub(crate) fn health(
        &mut self,
        key: &str,
        raw: &RawHealth,
        base: &HealthConfig,
    ) -> HealthConfig {
        let path = match &raw.path {
            Some(p) if !p.get_ref().starts_with('/') => {
                self.error(
                    p.span(),
                    format!("{key}.path"),
                    "probe path must start with '/'",
                    None,
                );
                base.path.clone()
            }
            Some(p) => p.get_ref().clone(),
            None => base.path.clone(),
        };
        let interval = self.duration_in(
            &format!("{key}.interval"),
            raw.interval.as_ref(),
            base.interval,
            ms(10)..=HOUR,
        );
        let timeout = self.duration_in(
            &format!("{key}.timeout"),
            raw.timeout.as_ref(),
            base.timeout,
            MS..=HOUR,
        );
        let culprit = match (&raw.timeout, &raw.interval) {
            (Some(t), _) => Some(("timeout", t)),
            (None, Some(i)) => Some(("interval", i)),
            (None, None) => None,
        };
        if let Some((name, at)) = culprit.filter(|_| timeout >= interval) {
            self.error(
                at.span(),
                format!("{key}.{name}"),
                format!("probe timeout {timeout:?} is not shorter than the interval {interval:?}"),
                Some(
                    "a probe must end before the next one starts: lower timeout or raise interval"
                        .into(),
                ),
            );
        }
        let expect_status = match &raw.expect_status {
            Some(s) => match parse_status_set(s.get_ref()) {
                Some(set) => set,
                None => {
                    self.error(
                        s.span(),
                        format!("{key}.expect_status"),
                        format!("cannot parse status set {:?}", s.get_ref()),
                        Some("use \"200\", \"200-299\" or \"200,204\"".into()),
                    );
                    base.expect_status.clone()
                }
            },
            None => base.expect_status.clone(),
        };
        HealthConfig {
            enabled: raw.enabled.unwrap_or(base.enabled),
            path,
            host: raw
                .host
                .as_ref()
                .map(|h| h.get_ref().clone())
                .or(base.host.clone()),
            interval,
            timeout,
            healthy_threshold: self.int(
                &format!("{key}.healthy_threshold"),
                raw.healthy_threshold.as_ref(),
                1,
                100,
                base.healthy_threshold as i64,
            ) as u32,
            unhealthy_threshold: self.int(
                &format!("{key}.unhealthy_threshold"),
                raw.unhealthy_threshold.as_ref(),
                1,
                100,
                base.unhealthy_threshold as i64,
            ) as u32,
            expect_status,
        }
    }

    fn pools(
        &mut self,
        raw: &Ordered<Spanned<RawPool>>,
        health: &HealthConfig,
        outlier: &OutlierConfig,
        retry: &RetryConfig,
    ) -> Vec<PoolConfig> {
        let mut out = Vec::new();
        for (name, pool) in &raw.0 {
            let key = format!("pools.{}", name.get_ref());
            if !valid_name(name.get_ref()) {
                self.error(
                    name.span(),
                    &key,
                    format!("invalid pool name {:?}", name.get_ref()),
                    Some("use letters, digits, '-' and '_' (it is sent in a header)".into()),
                );
            }
            let pool_ref = pool.get_ref();
            let mut backends = Vec::new();
            let mut names: Vec<NamedBackend> = Vec::new();
            let resolve_interval = self.duration_in(
                &format!("{key}.resolve_interval"),
                pool_ref.resolve_interval.as_ref(),
                Duration::from_secs(5),
                ms(100)..=DAY,
            );
            let mut seen = HashSet::new();
            let mut schemes = Schemes::default();
            for (i, b) in pool_ref.backends.iter().enumerate() {
                let bkey = format!("{key}.backends[{i}]");
                let (addr, weight, drain) = match b.get_ref() {
                    RawBackend::Addr(a) => (a.as_str(), 1, false),
                    RawBackend::Weighted(w) => (w.addr.as_str(), w.weight, w.drain),
                };
                let addr = match self.backend_addr(&bkey, addr, b.span()) {
                    Some((scheme, BackendAddr::Ip(a))) => {
                        schemes.note(scheme, b.span());
                        a
                    }
                    Some((scheme, BackendAddr::Name(host, port))) => {
                        schemes.note(scheme, b.span());
                        let Some(weight) = self.backend_weight(&bkey, b.span(), weight) else {
                            continue;
                        };
                        let named = NamedBackend {
                            host,
                            port,
                            weight,
                            drain,
                        };
                        if names.contains(&named) {
                            self.error(
                                b.span(),
                                &bkey,
                                format!("backend {}:{} is listed twice", named.host, named.port),
                                None,
                            );
                            continue;
                        }
                        names.push(named);
                        continue;
                    }
                    None => continue,
                };
                let Some(weight) = self.backend_weight(&bkey, b.span(), weight) else {
                    continue;
                };
                if !seen.insert(addr) {
                    self.error(
                        b.span(),
                        &bkey,
                        format!("backend {addr} is listed twice in pool {}", name.get_ref()),
                        Some("remove the duplicate, or give it a weight instead".into()),
                    );
                    continue;
                }
                backends.push(BackendConfig {
                    addr,
                    weight,
                    drain,
                });
            }
            let balance = match pool_ref.balance.as_ref() {
                None => Balance::default(),
                Some(b) => match b.get_ref().as_str() {
                    "least_request" => Balance::LeastRequest,
                    "round_robin" => Balance::RoundRobin,
                    other => {
                        self.error(
                            b.span(),
                            format!("{key}.balance"),
                            format!("unknown balance {other:?}"),
                            Some("use \"least_request\" (default) or \"round_robin\"".into()),
                        );
                        Balance::default()
                    }
                },
            };
            let health = match &pool_ref.health {
                Some(h) => self.health(&format!("{key}.health"), h, health),
                None => health.clone(),
            };
            let outlier = match &pool_ref.outlier {
                Some(o) => self.outlier(&format!("{key}.outlier"), o, outlier),
                None => *outlier,
            };
            let retry = match &pool_ref.retry {
                Some(r) => self.retry(&format!("{key}.retry"), r, retry),
                None => *retry,
            };
            let slow_start = self.slow_start(&key, pool_ref.slow_start.as_ref());
            let tls = self.pool_tls(&key, pool.span(), pool_ref, &schemes, &names);
            out.push(PoolConfig {
                name: name.get_ref().clone(),
                backends,
                names,
                resolve_interval,
                balance,
                health,
                outlier,
                retry,
                slow_start,
                tls,
            });
        }
        out
    }

    /// A backend's weight, 1 to `MAX_BACKEND_WEIGHT`.
    fn backend_weight(&mut self, bkey: &str, span: Range<usize>, weight: i64) -> Option<u32> {
        if (1..=MAX_BACKEND_WEIGHT).contains(&weight) {
            return Some(weight as u32);
        }
        self.error(
            span,
            format!("{bkey}.weight"),
            format!("backend weight {weight} is out of range"),
            Some(format!("use 1 to {MAX_BACKEND_WEIGHT}")),
        );
        None
    }
}

pub(super) fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// "200", "200-299", "200,204", "200-299,304".
pub(crate) fn parse_status_set(s: &str) -> Option<StatusSet> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?),
            None => {
                let v = part.parse::<u16>().ok()?;
                (v, v)
            }
        };
        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
            return None;
        }
        out.push((lo, hi));
    }
    Some(StatusSet(out))
}
