//! `/api/v1`: JSON in, JSON out. Every mutation goes through the
//! controller (`ControlHandle::change`), takes `If-Match: <generation>`, and
//! answers with the new generation and whether the file now holds it.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{header, HeaderMap, Method, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::Admin;
use crate::control::{Applied, Change, ChangeError, ChangeSource};

/// Largest request body the API reads (a larger declared length is
/// refused by the guard before the body is awaited).
use super::guard::MAX_BODY;
/// A body must arrive within this; a client that declares more than it
/// sends gets 408 instead of holding the handler.
const BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// An API failure: status, machine-readable code, human detail.
pub struct ApiError(StatusCode, &'static str, String);

impl ApiError {
    fn bad_request(detail: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, "bad_request", detail.into())
    }
    fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_change",
            detail.into(),
        )
    }
    fn not_found(detail: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, "not_found", detail.into())
    }

    pub fn into_response(self) -> Response<Full<Bytes>> {
        json_response(self.0, &json!({"error": self.1, "detail": self.2}))
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        let detail = e.to_string();
        match e {
            ChangeError::NotFound(_) => ApiError(StatusCode::NOT_FOUND, "not_found", detail),
            ChangeError::Conflict { .. } => {
                ApiError(StatusCode::CONFLICT, "generation_mismatch", detail)
            }
            ChangeError::NothingToRollBack(_) => {
                ApiError(StatusCode::CONFLICT, "nothing_to_roll_back", detail)
            }
            ChangeError::Superseded(_) => ApiError(StatusCode::CONFLICT, "superseded", detail),
            ChangeError::Invalid(_) | ChangeError::Config(_) => {
                ApiError(StatusCode::UNPROCESSABLE_ENTITY, "invalid_change", detail)
            }
            ChangeError::Stopped => {
                ApiError(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", detail)
            }
        }
    }
}

