//! Listening sockets. The caller binds (so that an invalid config fails
//! before any port is taken and tests can bind port 0); each worker then
//! gets a socket of its own on the same address through SO_REUSEPORT, so
//! the kernel spreads new connections over the workers.

use std::io;
use std::net::{SocketAddr, TcpListener};

use socket2::{Domain, Protocol, SockRef, Socket, Type};

const BACKLOG: i32 = 1024;

fn socket(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(reuse_port)?;
    if addr.is_ipv6() {
        // "[::]:80" should not also grab IPv4; bind both explicitly if wanted.
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into())?;
    socket.listen(BACKLOG)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Binds a listener that further workers can share with [`sibling`].
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    socket(addr, true)
}

/// Binds a plain listener (no port sharing), e.g. for the admin API.
pub fn bind_single(addr: SocketAddr) -> io::Result<TcpListener> {
    socket(addr, false)
}

/// Another listening socket for the same address: a new SO_REUSEPORT socket
/// when the original allows it, else a duplicate of the original (then the
/// workers share one accept queue).
pub fn sibling(original: &TcpListener) -> io::Result<TcpListener> {
    let addr = original.local_addr()?;
    #[cfg(unix)]
    if SockRef::from(original).reuse_port().unwrap_or(false) {
        return socket(addr, true);
    }
    let dup = original.try_clone()?;
    dup.set_nonblocking(true)?;
    Ok(dup)
}
