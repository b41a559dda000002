//! One sink's delivery task: takes the sink's queue in order and posts each
//! notification, retrying with exponential backoff, then counts the
//! outcome. An attempt is one fresh connection (TCP, TLS for `https://`
//! through the project's rustls client, `tls::UpstreamTls`), one HTTP/1.1
//! POST and its response head, all within the sink's `timeout`; nothing is
//! pooled, since events come minutes apart and a dead receiver must not
//! leave a half-open connection behind.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, RETRY_AFTER, USER_AGENT};
use http::Request;
use http_body_util::Full;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::config::{NotifyConfig, PoolTls};
use crate::event::Action;
use crate::telemetry::Telemetry;
use crate::tls::UpstreamTls;

/// `User-Agent` of every notification.
const AGENT: &str = concat!("switchyard/", env!("CARGO_PKG_VERSION"));

/// No wait between retries is longer, whatever `Retry-After` asks.
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// One event, ready to post; shared by every sink that wants it.
#[derive(Debug)]
pub(super) struct Delivery {
    /// Sent as `X-Switchyard-Delivery` and `delivery`; the same on retries.
    pub id: String,
    /// Sent as `X-Switchyard-Event`.
    pub action: Action,
    pub body: Bytes,
}

/// Where and how one sink's notifications go.
pub(super) struct Target {
    pub config: NotifyConfig,
    /// The TLS client of an `https://` sink.
    tls: Option<UpstreamTls>,
    telemetry: Option<Arc<Telemetry>>,
}

impl Target {
    pub fn new(config: NotifyConfig, telemetry: Option<Arc<Telemetry>>) -> Self {
        let tls = config.url.https.then(|| {
            let settings = PoolTls {
                ca: config.ca.clone(),
                // An IP address is verified against the certificate's IP
                // SANs (`UpstreamTls` uses the connected address).
                server_name: config
                    .url
                    .host
                    .parse::<std::net::IpAddr>()
                    .is_err()
                    .then(|| config.url.host.clone()),
                insecure_skip_verify: false,
            };
            UpstreamTls::new(&format!("notify {}", config.url.authority), &settings)
        });
        Target {
            config,
            tls,
            telemetry,
        }
    }
}

