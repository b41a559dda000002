//! Mirroring in the data path: deciding that a request is copied (`due`),
//! watching the primary's answer on its way to the client (`Tap`), and the
//! copy's own task (`spawn`), which sends it to the mirror pool, reads the
//! mirror's answer, waits for what the tap saw, compares the two
//! (`shadow::compare`) and records the pair (`ShadowHandles`).
//!
//! The client only ever gets the primary's answer and never waits for the
//! mirror: the copy runs as a task of its own on the worker, the tap only
//! hashes or copies bytes that pass anyway and hands them over with a
//! oneshot send that cannot block. A worker holds at most the route's
//! `max_in_flight` copies; beyond it a copy is dropped (and counted)
//! rather than queued, so a slow or hanging mirror costs the primary
//! nothing but the copies it no longer gets. The mirror's failures are not
//! reported to its backends' passive health: a copy is not a user's
//! request, and its answer is never used.
//!
//! The copy is the primary's upstream request — method, target, headers as
//! the route rewrote them — with the mirror pool's `X-Switchyard-Pool` and
//! `X-Switchyard-Shadow: 1`, and the body when it was read whole (only
//! requests with a `Content-Length` up to `max_body_bytes` are copied;
//! longer or chunked ones are dropped as `body_too_big`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, Uri};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::body::UpBody;
use super::error::ProxyError;
use super::headers::{X_FORWARDED_HOST, X_SWITCHYARD_POOL};
use super::upstream::{self, UpstreamError};
use crate::config::{BodyCompare, MirrorOptions};
use crate::shadow::{self, sample, Answer, Body, BodyHash, Sample, SideSample, Unusable};
use crate::stats::clock;
use crate::stats::shadow::{Dropped, InFlightSlot, ShadowHandles};
use crate::table::{Pool, Route, Settings};

/// The header that tells a backend its request is a copy.
pub static X_SWITCHYARD_SHADOW: HeaderName = HeaderName::from_static("x-switchyard-shadow");

/// Largest mirror body read just to be thrown away (`body = "none"`) or
/// hashed; beyond it the connection is closed instead of reused.
const DRAIN_MAX: u64 = 64 << 20;

/// What a request says about its body, for the mirror's size limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BodySize {
    /// No body.
    None,
    /// `Content-Length`.
    Length(u64),
    /// Chunked (or otherwise of unknown length until read).
    Unknown,
}

/// A copy that is due: where it goes and its place among the worker's
/// copies in flight.
#[derive(Debug)]
pub(crate) struct Due {
    pool: Arc<Pool>,
    copy: Arc<MirrorOptions>,
    handles: Arc<ShadowHandles>,
    slot: InFlightSlot,
}

/// Is `method` (as sent) one `copy` mirrors?
fn mirrors(copy: &MirrorOptions, method: &[u8]) -> bool {
    copy.methods.iter().any(|m| m.as_str().as_bytes() == method)
}

/// Is a copy of this request due? Decided with the routing decision: the
/// route's active mirror, not the pool the request went to, a mirrored
/// method, the drawn share, a body within the limit, a place in flight.
/// The last two drop (and count) a copy that was otherwise due.
#[inline]
pub(crate) fn due(
    route: &Route,
    chosen: &Arc<Pool>,
    method: &[u8],
    body: BodySize,
    now: Instant,
) -> Option<Due> {
    let target = route.mirror.as_deref()?.active()?;
    if Arc::ptr_eq(&target.pool, chosen) || !mirrors(&target.copy, method) || !target.draw() {
        return None;
    }
    let sec = clock::secs(now);
    let too_big = match body {
        BodySize::None => false,
        BodySize::Length(n) => n > target.copy.max_body_bytes,
        BodySize::Unknown => true,
    };
    if too_big {
        target.handles.dropped(sec, Dropped::BodyTooBig);
        return None;
    }
    let slot = target.handles.try_start(sec, target.copy.max_in_flight)?;
    Some(Due {
        pool: target.pool.clone(),
        copy: target.copy.clone(),
        handles: target.handles.clone(),
        slot,
    })
}

/// What the tap saw of the primary's answer.
#[derive(Debug)]
struct Seen {
    status: u16,
    /// From the copy's start to the primary's response headers.
    latency: Duration,
    headers: HeaderMap,
    body: Body,
}

