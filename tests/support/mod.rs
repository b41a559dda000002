//! Shared test harness: loopback backends on port 0 that count what they
//! receive, a proxy started from a config string, and small HTTP helpers.
//! Everything talks over real sockets; nothing is mocked.
//!
//! By concern:
//! - here: [`TestProxy`], the HTTP clients and requests, [`eventually`];
//! - `backend`: [`TestBackend`], the in-process backend that counts;
//! - `route`: config builders for the usual pools and route `r`
//!   ([`config_for`], `canary_config`, `blue_green`, `commented`), the split
//!   the table holds (`split`, `weights`, `weight`) and `served_by`;
//! - `admin`: admin API calls and documents (status, history, metrics,
//!   readiness, a pool's backend states);
//! - `cli`: the `switchyard` binary and `switchyard ctl` as child processes;
//! - `health`: fast probe settings and a backend's live health;
//! - `load`: steady load that keeps every client error; `release`: load
//!   that runs until dropped, for the canary engine;
//! - `python`: the Python of the FastAPI example (uvicorn tests);
//! - `rolling`: the demo-backend fleet and settings of rolling updates;
//! - `shadow`: a JSON backend a new version changes in one field, a
//!   mirrored route;
//! - `tls`, `webhook`: certificates and TLS set-ups, webhook receivers;
//! - `etcd`: real etcd nodes on loopback; `cluster`: `[cluster]` replicas
//!   on them.
#![allow(dead_code)]

pub mod admin;
pub mod backend;
pub mod cli;
pub mod cluster;
pub mod etcd;
pub mod health;
pub mod load;
pub mod paths;
pub mod python;
pub mod release;
pub mod replica;
pub mod rolling;
pub mod route;
pub mod shadow;
pub mod tls;
pub mod uvicorn;
pub mod webhook;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio_util::sync::CancellationToken;

use switchyard::server::{self, listener, Listeners, Running, Source};

pub use backend::TestBackend;
pub use route::config_for;

/// A proxy running in this process on loopback ports, with its config in a
/// temp file (so reload tests can edit it).
pub struct TestProxy {
    pub running: Option<Running>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    /// The HTTPS listener, when the config has `server.listen_tls`.
    pub tls_addr: Option<SocketAddr>,
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    shutdown: CancellationToken,
}

