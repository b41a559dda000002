//! The request rules of issue 18 (items 6-10, 12), once, as pure functions
//! over header names and values, so that every engine decides the same
//! way: the lean HTTP/1 path calls them on the index of the head it parsed
//! (`h1::head`), the hyper path and HTTP/2 on their `HeaderMap`s (from the
//! routing decision, `decide`, and `headers`).
//!
//! - **Framing** (RFC 9112 §6): one strict `Content-Length`; the only
//!   transfer coding passed on is a single `chunked`, never with
//!   `Content-Length`, never in HTTP/1.0. Any other coding is a 501 (not
//!   understood, and re-framing it would corrupt the body).
//! - **Host and authority** (RFC 9112 §3.2, §3.2.2; RFC 9113 §8.3.1):
//!   more than one `Host`, an HTTP/1.1 request without one, or a value
//!   that is not `host[:port]` is a 400. A target in absolute form (HTTP/1)
//!   or `:authority` (HTTP/2) decides the authority over `Host`, and the
//!   backend's `Host` is set to it.
//! - **`Connection` nomination** (RFC 9110 §7.6.1): a client cannot make
//!   framing, `Host` or a header the proxy sets hop-by-hop ([`protected`]).
//! - **Upgrades** (RFC 9110 §7.8): an `Upgrade` that lists `h2c` is never
//!   passed on (RFC 9113 §3.1 removed it; a backend that took it would talk
//!   HTTP/2 with the client directly, past routing, rules, metrics and
//!   logs), nor `HTTP2-Settings`.
//! - **Underscores** in header names ([`Kind::Underscore`]): dropped unless
//!   `server.underscores_in_headers` (a WSGI or CGI backend maps `_` to
//!   `-`, so `Content_Length` could desynchronise it), as nginx does.
//! - **HTTP/2 values** (RFC 9113 §8.2.1): leading or trailing whitespace
//!   makes a request malformed ([`padded`]).

use http::StatusCode;

/// What a header is to the proxy (names compared case-insensitively once).
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
    /// (X-Forwarded-Proto, X-Forwarded-Host, X-Forwarded-Prefix,
    /// X-Switchyard-Pool/-Bucket).
    Ours,
    XRequestId,
    Cookie,
    /// A name with `_`: dropped unless `server.underscores_in_headers` (it
    /// may alias a `-` name behind CGI-style backends; nginx's default).
    Underscore,
    StrictTransport,
}

/// The kind of a header name: the length picks the one or two names it
/// can be (most names a request carries match none), then one
/// case-insensitive comparison decides. Called for every header of every
/// head on the lean path.
pub(crate) fn kind(name: &[u8]) -> Kind {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        2 if is(b"te") => Kind::Hop,
        4 if is(b"host") => Kind::Host,
        6 if is(b"cookie") => Kind::Cookie,
        6 if is(b"expect") => Kind::Expect,
        7 if is(b"upgrade") => Kind::Upgrade,
        7 if is(b"trailer") => Kind::Hop,
        10 if is(b"connection") => Kind::Connection,
        10 if is(b"keep-alive") => Kind::Hop,
        12 if is(b"x-request-id") => Kind::XRequestId,
        14 if is(b"content-length") => Kind::ContentLength,
        14 if is(b"http2-settings") => Kind::Hop,
        15 if is(b"x-forwarded-for") => Kind::XForwardedFor,
        16 if is(b"x-forwarded-host") => Kind::Ours,
        16 if is(b"proxy-connection") => Kind::Hop,
        17 if is(b"transfer-encoding") => Kind::TransferEncoding,
        17 if is(b"x-forwarded-proto") || is(b"x-switchyard-pool") => Kind::Ours,
        // Sent by a route with `strip_prefix`, never passed on from a client.
        18 if is(b"x-forwarded-prefix") => Kind::Ours,
        19 if is(b"x-switchyard-bucket") => Kind::Ours,
        25 if is(b"strict-transport-security") => Kind::StrictTransport,
        _ if name.contains(&b'_') => Kind::Underscore,
        _ => Kind::Other,
    }
}

