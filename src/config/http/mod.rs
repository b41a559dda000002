//! The validated model of what a route does to a request besides choosing
//! a pool — the parts of a FastAPI team's nginx.conf: body limits, prefix
//! stripping and rewrites, header rules, rate limits, fixed answers
//! (`respond`, maintenance), redirects, and the standby pool — plus the
//! `[server]` keys for the client's address (`proxy_protocol`,
//! `trusted_proxies`). Built by `validate` (this module's `validate.rs`);
//! read by the routing table, which hands each route its `Arc<RouteHttp>`
//! so that a request on a route using none of this pays one branch.

mod parse;
mod raw;
mod validate;

use std::time::Duration;

use http::{HeaderName, HeaderValue, StatusCode};

use super::template::{Capture, Template, Var};

pub(super) use parse::parse_size;
pub(super) use raw::*;

/// Default of `[server] max_body_bytes`: 10 MiB (nginx: 1 MiB). switchyard
/// streams bodies instead of buffering them to disk, so the limit guards
/// the backend only; ten times nginx's lets ordinary uploads through while
/// a runaway client is stopped long before a uvicorn worker has read
/// hundreds of megabytes into memory.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;

/// What a route does besides choosing a pool. `Default` is a plain
/// proxying route.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteHttp {
    /// What the route answers with.
    pub action: Action,
    /// The route's own `max_body_bytes` (`None`: `[server]`'s).
    pub max_body_bytes: Option<BodyLimit>,
    /// `strip_prefix`: the route's `path_prefix` is removed before
    /// forwarding and sent as `X-Forwarded-Prefix`.
    pub strip_prefix: Option<StripPrefix>,
    /// `rewrite = { from, to }`, applied after `strip_prefix`.
    pub rewrite: Option<PathRewrite>,
    pub request_headers: Option<HeaderRules>,
    pub response_headers: Option<HeaderRules>,
    pub rate_limit: Option<RateLimitConfig>,
    /// `maintenance = true`: the route answers `maintenance_response`
    /// instead of forwarding (`ctl maintenance ROUTE on|off` writes it).
    pub maintenance: bool,
    /// What the route answers while in maintenance.
    pub maintenance_response: StaticResponse,
    /// `standby = "blue"`: takes the route's traffic while no pool of the
    /// split has an available backend.
    pub standby: Option<String>,
}

impl RouteHttp {
    /// Does the route forward as it is, with nothing of this module on?
    /// (The request path then skips every hook with one branch.)
    pub fn is_plain(&self) -> bool {
        matches!(self.action, Action::Proxy)
            && self.strip_prefix.is_none()
            && self.rewrite.is_none()
            && self.request_headers.is_none()
            && self.response_headers.is_none()
            && self.rate_limit.is_none()
            && !self.maintenance
    }
}

/// What a route answers with.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Action {
    /// Forward to a pool of the split.
    #[default]
    Proxy,
    /// `respond = { ... }`: always this answer; no pool is involved.
    Respond(StaticResponse),
    /// `redirect = { to, status }`.
    Redirect(Redirect),
}

/// `max_body_bytes`: a request body limit, or none (`0`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    Unlimited,
    Bytes(u64),
}

impl BodyLimit {
    pub fn bytes(self) -> Option<u64> {
        match self {
            BodyLimit::Unlimited => None,
            BodyLimit::Bytes(n) => Some(n),
        }
    }
}

/// `strip_prefix = true` on a route with `path_prefix = "/api"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StripPrefix {
    /// The route's `path_prefix`, as matched.
    pub prefix: Box<str>,
    /// `X-Forwarded-Prefix`: the prefix without a trailing `/`, which is
    /// what FastAPI's `root_path` and uvicorn's `--root-path` expect.
    pub header: HeaderValue,
}

/// `rewrite = { from = "^/old/(.*)", to = "/new/$1" }`: the path (not the
/// query, which is kept) is matched against `from`; a match is replaced
/// by `to`, whose `$1`, `${name}` name capture groups.
#[derive(Debug, Clone)]
pub struct PathRewrite {
    pub from: regex::Regex,
    pub to: Template<Capture>,
}

impl PartialEq for PathRewrite {
    fn eq(&self, other: &Self) -> bool {
        self.from.as_str() == other.from.as_str() && self.to == other.to
    }
}

/// `request_headers` / `response_headers`: `set`, `add` and `remove`, in
/// the shape both data paths use: names to drop from the message, then
/// values to append.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeaderRules {
    /// `remove` names and `set` names (a set replaces what was there).
    pub drop: Box<[HeaderName]>,
    /// `set` then `add` values, in the order written.
    pub append: Box<[(HeaderName, Template<Var>)]>,
}

impl HeaderRules {
    /// Is `name` (any case) one the rules drop?
    pub fn drops(&self, name: &[u8]) -> bool {
        self.drop
            .iter()
            .any(|d| d.as_str().as_bytes().eq_ignore_ascii_case(name))
    }

    /// Do the rules need `$pool` (known only once a pool is picked)?
    pub fn uses(&self, var: Var) -> bool {
        self.append.iter().any(|(_, t)| t.refs().any(|v| *v == var))
    }
}

/// `rate_limit = { rate = "100/s", burst = 50, key = "ip" }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Requests allowed per `per`.
    pub count: u32,
    pub per: Duration,
    /// Requests that may come at once (the bucket's size).
    pub burst: u32,
    pub key: RateKey,
}

impl RateLimitConfig {
    /// Time one request's token takes to come back.
    pub fn interval(&self) -> Duration {
        self.per / self.count
    }
}

/// What a rate limit counts by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RateKey {
    /// The client's address (after `proxy_protocol` and `trusted_proxies`).
    Ip,
    /// A header's value (an API key); a request without it counts by its
    /// client address.
    Header(HeaderName),
}

/// A fixed answer: `respond`, `maintenance_response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticResponse {
    pub status: StatusCode,
    pub body: bytes::Bytes,
    pub content_type: HeaderValue,
    /// Sent as `Retry-After` in whole seconds.
    pub retry_after: Option<HeaderValue>,
    /// Sent as `X-Switchyard-Error` (maintenance answers), so a client
    /// and a log can tell it from the backend's own 503.
    pub reason: Option<&'static str>,
}

impl StaticResponse {
    /// The default maintenance answer: 503, `Retry-After: 60`.
    pub fn maintenance_default() -> Self {
        StaticResponse {
            status: StatusCode::SERVICE_UNAVAILABLE,
            body: bytes::Bytes::from_static(
                b"503 Service Unavailable: down for maintenance, please retry later\n",
            ),
            content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
            retry_after: Some(HeaderValue::from_static("60")),
            reason: Some("maintenance"),
        }
    }
}

impl Default for StaticResponse {
    fn default() -> Self {
        Self::maintenance_default()
    }
}

/// `redirect = { to = "https://new.example$request_uri", status = 301 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    pub to: Template<Var>,
    pub status: StatusCode,
}

#[cfg(test)]
mod tests;
