//! A loopback backend for tests. It answers by path:
//! - `/slow?ms=N`: waits N ms, then answers;
//! - `/never`: never answers (for timeouts);
//! - `/stream?chunks=N&ms=M`: N chunks, M ms apart;
//! - `/upload`: reads the body and answers with its length;
//! - `/ws`: HTTP/1.1 upgrade, then echoes bytes;
//! - `/status/N`: answers status N;
//! - `/health`: the health probe, answered as `set_probe` says (counted in
//!   `probes`, not in `requests`, and not kept as the last headers);
//! - anything else: JSON with the backend's name and the request headers.
//!
//! `set_fail_percent(N)` answers 500 to N of every 100 non-probe requests
//! (by the backend's request count). `set_traffic` makes every non-probe
//! request fail (a status, or a reset
//! before or after reading the body). `stop` kills the backend (listener
//! and open connections), `restart` serves again on the same port.
//!
//! It counts requests and keeps the last request's headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;
type Error = Box<dyn std::error::Error + Send + Sync>;

/// How `/health` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    Ok,
    Status(u16),
    /// Never answers (the probe times out).
    Hang,
    /// Passes and fails (500) in turn.
    Alternate,
}

/// How requests other than `/health` are answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Traffic {
    Normal,
    /// Every request gets this status.
    Status(u16),
    /// The connection is closed without an answer, before reading the body.
    Reset,
    /// The body is read, then the connection is closed without an answer.
    ResetAfterBody,
    /// Never answers.
    Hang,
}

fn encode_probe(p: Probe) -> u32 {
    match p {
        Probe::Ok => 0,
        Probe::Hang => 1,
        Probe::Alternate => 2,
        Probe::Status(s) => 1000 + u32::from(s),
    }
}

fn decode_probe(v: u32) -> Probe {
    match v {
        0 => Probe::Ok,
        1 => Probe::Hang,
        2 => Probe::Alternate,
        v => Probe::Status((v - 1000) as u16),
    }
}

fn encode_traffic(t: Traffic) -> u32 {
    match t {
        Traffic::Normal => 0,
        Traffic::Reset => 1,
        Traffic::ResetAfterBody => 2,
        Traffic::Hang => 3,
        Traffic::Status(s) => 1000 + u32::from(s),
    }
}

fn decode_traffic(v: u32) -> Traffic {
    match v {
        0 => Traffic::Normal,
        1 => Traffic::Reset,
        2 => Traffic::ResetAfterBody,
        3 => Traffic::Hang,
        v => Traffic::Status((v - 1000) as u16),
    }
}

#[derive(Default)]
pub struct Stats {
    pub requests: AtomicUsize,
    pub last_headers: Mutex<Option<http::HeaderMap>>,
    /// Notified when a request arrives (for ordering without sleeps).
    pub arrived: Notify,
    /// Released to let `/stream` send its last chunk.
    pub release: Notify,
    /// Health probes received, and how many were answered pass / fail.
    pub probes: AtomicUsize,
    pub probe_passes: AtomicUsize,
    pub probe_failures: AtomicUsize,
    /// Connections open right now, and accepted in all.
    pub open: AtomicUsize,
    pub accepted: AtomicUsize,
    /// `encode_probe` of how `/health` answers.
    probe: AtomicU32,
    /// `encode_traffic` of how other requests are answered.
    traffic: AtomicU32,
    /// Percent of requests answered 500 (`set_fail_percent`).
    fail_percent: AtomicU32,
}

pub struct TestBackend {
    pub addr: SocketAddr,
    pub name: String,
    pub stats: Arc<Stats>,
    idle_close: Option<Duration>,
    /// The accept loop; it owns the connection tasks, so aborting it kills
    /// the backend (listener and open connections alike).
    task: Option<tokio::task::JoinHandle<()>>,
}

impl TestBackend {
    pub async fn start(name: &str) -> TestBackend {
        Self::start_with(name, None).await
    }

