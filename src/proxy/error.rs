//! Proxy errors and the one place that turns them into HTTP answers.

use std::sync::Arc;

use http::{header, HeaderValue, Response, StatusCode};

use super::body::ProxyBody;
use super::headers::{X_REQUEST_ID, X_SWITCHYARD_ERROR};
use super::upstream::UpstreamError;

/// Where a failure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Downstream,
    Upstream,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no route matches this request")]
    NoRoute,
    #[error("method not supported by a reverse proxy")]
    MethodNotAllowed,
    #[error("no available backend in pool {pool}")]
    NoBackend { pool: Arc<str> },
    #[error("the route has no pool with weight")]
    NoPool,
    #[error("no available backend in pool {pool}, nor in the other pools of route {route}")]
    NoServablePool { pool: Arc<str>, route: Arc<str> },
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("backend did not send response headers within {0:?}")]
    Timeout(std::time::Duration),
    /// The route's `rate_limit` refused the request; a token is back
    /// after `retry_after` seconds.
    #[error("rate limit of the route exceeded; retry after {retry_after} s")]
    RateLimited { retry_after: u64 },
    #[error("request refused: {0}")]
    Refused(#[from] super::rules::Refusal),
    #[error("the backend switched protocols although no upgrade was passed on")]
    UnaskedUpgrade,
}

impl ProxyError {
    /// Which side failed: a downstream failure (the client's request or
    /// body) is logged at debug, is not held against the backend and is
    /// never retried. Whether an upstream failure may be retried is not
    /// the error's to say: it depends on what was sent, which the send
    /// answers with the error (`upstream::SendError::unsent`: the request
    /// handed back untouched) and on whether a replay copy exists — see
    /// `retry`.
    pub fn source_side(&self) -> Source {
        match self {
            ProxyError::NoRoute
            | ProxyError::MethodNotAllowed
            | ProxyError::RateLimited { .. }
            | ProxyError::Refused(_) => Source::Downstream,
            ProxyError::Upstream(
                UpstreamError::ClientBody { .. } | UpstreamError::BodyTooLarge { .. },
            ) => Source::Downstream,
            ProxyError::Upstream(_) | ProxyError::Timeout(_) | ProxyError::UnaskedUpgrade => {
                Source::Upstream
            }
            ProxyError::NoBackend { .. }
            | ProxyError::NoPool
            | ProxyError::NoServablePool { .. } => Source::Internal,
        }
    }

    /// Status code and the `X-Switchyard-Error` reason.
    pub fn status(&self) -> (StatusCode, &'static str) {
        match self {
            ProxyError::NoRoute => (StatusCode::NOT_FOUND, "no-route"),
            ProxyError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed"),
            ProxyError::NoBackend { .. } | ProxyError::NoServablePool { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "no-healthy-backend")
            }
            ProxyError::NoPool => (StatusCode::SERVICE_UNAVAILABLE, "no-pool"),
            ProxyError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "upstream-timeout"),
            ProxyError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate-limited"),
            ProxyError::Refused(r) => (r.status(), r.reason()),
            ProxyError::UnaskedUpgrade => (StatusCode::BAD_GATEWAY, "upstream-upgrade"),
            ProxyError::Upstream(e) => match e {
                UpstreamError::Connect { .. } | UpstreamError::Handshake { .. } => {
                    (StatusCode::BAD_GATEWAY, "upstream-connect")
                }
                UpstreamError::ConnectTimeout { .. } => {
                    (StatusCode::BAD_GATEWAY, "upstream-connect-timeout")
                }
                UpstreamError::Tls { .. } => (StatusCode::BAD_GATEWAY, "upstream-tls"),
                UpstreamError::Reset { .. } | UpstreamError::Io { .. } => {
                    (StatusCode::BAD_GATEWAY, "upstream-reset")
                }
                UpstreamError::Invalid { .. } => (StatusCode::BAD_GATEWAY, "upstream-invalid"),
                UpstreamError::ClientBody { .. } => (StatusCode::BAD_REQUEST, "client-body"),
                UpstreamError::BodyTooLarge { .. } => {
                    (StatusCode::PAYLOAD_TOO_LARGE, "body-too-large")
                }
            },
        }
    }
}

/// The answer for a failed request: status, a one-line plain-text body and
/// `X-Switchyard-Error`.
pub fn error_response(err: &ProxyError, request_id: Option<&HeaderValue>) -> Response<ProxyBody> {
    let (status, reason) = err.status();
    let body = error_body(status, err);
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(&X_SWITCHYARD_ERROR, HeaderValue::from_static(reason));
    if let Some(id) = request_id {
        h.insert(&X_REQUEST_ID, id.clone());
    }
    if let ProxyError::RateLimited { retry_after } = err {
        h.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
    }
    if matches!(err, ProxyError::Refused(_)) {
        // Refused before its body was read, and maybe for its framing:
        // nothing more is read from this connection.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// The one-line body of an error answer.
pub(crate) fn error_body(status: StatusCode, err: &dyn std::fmt::Display) -> String {
    format!(
        "{} {}: {err}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    )
}
