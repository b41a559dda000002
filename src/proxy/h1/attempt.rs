//! One try on one backend: the upstream head (and the body bytes at hand)
//! written on a pooled or new connection, then the answer's head read
//! while the rest of the request body streams from the client, so an
//! early answer ends the upload. A stale pooled connection is replaced,
//! and a replayable request resent on a fresh one.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio_util::io::poll_read_buf;

use super::exchange::{Body, ReqInfo};
use super::head;
use super::pool::{self, Conn, Io, Scratch};
use super::{write, ClientIo};
use crate::proxy::upstream::UpstreamError;
use crate::table::InFlight;

/// A pooled connection idle this long may have been closed by the backend
/// as the request went out: a replayable request is resent on a new one
/// (as `proxy::upstream` does).
const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(500);
/// Largest answer head accepted from a backend.
const MAX_RESPONSE_HEAD: usize = 64 * 1024;

/// Why a try failed.
pub(super) enum Fail {
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

/// One try on one backend (a stale pooled connection is replaced, and a
/// replayable request resent on a fresh one): answers the connection with
/// the answer's head in `s.up` / `s.resp`.
#[allow(clippy::too_many_arguments)]
pub(super) async fn attempt<S: ClientIo>(
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

pub(super) async fn write_continue<S: AsyncWrite + Unpin>(io: &mut S) -> io::Result<()> {
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
