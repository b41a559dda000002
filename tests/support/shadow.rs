//! Shadow traffic's test parts: a JSON backend whose answers a new version
//! can change in one field (`quotes`), and a mirrored route's config.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// A backend answering `/quote/N` with JSON: `{"item": N, "price":
/// price(N), "generated_at": <a counter>}`; keeps nothing else. Serves
/// HTTP/1.1 only; the counter is the requests served.
pub async fn quotes(price: fn(u64) -> u64) -> (SocketAddr, Arc<AtomicUsize>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    super::accept_each(l, move |stream| {
        let counter = counter.clone();
        async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let item: u64 = req
                    .uri()
                    .path()
                    .rsplit('/')
                    .next()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                let body = format!(
                    "{{\"item\": {item}, \"price\": {}, \"generated_at\": {n}}}",
                    price(item)
                );
                async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
            });
            // A client that leaves mid-answer ends the connection: nothing to report.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    });
    (addr, served)
}

/// The price of the current version.
pub fn price(item: u64) -> u64 {
    10 + item % 7
}

/// The new version: every fourth item discounted to 1.
pub fn discounted(item: u64) -> u64 {
    if item % 4 == 0 {
        1
    } else {
        price(item)
    }
}

/// Pools `blue` and `green` (checks off) and route `r` all to blue with
/// `mirror`, on HTTP/1 engine `engine`.
pub fn mirrored(engine: &str, blue: SocketAddr, green: SocketAddr, mirror: &str) -> String {
    format!(
        "[server]\nhttp1 = \"{engine}\"\nupstream_timeout = \"30s\"\n\
         [pools.blue]\nbackends = [\"{blue}\"]\nhealth = {{ enabled = false }}\n\
         [pools.green]\nbackends = [\"{green}\"]\nhealth = {{ enabled = false }}\n\
         [[routes]]\nname = \"r\"\nsplit = {{ blue = 100 }}\nmirror = {mirror}\n"
    )
}

/// The JSON compare that ignores `generated_at` and hides `x-api-key`.
pub const JSON_MIRROR: &str = "{ pool = \"green\", compare = { body = \"json\", \
     ignore = [\"$.generated_at\"], redact_headers = [\"x-api-key\"] } }";