/// Dispatches `/api/v1/...` (auth already checked).
pub async fn handle(
    admin: &Admin,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Full<Bytes>> {
    match route(admin, method, path, query, headers, body).await {
        Ok(resp) => resp,
        Err(e) => e.into_response(),
    }
}

async fn route(
    admin: &Admin,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Incoming,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let segments: Vec<&str> = path.trim_start_matches("/api/v1/").split('/').collect();
    let if_match = if_match(headers)?;
    let change = |c: Change| async move {
        let applied = admin.control.change(ChangeSource::Api, if_match, c).await?;
        Ok::<_, ApiError>(applied_response(&applied))
    };
    match (method, segments.as_slice()) {
        (&Method::GET, ["status"]) => {
            let status = super::status::status(admin);
            let mut r = json_response(StatusCode::OK, &status);
            set_etag(&mut r, status["generation"].as_u64().unwrap_or(0));
            Ok(r)
        }
        (&Method::GET, ["history"]) => {
            let limit = query
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("limit=")))
                .map(|v| {
                    v.parse::<usize>()
                        .map_err(|_| ApiError::bad_request("limit must be a whole number"))
                })
                .transpose()?
                .unwrap_or(100);
            let events = admin.control.history(limit).await;
            Ok(json_response(StatusCode::OK, &json!({ "events": events })))
        }
        (&Method::POST, ["reload"]) => change(Change::Reload).await,
        (&Method::PUT, ["routes", route, "split"]) => {
            let v = read_json(body).await?;
            let split = parse_split(&v)?;
            change(Change::SetSplit {
                route: (*route).to_owned(),
                split,
            })
            .await
        }
        (&Method::POST, ["routes", route, "flip"]) => {
            let v = read_json(body).await?;
            let to = v
                .get("to")
                .and_then(Value::as_str)
                .ok_or_else(|| ApiError::unprocessable("expected {\"to\": \"POOL\"}"))?;
            let verify = match v.get("verify") {
                None | Some(Value::Null) => None,
                Some(spec) => Some(verify_spec(admin, route, spec)?),
            };
            let (applied, verification) = admin
                .rollouts
                .flip(route, to, if_match, verify)
                .await
                .map_err(|e| match e {
                    crate::rollout::FlipError::Change(c) => ApiError::from(c),
                    e => ApiError::unprocessable(e.to_string()),
                })?;
            let mut r = applied_response(&applied);
            if let Some(status) = verification {
                let mut body = serde_json::to_value(&applied).unwrap_or_default();
                body["verification"] = serde_json::to_value(status).unwrap_or_default();
                r = json_response(StatusCode::OK, &body);
                set_etag(&mut r, applied.generation);
            }
            Ok(r)
        }
        (&Method::GET, ["routes", route, "flip"]) => {
            let status = admin.rollouts.flip_status(route).ok_or_else(|| {
                ApiError::not_found(format!("no verified flip of route {route:?} has run"))
            })?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(status).unwrap_or_default(),
            ))
        }
        (&Method::POST, ["routes", route, "rollback"]) => {
            change(Change::Rollback {
                route: (*route).to_owned(),
            })
            .await
        }
        (&Method::POST, ["backends", pool, addr, action @ ("drain" | "undrain")]) => {
            let addr: SocketAddr = addr
                .parse()
                .map_err(|_| ApiError::not_found(format!("backend {addr:?} (expected IP:port)")))?;
            let drain = *action == "drain";
            change(Change::Drain {
                pool: (*pool).to_owned(),
                addr,
                drain,
            })
            .await
        }
        (&Method::POST, ["backends", pool, addr, "probe"]) => {
            let not_found = || ApiError::not_found(format!("backend {addr} in pool {pool:?}"));
            let addr: SocketAddr = addr.parse().map_err(|_| not_found())?;
            // Cloned out of the table: the probe awaits, and a table must
            // not be held across an await.
            let (pool, backend) = {
                let table = admin.control.table().load();
                let p = table
                    .pool(pool.as_bytes())
                    .ok_or_else(|| ApiError::not_found(format!("pool {pool:?}")))?;
                let b = p.backends.iter().find(|b| b.addr == addr);
                (p.clone(), b.cloned().ok_or_else(not_found)?)
            };
            let answer = super::probe::probe(&pool, &backend).await;
            Ok(json_response(StatusCode::OK, &answer))
        }
        (&Method::GET, ["routes", route, "rollout"]) => {
            let status = admin.rollouts.status(route).ok_or_else(|| {
                ApiError::not_found(format!("no rollout of route {route:?} has run"))
            })?;
            Ok(json_response(
                StatusCode::OK,
                &serde_json::to_value(status).unwrap_or_default(),
            ))
        }
        (&Method::POST, ["routes", route, "rollout", action]) => {
            use crate::rollout::Command as C;
            let cmd = match *action {
                "start" => None,
                "pause" => Some(C::Pause),
                "resume" => Some(C::Resume),
                "promote" => Some(C::Promote),
                "abort" => Some(C::Abort),
                _ => return Err(ApiError::not_found(format!("no admin endpoint {path}"))),
            };
            let status = match cmd {
                None => admin
                    .rollouts
                    .start(route)
                    .map(|_| admin.rollouts.status(route)),
                // Answered once the engine acted: `abort` shows the rollback.
                Some(c) => admin.rollouts.command_acted(route, c).await,
            };
            let status = status.map_err(rollout_error)?;
            let body = json!({"accepted": action, "rollout": status});
            Ok(json_response(StatusCode::ACCEPTED, &body))
        }
        (_, ["status"] | ["history"] | ["reload"])
        | (_, ["routes", _, "rollout"])
        | (_, ["routes", _, "rollout", "start" | "pause" | "resume" | "promote" | "abort"])
        | (_, ["routes", _, "split" | "flip" | "rollback"])
        | (_, ["backends", _, _, "drain" | "undrain" | "probe"]) => Err(ApiError(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}"),
        )),
        _ => Err(ApiError::not_found(format!("no admin endpoint {path}"))),
    }
}

