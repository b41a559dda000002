//! Writing heads: the upstream request from the client's bytes (kept
//! headers in their order and case, hop-by-hop ones out, the proxy's in),
//! the client's answer from the backend's bytes, and answers the proxy
//! makes itself (refusals, errors, redirects).

use std::io::{self, IoSlice};

use http::header::HeaderValue;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::head::{Field, Framing, HeadError, Kind, Request, Response};
use super::pool::Scratch;
use crate::config::template::Vars;
use crate::config::HeaderRules;
use crate::proxy::{rules, ConnInfo, ProxyBody};

fn push_field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

fn at<'b>(buf: &'b [u8], r: &std::ops::Range<u32>) -> &'b [u8] {
    &buf[r.start as usize..r.end as usize]
}

/// The proxy's own request headers.
pub(super) struct Ours<'a> {
    pub conn: &'a ConnInfo,
    /// A request id minted for a request that had none.
    pub request_id: Option<&'a [u8]>,
    pub pool: &'a HeaderValue,
    pub bucket: Option<u16>,
    /// What the route changes, when it has rules (`route_http`).
    pub route: Option<&'a RouteHead<'a>>,
    /// Names with `_` are passed on (`server.underscores_in_headers`).
    pub underscores: bool,
}

/// A route's changes to the upstream head.
pub(super) struct RouteHead<'a> {
    /// The path and query to send instead of the client's.
    pub origin: Option<&'a [u8]>,
    /// `X-Forwarded-Prefix` (`strip_prefix`).
    pub prefix: Option<&'a HeaderValue>,
    /// `request_headers`: the client's copies of their names dropped, their
    /// values appended after the proxy's own headers.
    pub rules: Option<&'a HeaderRules>,
    pub vars: Vars<'a>,
}

/// `Name: value` lines of `rules`' values into `out`.
pub(super) fn render_rules(out: &mut Vec<u8>, rules: &HeaderRules, vars: &Vars<'_>) {
    let value = |v: &_| vars.get(v);
    for (name, template) in rules.append.iter() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        template.render_into(&value, out);
        out.extend_from_slice(b"\r\n");
    }
}

/// The upstream request head for `req` (whose bytes are `buf`) into `out`.
pub(super) fn upstream_head(out: &mut Vec<u8>, buf: &[u8], req: &Request, ours: &Ours<'_>) {
    out.clear();
    out.extend_from_slice(at(buf, &req.method));
    out.push(b' ');
    let origin = match ours.route.and_then(|r| r.origin) {
        Some(o) => o,
        None => at(buf, &req.origin),
    };
    out.extend_from_slice(if origin.is_empty() { b"/" } else { origin });
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let host = req
        .authority
        .as_ref()
        .or(req.host.as_ref())
        .map(|r| at(buf, r));
    let rules = ours.route.and_then(|r| r.rules);
    // A rule that sets Host replaces it (it is not written, then appended).
    let mut wrote_host = rules.is_some_and(|r| r.drops(b"host"));
    let mut wrote_xff = false;
    let kept = |f: &&Field| !f.drop && !rules::drops_underscore(f.kind, ours.underscores);
    for f in req.fields.iter().filter(kept) {
        let (name, value) = (at(buf, &f.name), at(buf, &f.value));
        if rules.is_some_and(|r| r.drops(name)) {
            continue;
        }
        match f.kind {
            Kind::Host => {
                // Only one Host reaches here; an absolute target's
                // authority replaces its value (RFC 9112 §3.2.2).
                if !wrote_host {
                    push_field(out, name, host.unwrap_or(value));
                    wrote_host = true;
                }
            }
            Kind::XForwardedFor if !wrote_xff => {
                out.extend_from_slice(name);
                out.extend_from_slice(b": ");
                out.extend_from_slice(value);
                out.extend_from_slice(b", ");
                out.extend_from_slice(ours.conn.peer_ip.as_bytes());
                out.extend_from_slice(b"\r\n");
                wrote_xff = true;
            }
            Kind::XForwardedFor => {}
            _ => push_field(out, name, value),
        }
    }
    if !wrote_host {
        if let Some(h) = host {
            push_field(out, b"Host", h);
        }
    }
    if !wrote_xff {
        push_field(out, b"X-Forwarded-For", ours.conn.peer_ip.as_bytes());
    }
    push_field(out, b"X-Forwarded-Proto", ours.conn.proto.as_bytes());
    if let Some(h) = host {
        push_field(out, b"X-Forwarded-Host", h);
    }
    if let Some(id) = ours.request_id {
        push_field(out, b"X-Request-Id", id);
    }
    push_field(out, b"X-Switchyard-Pool", ours.pool.as_bytes());
    if let Some(b) = ours.bucket {
        let mut d = [0u8; 20];
        push_field(out, b"X-Switchyard-Bucket", digits(u64::from(b), &mut d));
    }
    if let Some(r) = ours.route {
        if let Some(p) = r.prefix {
            push_field(out, b"X-Forwarded-Prefix", p.as_bytes());
        }
        if let Some(rules) = r.rules {
            render_rules(out, rules, &r.vars);
        }
    }
    if req.upgrade {
        push_field(out, b"Connection", b"upgrade");
    }
    out.extend_from_slice(b"\r\n");
}

