//! The data plane: for each request, one load of the routing table, a route,
//! a pool (failing over to the route's other pools when it has no available
//! backend) and a backend; then the request is forwarded — retried on
//! another backend of the pool when that is safe (`retry`) — and the
//! response streamed back. Owns no state of its own beyond counters: tables
//! come from the controller, backend state from the registry. The request
//! records its answer into the `stats::Recorder` its pick handed it (the
//! access log takes the names from there too), so the table is loaded
//! once per request, plus once per retry.

pub mod answer;
mod body;
pub mod client_addr;
mod decide;
mod error;
pub mod h1;
pub mod header_rules;
pub mod headers;
pub(crate) mod mirror;
pub mod proxy_protocol;
pub mod ratelimit;
pub mod retry;
pub mod rewrite;
pub mod route_http;
pub mod rules;
pub mod upstream;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use body::{ProxyBody, UpBody};

use crate::telemetry::access::{AccessSink, Entry};
use body::Pending;
pub use error::{error_response, ProxyError, Source};

use crate::stats::throttle::REQUEST_FAILED;
use crate::stats::{clock, Recorder};
use crate::table::{Route, RoutingTable, Unservable};
use headers::*;

/// Requests whose force header named no known pool (they were routed by
/// the split instead).
pub static FORCE_UNKNOWN: AtomicU64 = AtomicU64::new(0);

/// One client connection, as the data plane needs to know it.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The connection's client: the TCP peer, or the source its PROXY
    /// protocol header gave (`server::proxied`).
    pub peer: SocketAddr,
    /// The peer's IP, ready for `X-Forwarded-For`.
    pub peer_ip: HeaderValue,
    /// "http" or "https", for `X-Forwarded-Proto`.
    pub proto: &'static str,
    /// `trusted_proxies`, when `peer` is one of them: its requests'
    /// `X-Forwarded-For` is believed (`route_http::client_ip`).
    pub trusted: Option<Arc<crate::config::TrustedProxies>>,
}

impl ConnInfo {
    pub fn new(peer: SocketAddr, proto: &'static str) -> Self {
        let ip = peer.ip().to_canonical().to_string();
        Self {
            peer,
            peer_ip: HeaderValue::from_str(&ip)
                .unwrap_or_else(|_| HeaderValue::from_static("unknown")),
            proto,
            trusted: None,
        }
    }

    /// Believes this connection's `X-Forwarded-For` when its peer is in
    /// `trusted`.
    pub fn trusting(mut self, trusted: &Arc<crate::config::TrustedProxies>) -> Self {
        if trusted.contains(self.peer.ip()) {
            self.trusted = Some(trusted.clone());
        }
        self
    }
}

/// The request handler of one worker.
#[derive(Clone)]
pub struct Proxy {
    table: Arc<ArcSwap<RoutingTable>>,
    /// This worker's access-log sender (`None`: access log off).
    access: Option<Arc<AccessSink>>,
    /// Upgraded connections (WebSocket tunnels) run as their own tasks; the
    /// worker waits for them on shutdown.
    tunnels: TaskTracker,
}

impl Proxy {
    pub fn new(table: Arc<ArcSwap<RoutingTable>>, tunnels: TaskTracker) -> Self {
        Self {
            table,
            tunnels,
            access: None,
        }
    }

    /// This worker's access-log sender, when the log is on.
    pub(crate) fn access_sink(&self) -> Option<&Arc<AccessSink>> {
        self.access.as_ref()
    }

    pub(crate) fn table(&self) -> &ArcSwap<RoutingTable> {
        &self.table
    }

    /// Writes an access-log line for every request through `sink`.
    pub fn with_access_log(mut self, sink: Option<AccessSink>) -> Self {
        self.access = sink.map(Arc::new);
        self
    }

