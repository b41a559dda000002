//! Body types of the data plane, as enums rather than boxed trait objects so
//! that forwarding a request costs no extra allocation.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::mirror::Tap;
use super::upstream::PooledConn;
use crate::table::InFlight;
use crate::telemetry::access::{AccessSink, Entry};

/// An access-log entry waiting for the end of its response body.
#[derive(Debug)]
pub struct Pending {
    pub entry: Entry,
    pub sink: std::sync::Arc<AccessSink>,
    pub started: tokio::time::Instant,
    pub bytes_out: u64,
}

impl Pending {
    /// Completes the entry (`extra` body bytes) and hands it to the writer.
    fn write(self, extra: u64) {
        let Pending {
            mut entry,
            sink,
            started,
            bytes_out,
        } = self;
        entry.bytes_out = bytes_out + extra;
        entry.total_secs = started.elapsed().as_secs_f64();
        sink.send(entry);
    }
}

impl Drop for ProxyBody {
    fn drop(&mut self) {
        // The client went away before the end: log what was sent.
        if let ProxyBody::Upstream { log, .. } = self {
            if let Some(l) = log.take() {
                l.write(0);
            }
        }
    }
}

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum UpBody {
    /// The client's body, streamed as it arrives.
    Client(Incoming),
    /// The client's body without a declared length, streamed and cut off
    /// (an error, so the upstream request is aborted, never ended as if
    /// complete) once more than `limit` bytes came.
    Limited {
        body: Incoming,
        limit: u64,
        seen: u64,
    },
    /// A small body read into memory, so that the request can be replayed.
    Full(Option<Bytes>),
    Empty,
}

/// Why a request body stopped before its end.
#[derive(Debug, thiserror::Error)]
pub enum UpBodyError {
    #[error(transparent)]
    Client(#[from] hyper::Error),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
}

impl UpBody {
    /// The client's body, cut off past `limit` unless its length is
    /// declared (then the limit was checked before sending, and the
    /// framing holds the body to it).
    pub fn client(body: Incoming, limit: Option<u64>) -> Self {
        match limit {
            Some(limit) if body.size_hint().exact().is_none() => UpBody::Limited {
                body,
                limit,
                seen: 0,
            },
            _ => UpBody::Client(body),
        }
    }
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = UpBodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, UpBodyError>>> {
        match self.get_mut() {
            UpBody::Client(b) => Pin::new(b).poll_frame(cx).map_err(UpBodyError::from),
            UpBody::Limited { body, limit, seen } => {
                let polled = Pin::new(body).poll_frame(cx).map_err(UpBodyError::from);
                if let Poll::Ready(Some(Ok(f))) = &polled {
                    *seen += f.data_ref().map_or(0, |d| d.len() as u64);
                    if *seen > *limit {
                        return Poll::Ready(Some(Err(UpBodyError::TooLarge { limit: *limit })));
                    }
                }
                polled
            }
            UpBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Client(b) | UpBody::Limited { body: b, .. } => b.is_end_stream(),
            UpBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            UpBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Client(b) | UpBody::Limited { body: b, .. } => b.size_hint(),
            UpBody::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            UpBody::Empty => SizeHint::with_exact(0),
        }
    }
}

/// A response body on its way to the client.
#[derive(Debug)]
pub enum ProxyBody {
    /// A backend's body, streamed; holds the request's in-flight count and
    /// the upstream connection, which goes back to the idle pool only once
    /// the body has been read to its end.
    Upstream {
        body: Incoming,
        conn: Option<PooledConn>,
        inflight: Option<InFlight>,
        /// The access-log entry, written when the body ends (or is dropped).
        log: Option<Box<Pending>>,
        /// A mirrored request's view of this answer (`mirror::Tap`).
        tap: Option<Box<Tap>>,
    },
    /// A body the proxy generated (errors, demo answers).
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn full(b: impl Into<Bytes>) -> Self {
        ProxyBody::Full(Some(b.into()))
    }

    pub fn empty() -> Self {
        ProxyBody::Full(None)
    }

    pub(crate) fn upstream(body: Incoming, conn: PooledConn, inflight: InFlight) -> Self {
        let mut this = ProxyBody::Upstream {
            body,
            conn: Some(conn),
            inflight: Some(inflight),
            log: None,
            tap: None,
        };
        // Bodiless answers (HEAD, 204, 304) may never be polled: release now.
        if this.is_end_stream() {
            this.finish();
        }
        this
    }

    /// Attaches an access-log entry; a body already at its end logs now.
    pub(crate) fn log_when_done(&mut self, pending: Pending) {
        match self {
            ProxyBody::Upstream {
                conn: Some(_), log, ..
            } => *log = Some(Box::new(pending)),
            ProxyBody::Upstream { .. } => pending.write(0),
            ProxyBody::Full(b) => pending.write(b.as_ref().map_or(0, |b| b.len() as u64)),
        }
    }

    /// Lets a mirrored request's tap see this answer's body; a body
    /// already at its end hands over now.
    pub(crate) fn tap(&mut self, mut t: Tap) {
        match self {
            ProxyBody::Upstream {
                conn: Some(_), tap, ..
            } => *tap = Some(Box::new(t)),
            _ => t.end(),
        }
    }

    fn finish(&mut self) {
        if let ProxyBody::Upstream { tap: Some(t), .. } = self {
            t.end();
        }
        if let ProxyBody::Upstream { log, .. } = self {
            if let Some(l) = log.take() {
                l.write(0);
            }
        }
        if let ProxyBody::Upstream { conn, inflight, .. } = self {
            // A draining backend's connections close rather than idle.
            let reuse = inflight.as_ref().is_none_or(|i| !i.backend().is_draining());
            if let Some(c) = conn.take() {
                c.release(reuse);
            }
            inflight.take();
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match this {
            ProxyBody::Upstream { body, .. } => {
                let polled = Pin::new(&mut *body).poll_frame(cx);
                if let (Poll::Ready(Some(Ok(f))), ProxyBody::Upstream { log: Some(l), .. }) =
                    (&polled, &mut *this)
                {
                    l.bytes_out += f.data_ref().map_or(0, |d| d.len() as u64);
                }
                if let (Poll::Ready(Some(Ok(f))), ProxyBody::Upstream { tap: Some(t), .. }) =
                    (&polled, &mut *this)
                {
                    if let Some(d) = f.data_ref() {
                        t.data(d);
                    }
                }
                let ProxyBody::Upstream { body, .. } = &mut *this else {
                    return polled;
                };
                match &polled {
                    // hyper stops polling once `is_end_stream` turns true
                    // (a Content-Length body's last frame), so the end is
                    // noticed here, not only at `Ready(None)`.
                    Poll::Ready(Some(Ok(_))) if body.is_end_stream() => this.finish(),
                    Poll::Ready(None) => this.finish(),
                    Poll::Ready(Some(Err(_))) => {
                        // A broken body means a broken connection: drop it.
                        if let ProxyBody::Upstream { conn, inflight, .. } = this {
                            conn.take();
                            inflight.take();
                        }
                    }
                    _ => {}
                }
                polled
            }
            ProxyBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Full(b) => b.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Full(Some(b)) => SizeHint::with_exact(b.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
        }
    }
}