/// How the answer's body goes to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Out {
    /// As it came (length, chunked to a 1.1 client, or nothing).
    Pass,
    /// Chunked by the backend, decoded for an HTTP/1.0 client.
    Dechunk,
    /// Close-delimited by the backend, chunked for an HTTP/1.1 client.
    Chunk,
    /// Close-delimited on both sides.
    Raw,
}

/// What the client answer head adds.
pub(super) struct Extra<'a> {
    pub set_cookie: Option<&'a HeaderValue>,
    pub hsts: Option<&'a HeaderValue>,
    pub close: bool,
    /// The route's `response_headers`: names dropped, and their values as
    /// `Name: value` lines (rendered when the request was routed).
    pub rules: Option<(&'a HeaderRules, &'a [u8])>,
}

/// The client's answer head from the backend's (bytes `buf`) into `out`.
pub(super) fn client_head(
    out: &mut Vec<u8>,
    buf: &[u8],
    resp: &Response,
    how: Out,
    extra: &Extra<'_>,
) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(at(buf, &resp.line_rest));
    out.extend_from_slice(b"\r\n");
    let no_length = resp.status == 204 || resp.status < 200;
    let dropped = |f: &Field| extra.rules.is_some_and(|(r, _)| r.drops(at(buf, &f.name)));
    for f in resp
        .fields
        .iter()
        .filter(|f| keep_in_answer(f, how, no_length) && !dropped(f))
    {
        push_field(out, at(buf, &f.name), at(buf, &f.value));
    }
    if let Some((_, lines)) = extra.rules {
        out.extend_from_slice(lines);
    }
    if let Some(c) = extra.set_cookie {
        push_field(out, b"Set-Cookie", c.as_bytes());
    }
    if let (Some(h), false) = (extra.hsts, resp.has_hsts) {
        push_field(out, b"Strict-Transport-Security", h.as_bytes());
    }
    if how == Out::Chunk {
        push_field(out, b"Transfer-Encoding", b"chunked");
    }
    if extra.close && resp.status != 101 {
        push_field(out, b"Connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

fn keep_in_answer(f: &Field, how: Out, no_length: bool) -> bool {
    let recoded = match f.kind {
        Kind::TransferEncoding => how == Out::Dechunk,
        Kind::ContentLength => no_length,
        _ => false,
    };
    !f.drop && !recoded
}

/// How the body of `resp` goes to a client of HTTP/1.`minor`.
pub(super) fn out_mode(resp: &Response, minor: u8) -> Out {
    match (resp.framing, minor) {
        (Framing::Chunked, 0) => Out::Dechunk,
        (Framing::Close, 1) => Out::Chunk,
        (Framing::Close, _) => Out::Raw,
        _ => Out::Pass,
    }
}

/// Decimal digits of `n` (no allocation), for header values.
pub(super) fn digits(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[i..];
        }
    }
}

/// Writes all of `a` then `b` in as few `writev` calls as possible.
pub(super) async fn write_two<W: AsyncWrite + Unpin>(
    w: &mut W,
    mut a: &[u8],
    mut b: &[u8],
) -> io::Result<()> {
    while !a.is_empty() {
        let n = w
            .write_vectored(&[IoSlice::new(a), IoSlice::new(b)])
            .await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        let from_a = n.min(a.len());
        a = &a[from_a..];
        b = &b[n - from_a..];
    }
    w.write_all(b).await?;
    // A no-op on TCP; TLS streams hold written bytes until flushed.
    w.flush().await
}

/// Writes all of `data` and flushes it (see `write_two`).
pub(super) async fn send<W: AsyncWrite + Unpin>(w: &mut W, data: &[u8]) -> io::Result<()> {
    w.write_all(data).await?;
    w.flush().await
}

/// A `Response` the proxy made (errors, redirects) as bytes in `out`;
/// answers its body.
pub(super) fn generated(
    out: &mut Vec<u8>,
    resp: &http::Response<ProxyBody>,
    close: bool,
    hsts: Option<&HeaderValue>,
) -> bytes::Bytes {
    let body = match resp.body() {
        ProxyBody::Full(Some(b)) => b.clone(),
        _ => bytes::Bytes::new(),
    };
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(resp.status().as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.status().canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (k, v) in resp.headers() {
        push_field(out, k.as_str().as_bytes(), v.as_bytes());
    }
    if let (Some(h), false) = (
        hsts,
        resp.headers()
            .contains_key(http::header::STRICT_TRANSPORT_SECURITY),
    ) {
        push_field(out, b"strict-transport-security", h.as_bytes());
    }
    let mut d = [0u8; 20];
    push_field(out, b"content-length", digits(body.len() as u64, &mut d));
    if close {
        push_field(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    body
}

/// Answers a head that could not be accepted, then closes.
pub(super) async fn refuse<S: AsyncWrite + Unpin>(io: &mut S, s: &mut Scratch, e: HeadError) {
    let status = http::StatusCode::from_u16(e.status()).unwrap_or(http::StatusCode::BAD_REQUEST);
    let body = crate::proxy::error::error_body(status, &e);
    let mut resp = http::Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    let body = generated(&mut s.out, &resp, true, None);
    if let Err(e) = write_two(io, &s.out, &body).await {
        tracing::debug!(error = %e, "writing a refusal failed");
    }
    // Best effort: the connection closes either way.
    let _ = io.shutdown().await;
}
