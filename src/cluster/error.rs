//! The cluster's typed errors: what went wrong talking to etcd, and the two
//! answers a write can get that are not failures of the store — a conflict
//! (the revision moved since the change was planned) and a lost
//! leadership (the fencing comparison failed).

/// Why a cluster operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The store could not be reached or refused the request; nothing was
    /// written (or, for a timeout, it is unknown whether it was: callers
    /// re-read before retrying).
    #[error("etcd is unreachable: {0}")]
    Unavailable(String),
    /// The shared document is at another revision than the change was
    /// planned on; `current` is the revision found.
    #[error("the cluster's configuration changed meanwhile (planned on revision {planned}, now {current})")]
    Conflict { planned: i64, current: i64 },
    /// A leader-only write was refused: this replica's leader key is gone
    /// or belongs to another replica.
    #[error("this replica is no longer the cluster's leader")]
    NotLeader,
    /// This replica holds no lease (it is re-registering after losing it).
    #[error("this replica has no lease in etcd (re-registering)")]
    NoLease,
    /// A value in etcd could not be decoded; the key is named.
    #[error("etcd key {key}: {reason}")]
    BadValue { key: String, reason: String },
    /// The cluster section cannot be used as configured (a password
    /// variable that is not set, an unreadable client certificate).
    #[error("[cluster]: {0}")]
    Config(String),
}

impl From<etcd_client::Error> for ClusterError {
    fn from(e: etcd_client::Error) -> Self {
        ClusterError::Unavailable(describe(&e))
    }
}

/// A one-line description of an etcd client error (a gRPC status: its
/// code and message; a transport error: its chain of sources).
pub fn describe(e: &etcd_client::Error) -> String {
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            format!("{}: {}", s.code().description(), s.message())
        }
        etcd_client::Error::TransportError(t) => {
            let mut out = t.to_string();
            let mut src = std::error::Error::source(t);
            while let Some(s) = src {
                out.push_str(": ");
                out.push_str(&s.to_string());
                src = s.source();
            }
            out
        }
        other => other.to_string(),
    }
}
