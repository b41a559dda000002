//! The lean HTTP/1.1 path (`server.http1 = "lean"`): a client connection
//! is served as bytes with a parsed index, not as objects rebuilt twice.
//!
//! - While idle, a connection holds its socket and its task only: it
//!   waits for readability with no buffer, then takes a `Scratch` (read
//!   buffers and head indices) from the worker's pool and gives it back
//!   when the exchange ends (`pool`).
//! - The request head is parsed once (`head`, on `httparse`), routed on
//!   (`decide`, shared with the hyper path) and written upstream from the
//!   same bytes: hop-by-hop headers out, the proxy's in, the client's
//!   header case and order kept. The built head is the replay copy.
//! - Bodies pass by their framing: Content-Length copied, chunked
//!   validated and passed through (`chunked`), close-delimited answers
//!   re-chunked for HTTP/1.1 clients; upgrades are joined after the 101.
//! - The answer's head goes to the client with its first body bytes in
//!   one `writev` (`exchange`, `relay`).
//! - One timer per connection, re-armed for each phase (idle, head, the
//!   upstream deadline of each try).
//!
//! HTTP/2 with prior knowledge on the plain port is handed to hyper's h2
//! server (the bytes already read go first); hyper stays the tool there,
//! and for the admin API.

mod answer;
mod attempt;
mod chunked;
mod exchange;
pub(crate) mod head;
pub mod pool;
mod relay;
#[cfg(test)]
mod sizes;
mod view;
mod write;

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::HeaderValue;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use super::{ConnInfo, Proxy, ProxyBody};

pub use pool::sweep_idle;

/// The plain listener's redirect to https, decided by the server layer.
pub type RedirectFn =
    Arc<dyn Fn(&http::Request<()>) -> Option<http::Response<ProxyBody>> + Send + Sync>;

/// Hands a plain connection that opened with the HTTP/2 preface to an h2
/// server; `prefix` is what was already read.
pub type H2Fn = Arc<dyn Fn(Prefixed<TcpStream>, Arc<ConnInfo>) + Send + Sync>;

/// What the lean path takes from its worker.
#[derive(Clone)]
pub struct Lean {
    pub proxy: Proxy,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// A client must send a whole head within this; it also bounds how
    /// long a keep-alive connection may stay idle (as hyper's does).
    pub header_timeout: Duration,
    pub shutdown: CancellationToken,
    /// Added to TLS responses that carry none.
    pub hsts: Option<HeaderValue>,
    pub redirect: Option<RedirectFn>,
    pub h2: Option<H2Fn>,
}

/// A client stream: plain TCP, or TLS.
pub trait ClientIo: AsyncRead + AsyncWrite + Unpin + Send {
    /// Ready when a read would not block; needs no buffer. Streams that
    /// buffer internally (TLS) are ready at once and read into a pool
    /// buffer.
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
}

impl ClientIo for TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        // The stream's own reader waker, not `readable()`'s waiter node:
        // the idle state then holds no future for it (`sizes`).
        self.poll_read_ready(cx)
    }
}

