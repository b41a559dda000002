//! Per-worker resources of the lean path, in thread-locals (each worker is
//! one current-thread runtime, so nothing here is shared or locked):
//! - read buffers, taken when a request starts and given back when it ends,
//!   so an idle keep-alive connection holds none; the pool keeps what the
//!   busiest moment of the last second needed, and gives the rest back to
//!   the system (so a burst of requests does not stay in memory);
//! - idle upstream connections per backend (LIFO, expiring after
//!   `upstream_idle_timeout`), plain TCP or TLS.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::head;
use crate::proxy::upstream::{IdHasher, UpstreamError};
use crate::table::Backend;

/// Size of a pooled read buffer: one read of a typical head and body.
pub(crate) const BUF: usize = 16 * 1024;
/// Initial size of the buffer heads are written into.
const OUT: usize = 4 * 1024;
/// Scratch sets kept per worker (more are freed).
const KEEP: usize = 1024;
/// Scratch sets a sweep always leaves in the pool.
const FLOOR: usize = 8;

type IdlePools = HashMap<u64, Vec<Idle>, BuildHasherDefault<IdHasher>>;

thread_local! {
    // Boxed: a scratch set moves in and out of connection tasks, whose
    // idle state then holds a pointer, not the set.
    #[allow(clippy::vec_box)]
    static SCRATCH: RefCell<Vec<Box<Scratch>>> = const { RefCell::new(Vec::new()) };
    static IDLE: RefCell<IdlePools> = RefCell::new(IdlePools::default());
    /// Scratch sets lent now, and the most lent at once since the last
    /// sweep (which keeps that many, lent or pooled).
    static LENT: Cell<Lent> = const { Cell::new(Lent { now: 0, peak: 0 }) };
}

#[derive(Clone, Copy)]
struct Lent {
    now: usize,
    peak: usize,
}

/// What one exchange works in; lent from the worker's pool while a
/// request is in progress, so an idle connection holds none of it.
pub(crate) struct Scratch {
    /// From the client: the head, then body bytes and pipelined requests.
    pub read: Vec<u8>,
    /// From the backend.
    pub up: Vec<u8>,
    /// Heads being written (upstream request head, then client answer head).
    pub out: Vec<u8>,
    pub req: head::Request,
    pub resp: head::Response,
}

/// A scratch set from the worker's pool (buffers empty).
pub(crate) fn take_scratch() -> Box<Scratch> {
    LENT.with(|l| {
        let now = l.get().now + 1;
        l.set(Lent {
            now,
            peak: l.get().peak.max(now),
        });
    });
    SCRATCH.with(|p| p.borrow_mut().pop()).unwrap_or_else(|| {
        Box::new(Scratch {
            read: Vec::with_capacity(BUF),
            up: Vec::with_capacity(BUF),
            out: Vec::with_capacity(OUT),
            req: head::Request::default(),
            resp: head::Response::default(),
        })
    })
}

/// Gives a scratch set back; buffers grown by long heads are shrunk.
pub(crate) fn give_scratch(mut s: Box<Scratch>) {
    // Saturating: a set dropped with its task (never given back) is lent
    // for good, which only makes sweeps keep fewer.
    LENT.with(|l| {
        l.set(Lent {
            now: l.get().now.saturating_sub(1),
            ..l.get()
        })
    });
    for (b, size) in [(&mut s.read, BUF), (&mut s.up, BUF), (&mut s.out, OUT)] {
        b.clear();
        if b.capacity() > 2 * size {
            *b = Vec::with_capacity(size);
        }
    }
    SCRATCH.with(|p| {
        let mut p = p.borrow_mut();
        if p.len() < KEEP {
            p.push(s);
        }
    });
}

