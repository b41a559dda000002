//! What a route's `RouteHttp` does to one request, in the shape both data
//! paths call, so that they behave the same:
//! - before a pool is chosen ([`before_pick`]): the route's own answers
//!   (`respond`, `redirect`, maintenance), its rate limit, and the body
//!   limit decided from `Content-Length`;
//! - the head sent upstream ([`forward_head`]): the path after
//!   `strip_prefix` / `rewrite` and its `X-Forwarded-Prefix`; the header
//!   rules then run on what the path writes (`header_rules` on a
//!   `HeaderMap`, `HeaderRules::drops` + templates on the lean path);
//! - the request's real client ([`client_ip`]) and the variables the rules
//!   and redirects use ([`Facts::vars`]).
//!
//! A plain route (`RouteHttp::is_plain`) pays one branch here, and a
//! connection from a peer outside `trusted_proxies` one more.

use std::borrow::Cow;
use std::net::IpAddr;

use http::header::{HeaderName, HeaderValue};
use http::Response;
use tokio::time::Instant;

use super::body::ProxyBody;
use super::error::ProxyError;
use super::ratelimit::{self, Key};
use super::upstream::UpstreamError;
use super::{answer, client_addr, rewrite, ConnInfo};
use crate::config::template::Vars;
use crate::config::{RateKey, RouteHttp};
use crate::table::{Route, RoutingTable, Settings};

/// What the route features read from a request, borrowed from whatever
/// the data path holds.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The real client (see [`client_ip`]).
    pub client: IpAddr,
    /// `client` as text, for `$remote_addr`.
    pub remote_addr: &'a [u8],
    pub request_id: &'a [u8],
    /// The Host (or `:authority`), port and all.
    pub host: &'a [u8],
    pub scheme: &'a [u8],
    /// Path and query as the client sent them.
    pub request_uri: &'a [u8],
    pub path: &'a str,
    /// `?` and the query, or empty.
    pub query: &'a [u8],
    /// The declared `Content-Length`, if any.
    pub content_length: Option<u64>,
}

impl<'a> Facts<'a> {
    /// The variables of header rules and redirects: `pool` once a pool is
    /// chosen (else empty), `uri` the path as forwarded.
    pub fn vars(&self, route: &'a str, pool: &'a [u8], uri: &'a [u8]) -> Vars<'a> {
        Vars {
            remote_addr: self.remote_addr,
            request_id: self.request_id,
            host: host_without_port(self.host),
            pool,
            route: route.as_bytes(),
            scheme: self.scheme,
            request_uri: self.request_uri,
            uri,
            query: self.query,
        }
    }
}

/// The query part of a request target: from its `?` (included) on.
pub fn query_of(path_and_query: &str) -> &[u8] {
    path_and_query
        .find('?')
        .map_or(&b""[..], |i| &path_and_query.as_bytes()[i..])
}

/// `$host`: the host without its port (`[::1]:80` → `[::1]`).
fn host_without_port(host: &[u8]) -> &[u8] {
    if host.first() == Some(&b'[') {
        return match host.iter().position(|&b| b == b']') {
            Some(end) => &host[..=end],
            None => host,
        };
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) if host[i + 1..].iter().all(u8::is_ascii_digit) => &host[..i],
        _ => host,
    }
}

/// The request's real client: the connection's address (already the
/// PROXY header's source when there was one), unless the connection is
/// from a trusted proxy; then `X-Forwarded-For` (`xff`, the values as
/// received) is walked past the trusted hops.
pub fn client_ip<'h>(conn: &ConnInfo, xff: impl DoubleEndedIterator<Item = &'h [u8]>) -> IpAddr {
    match &conn.trusted {
        None => conn.peer.ip().to_canonical(),
        Some(t) => client_addr::client_ip(conn.peer.ip(), t, xff),
    }
}

/// `$remote_addr` of `client`: the connection's prepared text when it is
/// the connection's address, else a new one.
pub fn remote_addr(conn: &ConnInfo, client: IpAddr) -> Cow<'_, [u8]> {
    if client == conn.peer.ip().to_canonical() {
        Cow::Borrowed(conn.peer_ip.as_bytes())
    } else {
        Cow::Owned(client.to_string().into_bytes())
    }
}

/// What a request gets before any pool is asked, when not forwarded.
#[derive(Debug)]
pub enum Early {
    /// The route's own answer (`respond`, `redirect`, maintenance).
    /// (Boxed: it is large, and rare next to a forwarded request.)
    Answer(Box<Response<ProxyBody>>),
    /// Refused: rate limited, or a body over the limit.
    Refuse(ProxyError),
}

