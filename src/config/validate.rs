//! Raw TOML → validated `Config`. Collects every problem it can find (not
//! just the first), each pointing at the line, column and key concerned.

use std::collections::HashSet;
use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use toml::Spanned;

use super::backend::{BackendAddr, Schemes};
use super::error::{closest, position, Diagnostic};
use super::model::*;
use super::raw::*;

/// Largest weight in a split; keeps sums far from overflow.
const MAX_SPLIT_WEIGHT: i64 = 1_000_000;
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
        let admin = self.admin(&raw.admin);
        let health = self.health("health", &raw.health, &HealthConfig::default());
        let outlier = self.outlier("outlier", &raw.outlier, &OutlierConfig::default());
        let retry = self.retry("retry", &raw.retry, &RetryConfig::default());
        let pools = self.pools(&raw.pools, &health, &outlier, &retry);
        let routes = self.routes(&raw.routes, &pools);
        let notify = self.notify(&raw.notify);
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
        })
    }

    fn server(&mut self, raw: &RawServer) -> ServerConfig {
        let d = ServerConfig::default();
        ServerConfig {
            listen: self.socket_addr("server.listen", raw.listen.as_ref(), d.listen),
            workers: self.int("server.workers", raw.workers.as_ref(), 0, 256, 0) as usize,
            shutdown_grace: self.duration(
                "server.shutdown_grace",
                raw.shutdown_grace.as_ref(),
                d.shutdown_grace,
                true,
            ),
            connect_timeout: self.duration(
                "server.connect_timeout",
                raw.connect_timeout.as_ref(),
                d.connect_timeout,
                false,
            ),
            upstream_timeout: self.duration(
                "server.upstream_timeout",
                raw.upstream_timeout.as_ref(),
                d.upstream_timeout,
                false,
            ),
            upstream_idle_timeout: self.duration(
                "server.upstream_idle_timeout",
                raw.upstream_idle_timeout.as_ref(),
                d.upstream_idle_timeout,
                true,
            ),
            upstream_max_idle: self.int(
                "server.upstream_max_idle",
                raw.upstream_max_idle.as_ref(),
                0,
                100_000,
                d.upstream_max_idle as i64,
            ) as usize,
            client_header_timeout: self.duration(
                "server.client_header_timeout",
                raw.client_header_timeout.as_ref(),
                d.client_header_timeout,
                false,
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
            watch_interval: self.duration(
                "server.watch_interval",
                raw.watch_interval.as_ref(),
                d.watch_interval,
                false,
            ),
            // Filled in by `tls` (config/tls.rs), which checks them together.
            listen_tls: None,
            redirect: None,
            hsts: None,
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
        }
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
        let interval = self.duration(
            &format!("{key}.interval"),
            raw.interval.as_ref(),
            base.interval,
            false,
        );
        let timeout = self.duration(
            &format!("{key}.timeout"),
            raw.timeout.as_ref(),
            base.timeout,
            false,
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
            let resolve_interval = self.duration(
                &format!("{key}.resolve_interval"),
                pool_ref.resolve_interval.as_ref(),
                Duration::from_secs(5),
                false,
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

    fn routes(&mut self, raw: &[Spanned<RawRoute>], pools: &[PoolConfig]) -> Vec<RouteConfig> {
        let mut out = Vec::new();
        let mut names = HashSet::new();
        let pool_names: Vec<&str> = pools.iter().map(|p| p.name.as_str()).collect();
        for (i, r) in raw.iter().enumerate() {
            let key = format!("routes[{i}]");
            let route = r.get_ref();
            let name = match &route.name {
                None => {
                    self.error(r.span(), format!("{key}.name"), "route has no name", None);
                    format!("route-{i}")
                }
                Some(n) => {
                    if !valid_name(n.get_ref()) {
                        self.error(
                            n.span(),
                            format!("{key}.name"),
                            format!("invalid route name {:?}", n.get_ref()),
                            Some("use letters, digits, '-' and '_'".into()),
                        );
                    }
                    if !names.insert(n.get_ref().clone()) {
                        self.error(
                            n.span(),
                            format!("{key}.name"),
                            format!("duplicate route name {:?}", n.get_ref()),
                            Some("route names must be unique".into()),
                        );
                    }
                    n.get_ref().clone()
                }
            };
            let host = route.host.as_ref().and_then(|h| self.host(&key, h));
            let path_prefix = match &route.path_prefix {
                None => "/".to_owned(),
                Some(p) if p.get_ref().starts_with('/') => p.get_ref().clone(),
                Some(p) => {
                    self.error(
                        p.span(),
                        format!("{key}.path_prefix"),
                        format!("path prefix {:?} must start with '/'", p.get_ref()),
                        None,
                    );
                    "/".to_owned()
                }
            };
            let split = self.split(&key, r.span(), route.split.as_ref(), pools, &pool_names);
            let sticky = route.sticky.as_ref().and_then(|s| self.sticky(&key, s));
            let force_header = route
                .force_header
                .as_ref()
                .and_then(|h| self.header_name(&format!("{key}.force_header"), h));
            out.push(RouteConfig {
                name,
                host,
                path_prefix,
                split,
                sticky,
                force_header,
                failover: route.failover.unwrap_or(true),
                rollout: route
                    .rollout
                    .as_ref()
                    .and_then(|ro| self.rollout(&key, ro, &pool_names)),
            });
        }
        out
    }

    fn split(
        &mut self,
        key: &str,
        route_span: Range<usize>,
        raw: Option<&Spanned<Ordered<Spanned<i64>>>>,
        pools: &[PoolConfig],
        pool_names: &[&str],
    ) -> Vec<(String, u32)> {
        let key = format!("{key}.split");
        let Some(raw) = raw else {
            self.error(
                route_span,
                &key,
                "route has no split",
                Some("e.g. split = { blue = 100 }".into()),
            );
            return Vec::new();
        };
        let mut out: Vec<(String, u32)> = Vec::new();
        let mut total: i64 = 0;
        for (pool, weight) in &raw.get_ref().0 {
            let pkey = format!("{key}.{}", pool.get_ref());
            let w = *weight.get_ref();
            let Some(cfg) = pools.iter().find(|p| p.name == *pool.get_ref()) else {
                let hint = match closest(pool.get_ref(), pool_names.iter().copied()) {
                    Some(c) => format!(
                        "did you mean {c:?}? defined pools: {}",
                        pool_names.join(", ")
                    ),
                    None if pool_names.is_empty() => "no [pools.NAME] tables are defined".into(),
                    None => format!("defined pools: {}", pool_names.join(", ")),
                };
                self.error(
                    pool.span(),
                    pkey,
                    format!("split names unknown pool {:?}", pool.get_ref()),
                    Some(hint),
                );
                continue;
            };
            if !(0..=MAX_SPLIT_WEIGHT).contains(&w) {
                self.error(
                    weight.span(),
                    &pkey,
                    format!("weight {w} is out of range"),
                    Some(format!(
                        "weights are whole numbers from 0 to {MAX_SPLIT_WEIGHT}"
                    )),
                );
                continue;
            }
            if w > 0 && cfg.backends.is_empty() && cfg.names.is_empty() {
                self.error(
                    weight.span(),
                    &pkey,
                    format!("pool {:?} has no backends but carries weight {w}", cfg.name),
                    Some("add backends to the pool or set its weight to 0".into()),
                );
            }
            total += w;
            out.push((pool.get_ref().clone(), w as u32));
        }
        if total == 0 && !raw.get_ref().0.is_empty() && out.len() == raw.get_ref().0.len() {
            self.error(
                raw.span(),
                &key,
                "all weights are zero, so the route could serve nothing",
                Some("give at least one pool a positive weight".into()),
            );
        } else if raw.get_ref().0.is_empty() {
            self.error(
                raw.span(),
                &key,
                "split is empty",
                Some("e.g. split = { blue = 100 }".into()),
            );
        }
        out
    }

    fn sticky(&mut self, key: &str, raw: &Spanned<RawSticky>) -> Option<StickyConfig> {
        let s = raw.get_ref();
        if s.header.is_none() && s.cookie.is_none() {
            self.error(
                raw.span(),
                format!("{key}.sticky"),
                "sticky needs a header, a cookie, or both",
                Some("e.g. sticky = { header = \"X-User-ID\", cookie = \"switchyard_id\" }".into()),
            );
            return None;
        }
        let header = match &s.header {
            Some(h) => Some(self.header_name(&format!("{key}.sticky.header"), h)?),
            None => None,
        };
        let cookie = match &s.cookie {
            Some(c) if valid_cookie_name(c.get_ref()) => Some(c.get_ref().clone()),
            Some(c) => {
                self.error(
                    c.span(),
                    format!("{key}.sticky.cookie"),
                    format!("invalid cookie name {:?}", c.get_ref()),
                    None,
                );
                return None;
            }
            None => None,
        };
        Some(StickyConfig { header, cookie })
    }

    fn host(&mut self, key: &str, raw: &Spanned<String>) -> Option<HostMatch> {
        let h = raw.get_ref().to_ascii_lowercase();
        let (suffix, name) = match h.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, h.as_str()),
        };
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
        if !ok {
            self.error(
                raw.span(),
                format!("{key}.host"),
                format!("invalid host pattern {:?}", raw.get_ref()),
                Some(
                    "use a name like \"api.example.com\" or \"*.example.com\", without a port"
                        .into(),
                ),
            );
            return None;
        }
        Some(if suffix {
            HostMatch::Suffix(format!(".{name}"))
        } else {
            HostMatch::Exact(name.to_owned())
        })
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn valid_cookie_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
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
