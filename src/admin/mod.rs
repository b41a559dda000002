//! The admin listener: liveness (`/health`), readiness (`/ready`),
//! Prometheus `/metrics`, the web console's files (`console`) and the JSON
//! API under `/api/v1/` (`api`: the endpoint table — status, splits, flips
//! with verification, rollbacks, drains, probes, history, reloads,
//! rollouts, traffic, a route's shadow traffic (`shadow`) — whose requests and answers are the `crate::api`
//! types; `status`, `probe`), every request screened by `guard` (Host,
//! Origin, body size, content type). It binds loopback unless configured
//! otherwise, and then validation demands a token; `/health`, `/ready` and
//! the console's files stay open (probes and a page hold no data),
//! `/metrics` is open to loopback clients when configured so, everything
//! else needs `Authorization: Bearer <token>` when a token is set. The
//! API's changes go to the controller through its `ControlHandle`, like
//! every other change.

use std::net::TcpListener as StdListener;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::{ErrorBody, ErrorCode};
use crate::control::ControlHandle;

mod api;
pub mod cluster;
mod console;
pub mod guard;
mod probe;
mod shadow;
mod status;

use api::json_response;
pub use api::{endpoints, Auth, Endpoint};

/// Shared state of the admin endpoints.
pub struct Admin {
    pub control: ControlHandle,
    /// Bearer token; `None` leaves the API open (loopback only, enforced
    /// by config validation).
    pub token: Option<String>,
    pub shutdown: CancellationToken,
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// First probe round, for `/ready`.
    pub health: crate::health::HealthHandle,
    /// The HTTPS listener's certificates, for status.
    pub tls: Option<Arc<crate::tls::CertStore>>,
    /// `None` when metrics are off.
    pub telemetry: Option<Arc<crate::telemetry::Telemetry>>,
    /// `/metrics` needs no token from loopback clients.
    pub metrics_open: bool,
    /// The canary engine.
    pub rollouts: Arc<crate::rollout::Rollouts>,
    /// Host, Origin, body size and content-type checks (`guard`).
    pub guard: guard::Guard,
    /// `[cluster]`: this replica's view of its cluster, once joined.
    pub cluster: Option<cluster::Slot>,
}

/// Serves the admin API until shutdown.
pub async fn serve(listener: StdListener, admin: Arc<Admin>) {
    let listener = match TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "cannot register admin listener");
            return;
        }
    };
    loop {
        let (stream, peer) = tokio::select! {
            _ = admin.shutdown.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let admin = admin.clone();
                async move { Ok::<_, std::convert::Infallible>(admin.handle(req, peer).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), svc);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "admin connection ended with an error");
            }
        });
    }
}

impl Admin {
    async fn handle(
        &self,
        req: Request<Incoming>,
        peer: std::net::SocketAddr,
    ) -> Response<Full<Bytes>> {
        let token_ok = self.token.is_some() && self.authorized(&req);
        if let Err(refusal) = self.guard.check_source(req.headers(), token_ok) {
            return refused(refusal, req.uri().path());
        }
        match (req.method(), req.uri().path()) {
            (&Method::GET, "/health") => text(StatusCode::OK, "ok\n"),
            // The console's files hold no data; its API calls carry the token.
            (m, p) if console::is_asset(p) => console::serve(m, p, req.headers()),
            (&Method::GET, "/metrics")
                if (self.metrics_open && peer.ip().is_loopback()) || self.authorized(&req) =>
            {
                self.metrics()
            }
            (&Method::GET, "/ready") => self.ready(),
            (method, path) if api::needs_token(method, path) && !self.authorized(&req) => {
                tracing::info!(path, "admin request without a valid token");
                closing(json_response(
                    StatusCode::UNAUTHORIZED,
                    &ErrorBody::new(
                        ErrorCode::Unauthorized,
                        "send Authorization: Bearer <token>",
                    ),
                ))
            }
            (_, path) if path.starts_with("/api/v1/") => {
                if let Err(refusal) = self.guard.check_body(req.method(), req.headers()) {
                    return refused(refusal, path);
                }
                let (parts, body) = req.into_parts();
                api::handle(
                    self,
                    &parts.method,
                    parts.uri.path(),
                    parts.uri.query(),
                    &parts.headers,
                    body,
                )
                .await
            }
            _ => json_response(
                StatusCode::NOT_FOUND,
                &ErrorBody::not_found(format!("no admin endpoint {}", req.uri().path())),
            ),
        }
    }

    /// 200 when the proxy can serve every route; 503 with the reason when
    /// it cannot, is shutting down, or its controller stopped (no change
    /// could apply any more: restart it).
    fn ready(&self) -> Response<Full<Bytes>> {
        let why = match self.control.stopped() {
            Some(why) => format!("the controller has stopped ({why}); restart switchyard"),
            None => {
                let table = self.control.table().load();
                match crate::health::readiness(&table, &self.health, self.shutdown.is_cancelled()) {
                    Ok(()) => return text(StatusCode::OK, "ready\n"),
                    Err(why) => why.to_string(),
                }
            }
        };
        let mut r = text(StatusCode::SERVICE_UNAVAILABLE, "");
        *r.body_mut() = Full::new(Bytes::from(format!("not ready: {why}\n")));
        r
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let Some(t) = &self.telemetry else {
            return json_response(
                StatusCode::NOT_FOUND,
                &ErrorBody::not_found("metrics are off ([admin] metrics = false)"),
            );
        };
        self.rollouts.touch_metrics();
        let table = self.control.table().load();
        let connections = self.connections.load(std::sync::atomic::Ordering::Relaxed);
        let mut r = Response::new(Full::new(Bytes::from(t.render(
            &table,
            connections,
            &crate::tls::handshake_failures(),
        ))));
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            http::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        );
        r
    }

    fn authorized(&self, req: &Request<Incoming>) -> bool {
        let Some(token) = &self.token else {
            return true;
        };
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| guard::bearer(v.as_bytes()))
            .unwrap_or(b"");
        constant_time_eq(given, token.as_bytes())
    }
}

/// The answer to a request the guard refused.
fn refused(refusal: guard::Refusal, path: &str) -> Response<Full<Bytes>> {
    let body = refusal.answer();
    tracing::info!(path, code = %body.error, "admin request refused");
    let status = StatusCode::from_u16(body.error.status()).unwrap_or(StatusCode::FORBIDDEN);
    closing(json_response(status, &body))
}

/// A refusal answered before the request's body was read: the client must
/// not send another request on this connection, which still holds those
/// unread bytes (a client that reused it saw its next request fail).
pub(crate) fn closing(mut r: Response<Full<Bytes>>) -> Response<Full<Bytes>> {
    r.headers_mut()
        .insert(header::CONNECTION, http::HeaderValue::from_static("close"));
    r
}

/// Compares in time independent of where the inputs differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = (a.len() ^ b.len()) as u8 | u8::from(a.len() != b.len());
    for (i, &x) in a.iter().enumerate() {
        diff |= x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0);
    }
    diff == 0
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secre", b"secret"));
        assert!(!constant_time_eq(b"", b"secret"));
        assert!(!constant_time_eq(b"secretsecret", b"secret"));
    }
}
