//! One request on the lean path: route, write the upstream head, send the
//! body by its framing while watching for an early answer, retry on
//! another backend when that is safe (the rules of `proxy::retry`), then
//! relay the answer (`relay`).
//!
//! The upstream head in `Scratch::out` and a body held in `Scratch::read`
//! are the replay copy: until a byte of the body has been streamed from
//! the client, the request can be sent again as it is.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tokio::time::{Instant, Sleep};
use tokio_util::io::poll_read_buf;

use super::chunked::Chunked;
use super::head::{self, Framing, Kind};
use super::pool::{self, Conn, Io, Scratch};
use super::write::{self, Ours, RouteHead};
use super::{After, ClientIo, Lean};
use crate::proxy::decide::{self, Decision, RequestView};
use crate::proxy::headers::{cookie_in, new_request_id_bytes};
use crate::proxy::mirror::{self, BodySize};
use crate::proxy::retry::{self, Tried, KEEP_BODY_MAX};
use crate::proxy::route_http::{self, Early, Facts};
use crate::proxy::upstream::UpstreamError;
use crate::proxy::{error_response, ConnInfo, ProxyError, Source};
use crate::stats::throttle::REQUEST_FAILED;
use crate::stats::{clock, Recorder};
use crate::table::{InFlight, UpstreamErrorKind};
use crate::telemetry::access::Entry;

/// A pooled connection idle this long may have been closed by the backend
/// as the request went out: a replayable request is resent on a new one
/// (as `proxy::upstream` does).
const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(500);
/// Largest answer head accepted from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// The request as routing reads it.
struct View<'a> {
    buf: &'a [u8],
    req: &'a head::Request,
}

impl View<'_> {
    fn text(&self, r: &std::ops::Range<u32>) -> Option<&str> {
        std::str::from_utf8(&self.buf[r.start as usize..r.end as usize]).ok()
    }
    fn values<'s>(&'s self, kind: Kind) -> impl DoubleEndedIterator<Item = &'s [u8]> + 's {
        self.req
            .fields
            .iter()
            .filter(move |f| f.kind == kind)
            .map(|f| &self.buf[f.value.start as usize..f.value.end as usize])
    }
}

impl<'a> View<'a> {
    /// What the route features read (`route_http`).
    fn facts(
        &self,
        conn: &'a ConnInfo,
        client: std::net::IpAddr,
        remote_addr: &'a [u8],
        rid: &'a Rid,
    ) -> Facts<'a> {
        let at = |r: &std::ops::Range<u32>| &self.buf[r.start as usize..r.end as usize];
        let origin = std::str::from_utf8(at(&self.req.origin)).unwrap_or("/");
        let host = self.req.authority.as_ref().or(self.req.host.as_ref());
        Facts {
            client,
            remote_addr,
            request_id: rid.bytes(),
            host: host.map_or(&b""[..], at),
            scheme: conn.proto.as_bytes(),
            request_uri: origin.as_bytes(),
            path: std::str::from_utf8(at(&self.req.path)).unwrap_or("/"),
            query: route_http::query_of(origin),
            content_length: match self.req.framing {
                Framing::Length(n) => Some(n),
                _ => None,
            },
        }
    }
}

impl RequestView for View<'_> {
    fn host(&self) -> Option<&str> {
        self.req
            .authority
            .as_ref()
            .or(self.req.host.as_ref())
            .and_then(|r| self.text(r))
    }
    fn path(&self) -> &str {
        self.text(&self.req.path).unwrap_or("/")
    }
    fn header(&self, name: &http::HeaderName) -> Option<&[u8]> {
        let name = name.as_str().as_bytes();
        self.req
            .fields
            .iter()
            .find(|f| {
                let n = &self.buf[f.name.start as usize..f.name.end as usize];
                n.eq_ignore_ascii_case(name)
            })
            .map(|f| &self.buf[f.value.start as usize..f.value.end as usize])
    }
    fn cookie(&self, name: &str) -> Option<&[u8]> {
        cookie_in(self.values(Kind::Cookie), name)
    }
    fn mirror_facts(&self) -> Option<(&[u8], BodySize)> {
        let r = self.req;
        let body = match r.framing {
            Framing::Length(n) => BodySize::of(Some(n), false),
            Framing::Chunked | Framing::Close => BodySize::Unknown,
            Framing::None => BodySize::None,
        };
        let method = &self.buf[r.method.start as usize..r.method.end as usize];
        (!r.upgrade).then_some((method, body))
    }
}

