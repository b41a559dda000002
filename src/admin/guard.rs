//! The admin listener's request guard: what every admin request must look
//! like before any endpoint sees it, so that a web page in a browser on the
//! same host cannot drive or read the API (cross-site requests, DNS
//! rebinding), and a client cannot hold a handler with a body it never
//! sends. Checked in this order:
//!
//! Host and Origin are checked before authentication (`check_source`),
//! body size and type after it, for API requests (`check_body`):
//!
//! 1. **Host** (DNS rebinding). A page served from `evil.example` whose name
//!    is rebound to 127.0.0.1 reaches the admin with `Host: evil.example`.
//!    Accepted: an IP literal (it cannot be rebound), `localhost` and
//!    `*.localhost` (browsers resolve those to loopback themselves, RFC
//!    6761), the names in `admin.allowed_hosts`, and no Host at all
//!    (HTTP/1.0 health checkers; browsers always send one). A request that carries
//!    the right bearer token is exempt: a page cannot know the token.
//! 2. **Origin** (cross-site requests). Browsers send `Origin` with every
//!    cross-origin request and every non-GET request; the admin's own origin
//!    is `http(s)://` + its `Host`. Anything else (including `null`, from
//!    sandboxed frames and `file:`) is refused. Clients that are not
//!    browsers (`switchyard ctl`, curl) send no `Origin` and are unaffected.
//! 3. **Declared body size.** A `Content-Length` above [`MAX_BODY`] is
//!    answered 413 at once, before any byte of the body is awaited.
//! 4. **Content-Type of mutations.** A request other than GET/HEAD/OPTIONS
//!    that carries a body, or declares a type, must declare
//!    `application/json`. A form or `text/plain` post — what a page can
//!    send cross-site without a CORS preflight — is refused with 415. A
//!    mutation with no body and no type (`ctl drain`, `curl -X POST
//!    .../reload`) passes: a browser can send that only with an `Origin`,
//!    which step 2 refuses.
//!
//! The checks are pure functions over header bytes (unit-tested here);
//! `tests/hardening_admin.rs` drives them over real sockets. The web
//! console served from the admin's `/` calls the API same-origin with
//! `Content-Type: application/json` and the bearer token, which passes.

use http::{header, HeaderMap, Method};

use crate::api::{ErrorBody, ErrorCode};

/// Largest request body the admin API accepts (the API reads at most this).
pub const MAX_BODY: usize = 64 * 1024;

/// Why a request was refused before reaching an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Host` names neither an IP, localhost nor an allowed host.
    Host,
    /// `Origin` is not the admin's own.
    Origin,
    /// `Content-Length` above [`MAX_BODY`].
    TooLarge,
    /// A mutation whose body is not declared `application/json`.
    ContentType,
}

impl Refusal {
    /// The error body (its code gives the status) with a one-line
    /// explanation.
    pub fn answer(self) -> ErrorBody {
        let (code, detail) = match self {
            Refusal::Host => (
                ErrorCode::HostNotAllowed,
                "the Host header names neither an IP address, localhost, nor a name in admin.allowed_hosts",
            ),
            Refusal::Origin => (
                ErrorCode::CrossOrigin,
                "requests from another origin are refused (the admin API is not for web pages)",
            ),
            Refusal::TooLarge => (
                ErrorCode::BodyTooLarge,
                "request bodies are limited to 65536 bytes",
            ),
            Refusal::ContentType => (
                ErrorCode::UnsupportedMediaType,
                "send request bodies as Content-Type: application/json",
            ),
        };
        ErrorBody::new(code, detail)
    }
}

/// The guard's configuration: the host names allowed besides IP literals
/// and localhost (`admin.allowed_hosts`, lower case, without port).
#[derive(Debug, Clone, Default)]
pub struct Guard {
    allowed_hosts: Box<[Box<str>]>,
}