/// Why an attempt failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum AttemptError {
    #[error("cannot connect: {0}")]
    Connect(#[source] io::Error),
    #[error("TLS handshake failed: {0}")]
    Tls(#[source] io::Error),
    #[error("HTTP exchange failed: {0}")]
    Http(#[source] hyper::Error),
    #[error("the receiver closed the connection without answering")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the receiver answered {status}")]
    Status {
        status: u16,
        /// `Retry-After` in seconds, on any answer that had one.
        retry_after: Option<Duration>,
    },
    #[error("cannot build the request: {0}")]
    Request(#[source] http::Error),
}

impl AttemptError {
    /// A refusal that a retry would get again: 3xx (redirects are not
    /// followed) and 4xx other than 408 and 429.
    pub fn is_permanent(&self) -> bool {
        match self {
            AttemptError::Status { status, .. } => {
                (300..500).contains(status) && *status != 408 && *status != 429
            }
            AttemptError::Request(_) => true,
            _ => false,
        }
    }
}

/// Delivers the queue in order until the notifier drops the sender (a
/// reload removed or changed the sink, or the controller stopped): what was
/// queued by then is still delivered.
pub(super) async fn run(target: Target, mut rx: mpsc::Receiver<Arc<Delivery>>) {
    while let Some(d) = rx.recv().await {
        let result = deliver(&target, &d).await;
        if let Some(t) = &target.telemetry {
            t.count_notification(&target.config.url.authority, result);
        }
    }
    tracing::debug!(notify.sink = %target.config.url.authority, "webhook sink stopped");
}

/// Posts `d` until it is accepted, refused for good, or out of retries:
/// `delivered` or `failed`.
async fn deliver(t: &Target, d: &Delivery) -> &'static str {
    let sink = &t.config.url.authority;
    let mut retry = 0;
    loop {
        let error = match attempt(t, d).await {
            Ok(()) => {
                tracing::debug!(notify.sink = %sink, notify.action = %d.action,
                    notify.delivery = %d.id, retries = retry, "notification delivered");
                return "delivered";
            }
            Err(e) => e,
        };
        if error.is_permanent() || retry >= t.config.retries {
            tracing::warn!(notify.sink = %sink, notify.action = %d.action,
                notify.delivery = %d.id, attempts = retry + 1, error = %error,
                "notification failed; giving up");
            return "failed";
        }
        retry += 1;
        let retry_after = match &error {
            AttemptError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        let wait = backoff(t.config.backoff, retry, retry_after);
        // Up to a quarter more, so sinks that failed together do not
        // retry together.
        let wait = wait + wait.mul_f64(fastrand::f64() / 4.0);
        tracing::debug!(notify.sink = %sink, notify.action = %d.action,
            notify.delivery = %d.id, error = %error, retry, wait_ms = wait.as_millis() as u64,
            "notification not delivered; retrying");
        tokio::time::sleep(wait).await;
    }
}

/// The wait before retry `n` (1-based): `base` doubled for each earlier
/// retry, at least a `Retry-After`, at most `MAX_BACKOFF`.
pub(super) fn backoff(base: Duration, n: u32, retry_after: Option<Duration>) -> Duration {
    let doubled = base.saturating_mul(1u32 << n.saturating_sub(1).min(20));
    doubled
        .max(retry_after.unwrap_or_default())
        .min(MAX_BACKOFF)
}

/// One attempt within the sink's timeout.
async fn attempt(t: &Target, d: &Delivery) -> Result<(), AttemptError> {
    let timeout = t.config.timeout;
    let deadline = Instant::now() + timeout;
    match tokio::time::timeout_at(deadline, connect_and_post(t, d, deadline)).await {
        Ok(done) => done,
        Err(_) => Err(AttemptError::Timeout(timeout)),
    }
}

async fn connect_and_post(t: &Target, d: &Delivery, deadline: Instant) -> Result<(), AttemptError> {
    let url = &t.config.url;
    let stream = TcpStream::connect((url.host.as_str(), url.port))
        .await
        .map_err(AttemptError::Connect)?;
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(notify.sink = %url.authority, error = %e, "TCP_NODELAY failed");
    }
    let Some(tls) = &t.tls else {
        return post(TokioIo::new(stream), t, d).await;
    };
    let addr: SocketAddr = stream.peer_addr().map_err(AttemptError::Connect)?;
    let stream = tls
        .connect(addr, stream, deadline)
        .await
        .map_err(AttemptError::Tls)?;
    post(TokioIo::new(stream), t, d).await
}

/// The POST over a plain or TLS stream; the connection is driven here, not
/// by a task, so it closes when the attempt ends or times out.
async fn post<I>(io: I, t: &Target, d: &Delivery) -> Result<(), AttemptError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let req = request(&t.config, d).map_err(AttemptError::Request)?;
    let (mut tx, conn) = http1::handshake(io).await.map_err(AttemptError::Http)?;
    tokio::pin!(conn);
    let resp = tokio::select! {
        r = tx.send_request(req) => r.map_err(AttemptError::Http)?,
        r = &mut conn => return Err(r.err().map_or(AttemptError::Closed, AttemptError::Http)),
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = resp
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    Err(AttemptError::Status {
        status: status.as_u16(),
        retry_after,
    })
}

fn request(config: &NotifyConfig, d: &Delivery) -> Result<Request<Full<Bytes>>, http::Error> {
    let url = &config.url;
    let mut req = Request::post(url.path.as_str())
        .header(HOST, url.authority.as_str())
        .header(CONTENT_TYPE, "application/json")
        .header(USER_AGENT, AGENT)
        .header("x-switchyard-event", d.action.as_str())
        .header("x-switchyard-delivery", d.id.as_str())
        .body(Full::new(d.body.clone()))?;
    // The operator's headers win (a receiver may want its own User-Agent).
    for (name, value) in &config.headers.0 {
        req.headers_mut().insert(name.clone(), value.clone());
    }
    Ok(req)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_honours_retry_after_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(backoff(s(1), 1, None), s(1));
        assert_eq!(backoff(s(1), 2, None), s(2));
        assert_eq!(backoff(s(1), 4, None), s(8));
        assert_eq!(backoff(s(1), 1, Some(s(10))), s(10));
        assert_eq!(backoff(s(1), 30, None), MAX_BACKOFF);
        assert_eq!(backoff(s(1), 1, Some(s(3600))), MAX_BACKOFF);
    }

    #[test]
    fn only_refusals_a_retry_would_get_again_are_permanent() {
        let status = |status| AttemptError::Status {
            status,
            retry_after: None,
        };
        for s in [301, 400, 401, 404, 422] {
            assert!(status(s).is_permanent(), "{s}");
        }
        for s in [408, 429, 500, 502, 503] {
            assert!(!status(s).is_permanent(), "{s}");
        }
        assert!(!AttemptError::Timeout(Duration::from_secs(1)).is_permanent());
        assert!(!AttemptError::Closed.is_permanent());
    }
}
