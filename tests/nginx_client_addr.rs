//! The client's address behind a load balancer: `proxy_protocol` (v1 and
//! v2) from trusted peers and `X-Forwarded-For` walked past
//! `trusted_proxies`. What the backend is told (`$remote_addr` through a
//! header rule, `X-Forwarded-For`) shows what switchyard believes. Peers are
//! told apart by their loopback source address: 127.0.0.1 is the trusted
//! balancer, 127.0.0.2 a client connecting directly.

mod support;

use std::net::{IpAddr, SocketAddr};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

use support::paths::paths;
use support::*;

const BALANCER: &str = "127.0.0.1";
const DIRECT: &str = "127.0.0.2";

fn config(b: &TestBackend, server: &str) -> String {
    format!(
        "[server]\n{server}\ntrusted_proxies = [\"{BALANCER}/32\", \"10.0.0.0/8\"]\n\
         [pools.app]\nbackends = [\"{}\"]\n\n\
         [[routes]]\nname = \"r\"\nsplit = {{ app = 1 }}\n\
         request_headers = {{ set = {{ X-Real-IP = \"$remote_addr\" }} }}\n",
        b.addr
    )
}

/// A connection to `to` from the loopback address `from`.
async fn connect_from(from: &str, to: SocketAddr) -> TcpStream {
    let s = TcpSocket::new_v4().unwrap();
    s.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    s.connect(to).await.unwrap()
}

/// Sends `preamble` then a GET with `headers`; the status and, for a 200,
/// the backend's view of (X-Real-IP, X-Forwarded-For). `None`: the
/// connection was closed without an answer.
async fn ask(
    s: &mut TcpStream,
    preamble: &[u8],
    headers: &str,
) -> Option<(u16, Option<(String, String)>)> {
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    let mut out = preamble.to_vec();
    out.extend_from_slice(req.as_bytes());
    if s.write_all(&out).await.is_err() {
        return None;
    }
    let mut r = BufReader::new(s);
    let mut status = String::new();
    if r.read_line(&mut status).await.unwrap_or(0) == 0 {
        return None;
    }
    let code: u16 = status.split(' ').nth(1)?.parse().ok()?;
    let mut rest = Vec::new();
    // Connection: close, so the answer ends with the connection.
    let _ = r.read_to_end(&mut rest).await;
    let text = String::from_utf8_lossy(&rest);
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("");
    let seen = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .map(|j| {
            let h = &j["headers"];
            (
                h["x-real-ip"].as_str().unwrap_or("").to_owned(),
                h["x-forwarded-for"].as_str().unwrap_or("").to_owned(),
            )
        });
    Some((code, seen))
}

fn v2(src: [u8; 4], sport: u16, local: bool) -> Vec<u8> {
    let mut out = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    out.push(if local { 0x20 } else { 0x21 });
    out.push(0x11);
    let mut body = src.to_vec();
    body.extend_from_slice(&[10, 0, 0, 1]);
    body.extend_from_slice(&sport.to_be_bytes());
    body.extend_from_slice(&80u16.to_be_bytes());
    // a TLV, as AWS NLB sends one (VPC endpoint id): skipped
    body.extend_from_slice(&[0xEA, 0x00, 0x03, b'v', b'p', b'c']);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

#[tokio::test]
async fn proxy_protocol_from_trusted_and_untrusted_peers() {
    let b = TestBackend::start("app").await;
    for (server, _, via) in paths().into_iter().take(2) {
        let cfg = config(&b, &format!("{server}\nproxy_protocol = true"));
        let proxy = TestProxy::start(&cfg).await;
        let seen = |ip: &str, xff: &str| Some((200, Some((ip.to_owned(), xff.to_owned()))));

        // the balancer, v1 and v2: the header's source is the client
        let mut s = connect_from(BALANCER, proxy.addr).await;
        let v1 = b"PROXY TCP4 203.0.113.7 10.0.0.1 40000 80\r\n";
        assert_eq!(
            ask(&mut s, v1, "").await,
            seen("203.0.113.7", "203.0.113.7"),
            "{via} v1"
        );
        let mut s = connect_from(BALANCER, proxy.addr).await;
        let h = v2([198, 51, 100, 4], 5555, false);
        assert_eq!(
            ask(&mut s, &h, "").await,
            seen("198.51.100.4", "198.51.100.4"),
            "{via} v2"
        );
        let mut s = connect_from(BALANCER, proxy.addr).await;
        let v6 = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 80\r\n";
        assert_eq!(
            ask(&mut s, v6, "").await,
            seen("2001:db8::7", "2001:db8::7"),
            "{via} v6"
        );
        // v2 LOCAL (the balancer's health check) keeps the balancer's address
        let mut s = connect_from(BALANCER, proxy.addr).await;
        let local = v2([0, 0, 0, 0], 0, true);
        assert_eq!(
            ask(&mut s, &local, "").await,
            seen(BALANCER, BALANCER),
            "{via} LOCAL"
        );
        // the balancer without a header: refused (it is misconfigured)
        let mut s = connect_from(BALANCER, proxy.addr).await;
        assert_eq!(
            ask(&mut s, b"", "").await,
            None,
            "{via}: trusted peer without header"
        );
        // a broken header: refused
        let mut s = connect_from(BALANCER, proxy.addr).await;
        let bad = b"PROXY TCP4 203.0.113.7 10.0.0.1 40000\r\n";
        assert_eq!(ask(&mut s, bad, "").await, None, "{via}: broken header");

        // a direct client is served with its own address...
        let mut s = connect_from(DIRECT, proxy.addr).await;
        assert_eq!(
            ask(&mut s, b"", "").await,
            seen(DIRECT, DIRECT),
            "{via}: direct"
        );
        // ...and cannot claim another one with a header of its own
        let mut s = connect_from(DIRECT, proxy.addr).await;
        let got = ask(&mut s, v1, "").await;
        assert!(
            matches!(got, None | Some((400, None))),
            "{via}: an untrusted PROXY header is not believed: {got:?}"
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn x_forwarded_for_is_believed_only_from_trusted_peers() {
    let b = TestBackend::start("app").await;
    for (server, _, via) in paths().into_iter().take(2) {
        let proxy = TestProxy::start(&config(&b, server)).await;
        let seen = |ip: &str, xff: &str| Some((200, Some((ip.to_owned(), xff.to_owned()))));
        // from the balancer: walked right to left past trusted hops
        let mut s = connect_from(BALANCER, proxy.addr).await;
        let xff = "X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.2.3\r\n";
        assert_eq!(
            ask(&mut s, b"", xff).await,
            seen("203.0.113.7", "6.6.6.6, 203.0.113.7, 10.1.2.3, 127.0.0.1"),
            "{via}"
        );
        // from a direct client: the header is passed on, not believed
        let mut s = connect_from(DIRECT, proxy.addr).await;
        assert_eq!(
            ask(&mut s, b"", "X-Forwarded-For: 203.0.113.7\r\n").await,
            seen(DIRECT, "203.0.113.7, 127.0.0.2"),
            "{via}"
        );
        proxy.stop().await;
    }
}
