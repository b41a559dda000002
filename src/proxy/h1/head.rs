//! Message heads as an index over their bytes: `httparse` checks the
//! syntax (RFC 9112 §2-§5: token names, no whitespace before the colon, no
//! obs-fold, no bare CR, no CTLs in values, HTTP/1.0 and 1.1 only); the
//! framing, Host and Connection rules on top are `proxy::rules`, shared
//! with the hyper path and HTTP/2, called here on the head's index, so that
//! a head is read once, routed on and rewritten from the same bytes.

use std::ops::Range;

use crate::proxy::rules::{self, kind, Nominated, Refusal, RequestScan};
pub(crate) use crate::proxy::rules::{tokens, Framing, Kind};

/// One header line: byte ranges of name and value in the head.
#[derive(Debug, Clone)]
pub(crate) struct Field {
    pub name: Range<u32>,
    pub value: Range<u32>,
    pub kind: Kind,
    /// Removed when the head is written on (hop-by-hop, nominated by
    /// Connection, or replaced by the proxy's own).
    pub drop: bool,
}

/// Why a head was refused: the status for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed request head")]
    Syntax,
    #[error("request head too large")]
    TooLarge,
    #[error("HTTP version not supported")]
    Version,
    /// Refused by the shared rules (framing, coding, Host).
    #[error(transparent)]
    Rule(#[from] Refusal),
}

/// The framing refusal, for the response parser too.
const FRAMING: HeadError = HeadError::Rule(Refusal::Framing);

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::Version => 505,
            HeadError::Rule(r) => r.status().as_u16(),
            HeadError::Syntax => 400,
        }
    }
}

/// The parsed request head; ranges index the connection's read buffer.
#[derive(Debug, Default)]
pub(crate) struct Request {
    pub len: usize,
    pub method: Range<u32>,
    pub target: Range<u32>,
    /// The origin-form target to send upstream (path and query).
    pub origin: Range<u32>,
    /// The authority of an absolute-form target (it replaces Host).
    pub authority: Option<Range<u32>>,
    /// The path, for routing.
    pub path: Range<u32>,
    /// 0 or 1.
    pub minor: u8,
    pub fields: Vec<Field>,
    pub framing: Framing,
    /// The client asked to close (or HTTP/1.0 without keep-alive).
    pub close: bool,
    pub expect_continue: bool,
    /// A WebSocket-style upgrade to pass on (never h2c).
    pub upgrade: bool,
    pub host: Option<Range<u32>>,
}

/// The parsed response head.
#[derive(Debug, Default)]
pub(crate) struct Response {
    pub len: usize,
    pub status: u16,
    pub minor: u8,
    /// Status code and reason phrase as sent (after the version).
    pub line_rest: Range<u32>,
    pub fields: Vec<Field>,
    pub framing: Framing,
    /// The connection cannot carry another request.
    pub close: bool,
    pub has_hsts: bool,
}

/// `Ok(None)`: the head is not complete yet.
pub(crate) fn parse_request(
    buf: &[u8],
    max_headers: usize,
    out: &mut Request,
) -> Result<Option<()>, HeadError> {
    let mut stack = [httparse::EMPTY_HEADER; 128];
    let mut heap;
    let headers: &mut [httparse::Header<'_>] = if max_headers <= stack.len() {
        &mut stack[..max_headers]
    } else {
        heap = vec![httparse::EMPTY_HEADER; max_headers];
        &mut heap
    };
    let mut req = httparse::Request::new(headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(httparse::Error::Version) => return Err(version_error(buf)),
        Err(_) => return Err(HeadError::Syntax),
    };
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start as u32..(start + s.len()) as u32
    };
    let method = req.method.ok_or(HeadError::Syntax)?;
    let target = req.path.ok_or(HeadError::Syntax)?;
    out.len = len;
    out.host = None;
    out.expect_continue = false;
    out.method = at(method.as_bytes());
    out.target = at(target.as_bytes());
    out.minor = req.version.ok_or(HeadError::Syntax)?;
    out.fields.clear();
    for h in req.headers.iter() {
        out.fields.push(Field {
            name: at(h.name.as_bytes()),
            value: at(h.value),
            kind: kind(h.name.as_bytes()),
            drop: false,
        });
    }
    // Target forms (RFC 9112 §3.2).
    let t = target.as_bytes();
    out.authority = None;
    if t.first() == Some(&b'/') {
        out.origin = out.target.clone();
    } else if let Some(rest) = strip_scheme(t) {
        let skip = t.len() - rest.len();
        let end = rest
            .iter()
            .position(|&b| b == b'/' || b == b'?')
            .unwrap_or(rest.len());
        if end == 0 {
            return Err(HeadError::Syntax);
        }
        let base = out.target.start + skip as u32;
        out.authority = Some(base..base + end as u32);
        out.origin = base + end as u32..out.target.end;
    } else if (t == b"*" && method == "OPTIONS") || method == "CONNECT" {
        out.origin = out.target.clone();
    } else {
        return Err(HeadError::Syntax);
    }
    let o = &buf[out.origin.start as usize..out.origin.end as usize];
    let path_len = o.iter().position(|&b| b == b'?').unwrap_or(o.len());
    out.path = out.origin.start..out.origin.start + path_len as u32;
    apply_request_rules(buf, out)?;
    Ok(Some(()))
}