    pub async fn handle(&self, mut req: Request<Incoming>, conn: &ConnInfo) -> Response<ProxyBody> {
        let request_id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => id.clone(),
            None => {
                let id = new_request_id();
                req.headers_mut().insert(&X_REQUEST_ID, id.clone());
                id
            }
        };
        let t0 = Instant::now();
        let mut rec = Recorder::default();
        let xff = req.headers().get_all(&X_FORWARDED_FOR).iter();
        let client = route_http::client_ip(conn, xff.map(HeaderValue::as_bytes));
        let log = self.access.as_ref().map(|_| Entry {
            time: std::time::SystemTime::now(),
            request_id: request_id.clone(),
            client: SocketAddr::new(client, conn.peer.port()),
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            user_agent: req.headers().get(header::USER_AGENT).cloned(),
            referer: req.headers().get(header::REFERER).cloned(),
            route: None,
            pool: None,
            backend: None,
            status: 0,
            upstream_secs: 0.0,
            total_secs: 0.0,
            bytes_in: req
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or(0),
            bytes_out: 0,
            retries: 0,
        });
        let resp = match self.forward(req, conn, client, &mut rec).await {
            Ok(resp) => resp,
            Err(e) => {
                if e.source_side() == Source::Downstream {
                    tracing::debug!(request_id = ?request_id, client = %conn.peer, error = %e, "request rejected");
                } else if let Some(suppressed) = REQUEST_FAILED.admit(clock::now_ms() / 1000) {
                    // One line per interval: a dead pool fails every request.
                    tracing::warn!(request_id = ?request_id, client = %conn.peer, error = %e, suppressed, "request failed");
                }
                error_response(&e, Some(&request_id))
            }
        };
        let mut resp = resp;
        let status = resp.status().as_u16();
        if let (Some(mut entry), Some(sink)) = (log, &self.access) {
            entry.status = status;
            entry.upstream_secs = t0.elapsed().as_secs_f64();
            entry.retries = rec.retries();
            entry.route = rec.route_name().cloned();
            entry.pool = rec.pool_name().cloned();
            entry.backend = rec.backend_addr();
            resp.body_mut().log_when_done(Pending {
                entry,
                sink: sink.clone(),
                started: t0,
                bytes_out: 0,
            });
        }
        // Counted where it was routed, whatever table is in force now.
        rec.finish(status, t0);
        resp
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &ConnInfo,
        client: std::net::IpAddr,
        rec: &mut Recorder,
    ) -> Result<Response<ProxyBody>, ProxyError> {
        if req.method() == Method::CONNECT {
            // Counted with the answers that matched no route (as ever).
            *rec = self.table.load().no_route();
            return Err(ProxyError::MethodNotAllowed);
        }
        let client_upgrade =
            is_upgrade_request(req.version(), req.headers()).then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        let remote_addr = route_http::remote_addr(conn, client);
        // The declared length, as hyper frames the body by it.
        let content_length = http_body::Body::size_hint(&body).exact();
        // Routing decisions, made against one snapshot without awaiting.
        let now = Instant::now();
        let facts = facts(
            &parts.uri,
            parts.headers.get(&X_REQUEST_ID),
            host_of(&parts),
            conn,
            (client, &remote_addr),
            content_length,
        );
        let decided = decide::decide(&self.table, &HyperView(&parts), &facts, now, rec);
        let decide::Decision {
            inflight,
            pool_header,
            bucket,
            settings,
            plan,
            set_cookie,
            body_limit: limit,
            rules,
            mirror,
        } = match decided {
            Ok(d) => d,
            Err(route_http::Early::Answer(resp)) => return Ok(*resp),
            Err(route_http::Early::Refuse(e)) => return Err(e),
        };
        // The request as received, for the rules (the head changes first).
        let rules = rules.map(|rules| Kept {
            rules,
            uri: parts.uri.clone(),
            request_id: parts.headers.get(&X_REQUEST_ID).cloned(),
            host: host_of(&parts).map(bytes::Bytes::copy_from_slice),
        });

        let upgrading = client_upgrade.is_some();
        prepare_request(&mut parts, conn, upgrading, settings.underscores_in_headers);
        if let Some(k) = &rules {
            let f = k.facts(conn, (client, &remote_addr));
            k.rewrite_request(&mut parts, &f, &pool_header);
        }
        parts
            .headers
            .insert(&X_SWITCHYARD_POOL, pool_header.clone());
        match bucket {
            Some(b) => parts
                .headers
                .insert(&X_SWITCHYARD_BUCKET, HeaderValue::from(b)),
            None => parts.headers.remove(&X_SWITCHYARD_BUCKET),
        };
        let (body, waited, tap) = match mirror {
            None => {
                let (body, waited) =
                    retry::keep_body(&parts.method, body, plan.retry.retries, limit).await?;
                (body, waited, None)
            }
            Some(due) => mirror::hyper_copy(due, &parts, body, limit, settings).await?,
        };
        let started = if waited { Instant::now() } else { now };
        let req = Request::from_parts(parts, body);
        let (resp, pooled, inflight) =
            retry::send(&self.table, inflight, req, plan, &settings, started, rec).await?;

        if resp.headers().contains_key(header::TRANSFER_ENCODING)
            && resp.headers().contains_key(header::CONTENT_LENGTH)
        {
            // hyper's client frames it by chunked and would pass the
            // length on (response splitting): refused, as the lean path's
            // parser refuses it (RFC 9112 §6.3).
            return Err(ProxyError::Upstream(upstream::UpstreamError::Invalid {
                addr: inflight.backend().addr,
                what: "Content-Length with Transfer-Encoding",
            }));
        }
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            // Only an upgrade the proxy passed on is switched (issue 18).
            let Some(client) = client_upgrade else {
                return Err(ProxyError::UnaskedUpgrade);
            };
            return Ok(self.tunnel(client, resp, inflight));
        }
        let (mut parts, body) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers, false);
        if let Some(k) = &rules {
            if let Some(r) = &k.rules.http.response_headers {
                let f = k.facts(conn, (client, &remote_addr));
                let fwd = route_http::forward_head(&k.rules.http, f.path);
                let uri = fwd.path.as_deref().unwrap_or(f.path);
                let vars = f.vars(&k.rules.route, pool_header.as_bytes(), uri.as_bytes());
                header_rules::apply(r, &mut parts.headers, &vars);
            }
        }
        if let Some(c) = set_cookie {
            parts.headers.append(header::SET_COOKIE, c);
        }
        let mut body = ProxyBody::upstream(body, pooled, inflight);
        if let Some(mut tap) = tap {
            tap.head(parts.status.as_u16(), &parts.headers);
            body.tap(tap);
        }
        Ok(Response::from_parts(parts, body))
    }

    /// Joins the client's and the backend's upgraded connections.
    fn tunnel(
        &self,
        client: hyper::upgrade::OnUpgrade,
        mut resp: Response<Incoming>,
        inflight: crate::table::InFlight,
    ) -> Response<ProxyBody> {
        let upstream = hyper::upgrade::on(&mut resp);
        let (mut parts, _) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers, true);
        self.tunnels.spawn(async move {
            let _inflight = inflight;
            match tokio::try_join!(client, upstream) {
                Ok((c, u)) => {
                    let (mut c, mut u) = (TokioIo::new(c), TokioIo::new(u));
                    if let Err(e) = tokio::io::copy_bidirectional(&mut c, &mut u).await {
                        tracing::debug!(error = %e, "upgraded connection ended with an error");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "upgrade failed"),
            }
        });
        Response::from_parts(parts, ProxyBody::empty())
    }
}

