//! Upstream connections: a small keep-alive pool per worker thread and
//! backend, over `hyper::client::conn::http1`.
//!
//! Each worker runs its own current-thread runtime, so its idle connections
//! live in a thread-local map and are taken and returned without locks; a
//! connection is only ever used by the worker whose runtime drives it.
//! Idle connections expire after `upstream_idle_timeout` (default 4 s, below
//! uvicorn's 5 s keep-alive), and a request that fails because a backend had
//! closed a pooled connection is sent again on a fresh one when that is safe.
//! A connection of a draining backend is closed instead of going back to
//! the pool. A request that could not be sent at all is handed back to the
//! caller (`SendError::unsent`), which may try another backend with it.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::UpBody;
use crate::table::{Backend, Settings};

/// A reused connection idle for at least this long may have been closed by
/// the backend just as the request went out; such a request (idempotent,
/// with no body or one held in memory) is replayed on a new connection to
/// the same backend.
const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(500);

/// Why a request could not be sent or answered by a backend.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connect to {addr} failed: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connect to {addr} timed out")]
    ConnectTimeout { addr: SocketAddr },
    /// The TLS handshake failed or timed out (`source` says why: unknown
    /// issuer, wrong name, not TLS, ...). Nothing was sent.
    #[error("TLS handshake with {addr} failed: {source}")]
    Tls {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("HTTP handshake with {addr} failed: {source}")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("backend {addr} closed or reset the connection: {source}")]
    Reset {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    /// The lean HTTP/1 path: the connection failed or closed early.
    #[error("backend {addr} closed or reset the connection: {source}")]
    Io {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    /// The lean HTTP/1 path: the answer was not valid HTTP/1.1.
    #[error("backend {addr} sent an invalid response: {what}")]
    Invalid {
        addr: SocketAddr,
        what: &'static str,
    },
    #[error("reading the client's request body failed: {source}")]
    ClientBody {
        #[source]
        source: hyper::Error,
    },
    /// The client's body is longer than the route's `max_body_bytes`:
    /// by its `Content-Length` (nothing was sent), or while it streamed
    /// (the upstream request was aborted, never ended as if complete).
    #[error("request body is larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: u64 },
}

/// A failed send, with the request when none of it reached the backend.
#[derive(Debug)]
pub struct SendError {
    pub error: UpstreamError,
    /// The request untouched (its body not read): it may go to another
    /// backend as it is, whatever its method.
    pub unsent: Option<Request<UpBody>>,
}

impl SendError {
    fn new(error: UpstreamError, unsent: Option<Request<UpBody>>) -> Self {
        Self { error, unsent }
    }
}

impl UpstreamError {
    /// The label this failure is counted under.
    pub fn kind(&self) -> crate::table::UpstreamErrorKind {
        use crate::table::UpstreamErrorKind as K;
        match self {
            UpstreamError::Connect { .. } | UpstreamError::Handshake { .. } => K::Connect,
            UpstreamError::ConnectTimeout { .. } => K::ConnectTimeout,
            UpstreamError::Tls { .. } => K::Tls,
            UpstreamError::Reset { .. }
            | UpstreamError::Io { .. }
            | UpstreamError::Invalid { .. }
            | UpstreamError::ClientBody { .. }
            | UpstreamError::BodyTooLarge { .. } => K::Reset,
        }
    }
}

/// An upstream connection lent to one request; `release` returns it to the
/// worker's idle pool, dropping it closes it.
#[derive(Debug)]
pub struct PooledConn {
    tx: SendRequest<UpBody>,
    backend_id: u64,
    max_idle: usize,
    idle_timeout: Duration,
}

impl PooledConn {
    /// Returns the connection to the idle pool; `reuse = false` (a
    /// draining backend) closes it instead.
    pub fn release(self, reuse: bool) {
        if !reuse || self.tx.is_closed() || self.max_idle == 0 || self.idle_timeout.is_zero() {
            return;
        }
        let now = Instant::now();
        let idle = Idle {
            tx: self.tx,
            since: now,
            expires: now + self.idle_timeout,
        };
        IDLE.with(|pools| {
            let mut pools = pools.borrow_mut();
            let list = pools.entry(self.backend_id).or_default();
            if list.len() < self.max_idle {
                list.push(idle);
            }
        });
    }
}

struct Idle {
    tx: SendRequest<UpBody>,
    since: Instant,
    expires: Instant,
}

/// Backend ids are sequential integers: hashing them is wasted work.
#[derive(Default)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type IdlePools = HashMap<u64, Vec<Idle>, BuildHasherDefault<IdHasher>>;

thread_local! {
    static IDLE: RefCell<IdlePools> = RefCell::new(IdlePools::default());
}

/// Takes the most recently used live connection (LIFO keeps a warm set and
/// lets the rest expire).
fn checkout(backend_id: u64) -> Option<Idle> {
    let now = Instant::now();
    IDLE.with(|pools| {
        let mut pools = pools.borrow_mut();
        let list = pools.get_mut(&backend_id)?;
        while let Some(idle) = list.pop() {
            if idle.expires > now && !idle.tx.is_closed() {
                return Some(idle);
            }
        }
        None
    })
}

/// Closes this worker's idle connections to a backend; answers true.
fn discard_idle(backend_id: u64) -> bool {
    IDLE.with(|pools| pools.borrow_mut().remove(&backend_id));
    true
}

/// Drops expired and closed idle connections of this worker, and the
/// entries of backends that have none left. Run periodically per worker.
pub fn sweep_idle() {
    let now = Instant::now();
    IDLE.with(|pools| {
        pools.borrow_mut().retain(|_, list| {
            list.retain(|i| i.expires > now && !i.tx.is_closed());
            !list.is_empty()
        });
    });
}

/// Idle connections held by this worker (for tests and status).
pub fn idle_count() -> usize {
    IDLE.with(|pools| pools.borrow().values().map(Vec::len).sum())
}

/// Sends `req` to the backend, on a pooled connection when one is idle.
/// `replay` is the caller's copy of a replayable request (see `Replay`);
/// without one, a copy is made only when a long-idle connection is reused.
pub async fn send(
    backend: &Backend,
    mut req: Request<UpBody>,
    replay: Option<&Replay>,
    settings: &Settings,
) -> Result<(Response<Incoming>, PooledConn), SendError> {
    let (backend_id, addr) = (backend.id, backend.addr);
    // A draining backend's idle connections are not reused but closed.
    let mut fresh_only = backend.is_draining() && discard_idle(backend_id);
    loop {
        let (mut tx, reused_after) = match (!fresh_only).then(|| checkout(backend_id)).flatten() {
            Some(idle) => (idle.tx, Some(idle.since.elapsed())),
            // Boxed: connecting (TCP, TLS, handshake) is the rare path and
            // its future is large; inline it would be moved with every request.
            None => match Box::pin(connect(backend, settings.connect_timeout)).await {
                Ok(tx) => (tx, None),
                Err(e) => return Err(SendError::new(e, Some(req))),
            },
        };
        if let Err(source) = tx.ready().await {
            if reused_after.is_some() {
                continue; // closed while idle: try the next one
            }
            let error = UpstreamError::Reset { addr, source };
            return Err(SendError::new(error, Some(req)));
        }
        // A long-idle connection may have been closed by the backend just
        // as we reuse it: keep a way to send the request again.
        let stale_replay: Option<Cow<'_, Replay>> = match reused_after {
            Some(idle) if idle >= REPLAY_AFTER_IDLE => replay
                .map(Cow::Borrowed)
                .or_else(|| Replay::of(&req).map(Cow::Owned)),
            _ => None,
        };
        match tx.try_send_request(req).await {
            Ok(resp) => {
                let conn = PooledConn {
                    tx,
                    backend_id,
                    max_idle: settings.upstream_max_idle,
                    idle_timeout: settings.upstream_idle_timeout,
                };
                return Ok((resp, conn));
            }
            Err(mut e) => {
                let unsent = e.take_message();
                let source = e.into_error();
                if let Some(unsent) = unsent {
                    if reused_after.is_some() {
                        tracing::debug!(backend.addr = %addr, "pooled connection was closed; resending");
                        req = unsent;
                        fresh_only = true;
                        continue;
                    }
                    return Err(SendError::new(classify(addr, source), Some(unsent)));
                }
                if let Some(replay) = stale_replay {
                    tracing::debug!(backend.addr = %addr, error = %source,
                        "idle pooled connection failed; replaying on a new one");
                    req = replay.request();
                    fresh_only = true;
                    continue;
                }
                return Err(SendError::new(classify(addr, source), None));
            }
        }
    }
}

