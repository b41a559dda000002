//! Cases from the PROXY protocol specification (sections 2.1 and 2.2), each
//! saying what the receiver makes of the bytes.

use super::*;
use proptest::prelude::*;

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn header(buf: &[u8]) -> (usize, Addresses) {
    match parse(buf) {
        Ok(Parsed::Header { len, addresses }) => (len, addresses),
        other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
    }
}

#[test]
fn v1_tcp4_and_what_follows() {
    let h = b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    let mut buf = h.to_vec();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        header(&buf),
        (
            h.len(),
            Addresses::Tcp {
                src: sa("192.168.0.1:56324"),
                dst: sa("192.168.0.11:443")
            }
        )
    );
}

#[test]
fn v1_tcp6_and_unknown() {
    let h = b"PROXY TCP6 2001:db8::1 ::1 65535 0\r\n";
    assert_eq!(
        header(h).1,
        Addresses::Tcp {
            src: sa("[2001:db8::1]:65535"),
            dst: sa("[::1]:0")
        }
    );
    assert_eq!(header(b"PROXY UNKNOWN\r\n"), (15, Addresses::Unknown));
    // the spec's worst case: 107 bytes, UNKNOWN with addresses that are ignored
    let worst = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(worst.len(), V1_MAX);
    assert_eq!(header(worst.as_bytes()), (V1_MAX, Addresses::Unknown));
}

#[test]
fn v1_is_strict() {
    let bad: &[&[u8]] = &[
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80\r\n",        // a port missing
        b"PROXY TCP4 1.2.3.4 5.6.7.8 80 443 9\r\n",  // a field too many
        b"PROXY TCP4 ::1 ::1 1 2\r\n",               // family and address differ
        b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",       // the other way round
        b"PROXY TCP4 1.2.3.4 5.6.7.8 080 443\r\n",   // leading zero
        b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 443\r\n", // out of range
        b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 443\r\n",    // a sign
        b"PROXY TCP4 1.2.3.4  5.6.7.8 1 443\r\n",    // two spaces
        b"PROXY tcp4 1.2.3.4 5.6.7.8 1 443\r\n",     // lower case
        b"PROXY TCP4 01.2.3.4 5.6.7.8 1 443\r\n",    // octal-looking address
        b"PROXY UDP4 1.2.3.4 5.6.7.8 1 443\r\n",     // not TCP
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 443\n",       // bare LF
        b"PROXY \r\n",                               // nothing
    ];
    for b in bad {
        assert_eq!(
            parse(b),
            Err(ProxyHeaderError::V1Syntax),
            "{:?}",
            String::from_utf8_lossy(b)
        );
    }
    let long = [b"PROXY UNKNOWN ".as_slice(), &[b'a'; 100]].concat();
    assert_eq!(parse(&long), Err(ProxyHeaderError::V1TooLong));
}

#[test]
fn other_protocols_are_not_headers() {
    assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Err(ProxyHeaderError::Missing));
    assert_eq!(
        parse(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
        Err(ProxyHeaderError::Missing)
    );
    // a TLS ClientHello
    assert_eq!(parse(&[0x16, 0x03, 0x01]), Err(ProxyHeaderError::Missing));
    // "\r\n\r\n" then something other than the v2 signature
    assert_eq!(parse(b"\r\n\r\nGET"), Err(ProxyHeaderError::Missing));
    assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    assert_eq!(parse(b"PRO"), Ok(Parsed::Incomplete));
}

