//! Issue 18, item 11 over real sockets: a connection that must speak
//! HTTP/2 and does not send the connection preface (RFC 9113 §3.4) — TLS
//! with ALPN `h2` carrying an HTTP/1.1 request, or a plain connection whose
//! preface breaks after `PRI * HTTP/2.0` — is answered with GOAWAY
//! (PROTOCOL_ERROR) and closed, on both HTTP/1 engines; nothing reaches a
//! backend and nothing is answered in HTTP/1.1.

mod support;

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use support::tls::{self as t, setup, start, tls_config};
use support::*;

/// Writes `bytes`, reads until the server closes; the HTTP/2 error code of
/// a GOAWAY among the frames read, and the bytes.
async fn goaway_after<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    bytes: &[u8],
) -> (Option<u32>, Vec<u8>) {
    io.write_all(bytes).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut got))
        .await
        .expect("the server did not close")
        .ok();
    let mut at = 0;
    while got.len() >= at + 9 {
        let len = u32::from_be_bytes([0, got[at], got[at + 1], got[at + 2]]) as usize;
        let (kind, payload) = (got[at + 3], at + 9);
        if kind == 0x7 && got.len() >= payload + 8 {
            let code = &got[payload + 4..payload + 8];
            return (
                Some(u32::from_be_bytes([code[0], code[1], code[2], code[3]])),
                got,
            );
        }
        at = payload + len;
    }
    (None, got)
}

const PROTOCOL_ERROR: u32 = 1;

#[tokio::test]
async fn a_broken_preface_on_the_plain_port_gets_goaway() {
    for engine in ["lean", "hyper"] {
        let b = TestBackend::start("b").await;
        let cfg = format!(
            "[server]\nworkers = 1\nhttp1 = \"{engine}\"\n[health]\nenabled = false\n{}",
            config_for(&[("b", &[&b])], "split = { b = 1 }")
        );
        let proxy = TestProxy::start(&cfg).await;
        for broken in [
            &b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"[..],
            b"PRI * HTTP/2.0\r\n\r\nSM\r\nGET / HTTP/1.1\r\n\r\n",
            b"PRI * HTTP/2.0\r\nHost: a\r\n\r\n",
        ] {
            let tcp = TcpStream::connect(proxy.addr).await.unwrap();
            let (code, got) = goaway_after(tcp, broken).await;
            assert_eq!(
                code,
                Some(PROTOCOL_ERROR),
                "{engine}: {:?} got {:?}",
                String::from_utf8_lossy(broken),
                String::from_utf8_lossy(&got)
            );
            assert!(!got.starts_with(b"HTTP/1"), "{engine}");
        }
        // HTTP/1.1 and h2c with prior knowledge are still served.
        let a = get(&client(), &proxy.url("/"), &[]).await;
        assert_eq!(a.status, 200, "{engine}");
        let a = get(&h2_client(), &proxy.url("/"), &[]).await;
        assert_eq!(a.status, 200, "{engine}");
        assert_eq!(
            b.requests(),
            2,
            "{engine}: a refused connection reached the backend"
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn alpn_h2_with_an_http1_request_gets_goaway() {
    for engine in ["lean", "hyper"] {
        let b = TestBackend::start("blue").await;
        let (ca, dir, _) = setup();
        let cfg = tls_config(&b, &format!("http1 = \"{engine}\""), "");
        let p = start(dir, &cfg).await;
        let addr = p.tls_addr.expect("TLS listener");
        let h2_cfg = t::client_config(&ca, rustls::ALL_VERSIONS, &[b"h2"]);
        let tls = t::connect(addr, "default.test", h2_cfg.clone())
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let (code, got) = goaway_after(tls, b"GET / HTTP/1.1\r\nHost: default.test\r\n\r\n").await;
        assert_eq!(
            code,
            Some(PROTOCOL_ERROR),
            "{engine}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert!(!got.starts_with(b"HTTP/1"), "{engine}");
        assert_eq!(b.requests(), 0, "{engine}");
        // A real HTTP/2 client on ALPN h2 is served.
        let tls = t::connect(addr, "default.test", h2_cfg)
            .await
            .expect("handshake");
        let a = t::get2(&mut t::h2(tls).await, "default.test", "/").await;
        assert_eq!(a.status, 200, "{engine}");
        p.stop().await;
    }
}
