//! One request on the lean path: route and write the upstream head, send
//! the body by its framing while watching for an early answer
//! (`attempt`), retry on another backend when that is safe (the rules of
//! `proxy::retry`), then relay the answer (`relay`). Answers the proxy
//! makes itself, and the request's statistics and log line, are
//! `answer`'s.
//!
//! The upstream head in `Scratch::out` and a body held in `Scratch::read`
//! are the replay copy: until a byte of the body has been streamed from
//! the client, the request can be sent again as it is.

use std::io;
use std::net::IpAddr;
use std::pin::Pin;

use http::HeaderValue;
use tokio::io::AsyncReadExt;
use tokio::time::{Instant, Sleep};

use super::answer::{answer_client_body, answer_error, answer_generated, answer_redirect, Books};
use super::attempt::{attempt, write_continue, Fail};
use super::chunked::Chunked;
use super::head::{self, Framing, Kind};
use super::pool::{Conn, Scratch};
use super::view::{Rid, View};
use super::write::{self, Ours, RouteHead};
use super::{After, ClientIo, Lean};
use crate::proxy::decide::{self, Decision};
use crate::proxy::mirror;
use crate::proxy::retry::{self, Tried, KEEP_BODY_MAX};
use crate::proxy::route_http::{self, Early, Rules};
use crate::proxy::upstream::UpstreamError;
use crate::proxy::{ConnInfo, ProxyError};
use crate::stats::{clock, Recorder};
use crate::table::{InFlight, Settings, UpstreamErrorKind};

/// The request body still to send.
pub(super) enum Body {
    Done,
    Length(u64),
    Chunked(Chunked),
}

impl Body {
    pub fn done(&self) -> bool {
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
    pub fn over_limit(&self, body: &Body) -> Option<u64> {
        match (body, self.body_limit) {
            (Body::Chunked(c), Some(limit)) if c.data_len() > limit => Some(limit),
            _ => None,
        }
    }
}

impl ReqInfo {
    /// What the head in `buf` says (the route's body limit comes later).
    fn of(buf: &[u8], req: &head::Request) -> ReqInfo {
        let method = &buf[req.method.start as usize..req.method.end as usize];
        ReqInfo {
            minor: req.minor,
            head_request: method == b"HEAD",
            close: req.close,
            upgrade: req.upgrade,
            expect_continue: req.expect_continue,
            idempotent: matches!(
                method,
                b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE"
            ),
            body_limit: None,
        }
    }
}

/// What routing decided, kept for forwarding once the upstream head is
/// written.
struct Routed {
    inflight: InFlight,
    settings: Settings,
    plan: retry::Plan,
    set_cookie: Option<HeaderValue>,
    body_limit: Option<u64>,
    mirror: Option<mirror::Due>,
    rules: Option<Rules>,
    /// The route's answer header rules, rendered while the request's bytes
    /// were at hand (empty without such rules).
    answer_lines: Vec<u8>,
}

/// No backend answered: how the client is answered instead.
enum Refusal {
    /// The client's body was bad or cut (400, then close).
    ClientBody(ProxyError),
    /// An error of the proxy's; `true`: the request's body was not all read.
    Error(ProxyError, bool),
}

pub(super) async fn exchange<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    conn: &ConnInfo,
    timer: Pin<&mut Sleep>,
) -> After {
    let t0 = Instant::now();
    let proxy = &lean.proxy;
    let info = ReqInfo::of(&s.read, &s.req);
    let rid = Rid::of(&s.read, &s.req);
    let view = View {
        buf: &s.read,
        req: &s.req,
    };
    let client = route_http::client_ip(conn, view.values(Kind::XForwardedFor));
    let log = proxy
        .access_sink()
        .map(|_| super::answer::entry(s, conn, client, &rid));
    let mut books = Books {
        rid,
        t0,
        rec: Recorder::default(),
        log,
    };
    let has_body = s.req.framing != Framing::None;

    if &s.read[s.req.method.start as usize..s.req.method.end as usize] == b"CONNECT" {
        // Counted with the answers that matched no route (as on hyper).
        books.rec = proxy.table().load().no_route();
        let e = ProxyError::MethodNotAllowed;
        return answer_error(lean, io, s, &e, books, has_body).await;
    }
    if let Some(redirect) = &lean.redirect {
        if let Some(resp) = super::answer::redirect_request(s).and_then(|r| redirect(&r)) {
            let close = has_body || info.close;
            return answer_redirect(lean, io, s, &resp, books, close).await;
        }
    }
    let routed = match route(lean, s, conn, client, &books.rid, &mut books.rec, t0) {
        Ok(r) => r,
        Err(Early::Refuse(e)) => return answer_error(lean, io, s, &e, books, has_body).await,
        Err(Early::Answer(resp)) => {
            let logged = books.finish(resp.status().as_u16());
            return answer_generated(lean, io, s, &resp, logged, has_body).await;
        }
    };
    forward(lean, io, s, conn, timer, info, books, routed).await
}

