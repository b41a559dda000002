//! Header rewriting between client and backend on the hyper path and
//! HTTP/2 (`HeaderMap`s): the shared request rules (`rules`) applied to
//! them, hop-by-hop removal (RFC 9110 §7.6.1), the `X-Forwarded-*` family,
//! and request ids.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Uri, Version};

use super::rules::{self, Kind, Nominated, Refusal, RequestScan};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
/// The prefix a route stripped (`strip_prefix`), for FastAPI's `root_path`.
pub static X_FORWARDED_PREFIX: HeaderName = HeaderName::from_static("x-forwarded-prefix");
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub static X_SWITCHYARD_POOL: HeaderName = HeaderName::from_static("x-switchyard-pool");
pub static X_SWITCHYARD_BUCKET: HeaderName = HeaderName::from_static("x-switchyard-bucket");
pub static X_SWITCHYARD_ERROR: HeaderName = HeaderName::from_static("x-switchyard-error");

/// Is this an HTTP/1.1 upgrade the proxy passes on (`rules::tunnels`: any
/// but h2c, which is removed on the way to the backend and never switched)?
pub fn is_upgrade_request(version: Version, headers: &HeaderMap) -> bool {
    version == Version::HTTP_11
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .next_back()
            .is_some_and(|v| rules::tunnels(v.as_bytes()))
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| rules::tokens(v.as_bytes()))
            .any(|t| t.eq_ignore_ascii_case(b"upgrade"))
}

/// The shared request rules (`rules`) over a head hyper parsed (HTTP/1 or
/// HTTP/2): what they refuse is refused before the request is routed.
pub fn check_request(version: Version, uri: &Uri, headers: &HeaderMap) -> Result<(), Refusal> {
    let h2 = version == Version::HTTP_2;
    let mut scan = RequestScan::default();
    for (name, value) in headers {
        let v = value.as_bytes();
        if h2 && rules::padded(v) {
            return Err(Refusal::Malformed);
        }
        scan.field(rules::kind(name.as_str().as_bytes()), v)?;
    }
    let minor = match version {
        Version::HTTP_10 => 0,
        Version::HTTP_11 => 1,
        _ => 2,
    };
    scan.finish(minor, uri.authority().map(|a| a.as_str().as_bytes()))?;
    Ok(())
}

/// Removes from a request head what is not passed on as sent
/// (`rules::request_drops`: hop-by-hop fields, those `Connection` names
/// but protected ones, `Expect`, the proxy's own headers, which it sets
/// again), `Transfer-Encoding` (hyper frames the body again) and names
/// with `_` unless `underscores`. With `upgrade`, `Upgrade` stays and
/// `Connection: upgrade` is set again.
pub fn strip_request(headers: &mut HeaderMap, upgrade: bool, underscores: bool) {
    strip(headers, upgrade, |k| {
        rules::request_drops(k) || rules::drops_underscore(k, underscores)
    });
}

/// Removes a response's hop-by-hop headers (`rules::response_drops`, and
/// any `Connection` names but protected ones; `Transfer-Encoding`, as
/// hyper frames the body again). With `upgrade` (a 101), `Upgrade` stays
/// and `Connection: upgrade` is set again.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    strip(headers, upgrade, |k| {
        rules::response_drops(k) && !(upgrade && k == Kind::Upgrade)
    });
}

fn strip(headers: &mut HeaderMap, upgrade: bool, drops: impl Fn(Kind) -> bool) {
    let names = Nominated::of(
        headers
            .get_all(header::CONNECTION)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    // Usually empty: no allocation then.
    let mut gone: Vec<HeaderName> = Vec::new();
    for name in headers.keys() {
        let n = name.as_str().as_bytes();
        let k = rules::kind(n);
        if drops(k) || k == Kind::TransferEncoding || names.drops(k, n, upgrade) {
            gone.push(name.clone());
        }
    }
    for name in gone {
        headers.remove(name);
    }
    if upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host`. `client_ip` is prepared once per connection.
pub fn set_forwarded(headers: &mut HeaderMap, client_ip: &HeaderValue, proto: &'static str) {
    let xff = match headers.get(&X_FORWARDED_FOR) {
        Some(prev) => {
            let mut v = Vec::with_capacity(prev.len() + 2 + client_ip.len());
            v.extend_from_slice(prev.as_bytes());
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            HeaderValue::from_maybe_shared(bytes::Bytes::from(v))
                .unwrap_or_else(|_| client_ip.clone())
        }
        None => client_ip.clone(),
    };
    headers.insert(&X_FORWARDED_FOR, xff);
    headers.insert(&X_FORWARDED_PROTO, HeaderValue::from_static(proto));
    if let Some(host) = headers.get(header::HOST).cloned() {
        headers.insert(&X_FORWARDED_HOST, host);
    }
}

/// A new request id: 32 lower-case hex digits.
pub fn new_request_id() -> HeaderValue {
    HeaderValue::from_bytes(&new_request_id_bytes())
        .unwrap_or_else(|_| HeaderValue::from_static("0"))
}

/// A new request id's bytes (no allocation).
pub fn new_request_id_bytes() -> [u8; 32] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut buf = [0u8; 32];
    let (a, b) = (fastrand::u64(..), fastrand::u64(..));
    for (i, byte) in a
        .to_be_bytes()
        .iter()
        .chain(b.to_be_bytes().iter())
        .enumerate()
    {
        buf[2 * i] = HEX[usize::from(byte >> 4)];
        buf[2 * i + 1] = HEX[usize::from(byte & 0xf)];
    }
    buf
}

/// The value of cookie `name` in the request's Cookie header(s).
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h [u8]> {
    cookie_in(
        headers
            .get_all(header::COOKIE)
            .iter()
            .map(HeaderValue::as_bytes),
        name,
    )
}

/// The value of cookie `name` among Cookie header values.
pub fn cookie_in<'h>(values: impl Iterator<Item = &'h [u8]>, name: &str) -> Option<&'h [u8]> {
    values
        .flat_map(|v| v.split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let (k, v) = pair.split_at(pair.iter().position(|&b| b == b'=')?);
            (k.trim_ascii() == name.as_bytes()).then(|| v[1..].trim_ascii())
        })
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_listed_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn cookies_are_found_among_several() {
        let mut h = HeaderMap::new();
        h.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; switchyard_id=abc ; b=2"),
        );
        h.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie(&h, "switchyard_id"), Some(&b"abc"[..]));
        assert_eq!(cookie(&h, "c"), Some(&b"3"[..]));
        assert_eq!(cookie(&h, "d"), None);
    }

    #[test]
    fn request_ids_are_hex_and_distinct() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.as_bytes().iter().all(u8::is_ascii_hexdigit));
    }
}