impl Guard {
    pub fn new(allowed_hosts: &[String]) -> Self {
        Self {
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase().into_boxed_str())
                .collect(),
        }
    }

    /// Host and Origin: may this request reach the admin at all?
    /// `token_ok` is true only when a token is configured and the request
    /// carries it. Checked before authentication.
    pub fn check_source(&self, headers: &HeaderMap, token_ok: bool) -> Result<(), Refusal> {
        let host = headers.get(header::HOST).map(|h| h.as_bytes());
        // No Host at all (HTTP/1.0 health checkers) cannot be a rebinding
        // page: browsers always send one.
        if !token_ok && !host.is_none_or(|h| host_allowed(h, &self.allowed_hosts)) {
            return Err(Refusal::Host);
        }
        if let Some(origin) = headers.get(header::ORIGIN) {
            if !host.is_some_and(|h| origin_is_own(origin.as_bytes(), h)) {
                return Err(Refusal::Origin);
            }
        }
        Ok(())
    }

    /// Declared size and content type of an API request's body. Checked
    /// after authentication, before the body is awaited.
    pub fn check_body(&self, method: &Method, headers: &HeaderMap) -> Result<(), Refusal> {
        let length = declared_length(headers);
        if length.is_some_and(|n| n > MAX_BODY as u64) {
            return Err(Refusal::TooLarge);
        }
        if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
            return Ok(());
        }
        let has_body =
            headers.contains_key(header::TRANSFER_ENCODING) || length.is_some_and(|n| n > 0);
        match headers.get(header::CONTENT_TYPE) {
            Some(ct) if !is_json(ct.as_bytes()) => Err(Refusal::ContentType),
            None if has_body => Err(Refusal::ContentType),
            _ => Ok(()),
        }
    }
}

/// The declared `Content-Length` (hyper has already rejected a malformed
/// or conflicting one); `None` when absent.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    let v = headers.get(header::CONTENT_LENGTH)?;
    std::str::from_utf8(v.as_bytes()).ok()?.trim().parse().ok()
}

/// Is `host` (a Host header value: name or IP literal, optional port) one
/// the admin answers to? IP literals, `localhost`, `*.localhost` and the
/// `allowed` names (lower case), compared without the port.
pub fn host_allowed(host: &[u8], allowed: &[Box<str>]) -> bool {
    let Some(name) = strip_port(host) else {
        return false;
    };
    if name.first() == Some(&b'[') {
        // An IPv6 literal: "[" IPv6address "]".
        return name.last() == Some(&b']')
            && std::str::from_utf8(&name[1..name.len() - 1])
                .is_ok_and(|s| s.parse::<std::net::Ipv6Addr>().is_ok());
    }
    let Ok(name) = std::str::from_utf8(name) else {
        return false;
    };
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return true;
    }
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .len()
            .checked_sub(".localhost".len())
            .is_some_and(|i| i > 0 && name[i..].eq_ignore_ascii_case(".localhost"))
        || allowed.iter().any(|a| name.eq_ignore_ascii_case(a))
}

