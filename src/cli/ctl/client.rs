//! The HTTP side of `switchyard ctl`: one request to the admin API, its
//! answer decoded into the `switchyard::api` type the endpoint answers, or
//! the API's `ErrorBody`.

use std::fmt;

use anyhow::Context;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use serde_json::Value;
use switchyard::api::ErrorBody;

use super::Ctl;

/// A successful (2xx) answer, still as bytes.
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Reply {
    /// The answer as the endpoint's type.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_slice(&self.body).map_err(|e| Failure::Unexpected {
            status: self.status.as_u16(),
            why: e.to_string(),
        })
    }

    /// The answer as the API sent it, pretty-printed (`--json`).
    pub fn pretty(&self) -> String {
        match serde_json::from_slice::<Value>(&self.body) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&self.body).into_owned(),
        }
    }
}

/// Why a call did not give the answer asked for.
#[derive(Debug)]
pub enum Failure {
    /// No answer at all (refused connection, timeout, bad URL).
    Unreachable(anyhow::Error),
    /// The API refused: its status and error body (or the raw text of a
    /// body that is not one).
    Refused {
        status: u16,
        error: Option<ErrorBody>,
        text: String,
    },
    /// A 2xx answer this ctl cannot read (another version of the API?).
    Unexpected { status: u16, why: String },
}

impl Failure {
    /// The API's reason, without the status.
    pub fn detail(&self) -> String {
        match self {
            Failure::Unreachable(e) => format!("{e:#}"),
            Failure::Refused { error: Some(e), .. } => e.detail.clone(),
            Failure::Refused { text, .. } => text.clone(),
            Failure::Unexpected { why, .. } => {
                format!("the answer is not what this ctl understands: {why}")
            }
        }
    }

    /// The HTTP status of an answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::Unreachable(_) => None,
            Failure::Refused { status, .. } | Failure::Unexpected { status, .. } => Some(*status),
        }
    }
}

impl fmt::Display for Failure {
    /// `404 not_found: route "x" not found`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Unreachable(e) => write!(f, "{e:#}"),
            Failure::Refused {
                status,
                error: Some(e),
                ..
            } => write!(f, "{status} {}: {}", e.error, e.detail),
            Failure::Refused { status, text, .. } => write!(f, "{status} error: {text}"),
            Failure::Unexpected { status, .. } => write!(f, "{status} {}", self.detail()),
        }
    }
}

/// Sends one request; a 2xx answer is a `Reply`, anything else a `Failure`.
pub async fn call(
    ctl: &Ctl,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<Reply, Failure> {
    let (status, bytes) = send(ctl, method, path, body)
        .await
        .map_err(Failure::Unreachable)?;
    if status.is_success() {
        return Ok(Reply {
            status,
            body: bytes,
        });
    }
    Err(Failure::Refused {
        status: status.as_u16(),
        error: serde_json::from_slice(&bytes).ok(),
        text: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// `call`, decoded into the endpoint's answer.
pub async fn get<T: DeserializeOwned>(
    ctl: &Ctl,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> Result<T, Failure> {
    call(ctl, method, path, body).await?.decode()
}

async fn send(
    ctl: &Ctl,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let url = format!("{}{path}", ctl.admin.trim_end_matches('/'));
    let mut req = Request::builder().method(method).uri(&url);
    if let Some(t) = &ctl.token {
        req = req.header(http::header::AUTHORIZATION, format!("Bearer {t}"));
    }
    if let Some(g) = ctl.if_match {
        req = req.header(http::header::IF_MATCH, g.to_string());
    }
    let body = match body {
        Some(v) => {
            req = req.header(http::header::CONTENT_TYPE, "application/json");
            Full::new(Bytes::from(v.to_string()))
        }
        None => Full::new(Bytes::new()),
    };
    let req = req.body(body).with_context(|| format!("bad URL {url}"))?;
    let resp = tokio::time::timeout(std::time::Duration::from_secs(30), client.request(req))
        .await
        .context("no answer within 30 s")??;
    let status = resp.status();
    let bytes = resp.into_body().collect().await?.to_bytes();
    Ok((status, bytes))
}