impl From<ProxyError> for Early {
    fn from(e: ProxyError) -> Self {
        Early::Refuse(e)
    }
}

/// What a route that changes the request or its answer keeps past the
/// table snapshot (two reference counts; a plain route keeps nothing).
#[derive(Debug, Clone)]
pub struct Rules {
    pub http: std::sync::Arc<RouteHttp>,
    /// The route's name, for `$route`.
    pub route: std::sync::Arc<str>,
}

impl Rules {
    pub fn of(route: &Route) -> Option<Rules> {
        (!route.http.is_plain()).then(|| Rules {
            http: route.http.clone(),
            route: route.name.clone(),
        })
    }
}

/// The request body limit on `route` (`None`: none).
pub fn body_limit(route: &Route, settings: &Settings) -> Option<u64> {
    route
        .http
        .max_body_bytes
        .map_or(settings.max_body_bytes, |l| l.bytes())
}

/// The route's answer, rate limit and body limit (by `Content-Length`),
/// in nginx's order: `return` before `limit_req` before the body.
/// `header` reads a request header (for a rate limit keyed by one).
pub fn before_pick<'h>(
    table: &RoutingTable,
    route: &Route,
    facts: &Facts<'_>,
    header: impl Fn(&HeaderName) -> Option<&'h [u8]>,
    now: Instant,
) -> Option<Early> {
    let http = &*route.http;
    if !http.is_plain() {
        if let Some(early) = answer_or_limit(table, route, http, facts, header, now) {
            return Some(early);
        }
    }
    let limit = body_limit(route, &table.settings)?;
    match facts.content_length {
        Some(n) if n > limit => Some(Early::Refuse(ProxyError::Upstream(
            UpstreamError::BodyTooLarge { limit },
        ))),
        _ => None,
    }
}

fn answer_or_limit<'h>(
    table: &RoutingTable,
    route: &Route,
    http: &RouteHttp,
    facts: &Facts<'_>,
    header: impl Fn(&HeaderName) -> Option<&'h [u8]>,
    now: Instant,
) -> Option<Early> {
    let fwd = rewrite::forward_path(http, facts.path);
    let uri = fwd.as_ref().map_or(facts.path, |f| &f.path);
    let vars = facts.vars(&route.name, b"", uri.as_bytes());
    if let Some(resp) = answer::route_answer(http, &vars) {
        return Some(Early::Answer(Box::new(resp)));
    }
    let rl = http.rate_limit.as_ref()?;
    let key = match &rl.key {
        RateKey::Header(name) => header(name).map_or(Key::Ip(facts.client), Key::Value),
        RateKey::Ip => Key::Ip(facts.client),
    };
    match ratelimit::check(table, route, key, now) {
        ratelimit::Decision::Allow => None,
        ratelimit::Decision::Deny { retry_after } => {
            // Whole seconds, rounded up: a client that waits that long
            // finds a token.
            let secs = retry_after.as_nanos().div_ceil(1_000_000_000).max(1);
            Some(Early::Refuse(ProxyError::RateLimited {
                retry_after: u64::try_from(secs).unwrap_or(u64::MAX),
            }))
        }
    }
}

/// What the route changes in the head sent upstream.
#[derive(Debug)]
pub struct Head<'p> {
    /// The path to send instead of the client's (the query is kept).
    pub path: Option<Cow<'p, str>>,
    /// `X-Forwarded-Prefix` to send.
    pub prefix: Option<&'p HeaderValue>,
}

/// The forwarded path and prefix of `path` on a route.
pub fn forward_head<'p>(http: &'p RouteHttp, path: &'p str) -> Head<'p> {
    match rewrite::forward_path(http, path) {
        None => Head {
            path: None,
            prefix: None,
        },
        Some(f) => Head {
            prefix: f
                .stripped
                .then(|| http.strip_prefix.as_ref().map(|s| &s.header))
                .flatten(),
            path: Some(f.path),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_lose_their_port_and_queries_keep_their_mark() {
        assert_eq!(host_without_port(b"api.example:8080"), b"api.example");
        assert_eq!(host_without_port(b"api.example"), b"api.example");
        assert_eq!(host_without_port(b"[2001:db8::1]:443"), b"[2001:db8::1]");
        assert_eq!(host_without_port(b"[2001:db8::1]"), b"[2001:db8::1]");
        assert_eq!(query_of("/a/b?x=1&y"), b"?x=1&y");
        assert_eq!(query_of("/a/b"), b"");
    }
}
