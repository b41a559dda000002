//! The routing table: an immutable snapshot of routes, pools and backends,
//! built by the controller from a validated `Config` and swapped in whole
//! (`ArcSwap`, with the generation announced: `published`). The data plane loads it once per request and makes every
//! routing decision from it without locks or allocation.
//!
//! The table keeps, on its routes, the statistics handles of every route ×
//! pool (from `stats::StatsRegistry`, which keeps them by name across
//! generations); a pick hands the request a `stats::Recorder` with them.

mod backend;
pub mod budget;
mod mirror;
mod outlier;
mod pool;
mod probe_failure;
mod published;
mod route;
pub mod sticky;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

pub use backend::{
    Backend, BackendStats, Health, InFlight, Registry, UpstreamErrorKind, RAMP_FULL,
};
pub use mirror::{MirrorTarget, RouteMirror};
pub use outlier::{OutlierSettings, PoolShared};
pub use pool::Pool;
pub use probe_failure::ProbeFailure;
pub use published::{Published, TableWatch};
pub use route::{Pick, PoolPick, Route, StandbyShared, Unservable};

use crate::config::{Config, HostMatch, RedirectConfig};
use crate::stats::{Classes, Recorder, StatsRegistry, Window};

/// Per-request settings that may change on reload.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub connect_timeout: Duration,
    pub upstream_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub upstream_max_idle: usize,
    /// `[server] max_body_bytes`: the body limit of routes without their
    /// own (`None`: no limit).
    pub max_body_bytes: Option<u64>,
    /// Pass header names with `_` on (`server.underscores_in_headers`).
    pub underscores_in_headers: bool,
}

/// What the listeners take a new connection in with (`[server]`
/// `client_header_timeout`, `max_header_bytes`, `max_headers`,
/// `redirect_http`, `hsts`). A worker reads them once per accepted
/// connection (`server::front`), so a reload applies them to the
/// connections accepted after it; an open connection keeps its own.
#[derive(Debug, Clone, PartialEq)]
pub struct Listening {
    pub client_header_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// `redirect_http` (with its port and ACME pass-through).
    pub redirect: Option<RedirectConfig>,
    /// `Strict-Transport-Security` for TLS responses that carry none.
    pub hsts: Option<HeaderValue>,
}

impl Listening {
    fn new(s: &crate::config::ServerConfig) -> Self {
        Self {
            client_header_timeout: s.client_header_timeout,
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers,
            redirect: s.redirect,
            // Validated (`config::tls`); a value that is no header value
            // cannot get here, and would mean no HSTS rather than a panic.
            hsts: s
                .hsts
                .as_deref()
                .and_then(|h| HeaderValue::from_str(h).ok()),
        }
    }
}

/// Indices of the routes to try for a host group, best first.
type Candidates = Box<[u16]>;

/// One generation of the routing state.
#[derive(Debug)]
pub struct RoutingTable {
    pub generation: u64,
    pub settings: Settings,
    pub listening: Listening,
    routes: Box<[Route]>,
    pools: Box<[Arc<Pool>]>,
    /// Exact host → candidate routes, best first.
    exact: HashMap<Box<str>, Candidates>,
    /// `*.suffix` patterns, longest suffix first, with their candidates.
    suffix: Box<[(Box<str>, Candidates)]>,
    /// Routes without a host matcher, best first.
    any_host: Candidates,
    /// Counters of answers that matched no route (`None`: metrics off).
    no_route: Option<Arc<Classes>>,
    /// Each route's `[routes.rollout]`, by route index.
    pub rollouts: Box<[Option<Arc<crate::config::RolloutConfig>>]>,
    /// Told whenever traffic moves to or from a route's standby (the
    /// registry's, the same in every generation).
    pub standby_news: Arc<tokio::sync::Notify>,
}

