//! Upstream connections: a small keep-alive pool per worker thread and
//! backend, over `hyper::client::conn::http1`.
//!
//! Each worker runs its own current-thread runtime, so its idle connections
//! live in a thread-local map and are taken and returned without locks; a
//! connection is only ever used by the worker whose runtime drives it.
//! Idle connections expire after `upstream_idle_timeout` (default 4 s, below
//! uvicorn's 5 s keep-alive), and a request that fails because a backend had
//! closed a pooled connection is sent again on a fresh one when that is safe.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderMap, Method, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::body::UpBody;
use crate::table::Settings;

/// A reused connection idle for at least this long may have been closed by
/// the backend just as the request went out; such a request (idempotent, no
/// body) keeps a copy of its head so it can be replayed on a new connection.
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
    #[error("reading the client's request body failed: {source}")]
    ClientBody {
        #[source]
        source: hyper::Error,
    },
}

impl UpstreamError {
    /// Nothing reached the backend: safe to retry elsewhere.
    pub fn nothing_sent(&self) -> bool {
        matches!(
            self,
            UpstreamError::Connect { .. }
                | UpstreamError::ConnectTimeout { .. }
                | UpstreamError::Handshake { .. }
        )
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
    pub fn release(self) {
        if self.tx.is_closed() || self.max_idle == 0 || self.idle_timeout.is_zero() {
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
struct IdHasher(u64);

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
pub async fn send(
    backend_id: u64,
    addr: SocketAddr,
    mut req: Request<UpBody>,
    settings: &Settings,
) -> Result<(Response<Incoming>, PooledConn), UpstreamError> {
    let mut fresh_only = false;
    loop {
        let (mut tx, reused_after) = match (!fresh_only).then(|| checkout(backend_id)).flatten() {
            Some(idle) => (idle.tx, Some(idle.since.elapsed())),
            None => (connect(addr, settings.connect_timeout).await?, None),
        };
        if let Err(source) = tx.ready().await {
            if reused_after.is_some() {
                continue; // closed while idle: try the next one
            }
            return Err(UpstreamError::Reset { addr, source });
        }
        let replay = match reused_after {
            Some(idle) if idle >= REPLAY_AFTER_IDLE && is_replayable(&req) => Some(Head::of(&req)),
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
                if let (Some(unsent), Some(_)) = (e.take_message(), reused_after) {
                    tracing::debug!(backend.addr = %addr, "pooled connection was closed; resending");
                    req = unsent;
                    fresh_only = true;
                    continue;
                }
                let source = e.into_error();
                if let Some(head) = replay {
                    tracing::debug!(backend.addr = %addr, error = %source,
                        "idle pooled connection failed; replaying on a new one");
                    req = head.into_request();
                    fresh_only = true;
                    continue;
                }
                return Err(if source.is_user() {
                    UpstreamError::ClientBody { source }
                } else {
                    UpstreamError::Reset { addr, source }
                });
            }
        }
    }
}

async fn connect(
    addr: SocketAddr,
    timeout: Duration,
) -> Result<SendRequest<UpBody>, UpstreamError> {
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
        Err(_) => return Err(UpstreamError::ConnectTimeout { addr }),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "TCP_NODELAY failed");
    }
    let (tx, conn) = http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await
        .map_err(|source| UpstreamError::Handshake { addr, source })?;
    tokio::spawn(async move {
        if let Err(e) = conn.with_upgrades().await {
            tracing::debug!(backend.addr = %addr, error = %e, "upstream connection ended");
        }
    });
    Ok(tx)
}

fn is_replayable(req: &Request<UpBody>) -> bool {
    use http_body::Body;
    req.body().is_end_stream()
        && matches!(
            *req.method(),
            Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
        )
}

/// What is needed to send a bodiless request again.
struct Head {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
}

impl Head {
    fn of(req: &Request<UpBody>) -> Self {
        Head {
            method: req.method().clone(),
            uri: req.uri().clone(),
            version: req.version(),
            headers: req.headers().clone(),
        }
    }

    fn into_request(self) -> Request<UpBody> {
        let mut req = Request::new(UpBody::Empty);
        *req.method_mut() = self.method;
        *req.uri_mut() = self.uri;
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers;
        req
    }
}