/// Watches the primary's answer for the comparison; see the module doc.
/// Dropped before `end` (the client went away, the answer broke), it
/// sends nothing and the pair is not compared.
#[derive(Debug)]
pub struct Tap {
    tx: Option<oneshot::Sender<Seen>>,
    started: Instant,
    mode: BodyCompare,
    limit: usize,
    head: Option<(u16, Duration, HeaderMap)>,
    body: TapBody,
}

#[derive(Debug)]
enum TapBody {
    Ignored,
    Hash(BodyHash),
    Kept(Vec<u8>),
    Unusable(Unusable),
}

fn encoded(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"))
}

impl Tap {
    /// The primary's response headers arrived.
    pub(crate) fn head(&mut self, status: u16, headers: &HeaderMap) {
        let latency = self.started.elapsed();
        if self.mode != BodyCompare::None && encoded(headers) {
            self.body = TapBody::Unusable(Unusable::Encoded);
        }
        self.head = Some((status, latency, headers.clone()));
        if self.mode == BodyCompare::None {
            self.end();
        }
    }

    /// The primary's response head as the backend sent it (the lean
    /// HTTP/1 path): parsed again, for copies only.
    pub(crate) fn head_raw(&mut self, status: u16, head: &[u8]) {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut resp = httparse::Response::new(&mut fields);
        let headers = match resp.parse(head) {
            Ok(httparse::Status::Complete(_)) => header_map(resp.headers),
            _ => HeaderMap::new(),
        };
        self.head(status, &headers);
    }

    /// Body bytes of the primary's answer, as they go to the client.
    #[inline]
    pub(crate) fn data(&mut self, chunk: &[u8]) {
        match &mut self.body {
            TapBody::Hash(h) => h.update(chunk),
            TapBody::Kept(v) if v.len() + chunk.len() <= self.limit => v.extend_from_slice(chunk),
            TapBody::Kept(_) => {
                self.body = TapBody::Unusable(Unusable::TooBig);
                // Nothing more to learn from the body: hand over now.
                self.end();
            }
            TapBody::Ignored | TapBody::Unusable(_) => {}
        }
    }

    /// The primary's answer ended (its last byte went to the client).
    pub(crate) fn end(&mut self) {
        let (Some(tx), Some((status, latency, headers))) = (self.tx.take(), self.head.take())
        else {
            return;
        };
        let body = match std::mem::replace(&mut self.body, TapBody::Ignored) {
            TapBody::Ignored => Body::Ignored,
            TapBody::Hash(h) => h.finish(),
            TapBody::Kept(v) => Body::Kept(Bytes::from(v)),
            TapBody::Unusable(u) => Body::Unusable(u),
        };
        // An error only means the copy's task is gone (it timed out or
        // failed): there is nobody to tell.
        let _ = tx.send(Seen {
            status,
            latency,
            headers,
            body,
        });
    }
}

/// The copy as sent: the primary's upstream request parts.
pub(crate) struct Copy {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Option<Bytes>,
}

impl Copy {
    /// The copy of a request whose upstream head was written as bytes
    /// (the lean HTTP/1 path): parsed again, for copies only. `None` when
    /// the head does not parse (it always should: we wrote it).
    pub(crate) fn from_head(head: &[u8], body: Option<Bytes>) -> Option<Copy> {
        let mut fields = [httparse::EMPTY_HEADER; 128];
        let mut req = httparse::Request::new(&mut fields);
        let httparse::Status::Complete(_) = req.parse(head).ok()? else {
            return None;
        };
        let method = Method::from_bytes(req.method?.as_bytes()).ok()?;
        let uri = req.path?.parse().ok()?;
        Some(Copy {
            method,
            uri,
            headers: header_map(req.headers),
            body,
        })
    }
}

fn header_map(fields: &[httparse::Header<'_>]) -> HeaderMap {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for f in fields {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(f.name.as_bytes()),
            HeaderValue::from_bytes(f.value),
        ) {
            headers.append(n, v);
        }
    }
    headers
}

/// What mirroring needs to know of a request body.
impl BodySize {
    /// From a `Content-Length` (or its absence) and whether the body is
    /// chunked.
    pub(crate) fn of(length: Option<u64>, chunked: bool) -> BodySize {
        match (length, chunked) {
            (_, true) => BodySize::Unknown,
            (Some(0) | None, false) => BodySize::None,
            (Some(n), false) => BodySize::Length(n),
        }
    }
}

