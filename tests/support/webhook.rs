//! Webhook receivers for the notification tests, on loopback port 0:
//! - `Receiver`: HTTP/1.1 (or HTTPS with a test certificate) that keeps
//!   every POST it gets — headers and JSON body — and answers the statuses
//!   it is given first, then its standing status (200 unless changed);
//! - `BlackHole`: accepts connections and never answers, counting accepted
//!   and closed ones, and wakes waiters on each accept.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_rustls::TlsAcceptor;

use super::{accept_each, eventually};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Hook {
    pub headers: http::HeaderMap,
    pub json: serde_json::Value,
    /// What the receiver answered.
    pub status: u16,
}

impl Hook {
    pub fn action(&self) -> &str {
        self.json["action"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

#[derive(Default)]
struct State {
    got: Mutex<Vec<Hook>>,
    first: Mutex<VecDeque<u16>>,
    /// 0: 200.
    standing: AtomicU16,
}

pub struct Receiver {
    pub addr: SocketAddr,
    https: bool,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_inner(None).await
    }

    /// An HTTPS receiver presenting `acceptor`'s certificate.
    pub async fn start_tls(acceptor: TlsAcceptor) -> Receiver {
        Self::start_inner(Some(acceptor)).await
    }

    async fn start_inner(tls: Option<TlsAcceptor>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(State::default());
        let (s, https) = (state.clone(), tls.is_some());
        let task = accept_each(listener, move |tcp| {
            let (s, tls) = (s.clone(), tls.clone());
            async move {
                let svc = service_fn(move |req| handle(req, s.clone()));
                let http = hyper::server::conn::http1::Builder::new();
                // A failed handshake or a dropped client ends here.
                let _ = match tls {
                    None => http.serve_connection(TokioIo::new(tcp), svc).await,
                    Some(acceptor) => match acceptor.accept(tcp).await {
                        Ok(tls) => http.serve_connection(TokioIo::new(tls), svc).await,
                        Err(_) => return,
                    },
                };
            }
        });
        Receiver {
            addr,
            https,
            state,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The next requests are answered with `statuses`, in order.
    pub fn answer_first(&self, statuses: &[u16]) {
        self.state.first.lock().unwrap().extend(statuses);
    }

    /// Requests past the `answer_first` ones get `status`.
    pub fn answer_always(&self, status: u16) {
        self.state.standing.store(status, Ordering::SeqCst);
    }

    /// Every request so far, in arrival order.
    pub fn hooks(&self) -> Vec<Hook> {
        self.state.got.lock().unwrap().clone()
    }

    /// The actions of the requests answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<String> {
        self.hooks()
            .iter()
            .filter(|h| (200..300).contains(&h.status))
            .map(|h| h.action().to_owned())
            .collect()
    }

    /// Waits until `n` requests were answered 2xx; returns them.
    pub async fn wait_delivered(&self, n: usize, deadline: Duration) -> Vec<Hook> {
        eventually(
            deadline,
            &format!("{n} notifications delivered"),
            || async { self.delivered().len() >= n },
        )
        .await;
        self.hooks()
            .into_iter()
            .filter(|h| (200..300).contains(&h.status))
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    req: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
    let status = state.first.lock().unwrap().pop_front().unwrap_or(
        match state.standing.load(Ordering::SeqCst) {
            0 => 200,
            s => s,
        },
    );
    state.got.lock().unwrap().push(Hook {
        headers: parts.headers,
        json,
        status,
    });
    let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
    *resp.status_mut() = StatusCode::from_u16(status).expect("status");
    Ok(resp)
}

/// A listener that accepts and never answers.
pub struct BlackHole {
    pub addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    closed: Arc<AtomicUsize>,
    wake: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl BlackHole {
    pub async fn start() -> BlackHole {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (accepted, closed, wake) = (
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(Notify::new()),
        );
        let (a, c, w) = (accepted.clone(), closed.clone(), wake.clone());
        let task = accept_each(listener, move |mut tcp| {
            a.fetch_add(1, Ordering::SeqCst);
            w.notify_waiters();
            let c = c.clone();
            async move {
                // Read (and ignore) until the client gives up.
                let mut buf = [0u8; 4096];
                while matches!(tcp.read(&mut buf).await, Ok(n) if n > 0) {}
                c.fetch_add(1, Ordering::SeqCst);
            }
        });
        BlackHole {
            addr,
            accepted,
            closed,
            wake,
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` connections were accepted.
    pub async fn wait_accepted(&self, n: usize, deadline: Duration) {
        tokio::time::timeout(deadline, async {
            loop {
                let woken = self.wake.notified();
                if self.accepted() >= n {
                    return;
                }
                woken.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("timed out waiting for {n} connections to the black hole"));
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}
