//! Exchange cases: Expect, pipelining, early responses, bodiless answers,
//! close-delimited answers, HTTP/1.0 on either side, broken backend
//! framing and upgrades.

use super::backend::Reply;
use super::case::{case, ensure, only, Case, Want};
use super::client::Step;

macro_rules! one {
    ($bytes:expr) => {
        &[Step::Send($bytes), Step::Finals(1)]
    };
}

const GET: &[u8] = b"GET /case HTTP/1.1\r\nHost: t\r\n\r\n";
const BAD_GATEWAY: Want = Want::Served(&[502], None);

pub const CASES: &[Case] = &[
    case("expect_100_continue", "RFC 9110 §10.1.1: 100 before the body, then the final answer",
        &[Step::Send(b"POST /case HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"),
          Step::Interim(100), Step::Send(b"hello"), Step::Finals(1)],
        Want::Served(&[200], Some(true)))
        .check(|log, seen| {
            ensure(seen.interim == [100], || format!("interim {:?}", seen.interim))?;
            ensure(only(log)?.body == b"hello", || "body lost".into())
        })
        .haproxy_differs("HAProxy passes Expect on and waits for the backend's 100, which the suite's backend does not send"),
    case("pipelined_gets", "§9.3.2: answers in request order",
        &[Step::Send(b"GET /case/1 HTTP/1.1\r\nHost: t\r\n\r\nGET /case/2 HTTP/1.1\r\nHost: t\r\n\r\n"), Step::Finals(2)],
        Want::Served(&[200, 200], Some(true)))
        .check(|_, seen| {
            let paths: Vec<_> = seen.finals.iter().map(|r| r.one("x-echo-path")).collect();
            ensure(paths == [Some("/case/1".into()), Some("/case/2".into())], || format!("{paths:?}"))
        }),
    case("pipelined_post_then_get", "§9.3.2: a body does not swallow the next request",
        &[Step::Send(b"POST /case/1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /case/2 HTTP/1.1\r\nHost: t\r\n\r\n"), Step::Finals(2)],
        Want::Served(&[200, 200], Some(true)))
        .check(|log, _| {
            let got: Vec<_> = log.requests.iter().map(|g| (g.target.as_str(), g.body.len())).collect();
            ensure(got == [("/case/1", 5), ("/case/2", 0)], || format!("{got:?}"))
        }),
    case("early_response", "§9.3: a backend may answer before reading the body; the client gets it",
        &[Step::Send(b"POST /case HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n0123456789"), Step::Finals(1)],
        Want::Served(&[413], None))
        .replies(&[Reply::Early(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbig!")])
        .check(|_, seen| ensure(seen.finals[0].body == b"big!", || "body lost".into()))
        .nginx_differs("nginx reads the whole request body before it goes upstream (proxy_request_buffering on), so a backend's early answer to an unfinished body never comes"),
    case("head_answer", "RFC 9110 §9.3.2: HEAD answers have no body, whatever Content-Length says",
        one!(b"HEAD /case HTTP/1.1\r\nHost: t\r\n\r\n"), Want::Served(&[200], Some(true)))
        .head(),
    case("head_backend_sends_body", "bytes after a HEAD answer are not the next answer (response splitting)",
        one!(b"HEAD /case HTTP/1.1\r\nHost: t\r\n\r\n"), Want::Served(&[200], Some(true)))
        .head()
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false)]),
    case("no_content_with_body", "§6.3: 204 has no body; stray bytes are not forwarded",
        one!(GET), Want::Served(&[204], Some(true)))
        .replies(&[Reply::Raw(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", false)]),
    case("not_modified_with_body", "§6.3: 304 has no body",
        one!(GET), Want::Served(&[304], Some(true)))
        .replies(&[Reply::Raw(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", false)]),
    case("no_content_plain", "§6.3", one!(GET), Want::Served(&[204], Some(true)))
        .replies(&[Reply::Raw(b"HTTP/1.1 204 No Content\r\n\r\n", false)]),
    case("close_delimited", "§6.3 rule 8: no length, the body ends at close",
        one!(GET), Want::Served(&[200], None))
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil-close", true)])
        .check(|_, seen| ensure(seen.finals[0].body == b"until-close", || format!("{:?}", seen.finals[0].body))),
    case("backend_http10_length", "an HTTP/1.0 backend's connection is not reused",
        one!(GET), Want::Served(&[200], Some(true)))
        .replies(&[Reply::Raw(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", true)])
        .check(|_, seen| ensure(seen.finals[0].body == b"ok", || "body".into())),
    case("backend_http10_close", "HTTP/1.0 backend, close-delimited body",
        one!(GET), Want::Served(&[200], None))
        .replies(&[Reply::Raw(b"HTTP/1.0 200 OK\r\n\r\nbody10", true)])
        .check(|_, seen| ensure(seen.finals[0].body == b"body10", || "body".into())),
    case("client_http10", "an HTTP/1.0 client gets no chunked coding and a close",
        one!(b"GET /case HTTP/1.0\r\nHost: t\r\n\r\n"), Want::Served(&[200], Some(false)))
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false)])
        .check(|log, seen| {
            let r = &seen.finals[0];
            ensure(r.one("transfer-encoding").is_none() && r.body == b"hello", || format!("{:?}", r))?;
            ensure(only(log)?.version == 1, || "the backend was not spoken to in HTTP/1.1".into())
        })
        .haproxy_differs("HAProxy sends a chunked answer to an HTTP/1.0 client"),
    case("client_http10_keep_alive", "HTTP/1.0 with Connection: keep-alive",
        one!(b"GET /case HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"), Want::Served(&[200], None)),
    case("response_cl_and_te", "§6.3: a response with both is an error (or TE wins, CL removed)",
        one!(GET), Want::Checked)
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", true)])
        .check(|_, seen| match seen.finals.as_slice() {
            [r] if r.status == 502 => Ok(()),
            [r] if r.status == 200 => ensure(r.body == b"hello" && r.one("content-length").is_none(), || format!("{r:?}")),
            f => Err(format!("{f:?}")),
        }),
    case("response_bad_length", "an invalid Content-Length from a backend: 502", one!(GET), BAD_GATEWAY)
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n", true)])
        .nginx_differs("nginx 1.22 passes an answer with an invalid Content-Length on"),
    case("response_two_lengths", "differing lengths from a backend: 502", one!(GET), BAD_GATEWAY)
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok", true)])
        .nginx_differs("nginx 1.22 does not answer 502 to differing lengths from a backend"),
    case("response_garbage", "not HTTP from a backend: 502", one!(GET), BAD_GATEWAY)
        .replies(&[Reply::Raw(b"SSH-2.0-OpenSSH\r\n\r\n", true)])
        .nginx_differs("nginx relays a backend's non-HTTP bytes as an HTTP/0.9 answer"),
    case("response_hop_by_hop", "a backend's hop-by-hop headers do not reach the client",
        one!(GET), Want::Served(&[200], Some(true)))
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: x-secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Kept: 1\r\n\r\nok", false)])
        .check(|_, seen| {
            let r = &seen.finals[0];
            ensure(r.one("x-secret").is_none() && r.one("keep-alive").is_none() && r.one("x-kept").is_some(), || format!("{r:?}"))
        })
        .nginx_differs("nginx passes on the headers a backend's Connection names")
        .haproxy_differs("HAProxy passes on the headers a backend's Connection names, and Keep-Alive"),
    case("response_chunked_trailer", "a chunked answer with a trailer arrives whole",
        one!(GET), Want::Served(&[200], Some(true)))
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n", false)])
        .check(|_, seen| ensure(seen.finals[0].body == b"hello", || "body".into())),
    case("response_bad_chunk", "a backend's bad chunk size ends the client connection",
        one!(GET), Want::Checked)
        .replies(&[Reply::Raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", true)])
        .check(|_, seen| ensure(!seen.alive && seen.finals.iter().all(|r| r.status != 200 || r.body != b"hello"), || format!("{:?}", seen.finals)))
        .haproxy_differs("HAProxy had the whole bad answer before sending its head: it answers 502 and keeps the client connection (the case asks for a close)"),
    case("websocket_upgrade", "RFC 9110 §7.8: after 101 bytes flow both ways",
        &[Step::Send(b"GET /case HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
          Step::Finals(1), Step::Echo(b"ping-through-tunnel")],
        Want::Served(&[101], None))
        .replies(&[Reply::Tunnel(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")])
        .check(|log, seen| {
            let g = only(log)?;
            ensure(g.one("upgrade").as_deref() == Some("websocket"), || format!("{:?}", g.headers))?;
            ensure(seen.finals[0].body.ends_with(b"ping-through-tunnel"), || "tunnel".into())
        })
        .haproxy_differs("HAProxy answers 502 to the suite's 101, which carries no Sec-WebSocket-Accept"),
];