/// A well-formed version other than 1.0 and 1.1 is 505; anything else
/// (`http/1.1`, `HTTP/1`) is not a version at all: 400.
fn version_error(buf: &[u8]) -> HeadError {
    let line = buf
        .split(|&b| b == b'\n')
        .next()
        .unwrap_or(buf)
        .trim_ascii_end();
    match line.rsplit(|&b| b == b' ').next() {
        Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor])
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            HeadError::Version
        }
        _ => HeadError::Syntax,
    }
}

fn strip_scheme(t: &[u8]) -> Option<&[u8]> {
    for scheme in [&b"http://"[..], b"https://"] {
        if t.len() > scheme.len() && t[..scheme.len()].eq_ignore_ascii_case(scheme) {
            return Some(&t[scheme.len()..]);
        }
    }
    None
}

fn slice<'b>(buf: &'b [u8], r: &Range<u32>) -> &'b [u8] {
    &buf[r.start as usize..r.end as usize]
}

/// The shared request rules (`proxy::rules`) over the head's fields: each
/// field's `drop`, the head's framing, Host, close and upgrade.
fn apply_request_rules(buf: &[u8], r: &mut Request) -> Result<(), HeadError> {
    let mut scan = RequestScan::default();
    for f in &mut r.fields {
        let v = slice(buf, &f.value);
        f.drop = scan.field(f.kind, v)?;
        if f.kind == Kind::Host {
            r.host = Some(f.value.clone());
        }
    }
    let authority = r.authority.as_ref().map(|a| slice(buf, a));
    let verdict = scan.finish(r.minor, authority)?;
    r.framing = verdict.framing;
    r.close = verdict.close;
    r.upgrade = verdict.upgrade;
    r.expect_continue = verdict.expect_continue;
    nominated(buf, &mut r.fields, r.upgrade);
    Ok(())
}

/// Marks the headers a `Connection` header names as dropped (protected
/// names excepted); `Upgrade` stays only for an upgrade.
fn nominated(buf: &[u8], fields: &mut [Field], upgrade: bool) {
    let connection = fields.iter().filter(|f| f.kind == Kind::Connection);
    let names = Nominated::of(connection.map(|f| slice(buf, &f.value)));
    for f in fields.iter_mut() {
        f.drop |= names.drops(f.kind, slice(buf, &f.name), upgrade);
    }
}