/// The request id: the client's, or one minted here (written without
/// allocating; a `HeaderValue` is made only for errors and the log).
enum Rid {
    Client(HeaderValue),
    Minted([u8; 32]),
}

impl Rid {
    fn bytes(&self) -> &[u8] {
        match self {
            Rid::Client(v) => v.as_bytes(),
            Rid::Minted(b) => b,
        }
    }

    fn value(&self) -> HeaderValue {
        match self {
            Rid::Client(v) => v.clone(),
            Rid::Minted(b) => {
                HeaderValue::from_bytes(b).unwrap_or_else(|_| HeaderValue::from_static("0"))
            }
        }
    }
}

/// The request body still to send.
pub(super) enum Body {
    Done,
    Length(u64),
    Chunked(Chunked),
}

impl Body {
    fn done(&self) -> bool {
        match self {
            Body::Done => true,
            Body::Length(n) => *n == 0,
            Body::Chunked(c) => c.done(),
        }
    }
}

/// What the request side knows after its head was read.
pub(super) struct ReqInfo {
    pub minor: u8,
    pub head_request: bool,
    pub close: bool,
    pub upgrade: bool,
    pub expect_continue: bool,
    pub idempotent: bool,
    /// The route's `max_body_bytes`, which a chunked body is held to.
    pub body_limit: Option<u64>,
}

impl ReqInfo {
    /// Has a chunked body grown past the limit?
    fn over_limit(&self, body: &Body) -> Option<u64> {
        match (body, self.body_limit) {
            (Body::Chunked(c), Some(limit)) if c.data_len() > limit => Some(limit),
            _ => None,
        }
    }
}

/// Why a try failed.
enum Fail {
    /// Nothing reached the backend.
    Unsent(UpstreamError),
    /// The request (or part) went out; no answer.
    Sent(UpstreamError),
    /// The try's deadline passed.
    Timeout,
    /// The client's body was bad or the client went away.
    Client(io::Error),
    /// The client's chunked body grew past `max_body_bytes`.
    TooLarge(u64),
}

