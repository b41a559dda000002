//! The PROXY protocol (haproxy.org/download/2.9/doc/proxy-protocol.txt),
//! versions 1 (text) and 2 (binary), as AWS NLB, HAProxy and most L4 load
//! balancers send it at the start of a connection to pass the client's
//! address. [`parse`] is a strict, bounded parser of the bytes read so far:
//! it says whether they are a complete header (and how long it is), need
//! more bytes, or cannot be one. [`read_header`] is the I/O shell that
//! takes a header off a socket; [`Intake`] is what a listener does with a
//! new connection: asks peers in `trusted_proxies` for a header, and says
//! whose `X-Forwarded-For` is believed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The v2 signature: `\r\n\r\n\0\r\nQUIT\n`.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8] = b"PROXY ";
/// Longest v1 header, CRLF included (the spec's 107 bytes).
pub const V1_MAX: usize = 107;
/// Longest v2 header accepted: the 16 fixed bytes, the addresses and TLVs
/// (load balancers send a few small TLVs; the protocol allows 64 KiB).
pub const V2_MAX: usize = 16 + 2048;
/// A buffer this long holds any header [`parse`] accepts.
pub const MAX_HEADER: usize = V2_MAX;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addresses {
    /// A proxied TCP connection: the client (`src`) and the address it
    /// connected to (`dst`).
    Tcp { src: SocketAddr, dst: SocketAddr },
    /// v2 `LOCAL` (the balancer's own connection, e.g. a health check):
    /// use the connection's real addresses.
    Local,
    /// v1 `UNKNOWN`, or v2 with an unspecified or non-TCP family (UNIX,
    /// UDP): the spec lets the receiver use the real addresses.
    Unknown,
}

/// The outcome of looking at a connection's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header of `len` bytes; what follows is the application's.
    Header { len: usize, addresses: Addresses },
    /// A valid beginning; read more.
    Incomplete,
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("PROXY v1 header has no CRLF within 107 bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 header")]
    V1Syntax,
    #[error("PROXY v2 header version is not 2")]
    V2Version,
    #[error("PROXY v2 command is neither LOCAL nor PROXY")]
    V2Command,
    #[error("PROXY v2 address family or protocol is not defined")]
    V2Family,
    #[error("PROXY v2 header is longer than {V2_MAX} bytes")]
    V2TooLong,
    #[error("PROXY v2 address block is shorter than its family needs")]
    V2Short,
    #[error("PROXY v2 TLV runs past the header")]
    V2Tlv,
}

/// Looks at the bytes read so far from a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    if starts_like(buf, &V2_SIGNATURE) {
        if buf.len() < 16 {
            return Ok(Parsed::Incomplete);
        }
        return parse_v2(buf);
    }
    if starts_like(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v1(buf);
    }
    Err(ProxyHeaderError::Missing)
}

/// Is `buf` a prefix of `sig`, or `sig` a prefix of `buf`?
fn starts_like(buf: &[u8], sig: &[u8]) -> bool {
    let n = buf.len().min(sig.len());
    buf[..n] == sig[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyHeaderError::V1TooLong)
        } else if window.contains(&b'\n') {
            // A bare LF is never part of a valid header.
            Err(ProxyHeaderError::V1Syntax)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let len = end + 2;
    let line =
        std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| ProxyHeaderError::V1Syntax)?;
    if line == "UNKNOWN" || line.starts_with("UNKNOWN ") {
        return Ok(Parsed::Header {
            len,
            addresses: Addresses::Unknown,
        });
    }
    let mut parts = line.split(' ');
    let (Some(proto), Some(src), Some(dst), Some(sport), Some(dport), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return Err(ProxyHeaderError::V1Syntax);
    };
    let (src, dst): (IpAddr, IpAddr) = match proto {
        "TCP4" => (
            IpAddr::V4(src.parse().map_err(|_| ProxyHeaderError::V1Syntax)?),
            IpAddr::V4(dst.parse().map_err(|_| ProxyHeaderError::V1Syntax)?),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse().map_err(|_| ProxyHeaderError::V1Syntax)?),
            IpAddr::V6(dst.parse().map_err(|_| ProxyHeaderError::V1Syntax)?),
        ),
        _ => return Err(ProxyHeaderError::V1Syntax),
    };
    Ok(Parsed::Header {
        len,
        addresses: Addresses::Tcp {
            src: SocketAddr::new(src, port(sport)?),
            dst: SocketAddr::new(dst, port(dport)?),
        },
    })
}

/// A v1 port: decimal, 0-65535, no sign or leading zero.
fn port(s: &str) -> Result<u16, ProxyHeaderError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(ProxyHeaderError::V1Syntax);
    }
    s.parse().map_err(|_| ProxyHeaderError::V1Syntax)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyHeaderError> {
    let (ver_cmd, fam_proto) = (buf[12], buf[13]);
    if ver_cmd >> 4 != 2 {
        return Err(ProxyHeaderError::V2Version);
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyHeaderError::V2Command),
    };
    let (family, protocol) = (fam_proto >> 4, fam_proto & 0x0f);
    let needs = match family {
        0 => 0,
        1 => 12,
        2 => 36,
        3 => 216,
        _ => return Err(ProxyHeaderError::V2Family),
    };
    if protocol > 2 {
        return Err(ProxyHeaderError::V2Family);
    }
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Err(ProxyHeaderError::V2TooLong);
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let block = &buf[16..len];
    if block.len() < needs {
        return Err(ProxyHeaderError::V2Short);
    }
    skip_tlvs(&block[needs..])?;
    let addresses = match (local, family, protocol) {
        (true, _, _) => Addresses::Local,
        (false, 1, 1) => {
            let a = |i: usize| Ipv4Addr::new(block[i], block[i + 1], block[i + 2], block[i + 3]);
            Addresses::Tcp {
                src: SocketAddr::new(a(0).into(), be16(block, 8)),
                dst: SocketAddr::new(a(4).into(), be16(block, 10)),
            }
        }
        (false, 2, 1) => {
            let a = |i: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&block[i..i + 16]);
                Ipv6Addr::from(o)
            };
            Addresses::Tcp {
                src: SocketAddr::new(a(0).into(), be16(block, 32)),
                dst: SocketAddr::new(a(16).into(), be16(block, 34)),
            }
        }
        _ => Addresses::Unknown,
    };
    Ok(Parsed::Header { len, addresses })
}

