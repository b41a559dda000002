//! Body types of the data plane, as enums rather than boxed trait objects so
//! that forwarding a request costs no extra allocation.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::upstream::PooledConn;
use crate::table::InFlight;

/// A request body on its way to a backend.
#[derive(Debug)]
pub enum UpBody {
    /// The client's body, streamed as it arrives.
    Client(Incoming),
    /// A small body read into memory, so that the request can be replayed.
    Full(Option<Bytes>),
    Empty,
}

impl Body for UpBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            UpBody::Client(b) => Pin::new(b).poll_frame(cx),
            UpBody::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            UpBody::Empty => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpBody::Client(b) => b.is_end_stream(),
            UpBody::Full(b) => b.as_ref().is_none_or(Bytes::is_empty),
            UpBody::Empty => true,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpBody::Client(b) => b.size_hint(),
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
        };
        // Bodiless answers (HEAD, 204, 304) may never be polled: release now.
        if this.is_end_stream() {
            this.finish();
        }
        this
    }

    fn finish(&mut self) {
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