pub(super) async fn exchange<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    conn: &ConnInfo,
    mut timer: Pin<&mut Sleep>,
) -> After {
    let t0 = Instant::now();
    let proxy = &lean.proxy;
    let method = &s.read[s.req.method.start as usize..s.req.method.end as usize];
    let mut info = ReqInfo {
        minor: s.req.minor,
        head_request: method == b"HEAD",
        close: s.req.close,
        upgrade: s.req.upgrade,
        expect_continue: s.req.expect_continue,
        idempotent: matches!(
            method,
            b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE"
        ),
        body_limit: None,
    };
    let client_rid = s
        .req
        .fields
        .iter()
        .find(|f| f.kind == Kind::XRequestId)
        .and_then(|f| {
            HeaderValue::from_bytes(&s.read[f.value.start as usize..f.value.end as usize]).ok()
        });
    let rid = match client_rid {
        Some(v) => Rid::Client(v),
        None => Rid::Minted(new_request_id_bytes()),
    };
    let view = View {
        buf: &s.read,
        req: &s.req,
    };
    let client = route_http::client_ip(conn, view.values(Kind::XForwardedFor));
    let mut log = proxy.access_sink().map(|_| entry(s, conn, client, &rid));
    let mut rec = Recorder::default();
    let has_body = s.req.framing != Framing::None;

    if method == b"CONNECT" {
        // Counted with the answers that matched no route (as on hyper).
        let rec = proxy.table().load().no_route();
        return answer_error(
            lean,
            io,
            s,
            &ProxyError::MethodNotAllowed,
            &rid,
            rec,
            t0,
            log,
            has_body,
        )
        .await;
    }
    if let Some(redirect) = &lean.redirect {
        if let Some(resp) = redirect_request(s).and_then(|r| redirect(&r)) {
            let body = write::generated(
                &mut s.out,
                &resp,
                has_body || info.close,
                lean.hsts.as_ref(),
            );
            // Answered before routing: counted nowhere, as on hyper.
            finish(rec, &mut log, resp.status().as_u16(), t0);
            let ok = write::write_two(io, &s.out, &body).await.is_ok();
            log_done(proxy, log.take(), t0, body.len() as u64);
            return if ok && !has_body && !info.close {
                consume(s)
            } else {
                After::Close
            };
        }
    }
    let remote_addr = route_http::remote_addr(conn, client);
    let view = View {
        buf: &s.read,
        req: &s.req,
    };
    let facts = view.facts(conn, client, &remote_addr, &rid);
    let decision = match decide::decide(proxy.table(), &view, &facts, t0, &mut rec) {
        Ok(d) => d,
        Err(Early::Refuse(e)) => {
            return answer_error(lean, io, s, &e, &rid, rec, t0, log, has_body).await
        }
        Err(Early::Answer(resp)) => {
            let status = resp.status().as_u16();
            finish(rec, &mut log, status, t0);
            return answer_generated(lean, io, s, &resp, t0, log, has_body).await;
        }
    };
    let Decision {
        inflight,
        pool_header,
        bucket,
        settings,
        plan,
        set_cookie,
        body_limit,
        rules,
        mirror,
    } = decision;
    info.body_limit = body_limit;
    // What the route changes: the path, X-Forwarded-Prefix, the request
    // rules (written with the head) and the answer's (rendered now, while
    // the request's bytes are at hand).
    let fwd = rules
        .as_ref()
        .map(|r| route_http::forward_head(&r.http, facts.path));
    let origin = fwd
        .as_ref()
        .and_then(|f| f.path.as_ref())
        .map(|p| [p.as_bytes(), facts.query].concat());
    let uri = fwd
        .as_ref()
        .and_then(|f| f.path.as_deref())
        .unwrap_or(facts.path);
    let route_head = rules.as_ref().map(|r| RouteHead {
        origin: origin.as_deref(),
        prefix: fwd.as_ref().and_then(|f| f.prefix),
        rules: r.http.request_headers.as_ref(),
        vars: facts.vars(&r.route, pool_header.as_bytes(), uri.as_bytes()),
    });
    let answer_rules = rules.as_ref().and_then(|r| {
        let rr = r.http.response_headers.as_ref()?;
        let mut lines = Vec::new();
        let vars = facts.vars(&r.route, pool_header.as_bytes(), uri.as_bytes());
        write::render_rules(&mut lines, rr, &vars);
        Some((rr, lines))
    });
    let ours = Ours {
        conn,
        request_id: match &rid {
            Rid::Client(_) => None,
            Rid::Minted(b) => Some(&b[..]),
        },
        pool: &pool_header,
        bucket,
        route: route_head.as_ref(),
        underscores: settings.underscores_in_headers,
    };
    write::upstream_head(&mut s.out, &s.read, &s.req, &ours);

    // The body: what is here already, and whether it can be kept whole.
    let head_len = s.req.len;
    let mut body = match s.req.framing {
        Framing::Length(n) => Body::Length(n),
        Framing::Chunked => Body::Chunked(Chunked::new(lean.max_header_bytes)),
        _ => Body::Done,
    };
    // A mirrored body is read whole too (`due` checked its length).
    let keep = (plan.retry.retries > 0 || mirror.is_some())
        && (info.idempotent || mirror.is_some())
        && matches!(s.req.framing, Framing::Length(n) if n <= KEEP_BODY_MAX || mirror.is_some());
    if keep && (s.read.len() - head_len) < body_len(&s.req) {
        if info.expect_continue && write_continue(io).await.is_err() {
            return After::Close;
        }
        let want = head_len + body_len(&s.req);
        while s.read.len() < want {
            match io.read_buf(&mut s.read).await {
                Ok(0) | Err(_) => return After::Close,
                Ok(_) => {}
            }
        }
    }
    let mut tap = mirror.and_then(|due| {
        let n = body_len(&s.req);
        let copied =
            (n > 0).then(|| bytes::Bytes::copy_from_slice(&s.read[head_len..head_len + n]));
        Some(mirror::spawn(
            due,
            mirror::Copy::from_head(&s.out, copied)?,
            settings,
        ))
    });
    let mut prefix_end = head_len;
    if let Err(e) = take_prefix(s, &mut body, &mut prefix_end) {
        let err = ProxyError::Upstream(UpstreamError::Io {
            addr: inflight.backend().addr,
            source: e,
        });
        return answer_client_body(lean, io, s, &err, &rid, rec, t0, log).await;
    }
    if let Some(limit) = info.over_limit(&body) {
        let err = ProxyError::Upstream(UpstreamError::BodyTooLarge { limit });
        return answer_error(lean, io, s, &err, &rid, rec, t0, log, true).await;
    }
    let replayable = info.idempotent && body.done();

    // Tries.
    let started = Instant::now();
    let deadline = started + settings.upstream_timeout;
    let mut tried = Tried::new(inflight.backend().id);
    let mut inflight: InFlight = inflight;
    let mut streamed = false;
    let mut continued = false;
    let up = loop {
        let try_deadline = match plan.retry.per_try_timeout {
            Some(t) => deadline.min(Instant::now() + t),
            None => deadline,
        };
        timer.as_mut().reset(try_deadline);
        let fut = attempt(
            io,
            s,
            &inflight,
            &settings,
            &info,
            &mut body,
            prefix_end,
            &mut streamed,
            &mut continued,
        );
        let result = tokio::select! {
            biased;
            r = fut => r,
            _ = &mut timer => Err(Fail::Timeout),
        };
        let backend = inflight.backend();
        let (error, unsent) = match result {
            Ok(conn) => {
                if s.resp.status >= 500 {
                    backend.report_failure(&plan.outlier, clock::now_ms());
                } else {
                    backend.report_success();
                }
                break conn;
            }
            Err(Fail::Client(e)) => {
                tracing::debug!(client = %conn.peer, error = %e, "client body failed");
                let err = ProxyError::Upstream(UpstreamError::Io {
                    addr: backend.addr,
                    source: e,
                });
                return answer_client_body(lean, io, s, &err, &rid, rec, t0, log).await;
            }
            Err(Fail::TooLarge(limit)) => {
                // The upstream connection was dropped without the body's
                // end: the backend sees an aborted request.
                tracing::debug!(client = %conn.peer, limit, "request body over the limit");
                let err = ProxyError::Upstream(UpstreamError::BodyTooLarge { limit });
                return answer_error(lean, io, s, &err, &rid, rec, t0, log, true).await;
            }
            Err(Fail::Unsent(e)) => (ProxyError::Upstream(e), true),
            Err(Fail::Sent(e)) => (ProxyError::Upstream(e), false),
            Err(Fail::Timeout) if try_deadline < deadline => (
                ProxyError::Timeout(
                    plan.retry
                        .per_try_timeout
                        .unwrap_or(settings.upstream_timeout),
                ),
                false,
            ),
            Err(Fail::Timeout) => {
                backend.stats.count_error(UpstreamErrorKind::Timeout);
                backend.report_failure(&plan.outlier, clock::now_ms());
                let e = ProxyError::Timeout(settings.upstream_timeout);
                return answer_error(lean, io, s, &e, &rid, rec, t0, log, !body.done()).await;
            }
        };
        backend.stats.count_error(retry::error_kind(&error));
        backend.report_failure(&plan.outlier, clock::now_ms());
        let may_retry = tried.len <= plan.retry.retries as usize
            && Instant::now() < deadline
            && !streamed
            && (unsent || replayable);
        let next = if may_retry {
            retry::retry_target(proxy.table(), &inflight, &tried, &plan, &mut rec)
        } else {
            None
        };
        let Some(next) = next else {
            return answer_error(lean, io, s, &error, &rid, rec, t0, log, !body.done()).await;
        };
        tracing::debug!(pool = %backend.pool, from = %backend.addr, to = %next.backend().addr,
            error = %error, "retrying on another backend");
        tried.push(next.backend().id);
        inflight = next;
    };
    let status = s.resp.status;
    // Counted when the answer's head is known (as on hyper); the log
    // line waits for the body.
    finish(rec, &mut log, status, t0);
    let body_done = body.done();
    if !body_done {
        // An early answer: the rest of the body will not be read.
        tracing::debug!(client = %conn.peer, status, "backend answered before the request body ended");
    }
    if !streamed {
        s.read.drain(..prefix_end);
    }
    let close = info.close || !body_done || lean.shutdown.is_cancelled() || info.minor == 0;
    if let Some(t) = &mut tap {
        t.head_raw(status, &s.up[..s.resp.len]);
    }
    let relayed = super::relay::relay(
        lean,
        io,
        s,
        up,
        &info,
        &inflight,
        &settings,
        set_cookie.as_ref(),
        answer_rules.as_ref().map(|(r, l)| (*r, &l[..])),
        close,
        tap.as_mut(),
    )
    .await;
    log_done(proxy, log.take(), t0, relayed.bytes_out);
    if close || !relayed.client_ok {
        After::Close
    } else {
        After::KeepAlive
    }
}

