//! Message heads as an index over their bytes: `httparse` checks the
//! syntax (RFC 9112 §2-§5: token names, no whitespace before the colon, no
//! obs-fold, no bare CR, no CTLs in values, HTTP/1.0 and 1.1 only); the
//! framing and header rules on top are here, as pure functions, so that a
//! head is read once, routed on and rewritten from the same bytes.

use std::ops::Range;

/// What a header is to the proxy (names compared case-insensitively once,
/// at parse time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Other,
    Host,
    ContentLength,
    TransferEncoding,
    Connection,
    Upgrade,
    Expect,
    /// Hop-by-hop headers always removed (TE, Trailer, Keep-Alive,
    /// Proxy-Connection, HTTP2-Settings).
    Hop,
    XForwardedFor,
    /// Headers the proxy sets itself; a client's copies are dropped
    /// (X-Forwarded-Proto, X-Forwarded-Host, X-Switchyard-Pool/-Bucket).
    Ours,
    XRequestId,
    Cookie,
    /// A name with `_`: dropped (it may alias a `-` name behind CGI-style
    /// backends; nginx's default).
    Underscore,
    StrictTransport,
}

fn kind(name: &[u8]) -> Kind {
    const NAMES: &[(&[u8], Kind)] = &[
        (b"host", Kind::Host),
        (b"content-length", Kind::ContentLength),
        (b"transfer-encoding", Kind::TransferEncoding),
        (b"connection", Kind::Connection),
        (b"upgrade", Kind::Upgrade),
        (b"expect", Kind::Expect),
        (b"te", Kind::Hop),
        (b"trailer", Kind::Hop),
        (b"keep-alive", Kind::Hop),
        (b"proxy-connection", Kind::Hop),
        (b"http2-settings", Kind::Hop),
        (b"x-forwarded-for", Kind::XForwardedFor),
        (b"x-forwarded-proto", Kind::Ours),
        (b"x-forwarded-host", Kind::Ours),
        (b"x-switchyard-pool", Kind::Ours),
        (b"x-switchyard-bucket", Kind::Ours),
        // Sent by a route with `strip_prefix`, never passed on from a client.
        (b"x-forwarded-prefix", Kind::Ours),
        (b"x-request-id", Kind::XRequestId),
        (b"cookie", Kind::Cookie),
        (b"strict-transport-security", Kind::StrictTransport),
    ];
    for (n, k) in NAMES {
        if n.len() == name.len() && n.eq_ignore_ascii_case(name) {
            return *k;
        }
    }
    if name.contains(&b'_') {
        Kind::Underscore
    } else {
        Kind::Other
    }
}

/// Names a `Connection` header may not remove: framing, Host and the
/// headers the proxy sets.
fn protected(k: Kind) -> bool {
    matches!(
        k,
        Kind::Host
            | Kind::ContentLength
            | Kind::TransferEncoding
            | Kind::XForwardedFor
            | Kind::Ours
            | Kind::XRequestId
    )
}

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

/// How a message body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Framing {
    /// No body (or a bodiless answer).
    #[default]
    None,
    Length(u64),
    Chunked,
    /// A response read until the backend closes.
    Close,
}

/// Why a head was refused: the status for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("malformed request head")]
    Syntax,
    #[error("request head too large")]
    TooLarge,
    #[error("invalid message framing")]
    Framing,
    #[error("unsupported transfer coding")]
    Coding,
    #[error("missing, repeated or invalid Host")]
    Host,
    #[error("HTTP version not supported")]
    Version,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::TooLarge => 431,
            HeadError::Coding => 501,
            HeadError::Version => 505,
            _ => 400,
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

