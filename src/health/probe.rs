//! One active probe: a fresh TCP connection (and TLS handshake, for a
//! backend of a TLS pool, with the pool's verification), `GET path` with
//! `Connection: close`, and the response status judged against
//! `expect_status`, all within the probe timeout. A fresh connection each
//! time checks what a new client would meet (the backend accepts), and
//! keeps probes out of the data plane's keep-alive pools.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Request};
use http_body_util::Empty;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::AbortOnDrop;
use crate::config::HealthConfig;
use crate::table::ProbeFailure;
use crate::tls::UpstreamTls;

/// Probes `addr` over plain HTTP; `Ok(status)` when the answer was in
/// `expect_status`.
pub async fn probe(addr: SocketAddr, cfg: &HealthConfig) -> Result<u16, ProbeFailure> {
    probe_with(addr, None, cfg).await
}

/// Probes `addr`, over TLS when `tls` is given.
pub async fn probe_with(
    addr: SocketAddr,
    tls: Option<&UpstreamTls>,
    cfg: &HealthConfig,
) -> Result<u16, ProbeFailure> {
    match tokio::time::timeout(cfg.timeout, exchange(addr, tls, cfg)).await {
        Err(_) => Err(ProbeFailure::Timeout),
        Ok(Err(f)) => Err(f),
        Ok(Ok(status)) if cfg.expect_status.contains(status) => Ok(status),
        Ok(Ok(status)) => Err(ProbeFailure::Status(status)),
    }
}

/// A TCP connect to `addr` within `timeout`, nothing more: the check of a
/// pool without HTTP health checks (`POST .../probe`).
pub async fn connect_only(addr: SocketAddr, timeout: Duration) -> Result<(), ProbeFailure> {
    match tokio::time::timeout(timeout, connect(addr)).await {
        Err(_) => Err(ProbeFailure::Timeout),
        Ok(r) => r.map(drop),
    }
}

async fn connect(addr: SocketAddr) -> Result<TcpStream, ProbeFailure> {
    TcpStream::connect(addr).await.map_err(|e| match e.kind() {
        io::ErrorKind::ConnectionRefused => ProbeFailure::Refused,
        _ => ProbeFailure::Connect,
    })
}

async fn exchange(
    addr: SocketAddr,
    tls: Option<&UpstreamTls>,
    cfg: &HealthConfig,
) -> Result<u16, ProbeFailure> {
    let stream = connect(addr).await?;
    // Probes are tiny; Nagle would only delay them.
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(backend.addr = %addr, error = %e, "TCP_NODELAY failed on a probe");
    }
    let (mut tx, driver) = match tls {
        None => handshake(TokioIo::new(stream)).await?,
        Some(tls) => {
            let deadline = tokio::time::Instant::now() + cfg.timeout;
            let stream = tls.connect(addr, stream, deadline).await.map_err(|e| {
                tracing::debug!(backend.addr = %addr, error = %e, "probe TLS handshake failed");
                ProbeFailure::Tls
            })?;
            handshake(TokioIo::new(stream)).await?
        }
    };
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

/// The HTTP/1.1 handshake; the connection driver is aborted when the
/// returned guard drops (with the probe).
async fn handshake<I>(
    io: I,
) -> Result<(http1::SendRequest<Empty<Bytes>>, AbortOnDrop), ProbeFailure>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (tx, conn) = http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|_| ProbeFailure::Protocol)?;
    let driver = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "probe connection ended with an error");
        }
    }));
    Ok((tx, driver))
}