/// The declared length of a Content-Length body (0 otherwise).
fn body_len(req: &head::Request) -> usize {
    match req.framing {
        Framing::Length(n) => usize::try_from(n).unwrap_or(usize::MAX),
        _ => 0,
    }
}

/// Takes the body bytes already read (after the head) into the first
/// write; `prefix_end` is where they end.
fn take_prefix(s: &Scratch, body: &mut Body, prefix_end: &mut usize) -> io::Result<()> {
    let here = &s.read[*prefix_end..];
    match body {
        Body::Done => {}
        Body::Length(n) => {
            let take = here.len().min(usize::try_from(*n).unwrap_or(usize::MAX));
            *n -= take as u64;
            *prefix_end += take;
        }
        Body::Chunked(c) => {
            let used = c
                .advance(here, |_| {})
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            *prefix_end += used;
        }
    }
    Ok(())
}

/// One try on one backend (a stale pooled connection is replaced, and a
/// replayable request resent on a fresh one): answers the connection with
/// the answer's head in `s.up` / `s.resp`.
#[allow(clippy::too_many_arguments)]
async fn attempt<S: ClientIo>(
    io: &mut S,
    s: &mut Scratch,
    inflight: &InFlight,
    settings: &crate::table::Settings,
    info: &ReqInfo,
    body: &mut Body,
    prefix_end: usize,
    streamed: &mut bool,
    continued: &mut bool,
) -> Result<Conn, Fail> {
    let backend = inflight.backend();
    let addr = backend.addr;
    let mut fresh_only = backend.is_draining();
    if fresh_only {
        pool::discard(backend.id);
    }
    loop {
        let mut up = match (!fresh_only).then(|| pool::checkout(backend.id)).flatten() {
            Some(c) => c,
            // Boxed: connecting is the rare path and its future is large.
            None => Box::pin(pool::connect(backend, settings.connect_timeout))
                .await
                .map_err(Fail::Unsent)?,
        };
        let reused = up.reused_after;
        let prefix = if *streamed {
            &[][..]
        } else {
            &s.read[s.req.len..prefix_end]
        };
        let head_and_prefix = write::write_two(&mut up.io, &s.out, prefix).await;
        if let Err(e) = head_and_prefix {
            if reused.is_some() {
                tracing::debug!(backend.addr = %addr, error = %e, "pooled connection was closed; resending");
                fresh_only = true;
                continue;
            }
            return Err(Fail::Sent(UpstreamError::Io { addr, source: e }));
        }
        if !body.done() && info.expect_continue && !*continued {
            *continued = true;
            write_continue(io).await.map_err(Fail::Client)?;
        }
        s.up.clear();
        match read_answer(io, &mut up.io, s, body, info, addr, streamed, prefix_end).await {
            Ok(()) => return Ok(up),
            Err(Fail::Sent(e))
                if s.up.is_empty() && !*streamed && replay_stale(reused, info, body) =>
            {
                tracing::debug!(backend.addr = %addr, error = %e, "idle pooled connection failed; replaying on a new one");
                fresh_only = true;
            }
            Err(f) => return Err(f),
        }
    }
}

