//! Request-side cases: framing (Content-Length, Transfer-Encoding, chunked
//! bodies), head syntax, request lines, Host, hop-by-hop headers.
//! RFC 9112 and RFC 9110 sections are named per case; "smuggling" cases
//! come from the published research (Linhart et al. 2005, Kettle 2019,
//! "HTTP Garden" 2024) and the rules nginx and HAProxy enforce.

use super::backend::Log;
use super::case::{case, ensure, only, Case, Want};
use super::client::{Seen, Step};

/// One request sent in one write, one final answer expected.
macro_rules! one {
    ($bytes:expr) => {
        &[Step::Send($bytes), Step::Finals(1)]
    };
}

const R400: &[u16] = &[400];
const R400_501: &[u16] = &[400, 501];
const OK: Want = Want::Served(&[200], Some(true));

fn body_is_hello(log: &Log, _: &Seen) -> Result<(), String> {
    let g = only(log)?;
    ensure(g.body == b"hello", || {
        format!("backend body {:?}", String::from_utf8_lossy(&g.body))
    })
}

pub const CASES: &[Case] = &[
    // ---- Content-Length and Transfer-Encoding (RFC 9112 §6) ----
    case("cl_and_te", "§6.1: CL with TE is a smuggling attempt; reject (nginx, HAProxy 2.x in strict mode)",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400))
        .hyper_differs("hyper's own parser removes the Content-Length, frames the body by chunked and closes the connection after (§6.1 allows it), so the shared rules never see both; nothing is smuggled")
        .haproxy_differs("HAProxy drops the Content-Length and frames the body by chunked (§6.1 allows this when the connection then closes); nothing is smuggled"),
    case("te_chunked_then_identity", "§6.3: chunked must be the final coding of a request",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400_501)),
    case("te_unknown", "§6.1: a coding the server does not understand: 501",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Want::Refused(R400_501)),
    case("te_gzip_chunked", "only a single `chunked` coding is passed on (issue 18)",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400_501))
        .haproxy_differs("HAProxy refuses it too, with 422"),
    case("te_repeated", "TE: chunked twice is `chunked, chunked` (§5.3 list combination)",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400_501)),
    case("te_xchunked", "smuggling: a coding that merely contains `chunked`",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400_501)),
    case("te_space_before_colon", "§5.1: whitespace between name and colon MUST be rejected",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400)),
    case("te_vertical_tab", "smuggling: VT is not OWS",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400_501)),
    case("te_in_http10", "§6.1: TE in an HTTP/1.0 message means faulty framing",
        one!(b"POST /case HTTP/1.0\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
        Want::Refused(R400))
        .haproxy_differs("HAProxy frames an HTTP/1.0 request with TE: chunked by chunked"),
    case("te_chunked_mixed_case", "§7: coding names are case-insensitive",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        OK).check(body_is_hello),
    case("cl_differs", "§6.3: differing Content-Length values are unrecoverable",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
        Want::Refused(R400)),
    case("cl_list", "§6.3: a list is only acceptable when every member is equal; nginx refuses it",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 6\r\n\r\nhello!"),
        Want::Refused(R400)),
    case("cl_negative", "§8.6: 1*DIGIT", one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: -5\r\n\r\n"), Want::Refused(R400)),
    case("cl_plus", "§8.6: 1*DIGIT", one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nhello"), Want::Refused(R400)),
    case("cl_hex", "§8.6: 1*DIGIT", one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 0x5\r\n\r\nhello"), Want::Refused(R400)),
    case("cl_junk", "§8.6: 1*DIGIT", one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 5a\r\n\r\nhello"), Want::Refused(R400)),
    case("cl_inner_space", "§8.6: 1*DIGIT", one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 5 5\r\n\r\nhello"), Want::Refused(R400)),
    case("cl_overflow", "a length past u64 must not wrap",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551621\r\n\r\nhello"),
        Want::Refused(R400)),
    case("cl_body", "§6.2: exactly Content-Length bytes are the body",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello"), OK).check(body_is_hello),
    case("cl_ows", "§5.1: OWS around the value is not part of it",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: \t5 \r\n\r\nhello"), OK).check(body_is_hello)
        .nginx_differs("nginx 1.22 refuses whitespace around the Content-Length value (400), stricter than §5.1 needs"),
    // ---- chunked bodies (RFC 9112 §7.1) ----
    case("chunked_body", "§7.1", one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhe\r\n3\r\nllo\r\n0\r\n\r\n"), OK)
        .check(body_is_hello),
    case("chunk_extension", "§7.1.1: extensions are ignored by recipients that do not know them",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n"), OK)
        .check(body_is_hello),
    case("chunk_trailer", "§7.1.2: a trailer section ends the body",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"), OK)
        .check(body_is_hello),
    case("chunk_size_overflow", "smuggling: a size past 64 bits must not wrap to a small one",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
        Want::Broken),
    case("chunk_size_junk", "§7.1: chunk-size is 1*HEXDIG",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5x\r\nhello\r\n0\r\n\r\n"), Want::Broken),
    case("chunk_size_0x", "§7.1: chunk-size is 1*HEXDIG",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"), Want::Broken),
    case("chunk_size_negative", "§7.1: chunk-size is 1*HEXDIG",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n"), Want::Broken),
    case("chunk_data_overrun", "§7.1: the data is followed by CRLF",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX\r\n0\r\n\r\n"), Want::Broken),
    case("chunk_ext_too_long", "chunk extensions are limited (hyper: 16 KiB)",
        &[Step::Send(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;x="),
          Step::Send(&[b'a'; 40_000]), Step::Send(b"\r\nhello\r\n0\r\n\r\n"), Step::Finals(1)],
        Want::Broken)
        .nginx_differs("nginx skips chunk extensions of any length"),
    case("trailers_too_long", "trailers are limited like headers",
        &[Step::Send(b"POST /case HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: "),
          Step::Send(&[b'a'; 100_000]), Step::Send(b"\r\n\r\n"), Step::Finals(1)],
        Want::Broken)
        .nginx_differs("nginx discards request trailers of any length"),
    // ---- head syntax (RFC 9112 §2, §5) ----
    case("obs_fold", "§5.2: a server MUST reject obs-fold (or replace it with SP)",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A: a\r\n b\r\n\r\n"), Want::Refused(R400))
        .haproxy_differs("HAProxy replaces obs-fold with SP, the other choice §5.2 allows"),
    case("bare_cr", "§2.2: a bare CR MUST be rejected (or replaced with SP)",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A: a\rb\r\n\r\n"), Want::Refused(R400)),
    case("bare_lf_lines", "§2.2: a recipient MAY accept LF alone as a line terminator (nginx does)",
        one!(b"GET /case HTTP/1.1\nHost: t\nX-A: b\n\n"), OK)
        .check(|log, _| ensure(only(log)?.one("x-a").as_deref() == Some("b"), || "x-a lost".into())),
    case("nul_in_value", "RFC 9110 §5.5: NUL MUST be rejected", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A: a\0b\r\n\r\n"), Want::Refused(R400))
        .haproxy_differs("HAProxy passed the value on and the suite's backend refused it (502)"),
    case("ctl_in_value", "RFC 9110 §5.5: CTLs are not field-vchar", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A: a\x01b\r\n\r\n"), Want::Refused(R400))
        .nginx_differs("nginx passes control bytes in values on (the suite's backend refused them: 502)")
        .haproxy_differs("HAProxy passes control bytes in values on (the suite's backend refused them: 502)"),
    case("del_in_value", "RFC 9110 §5.5: DEL is not field-vchar", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A: a\x7fb\r\n\r\n"), Want::Refused(R400))
        .nginx_differs("nginx passes DEL in values on (the suite's backend refused it: 502)")
        .haproxy_differs("HAProxy passes DEL in values on (the suite's backend refused it: 502)"),
    case("obs_text_in_value", "RFC 9110 §5.5: obs-text (0x80-0xFF) is allowed and passed on",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A: caf\xc3\xa9\r\n\r\n"), OK)
        .check(|log, _| ensure(only(log)?.all("x-a") == [&b"caf\xc3\xa9"[..]], || "x-a changed".into())),
    case("space_in_name", "RFC 9110 §5.1: field-name is a token", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX A: b\r\n\r\n"), Want::Refused(R400)),
    case("bad_char_in_name", "RFC 9110 §5.1: field-name is a token", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX(A: b\r\n\r\n"), Want::Refused(R400))
        .nginx_differs("nginx drops a line with an invalid name and serves the request (ignore_invalid_headers on)"),
    case("empty_name", "RFC 9110 §5.1: field-name is a token", one!(b"GET /case HTTP/1.1\r\nHost: t\r\n: b\r\n\r\n"), Want::Refused(R400)),
    case("no_colon", "§5: field-line = name \":\" value", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-A\r\n\r\n"), Want::Refused(R400))
        .nginx_differs("nginx drops a line without a colon and serves the request (ignore_invalid_headers on)"),
    case("space_before_colon", "§5.1: MUST reject", one!(b"GET /case HTTP/1.1\r\nHost : t\r\n\r\n"), Want::Refused(R400)),
    case("leading_whitespace_line", "§2.2: whitespace before the first field line MUST be rejected or the line ignored",
        one!(b"GET /case HTTP/1.1\r\n Host: t\r\n\r\n"), Want::Refused(R400)),
    case("underscore_name", "a name with `_` could alias a `-` header behind CGI-style backends: dropped (issue 18, nginx default)",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX_Forwarded_Proto: https\r\nX_Custom: 1\r\n\r\n"), OK)
        .check(|log, _| {
            let g = only(log)?;
            ensure(!g.headers.iter().any(|(n, _)| n.contains('_')), || format!("underscore header passed: {:?}", g.headers))
        })
        .haproxy_differs("HAProxy passes names with `_` on (nginx drops them, as switchyard does)"),
    case("head_too_large", "a head over server.max_header_bytes: 431",
        &[Step::Send(b"GET /case HTTP/1.1\r\nHost: t\r\nX-Big: "), Step::Send(&[b'a'; 70_000]), Step::Send(b"\r\n\r\n"), Step::Finals(1)],
        Want::Refused(&[431]))
        .nginx_differs("nginx refuses it with 400 (Request Header Or Cookie Too Large), not 431")
        .haproxy_differs("HAProxy refuses it with 400, not 431"),
    // ---- request line (§3) ----
    case("double_space", "§3: single SP separators", one!(b"GET  /case HTTP/1.1\r\nHost: t\r\n\r\n"), Want::Refused(R400))
        .nginx_differs("nginx accepts several spaces between the parts of the request line")
        .haproxy_differs("HAProxy accepts several spaces between the parts of the request line"),
    case("version_1_2", "§2.3: only HTTP/1.0 and 1.1 are framed here", one!(b"GET /case HTTP/1.2\r\nHost: t\r\n\r\n"), Want::Refused(&[400, 505]))
        .nginx_differs("nginx serves HTTP/1.2 as HTTP/1.1 (§2.3 lets a server answer a higher minor version)")
        .haproxy_differs("HAProxy serves HTTP/1.2 as HTTP/1.1"),
    case("version_2_0", "§2.3", one!(b"GET /case HTTP/2.0\r\nHost: t\r\n\r\n"), Want::Refused(&[400, 505]))
        .haproxy_differs("HAProxy serves an `HTTP/2.0` request line as HTTP/1.1"),
    case("version_lowercase", "§2.3: HTTP-name is case-sensitive", one!(b"GET /case http/1.1\r\nHost: t\r\n\r\n"), Want::Refused(R400)),
    case("http09", "§2.3: no HTTP/0.9 requests", one!(b"GET /case\r\n\r\n"), Want::Refused(R400))
        .nginx_differs("nginx serves an HTTP/0.9 request (a bare body, no status line)"),
    case("method_bad_char", "§3.1: method is a token", one!(b"G(T /case HTTP/1.1\r\nHost: t\r\n\r\n"), Want::Refused(R400)),
    case("target_ctl", "§3.2: no CTLs in the target", one!(b"GET /a\x01b HTTP/1.1\r\nHost: t\r\n\r\n"), Want::Refused(R400)),
    case("lowercase_method", "§3.1: methods are case-sensitive tokens; `get` is passed on as is",
        one!(b"get /case HTTP/1.1\r\nHost: t\r\n\r\n"), Want::Checked)
        .check(|log, seen| match log.requests.as_slice() {
            [g] => ensure(g.method == "get", || format!("method became {}", g.method)),
            [] => ensure(super::case::statuses(seen).first().is_some_and(|s| *s >= 400), || "neither passed nor refused".into()),
            r => Err(format!("{r:?}")),
        }),
    case("connect", "CONNECT is not proxied (405)", one!(b"CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n"),
        Want::Served(&[405], None))
        .check(|log, _| ensure(log.requests.is_empty(), || "CONNECT reached the backend".into()))
        .nginx_differs("nginx refuses CONNECT with 400, not 405")
        .haproxy_differs("HAProxy in `mode http` passes CONNECT to the backend"),
    // ---- target forms and Host (§3.2, RFC 9110 §7.2) ----
    case("absolute_form", "§3.2.2: the target's authority replaces Host",
        one!(b"GET http://a.test/p?q=1 HTTP/1.1\r\nHost: b.test\r\n\r\n"), OK)
        .check(|log, _| {
            let g = only(log)?;
            ensure(g.target == "/p?q=1" && g.one("host").as_deref() == Some("a.test"),
                || format!("target {} host {:?}", g.target, g.one("host")))
        })
        .haproxy_differs("HAProxy refuses an absolute-form target whose authority differs from Host (400)"),
    case("no_host", "§3.2: an HTTP/1.1 request without Host: 400", one!(b"GET /case HTTP/1.1\r\n\r\n"), Want::Refused(R400))
        .haproxy_differs("HAProxy serves an HTTP/1.1 request without Host"),
    case("two_hosts", "§3.2: more than one Host: 400 (issue 18)", one!(b"GET /case HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n"),
        Want::Refused(R400)),
    case("host_bad_chars", "RFC 9110 §7.2: Host is uri-host [\":\" port]", one!(b"GET /case HTTP/1.1\r\nHost: a.test/x\r\n\r\n"),
        Want::Refused(R400))
        .haproxy_differs("HAProxy passes a Host value with `/` on"),
    case("http10_no_host", "§3.2: Host is only required of HTTP/1.1", &[Step::Send(b"GET /case HTTP/1.0\r\n\r\n"), Step::Finals(1)],
        Want::Served(&[200], Some(false))),
    // ---- hop-by-hop headers (RFC 9110 §7.6.1) ----
    case("connection_nominated", "§7.6.1: headers named by Connection are removed",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nConnection: x-a, keep-alive\r\nX-A: 1\r\nKeep-Alive: 5\r\nX-B: 2\r\n\r\n"), OK)
        .check(|log, _| {
            let g = only(log)?;
            ensure(!g.has("x-a") && !g.has("keep-alive") && !g.has("connection") && g.has("x-b"), || format!("{:?}", g.headers))
        })
        .nginx_differs("nginx does not remove the headers a client's Connection names")
        .haproxy_differs("HAProxy does not remove the headers a client's Connection names, nor Keep-Alive"),
    case("connection_nominates_content_length", "framing cannot be made hop-by-hop: the body still arrives framed",
        one!(b"POST /case HTTP/1.1\r\nHost: t\r\nConnection: content-length\r\nContent-Length: 5\r\n\r\nhello"), Want::Checked)
        .check(|log, seen| match super::case::statuses(seen).as_slice() {
            [200] => body_is_hello(log, seen),
            [400] => ensure(log.requests.is_empty(), || "refused yet forwarded".into()),
            s => Err(format!("statuses {s:?}")),
        }),
    case("connection_nominates_host", "Host cannot be removed by Connection",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nConnection: host\r\n\r\n"), Want::Checked)
        .check(|log, seen| match super::case::statuses(seen).as_slice() {
            [200] => ensure(only(log)?.one("host").as_deref() == Some("t"), || "host removed".into()),
            [400] => Ok(()),
            s => Err(format!("statuses {s:?}")),
        }),
    case("connection_nominates_forwarded", "Connection cannot remove the proxy's own headers (issue 18)",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nConnection: x-forwarded-for, x-forwarded-proto, x-request-id\r\n\r\n"), OK)
        .check(|log, _| {
            let g = only(log)?;
            ensure(g.one("x-forwarded-for").is_some_and(|v| v.ends_with("127.0.0.1"))
                && g.one("x-forwarded-proto").as_deref() == Some("http") && g.has("x-request-id"), || format!("{:?}", g.headers))
        }),
    case("te_header_removed", "TE is hop-by-hop", one!(b"GET /case HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n"), OK)
        .check(|log, _| ensure(!only(log)?.has("te"), || "TE forwarded".into()))
        .haproxy_differs("HAProxy passes TE on"),
    case("h2c_upgrade_not_tunnelled", "an h2c upgrade is not passed on (issue 18: it would bypass the proxy's rules)",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"),
        OK)
        .check(|log, _| {
            let g = only(log)?;
            ensure(!g.has("upgrade") && !g.has("http2-settings"), || format!("{:?}", g.headers))
        })
        .nginx_differs("with the usual WebSocket lines (`Upgrade $http_upgrade`) nginx passes any Upgrade on, h2c included")
        .haproxy_differs("HAProxy passes Upgrade: h2c on"),
    case("header_case_and_order", "the client's header case and order are kept (as nginx does)",
        one!(b"GET /case HTTP/1.1\r\nHost: t\r\nX-Mixed-Case: 1\r\nx-lower: 2\r\nX-UPPER: 3\r\n\r\n"), OK)
        .check(|log, _| {
            let g = only(log)?;
            let names: Vec<&str> = g.headers.iter().map(|(n, _)| n.as_str())
                .filter(|n| ["X-Mixed-Case", "x-lower", "X-UPPER", "Host"].contains(n)).collect();
            ensure(names == ["Host", "X-Mixed-Case", "x-lower", "X-UPPER"], || format!("{names:?}"))
        })
        .hyper_differs("hyper writes header names in lower case")
        .haproxy_differs("HAProxy writes header names in lower case"),
];