/// `name[:port]` → `name` (the port, when present, must be digits).
fn strip_port(host: &[u8]) -> Option<&[u8]> {
    let host = host.trim_ascii();
    let end = if host.first() == Some(&b'[') {
        host.iter().position(|&b| b == b']')? + 1
    } else {
        host.iter().position(|&b| b == b':').unwrap_or(host.len())
    };
    let (name, rest) = host.split_at(end);
    let port_ok = match rest.split_first() {
        None => true,
        Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    (port_ok && !name.is_empty()).then_some(name)
}

/// Is `origin` (an `Origin` header value) the admin's own, i.e. `http://`
/// or `https://` followed by exactly the request's `Host`?
pub fn origin_is_own(origin: &[u8], host: &[u8]) -> bool {
    let origin = origin.trim_ascii();
    let authority = match origin.iter().position(|&b| b == b':') {
        Some(i)
            if origin[..i].eq_ignore_ascii_case(b"http")
                || origin[..i].eq_ignore_ascii_case(b"https") =>
        {
            origin[i..].strip_prefix(b"://")
        }
        _ => None,
    };
    authority.is_some_and(|a| !a.is_empty() && a.eq_ignore_ascii_case(host.trim_ascii()))
}

/// Is this `Content-Type` `application/json` (parameters such as
/// `charset` allowed, case-insensitive)?
pub fn is_json(content_type: &[u8]) -> bool {
    let media = content_type
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    media.eq_ignore_ascii_case(b"application/json")
}

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// case-insensitive and followed by one or more spaces (RFC 9110 §11.1,
/// §11.4); `None` for any other scheme.
pub fn bearer(authorization: &[u8]) -> Option<&[u8]> {
    let v = authorization.trim_ascii();
    let space = v.iter().position(|&b| b == b' ')?;
    let (scheme, rest) = v.split_at(space);
    scheme
        .eq_ignore_ascii_case(b"bearer")
        .then(|| rest.trim_ascii())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed() -> Vec<Box<str>> {
        vec!["admin.internal".into()]
    }

    #[test]
    fn hosts_ip_literals_localhost_and_configured_names_pass() {
        let a = allowed();
        for ok in [
            "127.0.0.1:9901",
            "127.0.0.1",
            "10.1.2.3:9901",
            "[::1]:9901",
            "[::1]",
            "localhost:9901",
            "LOCALHOST",
            "localhost.",
            "console.localhost:9901",
            "admin.internal:9901",
            "Admin.Internal",
        ] {
            assert!(host_allowed(ok.as_bytes(), &a), "{ok}");
        }
        for bad in [
            "evil.example:9901",
            "evil.example",
            "localhost.evil.example",
            "evillocalhost",
            ".localhost",
            "127.0.0.1.evil.example",
            "admin.internal.evil.example",
            "[::1",
            "[not-an-ip]",
            "127.0.0.1:90x",
            "",
            ":9901",
            "a@127.0.0.1",
        ] {
            assert!(!host_allowed(bad.as_bytes(), &a), "{bad}");
        }
    }

    #[test]
    fn only_the_admins_own_origin_passes() {
        assert!(origin_is_own(b"http://127.0.0.1:9901", b"127.0.0.1:9901"));
        assert!(origin_is_own(b"HTTP://LOCALHOST:9901", b"localhost:9901"));
        assert!(origin_is_own(b"https://admin.internal", b"admin.internal"));
        for bad in [
            &b"http://evil.example"[..],
            b"http://127.0.0.1:9902",
            b"null",
            b"file://",
            b"http://127.0.0.1:9901.evil.example",
            b"ftp://127.0.0.1:9901",
            b"http://",
            b"",
        ] {
            assert!(!origin_is_own(bad, b"127.0.0.1:9901"), "{bad:?}");
        }
    }

    #[test]
    fn json_media_types() {
        assert!(is_json(b"application/json"));
        assert!(is_json(b"Application/JSON; charset=utf-8"));
        assert!(is_json(b" application/json "));
        assert!(!is_json(b"text/plain"));
        assert!(!is_json(b"application/x-www-form-urlencoded"));
        assert!(!is_json(b"multipart/form-data; boundary=x"));
        assert!(!is_json(b"application/jsonp"));
        assert!(!is_json(b""));
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer(b"Bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"bearer s3cret"), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"BEARER   s3cret "), Some(&b"s3cret"[..]));
        assert_eq!(bearer(b"Basic czNjcmV0"), None);
        assert_eq!(bearer(b"Bearer"), None);
        assert_eq!(bearer(b"Bearer "), None);
        assert_eq!(bearer(b"Bearers3cret"), None);
    }

    fn head(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn the_console_passes_and_cross_site_requests_do_not() {
        let g = Guard::new(&[]);
        let check = |m: Method, h: &HeaderMap, token_ok| {
            g.check_source(h, token_ok)
                .and_then(|()| g.check_body(&m, h))
        };
        let console = head(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "http://127.0.0.1:9901"),
            ("content-type", "application/json"),
            ("content-length", "15"),
        ]);
        assert_eq!(check(Method::POST, &console, false), Ok(()));
        let form = head(&[
            ("host", "127.0.0.1:9901"),
            ("content-type", "text/plain"),
            ("content-length", "15"),
        ]);
        assert_eq!(check(Method::POST, &form, false), Err(Refusal::ContentType));
        let untyped = head(&[("host", "127.0.0.1:9901"), ("content-length", "2")]);
        assert_eq!(
            check(Method::PUT, &untyped, false),
            Err(Refusal::ContentType)
        );
        let chunked = head(&[("host", "127.0.0.1:9901"), ("transfer-encoding", "chunked")]);
        assert_eq!(
            check(Method::PUT, &chunked, false),
            Err(Refusal::ContentType)
        );
        let bodiless = head(&[("host", "127.0.0.1:9901")]);
        assert_eq!(check(Method::POST, &bodiless, false), Ok(()));
        let cross = head(&[
            ("host", "127.0.0.1:9901"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(check(Method::POST, &cross, true), Err(Refusal::Origin));
        let rebound = head(&[("host", "evil.example:9901")]);
        assert_eq!(check(Method::GET, &rebound, false), Err(Refusal::Host));
        assert_eq!(check(Method::GET, &rebound, true), Ok(()));
        assert_eq!(check(Method::GET, &HeaderMap::new(), false), Ok(()));
        let no_host = head(&[("origin", "http://127.0.0.1:9901")]);
        assert_eq!(check(Method::GET, &no_host, false), Err(Refusal::Origin));
        let huge = head(&[
            ("host", "127.0.0.1:9901"),
            ("content-type", "application/json"),
            ("content-length", "99999999999"),
        ]);
        assert_eq!(check(Method::PUT, &huge, false), Err(Refusal::TooLarge));
    }
}