impl RoutingTable {
    /// Builds a table from `config`, taking backend state from `registry`
    /// (which must already be reconciled with `config`) and the statistics
    /// handles of every route × pool from `stats`.
    pub fn build(
        config: &Config,
        registry: &Registry,
        stats: &mut StatsRegistry,
        generation: u64,
    ) -> Self {
        let pools: Box<[Arc<Pool>]> = config
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut pool = Pool::new(p, registry);
                pool.index = i;
                Arc::new(pool)
            })
            .collect();
        let mut stats = stats.generation();
        let routes: Box<[Route]> = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let standby = registry.standby_shared(&r.name);
                let mut route = Route::new(r, &pools, &mut stats, standby);
                route.index = i;
                route
            })
            .collect();

        // Candidates in each host group: longest prefix first; the sort is
        // stable, so the route declared first wins a tie.
        let ordered = |mut idx: Vec<u16>| -> Box<[u16]> {
            idx.sort_by_key(|&i| std::cmp::Reverse(routes[usize::from(i)].path_prefix.len()));
            idx.into()
        };
        let mut exact: HashMap<Box<str>, Vec<u16>> = HashMap::new();
        let mut suffix: Vec<(Box<str>, Vec<u16>)> = Vec::new();
        let mut any = Vec::new();
        for (i, r) in config.routes.iter().enumerate() {
            let i = i as u16;
            match &r.host {
                None => any.push(i),
                Some(HostMatch::Exact(h)) => exact.entry(h.as_str().into()).or_default().push(i),
                Some(HostMatch::Suffix(s)) => match suffix.iter_mut().find(|(k, _)| **k == **s) {
                    Some((_, v)) => v.push(i),
                    None => suffix.push((s.as_str().into(), vec![i])),
                },
            }
        }
        suffix.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
        let s = &config.server;
        RoutingTable {
            generation,
            settings: Settings {
                connect_timeout: s.connect_timeout,
                upstream_timeout: s.upstream_timeout,
                upstream_idle_timeout: s.upstream_idle_timeout,
                upstream_max_idle: s.upstream_max_idle,
                max_body_bytes: s.max_body_bytes,
                underscores_in_headers: s.underscores_in_headers,
            },
            listening: Listening::new(s),
            exact: exact.into_iter().map(|(k, v)| (k, ordered(v))).collect(),
            suffix: suffix.into_iter().map(|(k, v)| (k, ordered(v))).collect(),
            any_host: ordered(any),
            rollouts: config
                .routes
                .iter()
                .map(|r| r.rollout.clone().map(Arc::new))
                .collect(),
            no_route: stats.no_route(),
            standby_news: registry.standby_news().clone(),
            routes,
            pools,
        }
    }

    /// The recorder of a request that matched no route.
    pub fn no_route(&self) -> Recorder {
        Recorder::no_route(self.no_route.as_ref())
    }

    /// The rollout window of (`route`, `pool`) (the same `Arc` in every
    /// generation that has both).
    pub fn window(&self, route: &str, pool: &str) -> Option<&Arc<Window>> {
        let route = self.routes.iter().find(|r| &*r.name == route)?;
        let pool = self.pools.iter().find(|p| &*p.name == pool)?;
        route.handles(pool).map(|h| h.window())
    }

    /// Keeps the metric series of this table from expiring (at every
    /// `/metrics` scrape).
    pub fn touch_metrics(&self) {
        if let Some(c) = &self.no_route {
            c.touch();
        }
        for r in self.routes.iter() {
            r.touch_metrics();
        }
    }

    /// The route for a request: routes for its exact host first, then
    /// wildcard hosts (longest suffix first), then routes without a host;
    /// within each group the longest matching path prefix wins.
    /// `host` is the Host header or authority, possibly with a port.
    pub fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        if let Some(host) = host.and_then(normalize_host) {
            let mut buf = [0u8; 255];
            let host = lowercase(host, &mut buf);
            if let Some(c) = self.exact.get(host) {
                if let Some(r) = self.first_match(c, path) {
                    return Some(r);
                }
            }
            for (suffix, c) in self.suffix.iter() {
                if host.len() > suffix.len() && host.ends_with(&**suffix) {
                    if let Some(r) = self.first_match(c, path) {
                        return Some(r);
                    }
                }
            }
        }
        self.first_match(&self.any_host, path)
    }

    fn first_match(&self, candidates: &[u16], path: &str) -> Option<&Route> {
        candidates
            .iter()
            .map(|&i| &self.routes[usize::from(i)])
            .find(|r| path.starts_with(&*r.path_prefix))
    }

    /// Any pool by name (used by `force_header`, which may name a pool
    /// that has weight 0 in the split, e.g. to test green before a flip).
    pub fn pool(&self, name: &[u8]) -> Option<&Arc<Pool>> {
        self.pools.iter().find(|p| p.name.as_bytes() == name)
    }

    pub fn pools(&self) -> &[Arc<Pool>] {
        &self.pools
    }

    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The first route with weight that no pool can serve, if any (for
    /// readiness).
    pub fn unservable_route(&self) -> Option<&Route> {
        self.routes
            .iter()
            .find(|r| r.split().next().is_some() && !r.is_servable())
    }
}

/// Host without port; `None` for an empty or over-long name.
fn normalize_host(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        // IPv6 literal: keep the brackets, drop the port.
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    (!name.is_empty() && name.len() <= 255).then_some(name)
}

/// ASCII-lowercases into `buf` only when needed, so the common case copies nothing.
fn lowercase<'a>(s: &'a str, buf: &'a mut [u8; 255]) -> &'a str {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return s;
    }
    let out = &mut buf[..s.len()];
    out.copy_from_slice(s.as_bytes());
    out.make_ascii_lowercase();
    // Lowercasing ASCII bytes keeps valid UTF-8 valid.
    std::str::from_utf8(out).unwrap_or(s)
}

/// `HeaderValue` for a name that validation already restricted to a
/// header-safe alphabet.
pub(crate) fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

#[cfg(test)]
mod tests;