/// Routes the request (`decide`, on one table snapshot) and writes its
/// upstream head into `s.out`.
fn route(
    lean: &Lean,
    s: &mut Scratch,
    conn: &ConnInfo,
    client: IpAddr,
    rid: &Rid,
    rec: &mut Recorder,
    t0: Instant,
) -> Result<Routed, Early> {
    let remote_addr = route_http::remote_addr(conn, client);
    let view = View {
        buf: &s.read,
        req: &s.req,
    };
    let facts = view.facts(conn, client, &remote_addr, rid);
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
    } = decide::decide(lean.proxy.table(), &view, &facts, t0, rec)?;
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
    let mut answer_lines = Vec::new();
    if let Some(r) = &rules {
        if let Some(rr) = r.http.response_headers.as_ref() {
            let vars = facts.vars(&r.route, pool_header.as_bytes(), uri.as_bytes());
            write::render_rules(&mut answer_lines, rr, &vars);
        }
    }
    let ours = Ours {
        conn,
        request_id: match rid {
            Rid::Client(_) => None,
            Rid::Minted(b) => Some(&b[..]),
        },
        pool: &pool_header,
        bucket,
        route: route_head.as_ref(),
        underscores: settings.underscores_in_headers,
    };
    write::upstream_head(&mut s.out, &s.read, &s.req, &ours);
    Ok(Routed {
        inflight,
        settings,
        plan,
        set_cookie,
        body_limit,
        mirror,
        rules,
        answer_lines,
    })
}

/// Sends the routed request (its body read whole first when it may be
/// replayed or mirrored), then relays the answer.
#[allow(clippy::too_many_arguments)]
async fn forward<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    conn: &ConnInfo,
    timer: Pin<&mut Sleep>,
    mut info: ReqInfo,
    mut books: Books,
    routed: Routed,
) -> After {
    let Routed { settings, plan, .. } = routed;
    info.body_limit = routed.body_limit;
    let mirror = routed.mirror;
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
            addr: routed.inflight.backend().addr,
            source: e,
        });
        return answer_client_body(lean, io, s, &err, books).await;
    }
    if let Some(limit) = info.over_limit(&body) {
        let err = ProxyError::Upstream(UpstreamError::BodyTooLarge { limit });
        return answer_error(lean, io, s, &err, books, true).await;
    }
    let plan_of = Tries {
        settings: &settings,
        plan: &plan,
        info: &info,
        prefix_end,
    };
    let tried = tries(
        lean,
        io,
        s,
        conn,
        timer,
        &plan_of,
        &mut body,
        routed.inflight,
        &mut books.rec,
    );
    let (up, inflight, streamed) = match tried.await {
        Ok(done) => done,
        Err(Refusal::ClientBody(e)) => return answer_client_body(lean, io, s, &e, books).await,
        Err(Refusal::Error(e, unread)) => {
            return answer_error(lean, io, s, &e, books, unread).await
        }
    };
    let status = s.resp.status;
    // Counted when the answer's head is known (as on hyper); the log
    // line waits for the body.
    let logged = books.finish(status);
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
    let answer_rules = routed
        .rules
        .as_ref()
        .and_then(|r| r.http.response_headers.as_ref())
        .map(|rr| (rr, &routed.answer_lines[..]));
    let relayed = super::relay::relay(
        lean,
        io,
        s,
        up,
        &info,
        &inflight,
        &settings,
        routed.set_cookie.as_ref(),
        answer_rules,
        close,
        tap.as_mut(),
    )
    .await;
    logged.done(&lean.proxy, relayed.bytes_out);
    if close || !relayed.client_ok {
        After::Close
    } else {
        After::KeepAlive
    }
}

