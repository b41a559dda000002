//! Built-in demo backends: tiny HTTP servers that answer every path with
//! JSON naming their pool, address and version, and `/health` with 200.
//! `switchyard demo` starts several; `switchyard backend` starts one (the
//! load benchmarks use it as a fast backend).
//!
//! Each backend has two knobs so that a demo can show a rollback or a
//! failed verification without editing code: `POST /_fail?rate=0.3`
//! answers that fraction of the requests with `503`, `POST /_slow?ms=400`
//! delays every answer by that long (`rate=0`, `ms=0` undo them). Both
//! leave `/health` alone: the canary stays "healthy" and it is the
//! rollout's judge, watching real answers, that must notice.

use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
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
    let faults = Arc::new(Faults::default());
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
        let (body, faults) = (body.clone(), faults.clone());
        let svc = service_fn(move |req: Request<Incoming>| {
            let (body, faults) = (body.clone(), faults.clone());
            async move { Ok::<_, Infallible>(answer(&req, &body, &faults).await) }
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

/// The faults a backend was told to inject (the `/_fail` and `/_slow` knobs).
#[derive(Debug, Default)]
pub struct Faults {
    /// Answers out of a million that fail.
    fail_ppm: AtomicU32,
    /// Delay before every answer.
    slow_ms: AtomicU64,
    /// Requests counted since the rate was set (picks which ones fail).
    served: AtomicU64,
}

/// The largest delay `/_slow` accepts: a demo, not a way to hold sockets.
pub const MAX_SLOW_MS: u64 = 60_000;

impl Faults {
    /// Does the next request fail? Exactly `rate` of them, spread evenly
    /// (request n fails when floor((n+1)·rate) passes an integer), so a
    /// demo and a test see the rate they set, not a random draw near it.
    pub fn next_fails(&self) -> bool {
        let ppm = u64::from(self.fail_ppm.load(Relaxed));
        if ppm == 0 {
            return false;
        }
        let n = self.served.fetch_add(1, Relaxed);
        (n + 1) * ppm / 1_000_000 > n * ppm / 1_000_000
    }

    pub fn delay(&self) -> Duration {
        Duration::from_millis(self.slow_ms.load(Relaxed))
    }

    /// Applies `POST /_fail?rate=R` or `POST /_slow?ms=N`; answers what the
    /// backend does now, or why the value was refused.
    pub fn set(&self, knob: &str, query: Option<&str>) -> Result<serde_json::Value, String> {
        let arg = |key: &str| {
            query
                .and_then(|q| {
                    q.split('&')
                        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                })
                .ok_or_else(|| format!("{knob} needs ?{key}=VALUE"))
        };
        match knob {
            "/_fail" => {
                let v = arg("rate")?;
                let rate = v
                    .parse::<f64>()
                    .ok()
                    .filter(|r| (0.0..=1.0).contains(r))
                    .ok_or_else(|| format!("rate must be a number from 0 to 1, got {v:?}"))?;
                // In range, so the product fits.
                self.fail_ppm
                    .store((rate * 1_000_000.0).round() as u32, Relaxed);
                self.served.store(0, Relaxed);
            }
            _ => {
                let v = arg("ms")?;
                let ms = v
                    .parse::<u64>()
                    .ok()
                    .filter(|ms| *ms <= MAX_SLOW_MS)
                    .ok_or_else(|| {
                        format!("ms must be a whole number from 0 to {MAX_SLOW_MS}, got {v:?}")
                    })?;
                self.slow_ms.store(ms, Relaxed);
            }
        }
        Ok(self.describe())
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "fail_rate": f64::from(self.fail_ppm.load(Relaxed)) / 1_000_000.0,
            "slow_ms": self.slow_ms.load(Relaxed),
        })
    }
}

async fn answer(req: &Request<Incoming>, body: &Bytes, faults: &Faults) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if path == "/health" {
        return json(StatusCode::OK, Bytes::from_static(b"{\"status\":\"ok\"}\n"));
    }
    if path == "/_fail" || path == "/_slow" {
        return knob(req, faults);
    }
    let delay = faults.delay();
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if faults.next_fails() {
        let v = serde_json::json!({"error": "failure injected by POST /_fail"});
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from(v.to_string() + "\n"),
        );
    }
    let content = if let Some(bucket) = req.headers().get("x-switchyard-bucket") {
        // Show sticky requests what the proxy decided for them.
        let mut v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
        v["bucket"] = serde_json::json!(bucket.to_str().unwrap_or(""));
        Bytes::from(v.to_string() + "\n")
    } else {
        body.clone()
    };
    json(StatusCode::OK, content)
}

/// `POST /_fail?rate=R`, `POST /_slow?ms=N`: POST only, so that a page or
/// a crawler that merely looks cannot turn a backend bad.
fn knob(req: &Request<Incoming>, faults: &Faults) -> Response<Full<Bytes>> {
    let (status, v) = if req.method() != Method::POST {
        let e = format!("POST {}?... to set it", req.uri().path());
        (
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({"error": e}),
        )
    } else {
        match faults.set(req.uri().path(), req.uri().query()) {
            Ok(v) => (StatusCode::OK, v),
            Err(e) => (StatusCode::BAD_REQUEST, serde_json::json!({"error": e})),
        }
    };
    json(status, Bytes::from(v.to_string() + "\n"))
}

fn json(status: StatusCode, content: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(content));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_rate_is_exact_and_spread() {
        let f = Faults::default();
        assert!(!(0..100).any(|_| f.next_fails()));
        f.set("/_fail", Some("rate=0.3")).unwrap();
        let fails: Vec<bool> = (0..100).map(|_| f.next_fails()).collect();
        assert_eq!(fails.iter().filter(|&&x| x).count(), 30);
        // Spread: never more than one failure in a row at 30 %.
        assert!(!fails.windows(2).any(|w| w[0] && w[1]));
        f.set("/_fail", Some("rate=1")).unwrap();
        assert!((0..10).all(|_| f.next_fails()));
        f.set("/_fail", Some("rate=0")).unwrap();
        assert!(!(0..10).any(|_| f.next_fails()));
    }

    #[test]
    fn knobs_refuse_what_they_cannot_mean() {
        let f = Faults::default();
        for (knob, q) in [
            ("/_fail", None),
            ("/_fail", Some("rate=1.5")),
            ("/_fail", Some("rate=-0.1")),
            ("/_fail", Some("rate=x")),
            ("/_slow", Some("ms=60001")),
            ("/_slow", Some("sec=1")),
        ] {
            assert!(f.set(knob, q).is_err(), "{knob} {q:?}");
        }
        let v = f.set("/_slow", Some("x=1&ms=250")).unwrap();
        assert_eq!(v["slow_ms"], 250);
        assert_eq!(f.delay(), Duration::from_millis(250));
        assert_eq!(v["fail_rate"], 0.0);
    }
}
