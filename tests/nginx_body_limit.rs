//! `max_body_bytes`: a request whose `Content-Length` is over the limit is
//! answered 413 before anything reaches a backend; a body without a length
//! (chunked, or HTTP/2 DATA frames) that grows past it is cut off, so the
//! backend sees an aborted request — never a shorter body that looks
//! complete — and the client gets 413. On each data path.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::Frame;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use support::paths::paths;
use support::*;

/// What a raw backend made of one request's body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// The body ended by its framing (`Content-Length` reached, or the
    /// last chunk), with this many bytes.
    Complete(usize),
    /// The connection ended first, after this many body bytes.
    Aborted(usize),
}

/// A backend that reads requests byte by byte and records how each body
/// ended; it answers 200 to a complete one.
struct RawBackend {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl RawBackend {
    async fn start() -> RawBackend {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = l.accept().await {
                let log = log.clone();
                tokio::spawn(async move {
                    let mut s = BufReader::new(s);
                    while let Some(outcome) = read_request(&mut s).await {
                        let complete = matches!(outcome, Seen::Complete(_));
                        log.lock().unwrap().push(outcome);
                        if !complete {
                            return;
                        }
                        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if s.get_mut().write_all(ok).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RawBackend { addr, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// One request: `None` when the connection closed before a head.
async fn read_request<R: tokio::io::AsyncBufRead + Unpin>(s: &mut R) -> Option<Seen> {
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        if s.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end().to_ascii_lowercase();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if line.starts_with("transfer-encoding:") && line.contains("chunked") {
            chunked = true;
        }
    }
    let mut got = 0;
    if chunked {
        loop {
            let mut size = String::new();
            if s.read_line(&mut size).await.unwrap_or(0) == 0 {
                return Some(Seen::Aborted(got));
            }
            let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
                return Some(Seen::Aborted(got));
            };
            let mut data = vec![0u8; n + 2];
            if s.read_exact(&mut data).await.is_err() {
                return Some(Seen::Aborted(got));
            }
            if n == 0 {
                return Some(Seen::Complete(got));
            }
            got += n;
        }
    }
    let want = length.unwrap_or(0);
    let mut data = vec![0u8; want];
    match s.read_exact(&mut data).await {
        Ok(_) => Some(Seen::Complete(want)),
        Err(_) => Some(Seen::Aborted(0)),
    }
}

fn config(b: &RawBackend, server: &str) -> String {
    format!(
        "[server]\n{server}\nmax_body_bytes = 1024\n[health]\nenabled = false\n\
         [pools.app]\nbackends = [\"{}\"]\nretry = {{ retries = 0 }}\n\n\
         [[routes]]\nname = \"small\"\nsplit = {{ app = 1 }}\n\n\
         [[routes]]\nname = \"uploads\"\npath_prefix = \"/uploads\"\nmax_body_bytes = \"1MiB\"\nsplit = {{ app = 1 }}\n",
        b.addr
    )
}

fn post(url: &str, body: Vec<u8>) -> hyper::Request<http_body_util::Full<Bytes>> {
    hyper::Request::post(url)
        .body(http_body_util::Full::new(Bytes::from(body)))
        .unwrap()
}

#[tokio::test]
async fn content_length_over_the_limit_never_reaches_a_backend() {
    let b = RawBackend::start().await;
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server)).await;
        let before = b.seen().len();
        let a = collect(
            c.request(post(&proxy.url("/"), vec![b'x'; 1025]))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 413, "{via}: {}", a.text());
        assert_eq!(
            a.header("x-switchyard-error"),
            Some("body-too-large"),
            "{via}"
        );
        assert!(a.header("x-request-id").is_some(), "{via}");
        assert_eq!(b.seen().len(), before, "{via}: the backend saw nothing");
        // at the limit, and on a route with a larger one, it passes
        let a = collect(
            c.request(post(&proxy.url("/"), vec![b'x'; 1024]))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 200, "{via}");
        let a = collect(
            c.request(post(&proxy.url("/uploads/f"), vec![b'x'; 100_000]))
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(a.status, 200, "{via}");
        assert_eq!(
            b.seen()[before..],
            [Seen::Complete(1024), Seen::Complete(100_000)],
            "{via}"
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn expect_continue_over_the_limit_is_refused_without_the_body() {
    let b = RawBackend::start().await;
    for (server, _, via) in paths().into_iter().take(2) {
        let proxy = TestProxy::start(&config(&b, server)).await;
        let mut s = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(
            b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = String::new();
        BufReader::new(&mut s).read_line(&mut head).await.unwrap();
        assert!(head.starts_with("HTTP/1.1 413"), "{via}: {head:?}");
        assert!(b.seen().is_empty(), "{via}");
        proxy.stop().await;
    }
}

/// A request body without a length: `chunks` pieces of `size` bytes, a
/// short pause between them.
struct Streamed(tokio::sync::mpsc::Receiver<Bytes>);

fn streamed(chunks: usize, size: usize) -> Streamed {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        for _ in 0..chunks {
            if tx.send(Bytes::from(vec![b'y'; size])).await.is_err() {
                return;
            }
            // Pacing only: the proxy must cut the body off mid-stream,
            // whatever the timing.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    Streamed(rx)
}

impl hyper::body::Body for Streamed {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.get_mut()
            .0
            .poll_recv(cx)
            .map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}

#[tokio::test]
async fn a_streamed_body_past_the_limit_is_aborted_upstream() {
    let b = RawBackend::start().await;
    for (server, _, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server)).await;
        let before = b.seen().len();
        let c: hyper_util::client::legacy::Client<_, _> =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .http2_only(via == "HTTP/2")
                .build_http();
        // 6 × 400 bytes with no length: the limit (1024) is passed mid-way
        let req = hyper::Request::post(proxy.url("/"))
            .body(streamed(6, 400))
            .unwrap();
        let a = match c.request(req).await {
            Ok(resp) => resp.status().as_u16(),
            // The proxy may close the connection before the client has
            // finished sending; then there is no answer to read.
            Err(e) => panic!("{via}: no answer: {e:?}"),
        };
        assert_eq!(a, 413, "{via}");
        eventually(
            Duration::from_secs(5),
            "the backend saw the request end",
            || async { b.seen().len() > before },
        )
        .await;
        let seen = b.seen()[before..].to_vec();
        assert!(
            matches!(seen.as_slice(), [Seen::Aborted(n)] if *n <= 1024),
            "{via}: the backend must see an aborted request, not {seen:?}"
        );
        // under the limit, a streamed body arrives whole
        let req = hyper::Request::post(proxy.url("/"))
            .body(streamed(2, 400))
            .unwrap();
        let resp = c.request(req).await.unwrap();
        assert_eq!(resp.status(), 200, "{via}");
        assert_eq!(b.seen().last(), Some(&Seen::Complete(800)), "{via}");
        proxy.stop().await;
    }
}