/// What every try of one request shares.
struct Tries<'a> {
    settings: &'a Settings,
    plan: &'a retry::Plan,
    info: &'a ReqInfo,
    /// Where the body bytes read with the head end in `Scratch::read`.
    prefix_end: usize,
}

/// The tries: on the routed backend, then on others while the retry
/// rules allow (the request unsent, or replayable and nothing streamed).
/// Answers the connection, the backend it is to and whether the body was
/// streamed; the answer's head is in `s.up` / `s.resp`.
#[allow(clippy::too_many_arguments)]
async fn tries<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    conn: &ConnInfo,
    mut timer: Pin<&mut Sleep>,
    t: &Tries<'_>,
    body: &mut Body,
    mut inflight: InFlight,
    rec: &mut Recorder,
) -> Result<(Conn, InFlight, bool), Refusal> {
    let (settings, plan, info) = (t.settings, t.plan, t.info);
    let replayable = info.idempotent && body.done();
    let started = Instant::now();
    let deadline = started + settings.upstream_timeout;
    let mut tried = Tried::new(inflight.backend().id);
    let mut streamed = false;
    let mut continued = false;
    loop {
        let try_deadline = match plan.retry.per_try_timeout {
            Some(t) => deadline.min(Instant::now() + t),
            None => deadline,
        };
        timer.as_mut().reset(try_deadline);
        let fut = attempt(
            io,
            s,
            &inflight,
            settings,
            info,
            body,
            t.prefix_end,
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
            Ok(up) => {
                if s.resp.status >= 500 {
                    backend.report_failure(&plan.outlier, clock::now_ms());
                } else {
                    backend.report_success();
                }
                return Ok((up, inflight, streamed));
            }
            Err(Fail::Client(e)) => {
                tracing::debug!(client = %conn.peer, error = %e, "client body failed");
                return Err(Refusal::ClientBody(ProxyError::Upstream(
                    UpstreamError::Io {
                        addr: backend.addr,
                        source: e,
                    },
                )));
            }
            Err(Fail::TooLarge(limit)) => {
                // The upstream connection was dropped without the body's
                // end: the backend sees an aborted request.
                tracing::debug!(client = %conn.peer, limit, "request body over the limit");
                let e = ProxyError::Upstream(UpstreamError::BodyTooLarge { limit });
                return Err(Refusal::Error(e, true));
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
                return Err(Refusal::Error(e, !body.done()));
            }
        };
        backend.stats.count_error(retry::error_kind(&error));
        backend.report_failure(&plan.outlier, clock::now_ms());
        let may_resend = Instant::now() < deadline && !streamed && (unsent || replayable);
        let next = if may_resend && tried.len <= plan.retry.retries as usize {
            retry::retry_target(lean.proxy.table(), &inflight, &tried, plan, rec)
        } else {
            None
        };
        // Nothing left to try in the pool: the route's standby, once.
        let next = match (next, may_resend) {
            (None, true) => retry::standby_target(lean.proxy.table(), &inflight, rec),
            (next, _) => next,
        };
        let Some(next) = next else {
            return Err(Refusal::Error(error, !body.done()));
        };
        tracing::debug!(pool = %backend.pool, from = %backend.addr, to = %next.backend().addr,
            error = %error, "retrying on another backend");
        tried.push(next.backend().id);
        inflight = next;
    }
}

/// The declared length of a Content-Length body (0 otherwise).
pub(super) fn body_len(req: &head::Request) -> usize {
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