/// The hyper path's request, as routing reads it.
struct HyperView<'a>(&'a http::request::Parts);

impl decide::RequestView for HyperView<'_> {
    fn check(&self) -> Result<(), rules::Refusal> {
        check_request(self.0.version, &self.0.uri, &self.0.headers)
    }
    fn host(&self) -> Option<&str> {
        let authority = self.0.uri.authority().map(|a| a.as_str());
        authority.or_else(|| self.0.headers.get(header::HOST)?.to_str().ok())
    }
    fn path(&self) -> &str {
        self.0.uri.path()
    }
    fn header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        self.0.headers.get(name).map(HeaderValue::as_bytes)
    }
    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie(&self.0.headers, name)
    }
    fn mirror_facts(&self) -> Option<(&[u8], mirror::BodySize)> {
        let p = self.0;
        if is_upgrade_request(p.version, &p.headers) {
            return None;
        }
        let length = p
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse().ok());
        let chunked = p.headers.contains_key(header::TRANSFER_ENCODING);
        Some((
            p.method.as_str().as_bytes(),
            mirror::BodySize::of(length, chunked),
        ))
    }
}

/// The target's authority (absolute form, `:authority`: it decides over
/// Host, RFC 9112 §3.2.2, RFC 9113 §8.3.1), else the Host header.
fn host_of(parts: &http::request::Parts) -> Option<&[u8]> {
    let authority = parts.uri.authority().map(|a| a.as_str().as_bytes());
    authority.or_else(|| parts.headers.get(header::HOST).map(HeaderValue::as_bytes))
}