/// Names a `Connection` header may not remove: framing, Host and the
/// headers the proxy sets.
pub(crate) fn protected(k: Kind) -> bool {
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

/// Request fields never passed on as sent: hop-by-hop ones, `Expect` (the
/// proxy answers `100-continue` itself) and the proxy's own.
pub(crate) fn request_drops(k: Kind) -> bool {
    matches!(k, Kind::Connection | Kind::Expect | Kind::Hop | Kind::Ours)
}

/// Response fields never passed on: hop-by-hop ones (a 101's `Upgrade`
/// and `Connection` excepted, by the caller).
pub(crate) fn response_drops(k: Kind) -> bool {
    matches!(k, Kind::Hop | Kind::Connection | Kind::Upgrade)
}

/// Whether a name with `_` is dropped (`underscores`: the setting allows
/// them).
pub(crate) fn drops_underscore(k: Kind, underscores: bool) -> bool {
    k == Kind::Underscore && !underscores
}

/// Why a request is refused by these rules (before it is routed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invalid message framing")]
    Framing,
    #[error("unsupported transfer coding")]
    Coding,
    #[error("missing, repeated or invalid Host")]
    Host,
    #[error("a malformed HTTP/2 field (padded value)")]
    Malformed,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Coding => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// The `X-Switchyard-Error` reason.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Framing => "bad-framing",
            Refusal::Coding => "unsupported-coding",
            Refusal::Host => "bad-host",
            Refusal::Malformed => "malformed-header",
        }
    }
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