fn be16(b: &[u8], i: usize) -> u16 {
    u16::from_be_bytes([b[i], b[i + 1]])
}

/// Walks the TLVs after the addresses (type, 16-bit length, value): each
/// must fit. Their content (ALPN, authority, the AWS VPC endpoint id, a
/// CRC) is not used.
fn skip_tlvs(mut rest: &[u8]) -> Result<(), ProxyHeaderError> {
    while !rest.is_empty() {
        if rest.len() < 3 {
            return Err(ProxyHeaderError::V2Tlv);
        }
        let n = 3 + usize::from(be16(rest, 1));
        rest = rest.get(n..).ok_or(ProxyHeaderError::V2Tlv)?;
    }
    Ok(())
}

/// Why reading a header from a connection failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Header(#[from] ProxyHeaderError),
    #[error("connection closed before the PROXY header ended")]
    Closed,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads a PROXY header from the start of `stream` and nothing more: the
/// bytes are looked at with `MSG_PEEK` and only the header's are consumed,
/// so what follows (an HTTP request, a TLS ClientHello) is still in the
/// socket for whoever serves the connection. Bounded: at most
/// [`MAX_HEADER`] bytes; the caller bounds the time.
pub async fn read_header(stream: &mut TcpStream) -> Result<Addresses, ReadError> {
    let mut header: Vec<u8> = Vec::new();
    let mut peeked = vec![0u8; MAX_HEADER];
    loop {
        let room = MAX_HEADER - header.len();
        let n = stream.peek(&mut peeked[..room]).await?;
        if n == 0 {
            return Err(ReadError::Closed);
        }
        let had = header.len();
        header.extend_from_slice(&peeked[..n]);
        match parse(&header)? {
            Parsed::Header { len, addresses } => {
                stream.read_exact(&mut peeked[..len - had]).await?;
                return Ok(addresses);
            }
            // Every byte seen so far belongs to the header: consume them
            // and wait for more (a second peek would see the same bytes).
            Parsed::Incomplete if header.len() < MAX_HEADER => {
                stream.read_exact(&mut peeked[..n]).await?;
            }
            Parsed::Incomplete => return Err(ProxyHeaderError::V2TooLong.into()),
        }
    }
}

/// How a listener takes a connection in: whether its peer must send a
/// PROXY header (`proxy_protocol`, peers in `trusted_proxies` only), and
/// whose `X-Forwarded-For` is believed. Made once per worker from
/// `[server]` (both keys need a restart).
#[derive(Debug, Clone)]
pub struct Intake {
    pub proxy_protocol: bool,
    pub trusted: std::sync::Arc<crate::config::TrustedProxies>,
    /// Time the header may take (`client_header_timeout`).
    pub timeout: std::time::Duration,
}

impl Intake {
    pub fn new(s: &crate::config::ServerConfig) -> Self {
        Self {
            proxy_protocol: s.proxy_protocol,
            trusted: std::sync::Arc::new(s.trusted_proxies.clone()),
            timeout: s.client_header_timeout,
        }
    }

    /// The connection as the data plane sees it, after its PROXY header
    /// when the peer is trusted to send one; `None`: close it (a trusted
    /// peer without a valid header in time is misconfigured, and serving
    /// it would put the balancer's address on every request). A peer
    /// that is not trusted is served with its own address, and a PROXY
    /// header it sends is not read (HTTP then refuses it).
    pub async fn conn_info(
        &self,
        stream: &mut TcpStream,
        peer: SocketAddr,
        proto: &'static str,
    ) -> Option<super::ConnInfo> {
        let mut client = peer;
        if self.proxy_protocol && self.trusted.contains(peer.ip()) {
            // Boxed: inline, this read's state (~0.5 KB) would size the
            // task of every connection for as long as it lives (h1::sizes).
            let header = Box::pin(tokio::time::timeout(self.timeout, read_header(stream)));
            match header.await {
                Ok(Ok(Addresses::Tcp { src, .. })) => client = src,
                Ok(Ok(Addresses::Local | Addresses::Unknown)) => {}
                Ok(Err(e)) => {
                    tracing::warn!(peer = %peer, error = %e, "PROXY protocol header refused; closing");
                    return None;
                }
                Err(_) => {
                    tracing::warn!(peer = %peer, "no PROXY protocol header in time; closing");
                    return None;
                }
            }
        }
        let info = super::ConnInfo::new(client, proto);
        Some(if self.trusted.is_empty() {
            info
        } else {
            info.trusting(&self.trusted)
        })
    }
}

#[cfg(test)]
mod tests;