    /// `idle_close`: close keep-alive connections after this much idleness,
    /// without warning the client (as uvicorn does after its 5 s timeout).
    pub async fn start_with(name: &str, idle_close: Option<Duration>) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(Stats::default());
        let task = serve(listener, name.to_owned(), stats.clone(), idle_close);
        TestBackend {
            addr,
            name: name.to_owned(),
            stats,
            idle_close,
            task: Some(task),
        }
    }

    /// Kills the backend: the port refuses connections and open
    /// connections are closed (in-flight requests see a reset).
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }

    /// Kills the backend and waits until its port refuses connections.
    pub async fn kill(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            // The listener is closed when the aborted task is dropped.
            let _ = t.await;
        }
    }

    /// Serves again on the same address (after `stop`); counts carry on.
    pub async fn restart(&mut self) {
        self.kill().await;
        let listener = TcpListener::bind(self.addr).await.expect("rebind backend");
        self.task = Some(serve(
            listener,
            self.name.clone(),
            self.stats.clone(),
            self.idle_close,
        ));
    }

    pub fn set_probe(&self, p: Probe) {
        self.stats.probe.store(encode_probe(p), Ordering::SeqCst);
    }

    /// Answers 500 to `pct` of every 100 requests, evenly spread.
    pub fn set_fail_percent(&self, pct: u32) {
        self.stats.fail_percent.store(pct, Ordering::SeqCst);
    }

    pub fn set_traffic(&self, t: Traffic) {
        self.stats
            .traffic
            .store(encode_traffic(t), Ordering::SeqCst);
    }

    pub fn probes(&self) -> usize {
        self.stats.probes.load(Ordering::SeqCst)
    }

    pub fn probe_passes(&self) -> usize {
        self.stats.probe_passes.load(Ordering::SeqCst)
    }

    pub fn probe_failures(&self) -> usize {
        self.stats.probe_failures.load(Ordering::SeqCst)
    }

    /// Connections open to this backend right now.
    pub fn open_connections(&self) -> usize {
        self.stats.open.load(Ordering::SeqCst)
    }

    /// Connections this backend accepted since it started.
    pub fn accepted_connections(&self) -> usize {
        self.stats.accepted.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> usize {
        self.stats.requests.load(Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> http::HeaderMap {
        self.stats
            .last_headers
            .lock()
            .unwrap()
            .clone()
            .expect("a request arrived")
    }
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The accept loop (`accept_each`: aborting it closes every connection).
fn serve(
    listener: TcpListener,
    name: String,
    stats: Arc<Stats>,
    idle_close: Option<Duration>,
) -> tokio::task::JoinHandle<()> {
    super::accept_each(listener, move |stream| {
        connection(stream, name.clone(), stats.clone(), idle_close)
    })
}

async fn connection(
    stream: tokio::net::TcpStream,
    n: String,
    s: Arc<Stats>,
    idle_close: Option<Duration>,
) {
    /// Counts the connection as open until it ends (or is aborted).
    struct Open(Arc<Stats>);
    impl Drop for Open {
        fn drop(&mut self) {
            self.0.open.fetch_sub(1, Ordering::SeqCst);
        }
    }
    s.open.fetch_add(1, Ordering::SeqCst);
    s.accepted.fetch_add(1, Ordering::SeqCst);
    let _open = Open(s.clone());
    let s2 = s.clone();
    let svc = service_fn(move |req| handle(req, n.clone(), s2.clone()));
    let mut b = hyper::server::conn::http1::Builder::new();
    if idle_close.is_some() {
        b.timer(hyper_util::rt::TokioTimer::new());
    }
    let conn = b
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    match idle_close {
        None => {
            let _ = conn.await;
        }
        Some(idle) => {
            // hyper has no idle timeout of its own for HTTP/1:
            // emulate one by dropping the connection after
            // `idle` without a request in progress.
            tokio::pin!(conn);
            let mut last = tokio::time::Instant::now();
            let mut seen = 0;
            loop {
                tokio::select! {
                    _ = &mut conn => return,
                    _ = tokio::time::sleep_until(last + idle) => {
                        let now_seen = s.requests.load(Ordering::SeqCst);
                        if now_seen == seen { return; } // drop: closes the socket
                        seen = now_seen;
                        last = tokio::time::Instant::now();
                    }
                }
            }
        }
    }
}

fn full(b: impl Into<Bytes>) -> Body {
    http_body_util::Full::new(b.into())
        .map_err(|e| match e {})
        .boxed()
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri().query()?.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key).then(|| v.parse().ok()).flatten()
    })
}