fn replay_stale(reused: Option<Duration>, info: &ReqInfo, body: &Body) -> bool {
    reused.is_some_and(|d| d >= REPLAY_AFTER_IDLE) && info.idempotent && body.done()
}

async fn write_continue<S: AsyncWrite + Unpin>(io: &mut S) -> io::Result<()> {
    write::write_two(io, b"HTTP/1.1 100 Continue\r\n\r\n", &[]).await
}

/// Reads the answer's head (skipping 1xx answers other than 101) while the
/// rest of the request body, if any, streams from the client.
#[allow(clippy::too_many_arguments)]
async fn read_answer<S: ClientIo>(
    client: &mut S,
    up: &mut Io,
    s: &mut Scratch,
    body: &mut Body,
    info: &ReqInfo,
    addr: SocketAddr,
    streamed: &mut bool,
    prefix_end: usize,
) -> Result<(), Fail> {
    // Bytes of the current client read still to send upstream.
    let (mut from, mut to) = (0usize, 0usize);
    let mut flushing = false;
    if !body.done() && !*streamed {
        // Everything read so far was sent with the head; what comes next
        // streams through the read buffer.
        s.read.drain(..prefix_end);
        s.read.clear();
        *streamed = true;
    }
    poll_fn(|cx| {
        // The answer first: an early one ends the upload.
        loop {
            if s.up.len() >= MAX_RESPONSE_HEAD {
                return Poll::Ready(Err(Fail::Sent(UpstreamError::Invalid {
                    addr,
                    what: "head too large",
                })));
            }
            if s.up.capacity() == s.up.len() {
                s.up.reserve(pool::BUF);
            }
            match poll_read_buf(Pin::new(&mut *up), cx, &mut s.up) {
                Poll::Ready(Ok(0)) => {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "closed before answering");
                    return Poll::Ready(Err(Fail::Sent(UpstreamError::Io { addr, source: e })));
                }
                Poll::Ready(Ok(_)) => match final_head(s, info.head_request) {
                    Ok(true) => return Poll::Ready(Ok(())),
                    Ok(false) => continue,
                    Err(what) => {
                        return Poll::Ready(Err(Fail::Sent(UpstreamError::Invalid { addr, what })))
                    }
                },
                Poll::Ready(Err(e)) => {
                    return Poll::Ready(Err(Fail::Sent(UpstreamError::Io { addr, source: e })))
                }
                Poll::Pending => break,
            }
        }
        // Then the body.
        loop {
            if from < to {
                match Pin::new(&mut *up).poll_write(cx, &s.read[from..to]) {
                    Poll::Ready(Ok(0)) => {
                        let e = io::Error::from(io::ErrorKind::WriteZero);
                        return Poll::Ready(Err(Fail::Sent(UpstreamError::Io { addr, source: e })));
                    }
                    Poll::Ready(Ok(n)) => {
                        from += n;
                        if from == to {
                            // TLS streams hold written bytes until flushed.
                            flushing = true;
                        }
                    }
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(Fail::Sent(UpstreamError::Io { addr, source: e })))
                    }
                    Poll::Pending => return Poll::Pending,
                }
                continue;
            }
            if flushing {
                match Pin::new(&mut *up).poll_flush(cx) {
                    Poll::Ready(Ok(())) => flushing = false,
                    Poll::Ready(Err(e)) => {
                        return Poll::Ready(Err(Fail::Sent(UpstreamError::Io { addr, source: e })))
                    }
                    Poll::Pending => return Poll::Pending,
                }
            }
            if body.done() {
                // The whole body went out; only the answer is awaited now.
                return Poll::Pending;
            }
            // Bytes past the body's end (a pipelined request) stay in the
            // buffer; everything before `to` has been sent.
            s.read.drain(..to);
            (from, to) = (0, 0);
            let before = s.read.len();
            if s.read.capacity() == s.read.len() {
                s.read.reserve(pool::BUF);
            }
            let polled = match body {
                Body::Length(n) => {
                    let mut limited = bytes::BufMut::limit(
                        &mut s.read,
                        usize::try_from(*n).unwrap_or(usize::MAX),
                    );
                    poll_read_buf(Pin::new(&mut *client), cx, &mut limited)
                }
                _ => poll_read_buf(Pin::new(&mut *client), cx, &mut s.read),
            };
            match polled {
                Poll::Ready(Ok(0)) => {
                    let e = io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "client closed during the body",
                    );
                    return Poll::Ready(Err(Fail::Client(e)));
                }
                Poll::Ready(Ok(_)) => {
                    let fresh = &s.read[before..];
                    let used = match body {
                        Body::Length(n) => {
                            *n -= fresh.len() as u64;
                            fresh.len()
                        }
                        Body::Chunked(c) => match c.advance(fresh, |_| {}) {
                            Ok(_) if info.over_limit(body).is_some() => {
                                let limit = info.body_limit.unwrap_or(0);
                                return Poll::Ready(Err(Fail::TooLarge(limit)));
                            }
                            Ok(u) => u,
                            Err(e) => {
                                return Poll::Ready(Err(Fail::Client(io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    e,
                                ))))
                            }
                        },
                        Body::Done => 0,
                    };
                    to = before + used;
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(Fail::Client(e))),
                Poll::Pending => return Poll::Pending,
            }
        }
    })
    .await?;
    if *streamed {
        // Keep only what follows the body (from `to` on).
        let keep_from = to.min(s.read.len());
        s.read.drain(..keep_from);
    }
    Ok(())
}

