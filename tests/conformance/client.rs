//! The conformance client: raw bytes to the proxy, responses framed
//! strictly from what comes back, then a probe request on the same
//! connection to tell a connection that stayed usable (and in sync) from
//! one the proxy closed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::{timeout_at, Instant};

/// How long one case may take before it counts as hung.
const CASE_DEADLINE: Duration = Duration::from_secs(5);
/// How long the keep-alive probe waits for its answer.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// One step of a case's client.
#[derive(Debug, Clone, Copy)]
pub enum Step {
    Send(&'static [u8]),
    /// Read until an interim response with this status arrived.
    Interim(u16),
    /// Read until this many final responses arrived.
    Finals(usize),
    /// After a 101: send these bytes through the tunnel and read until
    /// they come back.
    Echo(&'static [u8]),
}

/// One response as the client framed it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    #[allow(dead_code)] // shown in failure messages
    pub version: u8,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn one(&self, name: &str) -> Option<String> {
        let mut it = self
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name));
        match (it.next(), it.next()) {
            (Some((_, v)), None) => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        }
    }
}

/// What the client saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub interim: Vec<u16>,
    pub finals: Vec<Resp>,
    /// The probe after the case got its own answer: the connection stayed
    /// open and in step.
    pub alive: bool,
    /// Bytes that could not be framed as a response.
    pub garbage: Vec<u8>,
    pub hung: bool,
}

/// Runs `steps`; `head`: the case's requests are HEAD (bodiless answers).
pub async fn run(addr: SocketAddr, steps: &[Step], head: bool) -> Seen {
    let deadline = Instant::now() + CASE_DEADLINE;
    let mut seen = Seen::default();
    let Ok(Ok(mut tcp)) = timeout_at(deadline, TcpStream::connect(addr)).await else {
        seen.hung = true;
        return seen;
    };
    let mut buf = Vec::new();
    let mut eof = false;
    for step in steps {
        match *step {
            Step::Send(bytes) => {
                if tcp.write_all(bytes).await.is_err() {
                    break;
                }
            }
            Step::Interim(code) => {
                while !seen.interim.contains(&code) && !eof {
                    if !parse_all(&mut buf, &mut seen, head, false) {
                        eof = !read(&mut tcp, &mut buf, deadline, &mut seen).await;
                    }
                }
            }
            Step::Echo(bytes) => {
                if tcp.write_all(bytes).await.is_err() {
                    break;
                }
                loop {
                    parse_all(&mut buf, &mut seen, head, eof);
                    let echoed = seen
                        .finals
                        .last()
                        .is_some_and(|r| r.status == 101 && r.body.ends_with(bytes));
                    if echoed || eof {
                        break;
                    }
                    eof = !read(&mut tcp, &mut buf, deadline, &mut seen).await;
                }
            }
            Step::Finals(n) => loop {
                parse_all(&mut buf, &mut seen, head, eof);
                if seen.finals.len() >= n || eof {
                    break;
                }
                eof = !read(&mut tcp, &mut buf, deadline, &mut seen).await;
            },
        }
    }
    parse_all(&mut buf, &mut seen, head, eof);
    let tunnel = seen.finals.last().is_some_and(|r| r.status == 101);
    if eof || seen.hung || tunnel {
        seen.garbage = buf;
        return seen;
    }
    // The probe: its answer must be the next thing on the connection. A
    // proxy still reading a body the client never finished sending (after
    // an early answer) would take the probe as body: that connection is
    // not alive, and not hung either.
    let deadline = deadline.min(Instant::now() + PROBE_DEADLINE);
    let mut probe_seen = Seen::default();
    if tcp
        .write_all(b"GET /probe HTTP/1.1\r\nHost: conformance.test\r\n\r\n")
        .await
        .is_ok()
    {
        let before = seen.finals.len();
        loop {
            parse_all(&mut buf, &mut seen, false, eof);
            if seen.finals.len() > before || eof {
                break;
            }
            eof = !read(&mut tcp, &mut buf, deadline, &mut probe_seen).await;
        }
        if seen.finals.len() > before {
            let probe = seen.finals.pop().expect("probe answer");
            seen.alive = probe.one("x-echo-path").as_deref() == Some("/probe");
            if !seen.alive {
                seen.finals.push(probe);
            }
        }
    }
    seen.garbage = buf;
    seen
}

/// Reads more; false at EOF, error or the deadline (which marks `hung`).
async fn read(tcp: &mut TcpStream, buf: &mut Vec<u8>, deadline: Instant, seen: &mut Seen) -> bool {
    let mut chunk = [0u8; 16384];
    match timeout_at(deadline, tcp.read(&mut chunk)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(n)) => {
            buf.extend_from_slice(&chunk[..n]);
            true
        }
        Err(_) => {
            seen.hung = true;
            false
        }
    }
}

/// Frames every complete response at the front of `buf`; answers whether
/// one was taken. `eof`: a close-delimited body ends here.
fn parse_all(buf: &mut Vec<u8>, seen: &mut Seen, head: bool, eof: bool) -> bool {
    // After a 101 everything is tunnel bytes.
    if let Some(r) = seen.finals.last_mut().filter(|r| r.status == 101) {
        r.body.append(buf);
        return false;
    }
    let mut took = false;
    while let Some((resp, used)) = parse_one(buf, head, eof) {
        buf.drain(..used);
        took = true;
        if (100..200).contains(&resp.status) && resp.status != 101 {
            seen.interim.push(resp.status);
        } else {
            let upgraded = resp.status == 101;
            seen.finals.push(resp);
            if upgraded {
                break;
            }
        }
    }
    took
}

fn parse_one(buf: &[u8], head: bool, eof: bool) -> Option<(Resp, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    let n = match r.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let mut resp = Resp {
        status: r.code?,
        version: r.version?,
        headers: r
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    let rest = &buf[n..];
    if head || resp.status < 200 || resp.status == 204 || resp.status == 304 {
        return Some((resp, n));
    }
    if resp.status == 101 {
        resp.body = rest.to_vec();
        return Some((resp, buf.len()));
    }
    if resp
        .one("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        let (body, used) = dechunk(rest)?;
        resp.body = body;
        return Some((resp, n + used));
    }
    if let Some(cl) = resp.one("content-length") {
        let len: usize = cl.trim().parse().ok()?;
        if rest.len() < len {
            return None;
        }
        resp.body = rest[..len].to_vec();
        return Some((resp, n + len));
    }
    // Close-delimited.
    if !eof {
        return None;
    }
    resp.body = rest.to_vec();
    Some((resp, buf.len()))
}

fn dechunk(mut b: &[u8]) -> Option<(Vec<u8>, usize)> {
    let total = b.len();
    let mut body = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n")?;
        let size = b[..eol].split(|&c| c == b';').next()?;
        let n = usize::from_str_radix(std::str::from_utf8(size).ok()?.trim(), 16).ok()?;
        b = &b[eol + 2..];
        if n == 0 {
            loop {
                let eol = b.windows(2).position(|w| w == b"\r\n")?;
                b = &b[eol + 2..];
                if eol == 0 {
                    return Some((body, total - b.len()));
                }
            }
        }
        if b.len() < n + 2 {
            return None;
        }
        body.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}