fn classify(addr: SocketAddr, source: hyper::Error) -> UpstreamError {
    if source.is_user() {
        // The body's own error says whether it was cut at the limit.
        let limit = std::error::Error::source(&source).and_then(|e| match e.downcast_ref() {
            Some(super::body::UpBodyError::TooLarge { limit }) => Some(*limit),
            _ => None,
        });
        if let Some(limit) = limit {
            return UpstreamError::BodyTooLarge { limit };
        }
        UpstreamError::ClientBody { source }
    } else {
        UpstreamError::Reset { addr, source }
    }
}

/// A new connection to `backend`: TCP, then TLS when its pool speaks it
/// (both within `timeout`), then the HTTP/1.1 handshake.
async fn connect(
    backend: &Backend,
    timeout: Duration,
) -> Result<SendRequest<UpBody>, UpstreamError> {
    let addr = backend.addr;
    let deadline = Instant::now() + timeout;
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
        Err(_) => return Err(UpstreamError::ConnectTimeout { addr }),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "TCP_NODELAY failed");
    }
    let Some(tls) = &backend.tls else {
        return handshake(TokioIo::new(stream), addr).await;
    };
    match tls.connect(addr, stream, deadline).await {
        Ok(stream) => handshake(TokioIo::new(stream), addr).await,
        Err(source) => Err(UpstreamError::Tls { addr, source }),
    }
}

/// The HTTP/1.1 client handshake over a plain or TLS stream (generic, so
/// the plain path pays nothing for TLS); the connection is driven by a
/// task of the worker.
async fn handshake<I>(io: I, addr: SocketAddr) -> Result<SendRequest<UpBody>, UpstreamError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = http1::Builder::new()
        .handshake(io)
        .await
        .map_err(|source| UpstreamError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend.addr = %addr, error = %e, "upstream connection ended");
        }
    });
    Ok(tx)
}

/// Methods that may be sent twice (RFC 9110 idempotent methods).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A copy of a request that may be sent again after it failed mid-way:
/// idempotent, with no body or a body held in memory.
#[derive(Debug, Clone)]
pub struct Replay {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl Replay {
    /// The copy, or `None` when `req` must not or cannot be replayed (not
    /// idempotent, or its body streams from the client).
    pub fn of(req: &Request<UpBody>) -> Option<Self> {
        use http_body::Body;
        if !is_idempotent(req.method()) {
            return None;
        }
        let body = match req.body() {
            UpBody::Full(b) => b.clone(),
            b if b.is_end_stream() => None,
            _ => return None,
        };
        Some(Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
            body,
        })
    }

    /// A new request with the same head and body.
    pub fn request(&self) -> Request<UpBody> {
        let body = match &self.body {
            Some(b) => UpBody::Full(Some(b.clone())),
            None => UpBody::Empty,
        };
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        req
    }
}