/// Parses the answer head in `s.up`; interim answers (1xx but 101) are
/// dropped. `Ok(true)`: a final head is in `s.resp`.
fn final_head(s: &mut Scratch, head_request: bool) -> Result<bool, &'static str> {
    loop {
        match head::parse_response(&s.up, head_request, &mut s.resp) {
            Ok(Some(())) if (100..200).contains(&s.resp.status) && s.resp.status != 101 => {
                s.up.drain(..s.resp.len);
            }
            Ok(Some(())) => return Ok(true),
            Ok(None) => return Ok(false),
            Err(_) => return Err("malformed head or framing"),
        }
    }
}

/// Leaves in `s.read` only what follows this request (a pipelined one).
fn consume(s: &mut Scratch) -> After {
    let end = s.req.len + body_len(&s.req);
    if s.read.len() < end || s.req.framing == Framing::Chunked {
        return After::Close;
    }
    s.read.drain(..end);
    After::KeepAlive
}

/// Answers an error made by the proxy; a request whose body was not read
/// closes the connection after.
#[allow(clippy::too_many_arguments)]
async fn answer_error<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    e: &ProxyError,
    rid: &Rid,
    rec: Recorder,
    t0: Instant,
    mut log: Option<Entry>,
    body_unread: bool,
) -> After {
    let (status, _) = e.status();
    if e.source_side() == Source::Downstream {
        tracing::debug!(request_id = ?rid.value(), error = %e, "request rejected");
    } else if let Some(suppressed) = REQUEST_FAILED.admit(clock::now_ms() / 1000) {
        // One line per interval, as on the hyper path: a dead pool fails
        // every request.
        tracing::warn!(request_id = ?rid.value(), error = %e, suppressed, "request failed");
    }
    let resp = error_response(e, Some(&rid.value()));
    finish(rec, &mut log, status.as_u16(), t0);
    answer_generated(lean, io, s, &resp, t0, log, body_unread).await
}

