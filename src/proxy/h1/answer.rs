//! Answers the proxy makes itself (errors, a route's own answer, a refused
//! body) and a request's bookkeeping: its statistics when the answer's
//! head is known, its access-log line when the answer's body has ended.

use std::net::SocketAddr;

use http::HeaderValue;
use tokio::time::Instant;

use super::exchange::body_len;
use super::head::Framing;
use super::pool::Scratch;
use super::view::Rid;
use super::{write, After, ClientIo, Lean};
use crate::proxy::{error_response, ConnInfo, ProxyError, Source};
use crate::stats::throttle::REQUEST_FAILED;
use crate::stats::{clock, Recorder};
use crate::telemetry::access::Entry;

/// What a request keeps until its answer's head is known: its id, its
/// start, the recorder its pick handed it and its access-log entry (when
/// logging).
pub(super) struct Books {
    pub rid: Rid,
    pub t0: Instant,
    pub rec: Recorder,
    pub log: Option<Entry>,
}

impl Books {
    /// The answer's head is known: notes on the log entry where the
    /// request went (from the recorder, so the names are those of the
    /// table it was routed by) and the time to the head, then records the
    /// answer in the statistics.
    pub fn finish(self, status: u16) -> Logged {
        let Books {
            t0, rec, mut log, ..
        } = self;
        if let Some(entry) = &mut log {
            entry.status = status;
            entry.retries = rec.retries();
            entry.route = rec.route_name().cloned();
            entry.pool = rec.pool_name().cloned();
            entry.backend = rec.backend_addr();
            entry.upstream_secs = t0.elapsed().as_secs_f64();
        }
        rec.finish(status, t0);
        Logged { t0, log }
    }
}

/// A counted request whose log line waits for the answer's body.
pub(super) struct Logged {
    t0: Instant,
    log: Option<Entry>,
}

impl Logged {
    /// The answer's body has ended (or failed): writes the log line, whose
    /// total time runs to here.
    pub fn done(self, proxy: &crate::proxy::Proxy, bytes_out: u64) {
        let (Some(mut entry), Some(sink)) = (self.log, proxy.access_sink()) else {
            return;
        };
        entry.total_secs = self.t0.elapsed().as_secs_f64();
        entry.bytes_out = bytes_out;
        sink.send(entry);
    }
}

/// Leaves in `s.read` only what follows this request (a pipelined one).
pub(super) fn consume(s: &mut Scratch) -> After {
    let end = s.req.len + body_len(&s.req);
    if s.read.len() < end || s.req.framing == Framing::Chunked {
        return After::Close;
    }
    s.read.drain(..end);
    After::KeepAlive
}

/// Answers an error made by the proxy; a request whose body was not read
/// closes the connection after.
pub(super) async fn answer_error<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    e: &ProxyError,
    books: Books,
    body_unread: bool,
) -> After {
    let (status, _) = e.status();
    let rid = books.rid.value();
    if e.source_side() == Source::Downstream {
        tracing::debug!(request_id = ?rid, error = %e, "request rejected");
    } else if let Some(suppressed) = REQUEST_FAILED.admit(clock::now_ms() / 1000) {
        // One line per interval, as on the hyper path: a dead pool fails
        // every request.
        tracing::warn!(request_id = ?rid, error = %e, suppressed, "request failed");
    }
    let resp = error_response(e, Some(&rid));
    let logged = books.finish(status.as_u16());
    answer_generated(lean, io, s, &resp, logged, body_unread).await
}

/// Writes an answer the proxy made (an error, a route's own answer),
/// counted already; a request whose body was not read closes the
/// connection after.
pub(super) async fn answer_generated<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    resp: &http::Response<crate::proxy::ProxyBody>,
    logged: Logged,
    body_unread: bool,
) -> After {
    let close = body_unread || s.req.close || s.req.minor == 0;
    let body = write::generated(&mut s.out, resp, close, lean.hsts.as_ref());
    logged.done(&lean.proxy, body.len() as u64);
    if write::write_two(io, &s.out, &body).await.is_err() || close {
        return After::Close;
    }
    if body_unread {
        After::Close
    } else {
        consume(s)
    }
}

/// The plain listener's redirect (to https), answered before routing:
/// counted nowhere, as on hyper. `close`: the connection closes after.
pub(super) async fn answer_redirect<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    resp: &http::Response<crate::proxy::ProxyBody>,
    books: Books,
    close: bool,
) -> After {
    let body = write::generated(&mut s.out, resp, close, lean.hsts.as_ref());
    let logged = books.finish(resp.status().as_u16());
    let ok = write::write_two(io, &s.out, &body).await.is_ok();
    logged.done(&lean.proxy, body.len() as u64);
    if ok && !close {
        consume(s)
    } else {
        After::Close
    }
}

/// The client's body was bad or cut: 400 (when nothing was answered yet)
/// and close.
pub(super) async fn answer_client_body<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    e: &ProxyError,
    books: Books,
) -> After {
    let status = http::StatusCode::BAD_REQUEST;
    let mut resp = error_response(e, Some(&books.rid.value()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        &crate::proxy::headers::X_SWITCHYARD_ERROR,
        HeaderValue::from_static("client-body"),
    );
    let body = write::generated(&mut s.out, &resp, true, lean.hsts.as_ref());
    books.finish(status.as_u16()).done(&lean.proxy, 0);
    // Best effort: the connection closes either way.
    let _ = write::write_two(io, &s.out, &body).await;
    After::Close
}

/// The access-log entry of the request in `s`.
pub(super) fn entry(s: &Scratch, conn: &ConnInfo, client: std::net::IpAddr, rid: &Rid) -> Entry {
    let b = &s.read;
    let r = &s.req;
    let bytes = |x: &std::ops::Range<u32>| &b[x.start as usize..x.end as usize];
    let header = |name: &[u8]| {
        r.fields
            .iter()
            .find(|f| bytes(&f.name).eq_ignore_ascii_case(name))
            .and_then(|f| HeaderValue::from_bytes(bytes(&f.value)).ok())
    };
    Entry {
        time: std::time::SystemTime::now(),
        request_id: rid.value(),
        client: SocketAddr::new(client, conn.peer.port()),
        method: http::Method::from_bytes(bytes(&r.method)).unwrap_or(http::Method::GET),
        uri: http::Uri::try_from(bytes(&r.target)).unwrap_or_default(),
        version: if r.minor == 0 {
            http::Version::HTTP_10
        } else {
            http::Version::HTTP_11
        },
        user_agent: header(b"user-agent"),
        referer: header(b"referer"),
        route: None,
        pool: None,
        backend: None,
        status: 0,
        upstream_secs: 0.0,
        total_secs: 0.0,
        bytes_in: match r.framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        bytes_out: 0,
        retries: 0,
    }
}

/// The request as an `http::Request<()>`, for the redirect decision.
pub(super) fn redirect_request(s: &Scratch) -> Option<http::Request<()>> {
    let b = &s.read;
    let r = &s.req;
    let mut req = http::Request::new(());
    *req.uri_mut() =
        http::Uri::try_from(&b[r.target.start as usize..r.target.end as usize]).ok()?;
    if let Some(h) = &r.host {
        let v = HeaderValue::from_bytes(&b[h.start as usize..h.end as usize]).ok()?;
        req.headers_mut().insert(http::header::HOST, v);
    }
    Some(req)
}