/// Sends the copy as a task of this worker and hands back the tap for the
/// primary's answer.
pub(crate) fn spawn(due: Due, mut copy: Copy, settings: Settings) -> Tap {
    let started = Instant::now();
    copy.headers
        .insert(&X_SWITCHYARD_POOL, due.pool.header.clone());
    copy.headers
        .insert(&X_SWITCHYARD_SHADOW, HeaderValue::from_static("1"));
    let (tx, rx) = oneshot::channel();
    let mode = due.copy.compare.body;
    let limit = usize::try_from(due.copy.compare.max_body_bytes).unwrap_or(usize::MAX);
    tokio::spawn(run(due, copy, settings, started, rx));
    Tap {
        tx: Some(tx),
        started,
        mode,
        limit,
        head: None,
        body: match mode {
            BodyCompare::None => TapBody::Ignored,
            BodyCompare::Hash => TapBody::Hash(BodyHash::default()),
            BodyCompare::Json => TapBody::Kept(Vec::new()),
        },
    }
}

/// The hyper path: starts the copy of a request due to the mirror, and
/// answers the body for the primary, whether it waited for it, and the tap.
/// A body the copy carries is read first (its length is within the limit:
/// `due` checked) and goes to both, kept whole as for a retry; a body of
/// unknown length (HTTP/2 without `Content-Length`) is streamed to the
/// primary only (held to the route's body `limit`) and the copy dropped
/// (as too big to keep).
pub(crate) async fn hyper_copy(
    due: Due,
    parts: &http::request::Parts,
    body: Incoming,
    limit: Option<u64>,
    settings: Settings,
) -> Result<(UpBody, bool, Option<Tap>), ProxyError> {
    let (primary, waited, copied) = if body.is_end_stream() {
        (UpBody::Client(body), false, None)
    } else {
        match body.size_hint().exact() {
            Some(n) if n <= due.copy.max_body_bytes => {
                let b = match body.collect().await {
                    Ok(c) => c.to_bytes(),
                    Err(source) => return Err(UpstreamError::ClientBody { source }.into()),
                };
                (UpBody::Full(Some(b.clone())), true, Some(b))
            }
            _ => {
                due.handles
                    .dropped(clock::secs(Instant::now()), Dropped::BodyTooBig);
                return Ok((UpBody::client(body, limit), false, None));
            }
        }
    };
    let copy = Copy {
        method: parts.method.clone(),
        uri: parts.uri.clone(),
        headers: parts.headers.clone(),
        body: copied,
    };
    Ok((primary, waited, Some(spawn(due, copy, settings))))
}

/// The mirror's answer, read.
struct Mirrored {
    status: u16,
    latency: Duration,
    headers: HeaderMap,
    body: Body,
}

/// The copy's task: send, read, wait for the primary, compare, record.
async fn run(
    due: Due,
    copy: Copy,
    settings: Settings,
    started: Instant,
    rx: oneshot::Receiver<Seen>,
) {
    let deadline = started + settings.upstream_timeout;
    let request = (copy.method.clone(), copy.uri.clone(), copy.headers.clone());
    let sent = tokio::time::timeout_at(deadline, send(&due, copy, &settings, started)).await;
    let sec = || clock::secs(Instant::now());
    let mirrored = match sent {
        Ok(Ok(m)) => m,
        Ok(Err(e)) => {
            tracing::debug!(route = %due.handles.route(), pool = %due.handles.pool(), error = %e, "mirror request failed");
            due.handles.error(sec());
            return;
        }
        Err(_) => {
            tracing::debug!(route = %due.handles.route(), pool = %due.handles.pool(), "mirror request timed out");
            due.handles.error(sec());
            return;
        }
    };
    // The mirror's part is done: its place in flight is free while the
    // primary's answer may still be streaming.
    let Due {
        copy: opts,
        handles,
        slot,
        ..
    } = due;
    drop(slot);
    let Ok(Ok(primary)) = tokio::time::timeout_at(deadline, rx).await else {
        // The primary's answer never ended (the client left, it broke, or
        // it is still streaming at the deadline): no pair to compare.
        return;
    };
    let outcome = shadow::compare(
        &opts.compare,
        &Answer {
            status: primary.status,
            body: primary.body,
        },
        &Answer {
            status: mirrored.status,
            body: mirrored.body,
        },
    );
    let now = Instant::now();
    handles.compared(
        clock::secs(now),
        &outcome,
        mirrored.status,
        primary.latency,
        mirrored.latency,
    );
    let Some(kind) = outcome.mismatch else {
        return;
    };
    if !handles.samples().admit(clock::secs(now)) {
        return;
    }
    let (method, uri, headers) = request;
    let redact = &opts.compare.redact_headers;
    let side = |status, latency: Duration, h: &HeaderMap| SideSample {
        status,
        latency_ms: latency.as_secs_f64() * 1000.0,
        headers: sample::headers(h, redact),
    };
    handles.samples().push(Sample {
        at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
        method: method.to_string(),
        target: sample::target(uri.path_and_query().map_or("/", |p| p.as_str())),
        request_headers: sample::headers(&headers, redact),
        primary: side(primary.status, primary.latency, &primary.headers),
        mirror: side(mirrored.status, mirrored.latency, &mirrored.headers),
        kind: kind.as_str().to_owned(),
        diff: outcome.diff,
    });
}

