//! The server side of a TLS handshake, run on the worker that accepted the
//! connection, and the failure counters by reason. Counters are
//! process-wide relaxed atomics (statistics only; the metrics exporter reads
//! them with `handshake_failures`); each failure is also logged at debug —
//! a port open to the internet sees scanners all day, which is no warning.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Why a client's TLS handshake failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within `server.client_header_timeout`.
    Timeout = 0,
    /// The client closed or reset the connection mid-handshake.
    Closed = 1,
    /// The first bytes were not TLS (often plain HTTP to the HTTPS port).
    NotTls = 2,
    /// A malformed or unexpected handshake message.
    BadMessage = 3,
    /// The client offers no TLS 1.2 or 1.3.
    ProtocolVersion = 4,
    /// No cipher suite, key exchange group or signature scheme in common.
    NoSharedCipher = 5,
    /// Another capability mismatch.
    Incompatible = 6,
    /// The client aborted with an alert (e.g. it rejects our certificate).
    ClientAlert = 7,
    /// The client offered only ALPN protocols we do not speak.
    NoAlpn = 8,
    Other = 9,
}

const KINDS: usize = 10;

static FAILURES: [AtomicU64; KINDS] = [const { AtomicU64::new(0) }; KINDS];

impl HandshakeFailure {
    pub const ALL: [HandshakeFailure; KINDS] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::NotTls,
        HandshakeFailure::BadMessage,
        HandshakeFailure::ProtocolVersion,
        HandshakeFailure::NoSharedCipher,
        HandshakeFailure::Incompatible,
        HandshakeFailure::ClientAlert,
        HandshakeFailure::NoAlpn,
        HandshakeFailure::Other,
    ];

    /// The metric label (stable).
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::NotTls => "not_tls",
            HandshakeFailure::BadMessage => "bad_message",
            HandshakeFailure::ProtocolVersion => "protocol_version",
            HandshakeFailure::NoSharedCipher => "no_shared_cipher",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::ClientAlert => "client_alert",
            HandshakeFailure::NoAlpn => "no_alpn",
            HandshakeFailure::Other => "other",
        }
    }

    /// The reason of a failed `TlsAcceptor::accept`.
    pub fn classify(e: &io::Error) -> Self {
        use rustls::{Error as E, InvalidMessage as M, PeerIncompatible as P};
        let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<E>()) else {
            return HandshakeFailure::Closed;
        };
        match tls {
            E::InvalidMessage(M::InvalidContentType | M::UnknownProtocolVersion) => {
                HandshakeFailure::NotTls
            }
            E::InvalidMessage(_)
            | E::InappropriateHandshakeMessage { .. }
            | E::InappropriateMessage { .. }
            | E::PeerMisbehaved(_) => HandshakeFailure::BadMessage,
            E::PeerIncompatible(
                P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled
                | P::SupportedVersionsExtensionRequired
                | P::ServerDoesNotSupportTls12Or13,
            ) => HandshakeFailure::ProtocolVersion,
            E::PeerIncompatible(
                P::NoCipherSuitesInCommon | P::NoKxGroupsInCommon | P::NoSignatureSchemesInCommon,
            ) => HandshakeFailure::NoSharedCipher,
            E::PeerIncompatible(_) => HandshakeFailure::Incompatible,
            E::AlertReceived(_) => HandshakeFailure::ClientAlert,
            E::NoApplicationProtocol => HandshakeFailure::NoAlpn,
            _ => HandshakeFailure::Other,
        }
    }

    fn count(self) {
        // Relaxed: a statistic, read at scrape time.
        FAILURES[self as usize].fetch_add(1, Ordering::Relaxed);
    }
}

/// Handshake failures since start, by reason (every reason, zeros too).
pub fn handshake_failures() -> Vec<(&'static str, u64)> {
    HandshakeFailure::ALL
        .iter()
        .map(|f| (f.label(), FAILURES[*f as usize].load(Ordering::Relaxed)))
        .collect()
}

/// Runs the server handshake on `stream` within `timeout`; a failure is
/// counted, logged at debug, and answered `None` (the connection is then
/// dropped).
pub async fn accept(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    let failure = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => return Some(tls),
        Ok(Err(e)) => {
            let f = HandshakeFailure::classify(&e);
            tracing::debug!(client = %peer, reason = f.label(), error = %e, "TLS handshake failed");
            f
        }
        Err(_) => {
            tracing::debug!(client = %peer, reason = "timeout", ?timeout, "TLS handshake timed out");
            HandshakeFailure::Timeout
        }
    };
    failure.count();
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(e: rustls::Error) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    #[test]
    fn reasons_are_classified() {
        use rustls::{InvalidMessage, PeerIncompatible};
        let c = HandshakeFailure::classify;
        assert_eq!(
            c(&io::Error::from(io::ErrorKind::UnexpectedEof)),
            HandshakeFailure::Closed
        );
        assert_eq!(
            c(&wrap(rustls::Error::InvalidMessage(
                InvalidMessage::InvalidContentType
            ))),
            HandshakeFailure::NotTls
        );
        assert_eq!(
            c(&wrap(PeerIncompatible::Tls12NotOfferedOrEnabled.into())),
            HandshakeFailure::ProtocolVersion
        );
        assert_eq!(
            c(&wrap(PeerIncompatible::NoCipherSuitesInCommon.into())),
            HandshakeFailure::NoSharedCipher
        );
        assert_eq!(
            c(&wrap(rustls::Error::AlertReceived(
                rustls::AlertDescription::UnknownCA
            ))),
            HandshakeFailure::ClientAlert
        );
        let labels: Vec<_> = handshake_failures().into_iter().map(|(l, _)| l).collect();
        assert_eq!(labels.len(), KINDS);
        assert!(labels.contains(&"not_tls"));
    }
}