/// An upstream connection's stream.
pub(crate) enum Io {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Io {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Io {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }
    fn is_write_vectored(&self) -> bool {
        true
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_flush(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Io::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Io::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// An upstream connection lent to one request.
pub(crate) struct Conn {
    pub io: Io,
    /// How long it had been idle when taken from the pool (`None`: new).
    pub reused_after: Option<Duration>,
}

struct Idle {
    io: Io,
    since: Instant,
    expires: Instant,
}

impl Idle {
    /// Still open with nothing unread? A plain socket is asked without
    /// blocking (no system call unless the reactor saw it readable); a
    /// TLS one is trusted until it fails (then the request is resent
    /// when that is safe).
    fn alive(&self, now: Instant) -> bool {
        if self.expires <= now {
            return false;
        }
        match &self.io {
            Io::Plain(s) => {
                let mut probe = [0u8; 1];
                matches!(s.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
            }
            Io::Tls(_) => true,
        }
    }
}

/// The most recently used live idle connection to `backend_id`.
pub(crate) fn checkout(backend_id: u64) -> Option<Conn> {
    let now = Instant::now();
    IDLE.with(|pools| {
        let mut pools = pools.borrow_mut();
        let list = pools.get_mut(&backend_id)?;
        while let Some(idle) = list.pop() {
            if idle.alive(now) {
                return Some(Conn {
                    reused_after: Some(now.saturating_duration_since(idle.since)),
                    io: idle.io,
                });
            }
        }
        None
    })
}

/// Puts a connection whose exchange ended cleanly back in the pool.
pub(crate) fn release(backend: &Backend, io: Io, max_idle: usize, idle_timeout: Duration) {
    if backend.is_draining() || max_idle == 0 || idle_timeout.is_zero() {
        return;
    }
    let now = Instant::now();
    IDLE.with(|pools| {
        let mut pools = pools.borrow_mut();
        let list = pools.entry(backend.id).or_default();
        if list.len() < max_idle {
            list.push(Idle {
                io,
                since: now,
                expires: now + idle_timeout,
            });
        }
    });
}

/// Closes this worker's idle connections to a (draining) backend.
pub(crate) fn discard(backend_id: u64) {
    IDLE.with(|pools| pools.borrow_mut().remove(&backend_id));
}

/// Drops expired idle connections, and the scratch sets the last second
/// did not need; run every second by the worker.
pub fn sweep_idle() {
    let now = Instant::now();
    IDLE.with(|pools| {
        pools.borrow_mut().retain(|_, list| {
            list.retain(|i| i.expires > now);
            !list.is_empty()
        });
    });
    let lent = LENT.with(|l| {
        let lent = l.get();
        l.set(Lent {
            now: lent.now,
            peak: lent.now,
        });
        lent
    });
    let keep = lent.peak.saturating_sub(lent.now).max(FLOOR);
    let freed = SCRATCH.with(|p| {
        let mut p = p.borrow_mut();
        let freed = p.len().saturating_sub(keep);
        p.truncate(keep);
        freed
    });
    if freed >= TRIM_AFTER {
        give_back_memory();
    }
}

/// Freed scratch sets worth returning to the system at once.
const TRIM_AFTER: usize = 16;

/// Returns free heap pages to the system. glibc keeps freed memory in its
/// heaps, and the sets of a burst lie between live allocations, so
/// without this their pages would stay resident.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn give_back_memory() {
    extern "C" {
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }
    // SAFETY: malloc_trim only releases free memory of glibc's own heaps
    // (taking their locks), touches nothing of ours, and is declared with
    // glibc's signature; it is called at most once a second per worker.
    unsafe {
        malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn give_back_memory() {}

/// A new connection: TCP, then TLS when the pool speaks it, both within
/// `timeout`.
pub(crate) async fn connect(backend: &Backend, timeout: Duration) -> Result<Conn, UpstreamError> {
    let addr: SocketAddr = backend.addr;
    let deadline = Instant::now() + timeout;
    let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(source)) => return Err(UpstreamError::Connect { addr, source }),
        Err(_) => return Err(UpstreamError::ConnectTimeout { addr }),
    };
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "TCP_NODELAY failed");
    }
    let io = match &backend.tls {
        None => Io::Plain(stream),
        Some(tls) => match tls.connect(addr, stream, deadline).await {
            Ok(s) => Io::Tls(Box::new(s)),
            Err(source) => return Err(UpstreamError::Tls { addr, source }),
        },
    };
    Ok(Conn {
        io,
        reused_after: None,
    })
}