pub async fn handle(
    mut req: Request<Incoming>,
    name: String,
    stats: Arc<Stats>,
) -> Result<Response<Body>, Error> {
    if req.uri().path() == "/health" {
        return Ok(probe(&stats).await);
    }
    let n = stats.requests.fetch_add(1, Ordering::SeqCst) as u64;
    *stats.last_headers.lock().unwrap() = Some(req.headers().clone());
    stats.arrived.notify_waiters();
    match decode_traffic(stats.traffic.load(Ordering::SeqCst)) {
        Traffic::Normal => {}
        Traffic::Status(code) => {
            let mut r = Response::new(full(format!("status {code} from {name}")));
            *r.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut().insert("x-backend", name.parse().unwrap());
            return Ok(r);
        }
        Traffic::Reset => return Err("reset".into()),
        Traffic::ResetAfterBody => {
            let _ = req.into_body().collect().await;
            return Err("reset after the body".into());
        }
        Traffic::Hang => std::future::pending::<()>().await,
    }
    // Spread evenly: request n fails when the running quota of failures
    // (n + 1) · pct / 100 steps up.
    let pct = u64::from(stats.fail_percent.load(Ordering::SeqCst));
    if (n + 1) * pct / 100 > n * pct / 100 {
        let mut r = Response::new(full(format!("failing on purpose in {name}")));
        *r.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
        return Ok(r);
    }
    let path = req.uri().path().to_owned();
    let resp = match path.as_str() {
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(query(&req, "ms").unwrap_or(500))).await;
            Response::new(full(format!("slow done from {name}")))
        }
        "/never" => {
            std::future::pending::<()>().await;
            unreachable!()
        }
        "/stream" => {
            let chunks = query(&req, "chunks").unwrap_or(3);
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
            let stats = stats.clone();
            tokio::spawn(async move {
                for i in 0..chunks {
                    if i == chunks - 1 {
                        // the last chunk waits for the test's go-ahead
                        stats.release.notified().await;
                    }
                    if tx.send(Bytes::from(format!("chunk{i};"))).await.is_err() {
                        return;
                    }
                }
            });
            Response::new(ChannelBody(rx).boxed())
        }
        "/upload" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map_or(0, |d| d.len() as u64),
                    Err(_) => break,
                }
            }
            Response::new(full(n.to_string()))
        }
        "/ws" => {
            let upgrade = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = upgrade.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    loop {
                        match io.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if io.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                }
            });
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            r.headers_mut().insert("upgrade", "echo".parse().unwrap());
            r.headers_mut()
                .insert("connection", "upgrade".parse().unwrap());
            r
        }
        p if p.starts_with("/status/") => {
            let code = p["/status/".len()..].parse().unwrap_or(500);
            let mut r = Response::new(full(format!("status {code} from {name}")));
            *r.status_mut() =
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r
        }
        _ => {
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        serde_json::json!(v.to_str().unwrap_or("")),
                    )
                })
                .collect();
            let body = serde_json::json!({
                "backend": name,
                "path": req.uri().to_string(),
                "version": format!("{:?}", req.version()),
                "headers": headers,
            });
            let mut r = Response::new(full(body.to_string()));
            // hop-by-hop headers that the proxy must strip on the way back
            r.headers_mut()
                .insert("connection", "x-backend-private".parse().unwrap());
            r.headers_mut()
                .insert("x-backend-private", "secret".parse().unwrap());
            r.headers_mut()
                .insert("keep-alive", "timeout=5".parse().unwrap());
            r.headers_mut().insert("x-backend", name.parse().unwrap());
            r
        }
    };
    Ok(resp)
}

/// The answer to a health probe, as `set_probe` says.
async fn probe(stats: &Stats) -> Response<Body> {
    let n = stats.probes.fetch_add(1, Ordering::SeqCst);
    let status = match decode_probe(stats.probe.load(Ordering::SeqCst)) {
        Probe::Ok => 200,
        Probe::Status(s) => s,
        Probe::Alternate if n % 2 == 0 => 200,
        Probe::Alternate => 500,
        Probe::Hang => {
            std::future::pending::<()>().await;
            unreachable!()
        }
    };
    let counter = if (200..300).contains(&status) {
        &stats.probe_passes
    } else {
        &stats.probe_failures
    };
    counter.fetch_add(1, Ordering::SeqCst);
    let mut r = Response::new(full(format!("health {status}")));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r
}

/// A response body fed by a channel, one data frame per message.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