/// A v2 header: version/command byte, family/protocol byte, then `body`
/// (addresses and TLVs).
fn v2(ver_cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    out.push(ver_cmd);
    out.push(fam);
    out.extend_from_slice(&(body.len() as u16).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn inet(src: [u8; 4], dst: [u8; 4], sport: u16, dport: u16) -> Vec<u8> {
    [
        &src[..],
        &dst[..],
        &sport.to_be_bytes()[..],
        &dport.to_be_bytes()[..],
    ]
    .concat()
}

#[test]
fn v2_tcp4_tcp6_with_tlvs_skipped() {
    let h = v2(
        0x21,
        0x11,
        &inet([203, 0, 113, 7], [10, 0, 0, 5], 40000, 80),
    );
    let mut buf = h.clone();
    buf.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        header(&buf),
        (
            28,
            Addresses::Tcp {
                src: sa("203.0.113.7:40000"),
                dst: sa("10.0.0.5:80")
            }
        )
    );
    let src: [u8; 16] = "2001:db8::7".parse::<Ipv6Addr>().unwrap().octets();
    let dst: [u8; 16] = "2001:db8::1".parse::<Ipv6Addr>().unwrap().octets();
    let mut body = [
        &src[..],
        &dst[..],
        &443u16.to_be_bytes(),
        &8443u16.to_be_bytes(),
    ]
    .concat();
    // AWS's VPC endpoint TLV (0xEA), a NOOP (0x04) with padding, ALPN (0x01)
    body.extend_from_slice(&[0xEA, 0x00, 0x05, 0x01, b'v', b'p', b'c', b'e']);
    body.extend_from_slice(&[0x04, 0x00, 0x02, 0, 0]);
    body.extend_from_slice(&[0x01, 0x00, 0x02, b'h', b'2']);
    let h = v2(0x21, 0x21, &body);
    assert_eq!(
        header(&h),
        (
            h.len(),
            Addresses::Tcp {
                src: sa("[2001:db8::7]:443"),
                dst: sa("[2001:db8::1]:8443")
            }
        )
    );
}

#[test]
fn v2_local_unknown_families_and_udp() {
    // LOCAL: a health check of the balancer itself, with or without addresses
    assert_eq!(header(&v2(0x20, 0x00, &[])).1, Addresses::Local);
    assert_eq!(
        header(&v2(0x20, 0x11, &inet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2))).1,
        Addresses::Local
    );
    // PROXY with UNSPEC, UNIX and UDP: use the connection's own addresses
    assert_eq!(header(&v2(0x21, 0x00, &[])).1, Addresses::Unknown);
    assert_eq!(header(&v2(0x21, 0x31, &[0u8; 216])).1, Addresses::Unknown);
    assert_eq!(
        header(&v2(0x21, 0x12, &inet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2))).1,
        Addresses::Unknown
    );
}

#[test]
fn v2_is_strict() {
    let addrs = inet([1, 1, 1, 1], [2, 2, 2, 2], 1, 2);
    let cases = [
        (v2(0x11, 0x11, &addrs), ProxyHeaderError::V2Version),
        (v2(0x22, 0x11, &addrs), ProxyHeaderError::V2Command),
        (v2(0x21, 0x41, &addrs), ProxyHeaderError::V2Family),
        (v2(0x21, 0x13, &addrs), ProxyHeaderError::V2Family),
        (v2(0x21, 0x11, &addrs[..8]), ProxyHeaderError::V2Short),
        (v2(0x21, 0x21, &addrs), ProxyHeaderError::V2Short),
        (
            v2(
                0x21,
                0x11,
                &[&addrs[..], &[0x01, 0x00, 0x09, b'x']].concat(),
            ),
            ProxyHeaderError::V2Tlv,
        ),
        (
            v2(0x21, 0x11, &[&addrs[..], &[0x01, 0x00]].concat()),
            ProxyHeaderError::V2Tlv,
        ),
    ];
    for (buf, want) in cases {
        assert_eq!(parse(&buf), Err(want), "{buf:?}");
    }
    // a declared length past the bound is refused before it is read
    let mut big = v2(0x21, 0x11, &[]);
    big[14..16].copy_from_slice(&(V2_MAX as u16).to_be_bytes());
    assert_eq!(parse(&big), Err(ProxyHeaderError::V2TooLong));
}

#[test]
fn every_prefix_of_a_header_asks_for_more() {
    let headers = [
        b"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n".to_vec(),
        b"PROXY UNKNOWN\r\n".to_vec(),
        v2(0x21, 0x11, &inet([9, 9, 9, 9], [8, 8, 8, 8], 5, 6)),
        v2(0x20, 0x00, &[]),
    ];
    for h in headers {
        for n in 0..h.len() {
            assert_eq!(parse(&h[..n]), Ok(Parsed::Incomplete), "{h:?} at {n}");
        }
        assert!(matches!(parse(&h), Ok(Parsed::Header { len, .. }) if len == h.len()));
    }
}

