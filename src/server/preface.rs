//! The HTTP/2 connection preface (RFC 9113 §3.4, issue 18 item 11). A
//! connection that must speak HTTP/2 — TLS with ALPN `h2`, or a plain one
//! whose first line is `PRI * HTTP/2.0` — and does not send the exact
//! preface gets the server's (empty) SETTINGS and a GOAWAY with
//! PROTOCOL_ERROR, then is closed, as nginx does; it is never served as
//! HTTP/1.1 nor answered with an HTTP/1.1 400.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

/// The client connection preface.
pub(crate) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The request line a plain connection announces HTTP/2 with.
const PRI_LINE: usize = b"PRI * HTTP/2.0".len();

/// An empty SETTINGS frame (the server preface), then GOAWAY(last stream
/// 0, PROTOCOL_ERROR): 9-byte frame headers, length, type, flags, stream 0.
const REFUSAL: [u8; 26] = [
    0, 0, 0, 0x4, 0, 0, 0, 0, 0, // SETTINGS, empty
    0, 0, 8, 0x7, 0, 0, 0, 0, 0, // GOAWAY, 8 bytes
    0, 0, 0, 0, // last stream id
    0, 0, 0, 1, // PROTOCOL_ERROR
];

/// What the first bytes of a connection said.
pub(crate) enum Opening {
    /// Not HTTP/2: serve as HTTP/1 (the bytes read go first).
    Http1(Vec<u8>),
    /// The whole preface (read, to go first).
    Http2(Vec<u8>),
    /// Refused with GOAWAY, or closed or silent: nothing to serve.
    Done,
}

/// Reads the first bytes of `io` until they decide. `h2_only` (ALPN h2):
/// anything but the preface is refused; else bytes that do not begin with
/// `PRI * HTTP/2.0` are HTTP/1, and a broken preface after that line is
/// refused. `within` bounds the wait (the header timeout); `shutdown`
/// ends it (the worker's graceful shutdown must not wait for a silent one).
pub(crate) async fn read<S: AsyncRead + AsyncWrite + Unpin>(
    io: &mut S,
    h2_only: bool,
    within: Duration,
    shutdown: &CancellationToken,
) -> Opening {
    let mut got = Vec::with_capacity(PREFACE.len());
    let read = async {
        loop {
            let mut buf = [0u8; 24];
            let want = PREFACE.len().saturating_sub(got.len()).max(1);
            let n = match io.read(&mut buf[..want]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => n,
            };
            got.extend_from_slice(&buf[..n]);
            let agreed = got
                .iter()
                .zip(PREFACE.iter())
                .take_while(|(a, b)| a == b)
                .count();
            if agreed == PREFACE.len() {
                return Some(true);
            }
            if agreed < got.len().min(PREFACE.len()) {
                // A byte differs.
                return Some(false);
            }
        }
    };
    let verdict = tokio::select! {
        biased;
        _ = shutdown.cancelled() => None,
        v = tokio::time::timeout(within, read) => v.ok().flatten(),
    };
    let agreed = got
        .iter()
        .zip(PREFACE.iter())
        .take_while(|(a, b)| a == b)
        .count();
    match verdict {
        Some(true) => Opening::Http2(got),
        Some(false) if !h2_only && agreed < PRI_LINE => Opening::Http1(got),
        Some(false) => {
            refuse(io).await;
            Opening::Done
        }
        None => Opening::Done,
    }
}

/// Writes SETTINGS + GOAWAY(PROTOCOL_ERROR) and closes.
pub(crate) async fn refuse<S: AsyncWrite + Unpin>(io: &mut S) {
    // Best effort: the connection is closed either way.
    if io.write_all(&REFUSAL).await.is_ok() {
        let _ = io.shutdown().await;
    }
    tracing::debug!("HTTP/2 connection without its preface: GOAWAY");
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn open(bytes: &[u8], h2_only: bool) -> (&'static str, Vec<u8>) {
        let (mut client, mut server) = tokio::io::duplex(256);
        client.write_all(bytes).await.unwrap();
        let never = CancellationToken::new();
        let opening = read(&mut server, h2_only, Duration::from_millis(200), &never).await;
        drop(server);
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).await.unwrap();
        match opening {
            Opening::Http1(g) => {
                assert!(bytes.starts_with(&g));
                ("http1", answer)
            }
            Opening::Http2(g) => {
                assert_eq!(g, PREFACE);
                ("http2", answer)
            }
            Opening::Done => ("done", answer),
        }
    }

    #[tokio::test]
    async fn the_first_bytes_decide() {
        assert_eq!(open(PREFACE, false).await, ("http2", vec![]));
        assert_eq!(open(PREFACE, true).await, ("http2", vec![]));
        assert_eq!(open(b"GET / HTTP/1.1\r\n", false).await, ("http1", vec![]));
        let goaway = REFUSAL.to_vec();
        assert_eq!(
            open(b"GET / HTTP/1.1\r\n", true).await,
            ("done", goaway.clone())
        );
        let broken = b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n";
        assert_eq!(open(broken, false).await, ("done", goaway.clone()));
        // "PRI /x" is an HTTP/1 request line (routed, or refused, as one).
        assert_eq!(open(b"PRI /x HTTP/1.1\r\n", false).await.0, "http1");
        // A client that goes quiet mid-preface is closed without a word.
        assert_eq!(open(b"PRI * HTTP/2.0\r\n", false).await, ("done", vec![]));
    }
}