/// Writes an answer the proxy made (an error, a route's own answer),
/// counted already; a request whose body was not read closes the
/// connection after.
async fn answer_generated<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    resp: &http::Response<crate::proxy::ProxyBody>,
    t0: Instant,
    log: Option<Entry>,
    body_unread: bool,
) -> After {
    let close = body_unread || s.req.close || s.req.minor == 0;
    let body = write::generated(&mut s.out, resp, close, lean.hsts.as_ref());
    log_done(&lean.proxy, log, t0, body.len() as u64);
    if write::write_two(io, &s.out, &body).await.is_err() || close {
        return After::Close;
    }
    if body_unread {
        After::Close
    } else {
        consume(s)
    }
}

/// The client's body was bad or cut: 400 (when nothing was answered yet)
/// and close.
#[allow(clippy::too_many_arguments)]
async fn answer_client_body<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    e: &ProxyError,
    rid: &Rid,
    rec: Recorder,
    t0: Instant,
    mut log: Option<Entry>,
) -> After {
    let status = http::StatusCode::BAD_REQUEST;
    let mut resp = error_response(e, Some(&rid.value()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        &crate::proxy::headers::X_SWITCHYARD_ERROR,
        HeaderValue::from_static("client-body"),
    );
    let body = write::generated(&mut s.out, &resp, true, lean.hsts.as_ref());
    finish(rec, &mut log, status.as_u16(), t0);
    log_done(&lean.proxy, log, t0, 0);
    // Best effort: the connection closes either way.
    let _ = write::write_two(io, &s.out, &body).await;
    After::Close
}

/// The access-log entry of the request in `s`.
fn entry(s: &Scratch, conn: &ConnInfo, client: std::net::IpAddr, rid: &Rid) -> Entry {
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

/// The answer's head is known: notes on the log entry where the request
/// went (from the recorder, so the names are those of the table it was
/// routed by) and the time to the head, then records the answer in the
/// statistics.
fn finish(rec: Recorder, log: &mut Option<Entry>, status: u16, t0: Instant) {
    if let Some(entry) = log {
        entry.status = status;
        entry.retries = rec.retries();
        entry.route = rec.route_name().cloned();
        entry.pool = rec.pool_name().cloned();
        entry.backend = rec.backend_addr();
        entry.upstream_secs = t0.elapsed().as_secs_f64();
    }
    rec.finish(status, t0);
}

/// The answer's body has ended (or failed): writes the log line, whose
/// total time runs to here.
fn log_done(proxy: &crate::proxy::Proxy, log: Option<Entry>, t0: Instant, bytes_out: u64) {
    let (Some(mut entry), Some(sink)) = (log, proxy.access_sink()) else {
        return;
    };
    entry.total_secs = t0.elapsed().as_secs_f64();
    entry.bytes_out = bytes_out;
    sink.send(entry);
}

/// The request as an `http::Request<()>`, for the redirect decision.
fn redirect_request(s: &Scratch) -> Option<http::Request<()>> {
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