/// A connected pair of loopback sockets: (client, server side).
async fn pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (c, s) = tokio::join!(tokio::net::TcpStream::connect(addr), l.accept());
    (c.unwrap(), s.unwrap().0)
}

#[tokio::test]
async fn read_header_leaves_what_follows_in_the_socket() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client, mut server) = pair().await;
    let h = v2(0x21, 0x11, &inet([203, 0, 113, 9], [10, 0, 0, 1], 1234, 80));
    // split across writes: a first part of the signature, then the rest
    // with the request right behind it
    client.write_all(&h[..5]).await.unwrap();
    let reader = tokio::spawn(async move {
        let addrs = read_header(&mut server).await;
        (addrs, server)
    });
    tokio::task::yield_now().await;
    let mut rest = h[5..].to_vec();
    rest.extend_from_slice(b"GET / HTTP/1.1\r\n");
    client.write_all(&rest).await.unwrap();
    let (addrs, mut server) = reader.await.unwrap();
    assert_eq!(
        addrs.unwrap(),
        Addresses::Tcp {
            src: sa("203.0.113.9:1234"),
            dst: sa("10.0.0.1:80")
        }
    );
    let mut after = [0u8; 16];
    server.read_exact(&mut after).await.unwrap();
    assert_eq!(&after, b"GET / HTTP/1.1\r\n");

    // v1, the shortest header, then a TLS record's first bytes
    let (mut client, mut server) = pair().await;
    client
        .write_all(b"PROXY UNKNOWN\r\n\x16\x03\x01")
        .await
        .unwrap();
    assert_eq!(read_header(&mut server).await.unwrap(), Addresses::Unknown);
    let mut after = [0u8; 3];
    server.read_exact(&mut after).await.unwrap();
    assert_eq!(after, [0x16, 3, 1]);
}

#[tokio::test]
async fn read_header_failures() {
    use tokio::io::AsyncWriteExt;
    let (client, mut server) = pair().await;
    drop(client);
    assert!(matches!(
        read_header(&mut server).await,
        Err(ReadError::Closed)
    ));
    let (mut client, mut server) = pair().await;
    client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    assert!(matches!(
        read_header(&mut server).await,
        Err(ReadError::Header(ProxyHeaderError::Missing))
    ));
    let (mut client, mut server) = pair().await;
    client.write_all(b"PROXY TCP4 1.2.3.4\r\n").await.unwrap();
    assert!(matches!(
        read_header(&mut server).await,
        Err(ReadError::Header(ProxyHeaderError::V1Syntax))
    ));
}

proptest! {
    /// Any bytes: no panic, and a header's length lies within the bytes
    /// and parses the same on its own.
    #[test]
    fn arbitrary_bytes_are_safe(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(Parsed::Header { len, addresses }) = parse(&buf) {
            prop_assert!(len <= buf.len());
            prop_assert_eq!(parse(&buf[..len]), Ok(Parsed::Header { len, addresses }));
        }
    }

    /// Arbitrary v2 bodies after a valid signature: no panic either.
    #[test]
    fn arbitrary_v2_bodies_are_safe(
        ver_cmd: u8,
        fam: u8,
        body in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let buf = v2(ver_cmd, fam, &body);
        let _ = parse(&buf);
    }

    /// Every TCP4 address pair round-trips through v1.
    #[test]
    fn v1_tcp4_round_trips(src: [u8; 4], dst: [u8; 4], sp: u16, dp: u16) {
        let (s, d) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
        let line = format!("PROXY TCP4 {s} {d} {sp} {dp}\r\n");
        prop_assert_eq!(
            parse(line.as_bytes()),
            Ok(Parsed::Header {
                len: line.len(),
                addresses: Addresses::Tcp {
                    src: SocketAddr::new(s.into(), sp),
                    dst: SocketAddr::new(d.into(), dp),
                },
            })
        );
    }
}
