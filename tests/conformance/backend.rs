//! The conformance backend: a raw-socket HTTP/1 server that logs the exact
//! bytes it receives and the requests it could frame from them (its own
//! strict reading of RFC 9112: Content-Length or chunked, nothing else), and
//! answers each case's requests with scripted bytes.
//!
//! Requests to `/probe` (the suite's keep-alive check) are always answered
//! by the echo and never logged; every other request takes the next reply
//! of the script, or the echo when the script is used up.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the backend answers one request.
#[derive(Debug, Clone, Copy)]
pub enum Reply {
    /// 200 with `X-Echo-Path` and a body `METHOD TARGET BODY-LENGTH`.
    Echo,
    /// These bytes, after reading the whole request; `close`: then close.
    Raw(&'static [u8], bool),
    /// These bytes as soon as the head is read, before any of the body;
    /// then the rest is read and discarded until the proxy closes.
    Early(&'static [u8]),
    /// These bytes (a 101 and maybe some tunnel bytes), then echo raw bytes.
    Tunnel(&'static [u8]),
}

/// One request as the backend framed it.
#[derive(Debug, Clone)]
pub struct Got {
    pub method: String,
    pub target: String,
    /// 0 or 1 (HTTP/1.x).
    pub version: u8,
    /// Names as sent (case kept), in order.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Got {
    /// Every value of `name` (case-insensitive).
    pub fn all(&self, name: &str) -> Vec<&[u8]> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    /// The only value of `name`, as text.
    pub fn one(&self, name: &str) -> Option<String> {
        match self.all(name).as_slice() {
            [v] => Some(String::from_utf8_lossy(v).into_owned()),
            _ => None,
        }
    }

    pub fn has(&self, name: &str) -> bool {
        !self.all(name).is_empty()
    }
}

/// What the backend saw during one case.
#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Complete requests, probes excluded.
    pub requests: Vec<Got>,
    /// Every byte received, probes included, in arrival order per read.
    pub raw: Vec<u8>,
    /// Reads that began a new request on a connection (probes included):
    /// bytes of a request begun in an earlier case do not count.
    pub starts: usize,
    /// Bytes the backend could not frame as a request (it closed there).
    pub malformed: usize,
}

#[derive(Default)]
struct State {
    log: Log,
    script: Vec<Reply>,
    /// Cases begun so far: a request whose first bytes arrived in an
    /// earlier case (a proxy still forwarding the last case's request
    /// when the next began) is answered but not logged in this one.
    epoch: u64,
}

/// A running conformance backend.
pub struct RawBackend {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl RawBackend {
    pub async fn start() -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let state = Arc::new(Mutex::new(State::default()));
        let s = state.clone();
        let task = crate::support::accept_each(listener, move |tcp| serve(tcp, s.clone()));
        RawBackend { addr, state, task }
    }

    /// Clears the log and sets the replies of the next case.
    pub fn begin(&self, script: &[Reply]) {
        let mut s = self.state.lock().expect("backend state");
        s.log = Log::default();
        s.epoch += 1;
        s.script = script.iter().rev().copied().collect();
    }

    pub fn log(&self) -> Log {
        self.state.lock().expect("backend state").log.clone()
    }
}

const ECHO_MAX: usize = 1 << 20;

async fn serve(mut tcp: TcpStream, state: Arc<Mutex<State>>) {
    let mut buf: Vec<u8> = Vec::with_capacity(8192);
    // The case in which the request being read began.
    let mut began = 0u64;
    loop {
        // Frame one request out of what has arrived, reading more as needed.
        let (got, used, early) = loop {
            match frame(&buf, &state) {
                Framed::Done(got, used) => break (got, used, None),
                Framed::Early(got, reply) => break (got, 0, Some(reply)),
                Framed::Bad => {
                    state.lock().expect("backend state").log.malformed += buf.len();
                    return;
                }
                Framed::More => {}
            }
            if !read_more(&mut tcp, &mut buf, &state, &mut began).await || buf.len() > ECHO_MAX {
                return;
            }
        };
        if let Some(bytes) = early {
            if tcp.write_all(bytes).await.is_err() {
                return;
            }
            // Discard the rest until the proxy gives up on the connection.
            buf.clear();
            while read_more(&mut tcp, &mut buf, &state, &mut began).await {
                buf.clear();
            }
            return;
        }
        buf.drain(..used);
        let probe = got.target == "/probe";
        let reply = {
            let mut s = state.lock().expect("backend state");
            let reply = if probe {
                Reply::Echo
            } else {
                s.script.pop().unwrap_or(Reply::Echo)
            };
            if !probe && began == s.epoch {
                s.log.requests.push(got.clone());
            }
            reply
        };
        match reply {
            Reply::Echo => {
                let body = format!("{} {} {}", got.method, got.target, got.body.len());
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Echo-Path: {}\r\n\r\n",
                    body.len(),
                    got.target
                );
                if tcp.write_all(head.as_bytes()).await.is_err()
                    || (got.method != "HEAD" && tcp.write_all(body.as_bytes()).await.is_err())
                {
                    return;
                }
            }
            Reply::Raw(bytes, close) => {
                if tcp.write_all(bytes).await.is_err() || close {
                    return;
                }
            }
            Reply::Early(_) => unreachable!("early replies are sent before the body"),
            Reply::Tunnel(bytes) => {
                if tcp.write_all(bytes).await.is_err() {
                    return;
                }
                let mut chunk = [0u8; 4096];
                if !buf.is_empty() && tcp.write_all(&buf).await.is_err() {
                    return;
                }
                loop {
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            state
                                .lock()
                                .expect("backend state")
                                .log
                                .raw
                                .extend_from_slice(&chunk[..n]);
                            if tcp.write_all(&chunk[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            }
        }
    }
}

async fn read_more(
    tcp: &mut TcpStream,
    buf: &mut Vec<u8>,
    state: &Mutex<State>,
    began: &mut u64,
) -> bool {
    let mut chunk = [0u8; 8192];
    match tcp.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            let mut s = state.lock().expect("backend state");
            if buf.is_empty() {
                s.log.starts += 1;
                *began = s.epoch;
            }
            buf.extend_from_slice(&chunk[..n]);
            s.log.raw.extend_from_slice(&chunk[..n]);
            true
        }
    }
}

enum Framed {
    Done(Got, usize),
    Early(Got, &'static [u8]),
    More,
    Bad,
}

/// One request from the start of `buf`, framed strictly.
fn frame(buf: &[u8], state: &Mutex<State>) -> Framed {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Framed::More,
        Err(_) => return Framed::Bad,
    };
    let mut got = Got {
        method: req.method.unwrap_or("").to_owned(),
        target: req.path.unwrap_or("").to_owned(),
        version: req.version.unwrap_or(1),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_owned(), h.value.to_vec()))
            .collect(),
        body: Vec::new(),
    };
    if got.target != "/probe" {
        let mut s = state.lock().expect("backend state");
        if let Some(Reply::Early(bytes)) = s.script.last().copied() {
            s.script.pop();
            s.log.requests.push(got.clone());
            return Framed::Early(got, bytes);
        }
    }
    let te = got.all("transfer-encoding");
    let cl = got.all("content-length");
    let rest = &buf[head_len..];
    if !te.is_empty() {
        if !cl.is_empty() || te.len() != 1 || !te[0].eq_ignore_ascii_case(b"chunked") {
            return Framed::Bad;
        }
        return match dechunk(rest) {
            Some(Some((body, used))) => {
                got.body = body;
                Framed::Done(got, head_len + used)
            }
            Some(None) => Framed::More,
            None => Framed::Bad,
        };
    }
    let len = match cl.as_slice() {
        [] => 0,
        [v] => match std::str::from_utf8(v)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
        {
            Some(n) if v.iter().all(u8::is_ascii_digit) => n,
            _ => return Framed::Bad,
        },
        _ => return Framed::Bad,
    };
    if rest.len() < len {
        return Framed::More;
    }
    got.body = rest[..len].to_vec();
    Framed::Done(got, head_len + len)
}

/// A chunked body: `None` malformed, `Some(None)` incomplete, else the
/// decoded body and the bytes it took (trailers included).
fn dechunk(mut b: &[u8]) -> Option<Option<(Vec<u8>, usize)>> {
    let total = b.len();
    let mut body = Vec::new();
    loop {
        let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
            return Some(None);
        };
        let line = &b[..eol];
        let size = line.split(|&c| c == b';').next().unwrap_or(b"");
        if size.is_empty() || size.len() > 15 || !size.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        let n = usize::from_str_radix(std::str::from_utf8(size).ok()?, 16).ok()?;
        b = &b[eol + 2..];
        if n == 0 {
            // Trailers up to the empty line.
            loop {
                let Some(eol) = b.windows(2).position(|w| w == b"\r\n") else {
                    return Some(None);
                };
                b = &b[eol + 2..];
                if eol == 0 {
                    return Some(Some((body, total - b.len())));
                }
            }
        }
        if b.len() < n + 2 {
            return Some(None);
        }
        if &b[n..n + 2] != b"\r\n" {
            return None;
        }
        body.extend_from_slice(&b[..n]);
        b = &b[n + 2..];
    }
}
