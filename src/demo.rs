//! Built-in demo backends: tiny HTTP servers that answer every path with
//! JSON naming their pool, address and version, and `/health` with 200.
//! `switchyard demo` starts several; `switchyard backend` starts one (the
//! load benchmarks use it as a fast backend).

use std::convert::Infallible;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Serves one demo backend on `listener` until `shutdown`.
pub async fn serve_backend(
    listener: StdListener,
    pool: String,
    version: String,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let addr = listener.local_addr()?;
    let body = Bytes::from(
        serde_json::json!({"pool": pool, "backend": addr.to_string(), "version": version})
            .to_string()
            + "\n",
    );
    let body = Arc::new(body);
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "demo backend accept failed");
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true); // best effort; only latency suffers
        let body = body.clone();
        let svc = service_fn(move |req: Request<Incoming>| {
            let body = body.clone();
            async move { Ok::<_, Infallible>(answer(&req, &body, addr)) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), svc)
            .into_owned();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "demo backend connection error");
            }
        });
    }
}

fn answer(req: &Request<Incoming>, body: &Bytes, _addr: SocketAddr) -> Response<Full<Bytes>> {
    let content = if req.uri().path() == "/health" {
        Bytes::from_static(b"{\"status\":\"ok\"}\n")
    } else if let Some(bucket) = req.headers().get("x-switchyard-bucket") {
        // Show sticky requests what the proxy decided for them.
        let mut v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        v["bucket"] = serde_json::json!(bucket.to_str().unwrap_or(""));
        Bytes::from(v.to_string() + "\n")
    } else {
        body.clone()
    };
    let mut resp = Response::new(Full::new(content));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}