impl TestProxy {
    /// Starts a proxy from `config` (its [server]/[admin] listen keys are
    /// ignored: the harness binds port 0).
    pub async fn start(config: &str) -> TestProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("write config");
        Self::start_at(dir, path).await
    }

    /// Starts a proxy whose DNS backends are resolved by `resolver`.
    pub async fn start_with_resolver(
        config: &str,
        resolver: std::sync::Arc<dyn switchyard::control::Resolve>,
    ) -> TestProxy {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("switchyard.toml");
        std::fs::write(&path, config).expect("write config");
        Self::start_inner(dir, path, resolver).await
    }

    /// Starts a proxy from the config file at `path` (inside `dir`, which
    /// the proxy keeps alive).
    pub async fn start_at(dir: tempfile::TempDir, path: PathBuf) -> TestProxy {
        Self::start_inner(
            dir,
            path,
            std::sync::Arc::new(switchyard::control::SystemResolver),
        )
        .await
    }

    async fn start_inner(
        dir: tempfile::TempDir,
        path: PathBuf,
        resolver: std::sync::Arc<dyn switchyard::control::Resolve>,
    ) -> TestProxy {
        let config = std::fs::read_to_string(&path).expect("read config");
        let cfg = switchyard::config::parse(&config, &path)
            .unwrap_or_else(|e| panic!("test config invalid:\n{e}"));
        let proxy = listener::bind("127.0.0.1:0".parse().unwrap()).expect("bind proxy");
        let admin = listener::bind_single("127.0.0.1:0".parse().unwrap()).expect("bind admin");
        // Like `listen`, `listen_tls` is replaced by a port-0 loopback socket.
        let tls = cfg.server.listen_tls.map(|_| {
            let certs = cfg.tls.as_ref().expect("listen_tls comes with [tls]");
            server::TlsListener::bind("127.0.0.1:0".parse().unwrap(), certs)
                .unwrap_or_else(|e| panic!("TLS listener: {e}"))
        });
        let shutdown = CancellationToken::new();
        let running = server::start_with_resolver(
            cfg,
            Source {
                path: Some(path.clone()),
                text: config.clone(),
            },
            Listeners { proxy, admin, tls },
            shutdown.clone(),
            resolver,
        )
        .expect("start proxy");
        TestProxy {
            addr: running.proxy_addr,
            admin: running.admin_addr,
            tls_addr: running.tls_addr,
            running: Some(running),
            dir,
            path,
            shutdown,
        }
    }

    pub fn admin_url(&self, path: &str) -> String {
        format!("http://{}{}", self.admin, path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Rewrites the config file and reloads it through the controller.
    pub async fn reload(&self, config: &str) -> u64 {
        std::fs::write(&self.path, config).expect("write config");
        self.running
            .as_ref()
            .expect("running")
            .control
            .reload(switchyard::control::ChangeSource::File)
            .await
            .unwrap_or_else(|e| panic!("reload failed: {e}"))
    }

    pub fn table(&self) -> std::sync::Arc<switchyard::table::RoutingTable> {
        self.running
            .as_ref()
            .expect("running")
            .control
            .table()
            .load_full()
    }

    /// Graceful shutdown; waits for the workers.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(r) = self.running.take() {
            r.wait().await;
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// An HTTP/1.1 keep-alive client.
pub fn client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// An HTTP/2 prior-knowledge (h2c) client.
pub fn h2_client() -> HttpClient {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// A whole response: status, headers and body.
pub struct Answer {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

pub async fn collect(resp: Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("response body").to_bytes();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// Any method with a body and extra headers. A body that looks like JSON
/// (an object or array, valid or not) goes with `Content-Type: application/json` unless `headers`
/// name a type, as every API client sends it (the admin API refuses
/// untyped bodies: `admin::guard`).
pub async fn send(
    client: &HttpClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut req = Request::builder().method(method).uri(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let typed = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    if !typed && body.trim_start().starts_with(['{', '[']) {
        req = req.header("content-type", "application/json");
    }
    let resp = client
        .request(
            req.body(Full::new(Bytes::from(body.to_owned())))
                .expect("request"),
        )
        .await
        .unwrap_or_else(|e| panic!("{method} {url} failed: {e:?}"));
    collect(resp).await
}

/// A GET of `url` without a body, for a client's `request`.
pub fn empty_request(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .body(Full::new(Bytes::new()))
        .expect("request")
}

/// GET with extra headers.
pub async fn get(client: &HttpClient, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut req = Request::get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = client
        .request(req.body(Full::new(Bytes::new())).expect("request"))
        .await
        .unwrap_or_else(|e| panic!("GET {url} failed: {e:?}"));
    collect(resp).await
}

/// Spawns an accept loop on `listener`: each connection is served by
/// `serve` in a task of a `JoinSet` the loop owns, so aborting the returned
/// task closes every connection too.
pub fn accept_each<F, Fut>(
    listener: tokio::net::TcpListener,
    mut serve: F,
) -> tokio::task::JoinHandle<()>
where
    F: FnMut(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    tokio::spawn(async move {
        let mut conns = tokio::task::JoinSet::new();
        loop {
            let tcp = tokio::select! {
                a = listener.accept() => match a {
                    Ok((tcp, _)) => tcp,
                    Err(_) => continue,
                },
                Some(_) = conns.join_next() => continue,
            };
            conns.spawn(serve(tcp));
        }
    })
}

/// Polls `cond` every 20 ms until it holds or `deadline` passes.
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually_every(deadline, Duration::from_millis(20), what, cond).await;
}

/// Polls `cond` every `every` until it holds or `deadline` passes. `cond`
/// may also assert what must stay true while it waits.
pub async fn eventually_every<F, Fut>(deadline: Duration, every: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if cond().await {
            return;
        }
        if tokio::time::Instant::now() > end {
            panic!("timed out waiting for: {what}");
        }
        // The poll interval of a deadline-bounded wait, not a fixed delay.
        tokio::time::sleep(every).await;
    }
}

pub fn empty_body() -> Empty<Bytes> {
    Empty::new()
}