/// The route features' view of a request on this path.
fn facts<'a>(
    uri: &'a Uri,
    request_id: Option<&'a HeaderValue>,
    host: Option<&'a [u8]>,
    conn: &'a ConnInfo,
    (client, remote_addr): (std::net::IpAddr, &'a [u8]),
    content_length: Option<u64>,
) -> route_http::Facts<'a> {
    let pq = uri.path_and_query().map_or("/", |pq| pq.as_str());
    route_http::Facts {
        client,
        remote_addr,
        request_id: request_id.map_or(&b""[..], HeaderValue::as_bytes),
        host: host.unwrap_or(b""),
        scheme: conn.proto.as_bytes(),
        request_uri: pq.as_bytes(),
        path: uri.path(),
        query: route_http::query_of(pq),
        content_length,
    }
}

/// What a route that rewrites keeps of the request as received (the head
/// is changed before its rules run).
struct Kept {
    rules: route_http::Rules,
    uri: Uri,
    request_id: Option<HeaderValue>,
    host: Option<bytes::Bytes>,
}

impl Kept {
    fn facts<'a>(
        &'a self,
        conn: &'a ConnInfo,
        client: (std::net::IpAddr, &'a [u8]),
    ) -> route_http::Facts<'a> {
        let host = self.host.as_deref();
        facts(
            &self.uri,
            self.request_id.as_ref(),
            host,
            conn,
            client,
            None,
        )
    }

    /// The route's path rewrite, `X-Forwarded-Prefix` and request rules,
    /// after the proxy's own headers are in place.
    fn rewrite_request(
        &self,
        parts: &mut http::request::Parts,
        f: &route_http::Facts<'_>,
        pool: &HeaderValue,
    ) {
        let head = route_http::forward_head(&self.rules.http, f.path);
        if let Some(prefix) = head.prefix {
            parts.headers.insert(&X_FORWARDED_PREFIX, prefix.clone());
        }
        let uri = head.path.as_deref().unwrap_or(f.path);
        if let Some(path) = &head.path {
            let query = std::str::from_utf8(f.query).unwrap_or("");
            // The rewritten path was checked at load to be a valid path;
            // a failure keeps the client's.
            if let Ok(u) = Uri::try_from(format!("{path}{query}")) {
                parts.uri = u;
            }
        }
        if let Some(rules) = &self.rules.http.request_headers {
            let vars = f.vars(&self.rules.route, pool.as_bytes(), uri.as_bytes());
            header_rules::apply(rules, &mut parts.headers, &vars);
        }
    }
}

/// Rewrites the request head for the backend. `underscores`: names with
/// `_` are passed on.
fn prepare_request(
    parts: &mut http::request::Parts,
    conn: &ConnInfo,
    upgrade: bool,
    underscores: bool,
) {
    strip_request(&mut parts.headers, upgrade, underscores);
    // The target's authority (absolute form, HTTP/2's :authority) is the
    // Host the backend gets (HTTP/1.1).
    if let Some(a) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    }
    set_forwarded(&mut parts.headers, &conn.peer_ip, conn.proto);
    // Ours to send (a route with strip_prefix sets it), never the client's.
    parts.headers.remove(&X_FORWARDED_PREFIX);
    if parts.uri.scheme().is_some() || parts.uri.authority().is_some() {
        parts.uri = parts
            .uri
            .path_and_query()
            .cloned()
            .map_or_else(|| Uri::from_static("/"), Uri::from);
    }
    parts.version = Version::HTTP_11;
}

/// The error for a route that cannot serve a request.
fn unservable(route: &Route, u: Unservable<'_>) -> ProxyError {
    match u {
        Unservable::NoPool => ProxyError::NoPool,
        Unservable::Pool(pool) => ProxyError::NoBackend {
            pool: pool.name.clone(),
        },
        Unservable::AllPools(pool) => ProxyError::NoServablePool {
            pool: pool.name.clone(),
            route: route.name.clone(),
        },
    }
}

fn sticky_cookie(name: &str, id: &HeaderValue) -> HeaderValue {
    let v = format!(
        "{name}={}; Path=/; Max-Age=31536000; HttpOnly; SameSite=Lax",
        String::from_utf8_lossy(id.as_bytes())
    );
    HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static(""))
}