/// Comma-separated tokens of a list value, OWS trimmed, empty ones skipped.
pub(crate) fn tokens(v: &[u8]) -> impl Iterator<Item = &[u8]> {
    v.split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
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
fn single_chunked(v: &[u8]) -> Result<bool, Refusal> {
    let mut codings = tokens(v);
    match (codings.next(), codings.next()) {
        (Some(c), None) if c.eq_ignore_ascii_case(b"chunked") => Ok(true),
        (None, _) => Err(Refusal::Framing),
        _ => {
            let last_chunked = tokens(v)
                .last()
                .is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"));
            Err(
                if last_chunked || !tokens(v).any(|c| c.eq_ignore_ascii_case(b"chunked")) {
                    Refusal::Coding
                } else {
                    Refusal::Framing
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

/// An `Upgrade` value the proxy passes on (and tunnels after a 101): any
/// that does not list `h2c`.
pub(crate) fn tunnels(upgrade: &[u8]) -> bool {
    !tokens(upgrade).any(|t| t.eq_ignore_ascii_case(b"h2c"))
}

/// An HTTP/2 field value with leading or trailing SP or HTAB, which RFC
/// 9113 §8.2.1 makes malformed (the `h2` crate does not check it; HTTP/1
/// parsing strips that whitespace as OWS instead).
pub(crate) fn padded(value: &[u8]) -> bool {
    matches!(value.first(), Some(b' ' | b'\t')) || matches!(value.last(), Some(b' ' | b'\t'))
}

/// What a request head says once its fields are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub framing: Framing,
    /// The client asked to close (or HTTP/1.0 without keep-alive).
    pub close: bool,
    /// An upgrade to pass on (never h2c).
    pub upgrade: bool,
    pub expect_continue: bool,
}

/// The framing, Host and Connection rules of a request head (RFC 9112
/// §3.2, §6, §9.6; RFC 9110 §7.6.1), fed one field at a time in order.
#[derive(Debug, Default)]
pub(crate) struct RequestScan {
    cl: Option<u64>,
    te: usize,
    te_chunked: bool,
    hosts: usize,
    upgrade_hdr: bool,
    conn_upgrade: bool,
    close: bool,
    keep_alive: bool,
    expect_continue: bool,
}

impl RequestScan {
    /// Checks one field; `Ok(true)`: it is not passed on as sent
    /// ([`request_drops`]).
    pub fn field(&mut self, k: Kind, v: &[u8]) -> Result<bool, Refusal> {
        match k {
            Kind::ContentLength => {
                let n = parse_length(v).ok_or(Refusal::Framing)?;
                if self.cl.is_some() {
                    // Repeated, even with the same value: refused, as nginx does.
                    return Err(Refusal::Framing);
                }
                self.cl = Some(n);
            }
            Kind::TransferEncoding => {
                self.te += 1;
                self.te_chunked = single_chunked(v)?;
            }
            Kind::Host => {
                self.hosts += 1;
                if !valid_host(v) {
                    return Err(Refusal::Host);
                }
            }
            Kind::Connection => {
                for t in tokens(v) {
                    self.close |= t.eq_ignore_ascii_case(b"close");
                    self.keep_alive |= t.eq_ignore_ascii_case(b"keep-alive");
                    self.conn_upgrade |= t.eq_ignore_ascii_case(b"upgrade");
                }
            }
            Kind::Upgrade => self.upgrade_hdr = tunnels(v),
            Kind::Expect => {
                self.expect_continue = v.trim_ascii().eq_ignore_ascii_case(b"100-continue");
            }
            _ => {}
        }
        Ok(request_drops(k))
    }

    /// The head's verdict. `minor`: 0 or 1 for HTTP/1.x, 2 for HTTP/2
    /// (which needs no Host and carries no connection-specific fields).
    /// `authority`: an absolute-form target's or `:authority`.
    pub fn finish(&self, minor: u8, authority: Option<&[u8]>) -> Result<Verdict, Refusal> {
        if self.hosts > 1 || (self.hosts == 0 && minor == 1) {
            return Err(Refusal::Host);
        }
        if authority.is_some_and(|a| !valid_host(a)) {
            return Err(Refusal::Host);
        }
        if self.te > 0 && (self.cl.is_some() || minor == 0) {
            return Err(Refusal::Framing);
        }
        if self.te > 1 {
            return Err(Refusal::Coding);
        }
        Ok(Verdict {
            framing: match (self.te_chunked, self.cl) {
                (true, _) => Framing::Chunked,
                (false, Some(0) | None) => Framing::None,
                (false, Some(n)) => Framing::Length(n),
            },
            close: self.close || (minor == 0 && !self.keep_alive),
            upgrade: minor == 1 && self.upgrade_hdr && self.conn_upgrade,
            expect_continue: self.expect_continue,
        })
    }
}

/// The names a message's `Connection` headers nominate (the first eight:
/// beyond `close`, `keep-alive` and `upgrade`, more are rare).
#[derive(Debug)]
pub(crate) struct Nominated<'a> {
    names: [&'a [u8]; 8],
    n: usize,
}

impl<'a> Nominated<'a> {
    /// From the values of the `Connection` headers.
    pub fn of(values: impl Iterator<Item = &'a [u8]>) -> Self {
        let mut me = Self {
            names: [b""; 8],
            n: 0,
        };
        for t in values.flat_map(tokens) {
            if me.n < me.names.len() {
                me.names[me.n] = t;
                me.n += 1;
            }
        }
        me
    }

    /// Whether a field is removed as hop-by-hop because `Connection`
    /// names it (protected names excepted), or because it is an `Upgrade`
    /// of a message that does not upgrade.
    pub fn drops(&self, k: Kind, name: &[u8], upgrade: bool) -> bool {
        if k == Kind::Upgrade {
            return !upgrade;
        }
        self.n > 0
            && !protected(k)
            && self.names[..self.n]
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_kinds_by_name_in_any_case() {
        for (name, want) in [
            ("Host", Kind::Host),
            ("content-LENGTH", Kind::ContentLength),
            ("Transfer-Encoding", Kind::TransferEncoding),
            ("Connection", Kind::Connection),
            ("Upgrade", Kind::Upgrade),
            ("Expect", Kind::Expect),
            ("TE", Kind::Hop),
            ("Trailer", Kind::Hop),
            ("Keep-Alive", Kind::Hop),
            ("Proxy-Connection", Kind::Hop),
            ("HTTP2-Settings", Kind::Hop),
            ("X-Forwarded-For", Kind::XForwardedFor),
            ("X-Forwarded-Proto", Kind::Ours),
            ("X-Forwarded-Host", Kind::Ours),
            ("X-Forwarded-Prefix", Kind::Ours),
            ("X-Switchyard-Pool", Kind::Ours),
            ("X-Switchyard-Bucket", Kind::Ours),
            ("X-Request-Id", Kind::XRequestId),
            ("Cookie", Kind::Cookie),
            ("Strict-Transport-Security", Kind::StrictTransport),
            ("Content_Length", Kind::Underscore),
            ("X_Api_Key", Kind::Underscore),
            // Same lengths as known names, not them.
            ("Accept", Kind::Other),
            ("ts", Kind::Other),
            ("Hostx", Kind::Other),
            ("Content-Lengtx", Kind::Other),
            ("User-Agent", Kind::Other),
            ("", Kind::Other),
        ] {
            assert_eq!(kind(name.as_bytes()), want, "{name}");
        }
    }

    fn scan(minor: u8, fields: &[(&str, &str)]) -> Result<Verdict, Refusal> {
        let mut s = RequestScan::default();
        for (n, v) in fields {
            s.field(kind(n.as_bytes()), v.as_bytes())?;
        }
        s.finish(minor, None)
    }

    #[test]
    fn exactly_one_valid_host_in_http11() {
        assert!(scan(1, &[("Host", "a.test")]).is_ok());
        assert_eq!(scan(1, &[]), Err(Refusal::Host));
        assert_eq!(scan(1, &[("Host", "a"), ("host", "a")]), Err(Refusal::Host));
        assert_eq!(scan(1, &[("Host", "a/b")]), Err(Refusal::Host));
        // HTTP/1.0 and HTTP/2 may leave it out; two are wrong in any version.
        assert!(scan(0, &[]).is_ok() && scan(2, &[]).is_ok());
        assert_eq!(scan(2, &[("host", "a"), ("host", "b")]), Err(Refusal::Host));
        let mut s = RequestScan::default();
        s.field(Kind::Host, b"a").unwrap();
        assert_eq!(s.finish(1, Some(b"u@a.test")), Err(Refusal::Host));
        assert!(s.finish(1, Some(b"a.test:81")).is_ok());
    }

    #[test]
    fn only_a_single_chunked_passes() {
        let te = |v| scan(1, &[("Host", "a"), ("Transfer-Encoding", v)]);
        assert_eq!(te("chunked").unwrap().framing, Framing::Chunked);
        assert_eq!(te("Chunked").unwrap().framing, Framing::Chunked);
        for (v, want) in [
            ("gzip, chunked", Refusal::Coding),
            ("identity, chunked", Refusal::Coding),
            ("gzip", Refusal::Coding),
            ("xchunked", Refusal::Coding),
            ("chunked, gzip", Refusal::Framing),
            ("", Refusal::Framing),
        ] {
            assert_eq!(te(v), Err(want), "{v}");
        }
        let twice = [("Host", "a"), ("TE", "x"), ("Transfer-Encoding", "chunked")];
        assert!(scan(1, &twice).is_ok());
        let twice = [
            ("Host", "a"),
            ("Transfer-Encoding", "chunked"),
            ("Transfer-Encoding", "chunked"),
        ];
        assert_eq!(scan(1, &twice), Err(Refusal::Coding));
        let with_cl = [
            ("Host", "a"),
            ("Content-Length", "5"),
            ("Transfer-Encoding", "chunked"),
        ];
        assert_eq!(scan(1, &with_cl), Err(Refusal::Framing));
        assert_eq!(
            scan(0, &[("Transfer-Encoding", "chunked")]),
            Err(Refusal::Framing)
        );
        assert_eq!(Refusal::Coding.status(), StatusCode::NOT_IMPLEMENTED);
        assert_eq!(Refusal::Framing.status(), StatusCode::BAD_REQUEST);
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
        let cl = |v| scan(1, &[("Host", "a"), ("Content-Length", v)]);
        assert_eq!(cl("5").unwrap().framing, Framing::Length(5));
        assert_eq!(cl("0").unwrap().framing, Framing::None);
        let twice = [
            ("Host", "a"),
            ("Content-Length", "5"),
            ("content-length", "5"),
        ];
        assert_eq!(scan(1, &twice), Err(Refusal::Framing));
    }

    #[test]
    fn connection_cannot_nominate_protected_headers() {
        let n = Nominated::of([&b"host, x-request-id, X-A"[..], b"x-forwarded-for"].into_iter());
        for name in [
            "Host",
            "x-request-id",
            "X-Forwarded-For",
            "x-forwarded-host",
        ] {
            assert!(
                !n.drops(kind(name.as_bytes()), name.as_bytes(), false),
                "{name}"
            );
        }
        assert!(n.drops(Kind::Other, b"x-a", false));
        assert!(!n.drops(Kind::Other, b"x-b", false));
        assert!(n.drops(Kind::Upgrade, b"upgrade", false));
        assert!(!n.drops(Kind::Upgrade, b"upgrade", true));
    }

    #[test]
    fn upgrades_pass_but_h2c_does_not() {
        let up = |u| {
            scan(
                1,
                &[("Host", "a"), ("Connection", "Upgrade"), ("Upgrade", u)],
            )
            .unwrap()
            .upgrade
        };
        assert!(up("websocket") && up("echo"));
        assert!(!up("h2c") && !up("H2C, websocket"));
        assert!(
            !scan(0, &[("Connection", "upgrade"), ("Upgrade", "websocket")])
                .unwrap()
                .upgrade
        );
    }

    #[test]
    fn underscores_and_padding() {
        assert_eq!(kind(b"Transfer_Encoding"), Kind::Underscore);
        assert!(drops_underscore(Kind::Underscore, false));
        assert!(!drops_underscore(Kind::Underscore, true));
        assert!(!drops_underscore(Kind::Other, false));
        assert!(padded(b" a") && padded(b"a\t") && !padded(b"a b") && !padded(b""));
    }
}
