//! The size of a connection's task: while a keep-alive connection waits
//! for its next request, its task holds the whole `serve` future, whose
//! size is that of its largest state. A per-request future kept inline
//! would make every idle connection pay for an exchange in progress
//! (5.3 KB before the exchange was boxed), so this is asserted here; the
//! memory itself is measured by `benches/load/run.sh` (`IDLE=1`).

#![allow(unreachable_code, unused_variables, clippy::diverging_sub_expression)]

use std::sync::Arc;

use tokio::net::TcpStream;

use super::{exchange, pool, Lean};
use crate::proxy::ConnInfo;

/// The size of what `f` would return; `f` is never called (its body
/// only names the future's type).
fn size_of_ret<R>(_never_called: impl FnOnce() -> R) -> usize {
    std::mem::size_of::<R>()
}

#[test]
fn an_idle_connection_does_not_hold_an_exchange() {
    let serve = size_of_ret(|| {
        let lean: Arc<Lean> = todo!();
        let io: TcpStream = todo!();
        let info: Arc<ConnInfo> = todo!();
        super::serve_plain(lean, io, info)
    });
    let exchange = size_of_ret(|| {
        let lean: &Lean = todo!();
        let io: &mut TcpStream = todo!();
        let s: &mut pool::Scratch = todo!();
        let conn: &ConnInfo = todo!();
        let timer: std::pin::Pin<&mut tokio::time::Sleep> = todo!();
        exchange::exchange(lean, io, s, conn, timer)
    });
    let intake = size_of_ret(|| {
        let intake: &crate::proxy::proxy_protocol::Intake = todo!();
        let io: &mut TcpStream = todo!();
        let peer: std::net::SocketAddr = todo!();
        intake.conn_info(io, peer, "http")
    });
    let idle = size_of_ret(|| {
        let io: &TcpStream = todo!();
        io.readable()
    });
    let cancelled = size_of_ret(|| {
        let t: &tokio_util::sync::CancellationToken = todo!();
        t.cancelled()
    });
    eprintln!(
        "serve_plain future {serve} B, exchange future {exchange} B, conn_info {intake} B, \
         readable {idle} B, cancelled {cancelled} B, Sleep {} B, TcpStream {} B, ConnInfo {} B",
        std::mem::size_of::<tokio::time::Sleep>(),
        std::mem::size_of::<TcpStream>(),
        std::mem::size_of::<ConnInfo>(),
    );
    assert!(
        serve < 1024 && serve < exchange / 2,
        "the connection future ({serve} B) holds the exchange's ({exchange} B)"
    );
    // The connection's task holds the PROXY header read until it is
    // served; its state is boxed.
    assert!(
        intake < serve / 2,
        "conn_info ({intake} B) would size every connection's task"
    );
}