/// Comma-separated tokens of a list value, OWS trimmed, empty ones skipped.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// Framing, Host and Connection rules of a request (RFC 9112 §3.2, §6,
/// §9.6; RFC 9110 §7.6.1).
fn apply_request_rules(buf: &[u8], r: &mut Request) -> Result<(), HeadError> {
    let mut cl: Option<u64> = None;
    let mut te = 0usize;
    let mut te_chunked = false;
    let mut hosts = 0;
    let mut upgrade_hdr = false;
    let mut conn_upgrade = false;
    let (mut close, mut keep_alive) = (false, false);
    for f in &mut r.fields {
        let v = slice(buf, &f.value);
        match f.kind {
            Kind::ContentLength => {
                let n = parse_length(v).ok_or(HeadError::Framing)?;
                if cl.is_some() {
                    // Repeated, even with the same value: refused, as nginx does.
                    return Err(HeadError::Framing);
                }
                cl = Some(n);
            }
            Kind::TransferEncoding => {
                te += 1;
                te_chunked = single_chunked(v)?;
            }
            Kind::Host => {
                hosts += 1;
                if !valid_host(v) {
                    return Err(HeadError::Host);
                }
                r.host = Some(f.value.clone());
            }
            Kind::Connection => {
                f.drop = true;
                for t in tokens(v) {
                    close |= t.eq_ignore_ascii_case(b"close");
                    keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                    conn_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
                }
            }
            Kind::Upgrade => upgrade_hdr = !tokens(v).any(|t| t.eq_ignore_ascii_case(b"h2c")),
            Kind::Expect => {
                f.drop = true;
                r.expect_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            Kind::Hop | Kind::Ours | Kind::Underscore => f.drop = true,
            _ => {}
        }
    }
    if hosts > 1 || (hosts == 0 && r.minor == 1) {
        return Err(HeadError::Host);
    }
    if te > 0 && (cl.is_some() || r.minor == 0) {
        return Err(HeadError::Framing);
    }
    if te > 1 {
        return Err(HeadError::Coding);
    }
    r.framing = match (te_chunked, cl) {
        (true, _) => Framing::Chunked,
        (false, Some(0) | None) => Framing::None,
        (false, Some(n)) => Framing::Length(n),
    };
    r.close = close || (r.minor == 0 && !keep_alive);
    r.upgrade = r.minor == 1 && upgrade_hdr && conn_upgrade;
    nominated(buf, &mut r.fields, r.upgrade);
    Ok(())
}

/// Marks the headers a `Connection` header names as dropped (protected
/// names excepted); `Upgrade` stays only for an upgrade.
fn nominated(buf: &[u8], fields: &mut [Field], upgrade: bool) {
    let mut names: [&[u8]; 8] = [b""; 8];
    let mut n = 0;
    for f in fields.iter().filter(|f| f.kind == Kind::Connection) {
        for t in tokens(slice(buf, &f.value)) {
            if n < names.len() {
                names[n] = t;
                n += 1;
            }
        }
    }
    for f in fields.iter_mut() {
        if f.kind == Kind::Upgrade && !upgrade {
            f.drop = true;
        }
        if n == 0 || protected(f.kind) || (upgrade && f.kind == Kind::Upgrade) {
            continue;
        }
        let name = slice(buf, &f.name);
        if names[..n].iter().any(|t| t.eq_ignore_ascii_case(name)) {
            f.drop = true;
        }
    }
}

/// `1*DIGIT`, no sign, no list, no overflow.
pub(crate) fn parse_length(v: &[u8]) -> Option<u64> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0u64, |n, d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// A request's Transfer-Encoding: exactly `chunked` (issue 18: a single
/// chunked coding, nothing else), else why not.
fn single_chunked(v: &[u8]) -> Result<bool, HeadError> {
    let mut codings = tokens(v);
    match (codings.next(), codings.next()) {
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(true),
        (None, _) => Err(HeadError::Framing),
        _ => {
            let last_chunked = tokens(v)
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            Err(
                if last_chunked || !tokens(v).any(|c| c.eq_ignore_ascii_case(b"chunked")) {
                    HeadError::Coding
                } else {
                    HeadError::Framing
                },
            )
        }
    }
}

/// `uri-host [":" port]` (RFC 3986 reg-name, IPv4, or `[IPv6]`).
pub(crate) fn valid_host(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= 255
        && v.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b':'
                        | b'['
                        | b']'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        })
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
        let mut drop = matches!(k, Kind::Hop | Kind::Connection | Kind::Upgrade);
        match k {
            Kind::ContentLength => {
                let n = parse_length(h.value).ok_or(HeadError::Framing)?;
                if cl.is_some_and(|c| c != n) {
                    return Err(HeadError::Framing);
                }
                drop = cl.is_some();
                cl = Some(n);
            }
            Kind::TransferEncoding => {
                if te.is_some() {
                    return Err(HeadError::Framing);
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
        (Some(_), Some(_)) => return Err(HeadError::Framing),
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
    fn lengths_are_strict() {
        assert_eq!(parse_length(b" 42 "), Some(42));
        for bad in [
            &b"-1"[..],
            b"+1",
            b"0x1",
            b"1 1",
            b"",
            b"1,1",
            b"99999999999999999999",
        ] {
            assert_eq!(parse_length(bad), None);
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
        assert_eq!(parse_response(both, false, &mut r), Err(HeadError::Framing));
    }
}