/// Why a copy got no answer.
#[derive(Debug, thiserror::Error)]
enum MirrorError {
    #[error("no available backend in the mirror pool")]
    NoBackend,
    #[error(transparent)]
    Upstream(#[from] upstream::UpstreamError),
}

async fn send(
    due: &Due,
    copy: Copy,
    settings: &Settings,
    started: Instant,
) -> Result<Mirrored, MirrorError> {
    let i = due.pool.pick_index().ok_or(MirrorError::NoBackend)?;
    let backend = &due.pool.backends[i];
    // Counted in the backend's in-flight (its balancing and draining see
    // the copy), like any request.
    let _inflight = backend.start_request();
    // The mirror's Host (its address, like nginx's `$proxy_host`): the
    // client's stays in `X-Forwarded-Host`. Formatted only for copies.
    let mut copy = copy;
    if let Ok(host) = HeaderValue::from_str(&backend.addr.to_string()) {
        if let Some(client) = copy.headers.insert(header::HOST, host) {
            copy.headers.entry(&X_FORWARDED_HOST).or_insert(client);
        }
    }
    let mut req = Request::new(match copy.body {
        Some(b) => UpBody::Full(Some(b)),
        None => UpBody::Empty,
    });
    *req.method_mut() = copy.method;
    *req.uri_mut() = copy.uri;
    *req.headers_mut() = copy.headers;
    let (resp, conn) = upstream::send(backend, req, None, settings)
        .await
        .map_err(|e| e.error)?;
    let latency = started.elapsed();
    let status = resp.status().as_u16();
    let (parts, mut incoming) = resp.into_parts();
    let mode = due.copy.compare.body;
    let limit = match mode {
        BodyCompare::Json => due.copy.compare.max_body_bytes,
        _ => DRAIN_MAX,
    };
    let mut hash = BodyHash::default();
    let mut kept = Vec::new();
    let mut read = 0u64;
    let mut whole = true;
    while let Some(frame) = incoming.frame().await {
        let Ok(frame) = frame else {
            whole = false;
            break;
        };
        let Some(data) = frame.data_ref() else {
            continue;
        };
        read += data.len() as u64;
        if read > limit {
            whole = false;
            break;
        }
        match mode {
            BodyCompare::None => {}
            BodyCompare::Hash => hash.update(data),
            BodyCompare::Json => kept.extend_from_slice(data),
        }
    }
    let body = if mode == BodyCompare::None {
        Body::Ignored
    } else if encoded(&parts.headers) {
        Body::Unusable(Unusable::Encoded)
    } else if read > limit {
        Body::Unusable(Unusable::TooBig)
    } else if !whole {
        Body::Unusable(Unusable::Broken)
    } else if mode == BodyCompare::Hash {
        hash.finish()
    } else {
        Body::Kept(Bytes::from(kept))
    };
    conn.release(whole && !backend.is_draining());
    Ok(Mirrored {
        status,
        latency,
        headers: parts.headers,
        body,
    })
}

#[cfg(test)]
mod tests;
