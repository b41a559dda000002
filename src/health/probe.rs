//! One active probe: a fresh TCP connection, `GET path` with
//! `Connection: close`, and the response status judged against
//! `expect_status`, all within the probe timeout. A fresh connection each
//! time checks what a new client would meet (the backend accepts), and
//! keeps probes out of the data plane's keep-alive pools.

use std::io;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderValue, Request};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::AbortOnDrop;
use crate::config::HealthConfig;
use crate::table::ProbeFailure;

/// Probes `addr`; `Ok(status)` when the answer was in `expect_status`.
pub async fn probe(addr: SocketAddr, cfg: &HealthConfig) -> Result<u16, ProbeFailure> {
    match tokio::time::timeout(cfg.timeout, exchange(addr, cfg)).await {
        Err(_) => Err(ProbeFailure::Timeout),
        Ok(Err(f)) => Err(f),
        Ok(Ok(status)) if cfg.expect_status.contains(status) => Ok(status),
        Ok(Ok(status)) => Err(ProbeFailure::Status(status)),
    }
}

async fn exchange(addr: SocketAddr, cfg: &HealthConfig) -> Result<u16, ProbeFailure> {
    let stream = TcpStream::connect(addr).await.map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeFailure::Refused,
        _ => ProbeFailure::Connect,
    })?;
    // Probes are tiny; Nagle would only delay them.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "TCP_NODELAY failed on a probe");
    }
    let (mut tx, conn) = http1::handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .map_err(|_| ProbeFailure::Protocol)?;
    // The connection driver; aborted when this probe ends (dropped with it).
    let driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "probe connection ended with an error");
        }
    }));
    let host = match &cfg.host {
        Some(h) => HeaderValue::from_str(h),
        None => HeaderValue::from_str(&addr.to_string()),
    }
    .map_err(|_| ProbeFailure::Protocol)?;
    let req = Request::get(cfg.path.as_str())
        .header(header::HOST, host)
        .header(header::CONNECTION, "close")
        .header(header::USER_AGENT, "switchyard-health")
        .body(Empty::new())
        .map_err(|_| ProbeFailure::Protocol)?;
    let resp = tx
        .send_request(req)
        .await
        .map_err(|_| ProbeFailure::Protocol)?;
    drop(driver);
    Ok(resp.status().as_u16())
}