/// `"verify": {"window": "30s", "max_error_rate": 0.01, "max_p99_latency":
/// "500ms", "min_requests": 50, "on_insufficient_traffic": "keep"}`; every
/// key but `window` may be left out (see `VerifySpec::defaults`), and
/// `"verify": "30s"` is short for a window with the defaults.
fn verify_spec(
    admin: &Admin,
    route: &str,
    v: &Value,
) -> Result<crate::rollout::VerifySpec, ApiError> {
    let duration = |key: &str, v: &Value| {
        v.as_str()
            .and_then(|s| humantime::parse_duration(s).ok())
            .ok_or_else(|| {
                ApiError::unprocessable(format!(
                    "verify.{key} must be a duration like \"30s\", got {v}"
                ))
            })
    };
    let (window, obj) = match v {
        Value::String(_) => (duration("window", v)?, serde_json::Map::new()),
        Value::Object(o) => {
            let w = o.get("window").ok_or_else(|| {
                ApiError::unprocessable("verify needs a window, e.g. {\"window\": \"30s\"}")
            })?;
            (duration("window", w)?, o.clone())
        }
        _ => {
            return Err(ApiError::unprocessable(
                "verify must be an object like {\"window\": \"30s\", \"max_error_rate\": 0.01}",
            ))
        }
    };
    let table = admin.control.table().load();
    let mut spec = crate::rollout::VerifySpec::defaults(&table, route, window);
    for (key, val) in &obj {
        match key.as_str() {
            "window" => {}
            "min_requests" => {
                spec.min_requests = val.as_u64().filter(|&n| n > 0).ok_or_else(|| {
                    ApiError::unprocessable("verify.min_requests must be a whole number ≥ 1")
                })?
            }
            "max_error_rate" => {
                spec.max_error_rate = val
                    .as_f64()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| {
                        ApiError::unprocessable("verify.max_error_rate must be between 0 and 1")
                    })?
            }
            "max_p99_latency" => spec.max_p99_latency = duration(key, val)?,
            "on_insufficient_traffic" => {
                spec.revert_if_insufficient = match val.as_str() {
                    Some("keep") => false,
                    Some("revert") => true,
                    _ => {
                        return Err(ApiError::unprocessable(
                            "verify.on_insufficient_traffic must be \"keep\" or \"revert\"",
                        ))
                    }
                }
            }
            other => {
                return Err(ApiError::unprocessable(format!(
                    "unknown key verify.{other} (window, min_requests, max_error_rate, max_p99_latency, on_insufficient_traffic)"
                )))
            }
        }
    }
    Ok(spec)
}

fn rollout_error(e: crate::rollout::RolloutError) -> ApiError {
    use crate::rollout::RolloutError as E;
    let detail = e.to_string();
    match e {
        E::NoRoute(_) => ApiError::not_found(detail),
        E::NotConfigured(_) => ApiError::unprocessable(detail),
        E::Running(_) => ApiError(StatusCode::CONFLICT, "rollout_running", detail),
        E::NotRunning(_) => ApiError(StatusCode::CONFLICT, "no_rollout_running", detail),
        E::CanaryAhead { .. } => ApiError(StatusCode::CONFLICT, "canary_ahead", detail),
    }
}

/// `If-Match: 7`, `"7"` or `W/"7"`.
fn if_match(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("").trim();
    let s = s.strip_prefix("W/").unwrap_or(s).trim_matches('"');
    s.parse().map(Some).map_err(|_| {
        ApiError::bad_request(format!("If-Match must be a generation number, got {s:?}"))
    })
}

async fn read_json(body: Incoming) -> Result<Value, ApiError> {
    let read = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, MAX_BODY).collect());
    let Ok(read) = read.await else {
        return Err(ApiError(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!("the request body did not arrive within {BODY_TIMEOUT:?}"),
        ));
    };
    let bytes = match read {
        Ok(b) => b.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => {
            return Err(ApiError(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                format!("request bodies are limited to {MAX_BODY} bytes"),
            ))
        }
        Err(e) => return Err(ApiError::bad_request(format!("cannot read the body: {e}"))),
    };
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("body is not JSON: {e}")))
}

/// `{"blue": 75, "canary": 25}` in the order written.
fn parse_split(v: &Value) -> Result<Vec<(String, u32)>, ApiError> {
    let obj = v.as_object().filter(|o| !o.is_empty()).ok_or_else(|| {
        ApiError::unprocessable(
            "expected an object of pool weights, e.g. {\"blue\": 75, \"canary\": 25}",
        )
    })?;
    obj.iter()
        .map(|(k, w)| {
            w.as_u64()
                .and_then(|w| u32::try_from(w).ok())
                .map(|w| (k.clone(), w))
                .ok_or_else(|| {
                    ApiError::unprocessable(format!(
                        "weight of {k:?} must be a whole number ≥ 0, got {w}"
                    ))
                })
        })
        .collect()
}

fn applied_response(a: &Applied) -> Response<Full<Bytes>> {
    let mut r = json_response(StatusCode::OK, &serde_json::to_value(a).unwrap_or_default());
    set_etag(&mut r, a.generation);
    r
}

fn set_etag(r: &mut Response<Full<Bytes>>, generation: u64) {
    if let Ok(v) = http::HeaderValue::from_str(&format!("\"{generation}\"")) {
        r.headers_mut().insert(header::ETAG, v);
    }
}

pub fn json_response(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}
