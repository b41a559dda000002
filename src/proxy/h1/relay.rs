//! The answer's way back: its head written from the backend's bytes with
//! the first body bytes in the same `writev`, the body passed by its
//! framing, the upstream connection returned to the pool only when the
//! answer ended exactly where its framing said; after a 101, the two
//! connections are joined.

use http::HeaderValue;
use tokio::io::AsyncReadExt;

use super::chunked::Chunked;
use super::exchange::ReqInfo;
use super::head::Framing;
use super::pool::{self, Conn, Scratch, BUF};
use super::write::{self, Extra, Out};
use super::{ClientIo, Lean};
use crate::config::HeaderRules;
use crate::proxy::mirror::Tap;
use crate::table::{InFlight, Settings};

/// How the relay ended.
pub(super) struct Relayed {
    pub bytes_out: u64,
    /// The client connection can carry another request.
    pub client_ok: bool,
}

const FAILED: Relayed = Relayed {
    bytes_out: 0,
    client_ok: false,
};

#[allow(clippy::too_many_arguments)]
pub(super) async fn relay<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    mut up: Conn,
    info: &ReqInfo,
    inflight: &InFlight,
    settings: &Settings,
    set_cookie: Option<&HeaderValue>,
    rules: Option<(&HeaderRules, &[u8])>,
    close: bool,
    mut tap: Option<&mut Tap>,
) -> Relayed {
    let head_len = s.resp.len;
    if s.resp.status == 101 {
        return tunnel(lean, io, s, up, info, set_cookie, rules).await;
    }
    let how = write::out_mode(&s.resp, info.minor);
    let close = close || matches!(how, Out::Raw | Out::Dechunk);
    let extra = Extra {
        set_cookie,
        hsts: lean.hsts.as_ref(),
        close,
        rules,
    };
    write::client_head(&mut s.out, &s.up, &s.resp, how, &extra);
    let outcome = match (s.resp.framing, how) {
        (Framing::None, _) => write::write_two(io, &s.out, &[])
            .await
            .map(|()| (0, s.up.len() == head_len)),
        (Framing::Length(n), _) => length(io, &mut up, s, n, &mut tap).await,
        (Framing::Chunked, Out::Dechunk) => {
            dechunk(io, &mut up, s, lean.max_header_bytes, &mut tap).await
        }
        (Framing::Chunked, _) => chunked(io, &mut up, s, lean.max_header_bytes, &mut tap).await,
        (Framing::Close, _) => until_close(io, &mut up, s, how == Out::Chunk, &mut tap).await,
    };
    match outcome {
        Ok((bytes_out, clean)) => {
            if let Some(t) = tap {
                t.end();
            }
            if clean && !s.resp.close {
                pool::release(
                    inflight.backend(),
                    up.io,
                    settings.upstream_max_idle,
                    settings.upstream_idle_timeout,
                );
            }
            Relayed {
                bytes_out,
                client_ok: true,
            }
        }
        Err(e) => {
            tracing::debug!(error = %e, "relaying the answer failed");
            FAILED
        }
    }
}

type Step = std::io::Result<(u64, bool)>;

fn truncated() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "backend closed mid-body")
}

/// Reads the next bytes from the backend into `s.up` (cleared), at most
/// `limit`.
async fn refill(up: &mut Conn, s: &mut Scratch, limit: u64) -> std::io::Result<usize> {
    s.up.clear();
    let cap = usize::try_from(limit).unwrap_or(usize::MAX).min(BUF);
    let mut limited = bytes::BufMut::limit(&mut s.up, cap);
    let n = up.io.read_buf(&mut limited).await?;
    if n == 0 {
        return Err(truncated());
    }
    Ok(n)
}

/// A Content-Length body: exactly `n` bytes; more bytes after it mean the
/// connection is out of step and is not reused.
async fn length<S: ClientIo>(
    io: &mut S,
    up: &mut Conn,
    s: &mut Scratch,
    n: u64,
    tap: &mut Option<&mut Tap>,
) -> Step {
    let mut left = n;
    pass(io, up, s, |bytes| {
        let take = bytes.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        seen(tap, &bytes[..take]);
        left -= take as u64;
        Ok((take, left))
    })
    .await
}

/// A chunked body passed through as it is, validated, up to its end.
async fn chunked<S: ClientIo>(
    io: &mut S,
    up: &mut Conn,
    s: &mut Scratch,
    max_trailers: usize,
    tap: &mut Option<&mut Tap>,
) -> Step {
    let mut c = Chunked::new(max_trailers);
    pass(io, up, s, |bytes| {
        let used = c.advance(bytes, |d| seen(tap, d)).map_err(invalid)?;
        Ok((used, if c.done() { 0 } else { u64::MAX }))
    })
    .await
}

