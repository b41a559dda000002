//! The plumbing of `/api/v1` answers: `ApiError` (an `api::ErrorBody` and
//! its status) and the mapping of every library error to it, JSON
//! responses, `ETag` and `If-Match`, the body limit.

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use crate::api::{ErrorBody, ErrorCode};
use crate::control::ChangeError;
use crate::rollout::{FlipError, RolloutError};

/// Largest request body the API reads (a larger declared length is
/// refused by the guard before the body is awaited).
use crate::admin::guard::MAX_BODY;
/// A body must arrive within this; a client that declares more than it
/// sends gets 408 instead of holding the handler.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A refused request: answered as its `ErrorBody` with the code's status.
#[derive(Debug)]
pub struct ApiError(pub ErrorBody);

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError(ErrorBody::new(code, detail))
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        let status = StatusCode::from_u16(self.0.error.status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        json_response(status, &self.0)
    }
}

impl From<ErrorBody> for ApiError {
    fn from(e: ErrorBody) -> Self {
        ApiError(e)
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        let code = match e {
            ChangeError::NotFound(_) => ErrorCode::NotFound,
            ChangeError::Conflict { .. } => ErrorCode::GenerationMismatch,
            ChangeError::NothingToRollBack(_) => ErrorCode::NothingToRollBack,
            ChangeError::Superseded(_) => ErrorCode::Superseded,
            ChangeError::Invalid(_) | ChangeError::Config(_) => ErrorCode::InvalidChange,
            ChangeError::Stopped => ErrorCode::ShuttingDown,
            ChangeError::Unavailable(_) => ErrorCode::ClusterUnavailable,
            ChangeError::NotLeader => ErrorCode::NotLeader,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<RolloutError> for ApiError {
    fn from(e: RolloutError) -> Self {
        let code = match e {
            RolloutError::NoRoute(_) => ErrorCode::NotFound,
            RolloutError::NotConfigured(_) => ErrorCode::InvalidChange,
            RolloutError::Running(_) => ErrorCode::RolloutRunning,
            RolloutError::NotRunning(_) => ErrorCode::NoRolloutRunning,
            RolloutError::CanaryAhead { .. } => ErrorCode::CanaryAhead,
            RolloutError::NotLeader(_) => ErrorCode::NotLeader,
        };
        ApiError::new(code, e.to_string())
    }
}

impl From<FlipError> for ApiError {
    fn from(e: FlipError) -> Self {
        match e {
            FlipError::Change(c) => c.into(),
            e => ApiError::new(ErrorCode::InvalidChange, e.to_string()),
        }
    }
}

/// `If-Match: 7`, `"7"` or `W/"7"`.
pub fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse().map(Some).map_err(|_| {
        ErrorBody::bad_request(format!("If-Match must be a generation number, got {s:?}")).into()
    })
}

/// The body as JSON: 413 past `MAX_BODY`, 408 after `BODY_TIMEOUT`, 400
/// when it is not JSON.
pub async fn read_json(body: Incoming) -> Result<Value, ApiError> {
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    let Ok(read) = read.await else {
        return Err(ApiError::new(
            ErrorCode::BodyTimeout,
            format!("the request body did not arrive within {BODY_TIMEOUT:?}"),
        ));
    };
    let bytes = match read {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError::new(
                ErrorCode::BodyTooLarge,
                format!("request bodies are limited to {MAX_BODY} bytes"),
            ))
        }
        Err(e) => return Err(ErrorBody::bad_request(format!("cannot read the body: {e}")).into()),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| ErrorBody::bad_request(format!("body is not JSON: {e}")).into())
}

/// A JSON body as the request type `T` (422 with what is wrong and
/// `example` when it is not one).
pub fn decode<T: DeserializeOwned>(v: Value, example: &str) -> Result<T, ApiError> {
    T::deserialize(v).map_err(|e| ErrorBody::invalid(format!("{e}; {example}")).into())
}

/// `v` as JSON with the generation it describes as its `ETag`.
pub fn tagged<T: Serialize>(v: &T, generation: u64) -> Response<Full<Bytes>> {
    let mut r = json_response(StatusCode::OK, v);
    if let Ok(tag) = HeaderValue::from_str(&format!("\"{generation}\"")) {
        r.headers_mut().insert(header::ETAG, tag);
    }
    r
}

pub fn json_response<T: Serialize>(status: StatusCode, v: &T) -> Response<Full<Bytes>> {
    // The API's types are strings, numbers, options and lists of them:
    // they always serialize.
    let body = serde_json::to_vec(v).unwrap_or_default();
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}