/// `Ok(None)`: incomplete. `head_request`: the answer has no body.
pub(crate) fn parse_response(
    buf: &[u8],
    head_request: bool,
    out: &mut Response,
) -> Result<Option<()>, HeadError> {
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Syntax),
    };
    let at = |s: &[u8]| {
        let start = s.as_ptr() as usize - buf.as_ptr() as usize;
        start as u32..(start + s.len()) as u32
    };
    out.len = len;
    out.status = resp.code.ok_or(HeadError::Syntax)?;
    out.minor = resp.version.ok_or(HeadError::Syntax)?;
    // "HTTP/1.x " is 9 bytes; the rest of the line is code and reason.
    let line_end = buf
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(9);
    out.line_rest = 9..line_end.max(9) as u32;
    out.fields.clear();
    let (mut cl, mut te, mut close, mut keep_alive) = (None, None::<bool>, false, false);
    out.has_hsts = false;
    for h in resp.headers.iter() {
        let k = kind(h.name.as_bytes());
        let mut drop = rules::response_drops(k);
        match k {
            Kind::ContentLength => {
                let n = rules::parse_length(h.value).ok_or(FRAMING)?;
                if cl.is_some_and(|c| c != n) {
                    return Err(FRAMING);
                }
                drop = cl.is_some();
                cl = Some(n);
            }
            Kind::TransferEncoding => {
                if te.is_some() {
                    return Err(FRAMING);
                }
                te = Some(
                    tokens(h.value)
                        .last()
                        .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked")),
                );
            }
            Kind::Connection => {
                for t in tokens(h.value) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            Kind::StrictTransport => out.has_hsts = true,
            _ => {}
        }
        out.fields.push(Field {
            name: at(h.name.as_bytes()),
            value: at(h.value),
            kind: k,
            drop,
        });
    }
    if out.status == 101 {
        // The Upgrade and Connection of a 101 go on to the client.
        for f in &mut out.fields {
            if matches!(f.kind, Kind::Upgrade | Kind::Connection) {
                f.drop = false;
            }
        }
    }
    nominated(buf, &mut out.fields, out.status == 101);
    let bodiless = head_request || out.status < 200 || out.status == 204 || out.status == 304;
    out.framing = match (te, cl) {
        (Some(_), Some(_)) => return Err(FRAMING),
        _ if bodiless => Framing::None,
        (Some(true), None) => Framing::Chunked,
        (Some(false), None) => Framing::Close,
        (None, Some(n)) => Framing::Length(n),
        (None, None) => Framing::Close,
    };
    out.close = close || (out.minor == 0 && !keep_alive) || out.framing == Framing::Close;
    Ok(Some(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &[u8]) -> Result<Request, HeadError> {
        let mut r = Request::default();
        parse_request(s, 100, &mut r).map(|o| {
            assert!(o.is_some(), "incomplete");
            r
        })
    }

    #[test]
    fn framing_rules() {
        let ok = req(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").unwrap();
        assert_eq!(ok.framing, Framing::Length(5));
        let chunked =
            req(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n").unwrap();
        assert_eq!(chunked.framing, Framing::Chunked);
        for (bad, status) in [
            (&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"[..], 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 400),
            (b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551616\r\n\r\n", 400),
            (b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
        ] {
            let e = req(bad).expect_err(&String::from_utf8_lossy(bad));
            assert_eq!(e.status(), status, "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn connection_cannot_remove_protected_headers() {
        let buf = b"GET / HTTP/1.1\r\nHost: a\r\nConnection: host, x-request-id, x-a\r\nX-Request-Id: 1\r\nX-A: 1\r\n\r\n";
        let r = req(buf).unwrap();
        let dropped: Vec<&[u8]> = r
            .fields
            .iter()
            .filter(|f| f.drop)
            .map(|f| slice(buf, &f.name))
            .collect();
        assert_eq!(dropped, [&b"Connection"[..], b"X-A"]);
    }

    #[test]
    fn absolute_form_gives_the_authority() {
        let buf = b"GET http://a.test:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n";
        let r = req(buf).unwrap();
        assert_eq!(slice(buf, r.authority.as_ref().unwrap()), b"a.test:8080");
        assert_eq!(slice(buf, &r.origin), b"/p?q");
        assert_eq!(slice(buf, &r.path), b"/p");
    }

    #[test]
    fn upgrades_pass_but_h2c_does_not() {
        let ws =
            req(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .unwrap();
        assert!(ws.upgrade);
        let h2c = req(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
            .unwrap();
        assert!(!h2c.upgrade);
        assert!(h2c.fields.iter().all(|f| f.kind != Kind::Upgrade || f.drop));
    }

    #[test]
    fn responses_frame_strictly() {
        let mut r = Response::default();
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        parse_response(ok, false, &mut r).unwrap().unwrap();
        assert_eq!(
            (r.status, r.framing, r.close),
            (200, Framing::Length(2), false)
        );
        parse_response(b"HTTP/1.1 200 OK\r\n\r\n", false, &mut r)
            .unwrap()
            .unwrap();
        assert_eq!((r.framing, r.close), (Framing::Close, true));
        parse_response(
            b"HTTP/1.1 204 No\r\nContent-Length: 5\r\n\r\n",
            false,
            &mut r,
        )
        .unwrap()
        .unwrap();
        assert_eq!(r.framing, Framing::None);
        parse_response(
            b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n",
            false,
            &mut r,
        )
        .unwrap()
        .unwrap();
        assert!(r.close);
        let both = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(parse_response(both, false, &mut r), Err(FRAMING));
    }
}