/// Copies a body that passes unchanged: the bytes after the head go with
/// it, then the backend's reads, each cut by `take` (which sees the bytes
/// at hand and answers how many belong to the body and how many more are
/// wanted: 0 when it has ended, `u64::MAX` when the framing does not say).
/// A read is never larger than what is wanted, so bytes past the body mean
/// the backend sent more than its framing (the connection is not clean).
async fn pass<S: ClientIo>(
    io: &mut S,
    up: &mut Conn,
    s: &mut Scratch,
    mut take: impl FnMut(&[u8]) -> std::io::Result<(usize, u64)>,
) -> Step {
    let here = &s.up[s.resp.len..];
    let (mut used, mut want) = take(here)?;
    let mut clean = used == here.len();
    write::write_two(io, &s.out, &here[..used]).await?;
    let mut total = used as u64;
    while want > 0 {
        let got = refill(up, s, want).await?;
        (used, want) = take(&s.up[..got])?;
        clean = used == got;
        write::send(io, &s.up[..used]).await?;
        total += used as u64;
    }
    Ok((total, clean))
}

/// A chunked body decoded for an HTTP/1.0 client.
async fn dechunk<S: ClientIo>(
    io: &mut S,
    up: &mut Conn,
    s: &mut Scratch,
    max_trailers: usize,
    tap: &mut Option<&mut Tap>,
) -> Step {
    let mut c = Chunked::new(max_trailers);
    write::write_two(io, &s.out, &[]).await?;
    let mut total = 0u64;
    let mut data = Vec::new();
    let mut from = s.resp.len;
    loop {
        data.clear();
        c.advance(&s.up[from..], |d| data.extend_from_slice(d))
            .map_err(invalid)?;
        seen(tap, &data);
        write::send(io, &data).await?;
        total += data.len() as u64;
        if c.done() {
            return Ok((total, false));
        }
        refill(up, s, u64::MAX).await?;
        from = 0;
    }
}

/// A close-delimited body, chunked for an HTTP/1.1 client (`chunk`).
async fn until_close<S: ClientIo>(
    io: &mut S,
    up: &mut Conn,
    s: &mut Scratch,
    chunk: bool,
    tap: &mut Option<&mut Tap>,
) -> Step {
    let mut frame = Vec::new();
    let first = s.up[s.resp.len..].to_vec();
    seen(tap, &first);
    let mut total = first.len() as u64;
    if chunk {
        frame_chunk(&mut frame, &first);
        write::write_two(io, &s.out, &frame).await?;
    } else {
        write::write_two(io, &s.out, &first).await?;
    }
    loop {
        s.up.clear();
        match up.io.read_buf(&mut s.up).await {
            Ok(0) => break,
            Ok(n) => {
                total += n as u64;
                seen(tap, &s.up[..n]);
                if chunk {
                    frame_chunk(&mut frame, &s.up[..n]);
                    write::send(io, &frame).await?;
                } else {
                    write::send(io, &s.up[..n]).await?;
                }
            }
            // A reset ends a close-delimited body too (the client learns
            // of it by the connection closing).
            Err(e) => return Err(e),
        }
    }
    if chunk {
        write::send(io, b"0\r\n\r\n").await?;
    }
    Ok((total, false))
}

/// Body bytes of the answer, for a mirrored request's tap.
#[inline]
fn seen(tap: &mut Option<&mut Tap>, data: &[u8]) {
    if let Some(t) = tap {
        t.data(data);
    }
}

fn frame_chunk(frame: &mut Vec<u8>, data: &[u8]) {
    frame.clear();
    if data.is_empty() {
        return;
    }
    let mut hex = [0u8; 16];
    let mut i = hex.len();
    let mut n = data.len();
    while n > 0 {
        i -= 1;
        hex[i] = b"0123456789abcdef"[n % 16];
        n /= 16;
    }
    frame.extend_from_slice(&hex[i..]);
    frame.extend_from_slice(b"\r\n");
    frame.extend_from_slice(data);
    frame.extend_from_slice(b"\r\n");
}

fn invalid(e: super::chunked::ChunkError) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, e)
}

/// After a 101: the head to the client, bytes already read on each side
/// to the other, then bytes both ways until either side closes.
async fn tunnel<S: ClientIo>(
    lean: &Lean,
    io: &mut S,
    s: &mut Scratch,
    mut up: Conn,
    info: &ReqInfo,
    set_cookie: Option<&HeaderValue>,
    rules: Option<(&HeaderRules, &[u8])>,
) -> Relayed {
    if !info.upgrade {
        tracing::debug!("backend switched protocols unasked; closing");
        return FAILED;
    }
    let extra = Extra {
        set_cookie,
        hsts: lean.hsts.as_ref(),
        close: false,
        rules,
    };
    write::client_head(&mut s.out, &s.up, &s.resp, Out::Pass, &extra);
    if write::write_two(io, &s.out, &s.up[s.resp.len..])
        .await
        .is_err()
        || write::send(&mut up.io, &s.read).await.is_err()
    {
        return FAILED;
    }
    // The tunnel may last long: drop what it no longer needs.
    s.read.clear();
    s.up.clear();
    match tokio::io::copy_bidirectional(io, &mut up.io).await {
        Ok((_, down)) => Relayed {
            bytes_out: down,
            client_ok: false,
        },
        Err(e) => {
            tracing::debug!(error = %e, "upgraded connection ended with an error");
            FAILED
        }
    }
}
