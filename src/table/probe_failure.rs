//! Why a backend's latest active probe failed, packed into a `u32` so the
//! backend can keep it in an atomic (written by its probe task, read through
//! `Backend::probe_failure`).

/// Why the latest active probe failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeFailure {
    /// The probe got an answer outside `expect_status`.
    Status(u16),
    /// No answer within the probe timeout.
    Timeout,
    /// The backend refused the connection.
    Refused,
    /// Another connect error (unreachable, reset during connect, ...).
    Connect,
    /// Connected, but the HTTP exchange failed (closed, malformed).
    Protocol,
    /// The TLS handshake failed (certificate not trusted, wrong name, ...).
    Tls,
}

impl ProbeFailure {
    pub(super) fn encode(this: Option<Self>) -> u32 {
        match this {
            None => 0,
            Some(ProbeFailure::Timeout) => 1,
            Some(ProbeFailure::Refused) => 2,
            Some(ProbeFailure::Connect) => 3,
            Some(ProbeFailure::Protocol) => 4,
            Some(ProbeFailure::Tls) => 5,
            Some(ProbeFailure::Status(s)) => 1000 + u32::from(s),
        }
    }

    pub(super) fn decode(v: u32) -> Option<Self> {
        match v {
            0 => None,
            1 => Some(ProbeFailure::Timeout),
            2 => Some(ProbeFailure::Refused),
            3 => Some(ProbeFailure::Connect),
            4 => Some(ProbeFailure::Protocol),
            5 => Some(ProbeFailure::Tls),
            v => u16::try_from(v - 1000).ok().map(ProbeFailure::Status),
        }
    }
}

impl std::fmt::Display for ProbeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeFailure::Status(s) => write!(f, "status {s}"),
            ProbeFailure::Timeout => f.write_str("timeout"),
            ProbeFailure::Refused => f.write_str("connection refused"),
            ProbeFailure::Connect => f.write_str("connect error"),
            ProbeFailure::Protocol => f.write_str("connection closed or malformed answer"),
            ProbeFailure::Tls => f.write_str("TLS handshake failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_failure_round_trips() {
        for f in [
            None,
            Some(ProbeFailure::Timeout),
            Some(ProbeFailure::Refused),
            Some(ProbeFailure::Connect),
            Some(ProbeFailure::Protocol),
            Some(ProbeFailure::Tls),
            Some(ProbeFailure::Status(500)),
            Some(ProbeFailure::Status(404)),
        ] {
            assert_eq!(ProbeFailure::decode(ProbeFailure::encode(f)), f);
        }
    }
}