impl ClientIo for tokio_rustls::server::TlsStream<TcpStream> {
    fn poll_readable(&self, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// What a connection does after an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum After {
    KeepAlive,
    Close,
}

/// Serves one plain connection until it closes.
pub async fn serve_plain(lean: Arc<Lean>, io: TcpStream, info: Arc<ConnInfo>) {
    serve(&lean, io, &info, true).await;
}

/// Serves one TLS connection (ALPN `http/1.1` or none) until it closes.
pub async fn serve_tls(
    lean: Arc<Lean>,
    io: tokio_rustls::server::TlsStream<TcpStream>,
    info: Arc<ConnInfo>,
) {
    serve(&lean, io, &info, false).await;
}

/// The connection loop: wait (no buffer), read a head, exchange, repeat.
async fn serve<S: ClientIo + IntoPlain>(lean: &Lean, mut io: S, info: &Arc<ConnInfo>, plain: bool) {
    let timer = tokio::time::sleep(lean.header_timeout);
    tokio::pin!(timer);
    let mut held: Option<Box<pool::Scratch>> = None;
    loop {
        let mut s = match held.take() {
            Some(s) => s,
            None => {
                timer.as_mut().reset(Instant::now() + lean.header_timeout);
                if !wait_idle(&io, &lean.shutdown, timer.as_mut()).await {
                    return;
                }
                pool::take_scratch()
            }
        };
        timer.as_mut().reset(Instant::now() + lean.header_timeout);
        match read_head(lean, &mut io, &mut s, timer.as_mut()).await {
            Ok(true) => {}
            Ok(false) => {
                pool::give_scratch(s);
                return;
            }
            Err(e) => {
                if plain && s.read.starts_with(b"PRI * HTTP/2.0") {
                    if let (Some(h2), Some(tcp)) = (&lean.h2, io.into_plain()) {
                        let prefix = std::mem::take(&mut s.read);
                        pool::give_scratch(s);
                        h2(Prefixed::new(prefix, tcp), info.clone());
                    }
                    return;
                }
                Box::pin(write::refuse(&mut io, &mut s, e)).await;
                pool::give_scratch(s);
                return;
            }
        }
        // Boxed: an exchange's future is ~5 KB, and kept inline it would
        // be part of every connection's task, idle or not (`sizes`).
        let after = Box::pin(exchange::exchange(
            lean,
            &mut io,
            &mut s,
            info,
            timer.as_mut(),
        ))
        .await;
        if after == After::Close || lean.shutdown.is_cancelled() {
            pool::give_scratch(s);
            return;
        }
        if s.read.is_empty() {
            pool::give_scratch(s);
        } else {
            // A pipelined request is already here.
            held = Some(s);
        }
    }
}

/// Waits with no buffer until the client sends (`true`), or until the
/// connection should end (`false`: shutdown, the idle deadline, an error).
/// Polled by hand, so that all an idle connection holds beyond its socket
/// and timer is the cancellation's waiter.
async fn wait_idle<S: ClientIo>(
    io: &S,
    shutdown: &CancellationToken,
    mut timer: Pin<&mut Sleep>,
) -> bool {
    let cancelled = shutdown.cancelled();
    tokio::pin!(cancelled);
    std::future::poll_fn(|cx| {
        if cancelled.as_mut().poll(cx).is_ready() || timer.as_mut().poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        io.poll_readable(cx).map(|r| r.is_ok())
    })
    .await
}

/// Reads until `s.req` holds a complete head. `Ok(false)`: the client
/// closed (or went quiet past the deadline) before sending one.
async fn read_head<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut pool::Scratch,
    mut timer: Pin<&mut Sleep>,
) -> Result<bool, head::HeadError> {
    loop {
        if !s.read.is_empty() {
            if let Some(()) = head::parse_request(&s.read, lean.max_headers, &mut s.req)? {
                return Ok(true);
            }
            if s.read.len() >= lean.max_header_bytes {
                return Err(head::HeadError::TooLarge);
            }
        }
        if s.read.len() == s.read.capacity() {
            s.read.reserve(s.read.len().min(lean.max_header_bytes));
        }
        // Before its first byte a request may be abandoned at shutdown (a
        // TLS connection waits here rather than in `wait_idle`).
        let idle = s.read.is_empty();
        let n = tokio::select! {
            biased;
            _ = lean.shutdown.cancelled(), if idle => return Ok(false),
            r = io.read_buf(&mut s.read) => match r {
                Ok(n) => n,
                Err(_) => return Ok(false),
            },
            _ = &mut timer => return Ok(false),
        };
        if n == 0 {
            return if s.read.is_empty() {
                Ok(false)
            } else {
                Err(head::HeadError::Syntax)
            };
        }
    }
}

/// The plain stream inside, for the HTTP/2 hand-off.
trait IntoPlain {
    fn into_plain(self) -> Option<TcpStream>;
}

impl IntoPlain for TcpStream {
    fn into_plain(self) -> Option<TcpStream> {
        Some(self)
    }
}

impl IntoPlain for tokio_rustls::server::TlsStream<TcpStream> {
    fn into_plain(self) -> Option<TcpStream> {
        None
    }
}

/// A stream whose first reads return bytes already taken from it.
pub struct Prefixed<S> {
    prefix: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `prefix` is read first, then `inner`.
    pub fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, b: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, b)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}
