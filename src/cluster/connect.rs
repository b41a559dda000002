//! Building the etcd client from `[cluster]`: endpoints, TLS (tonic's
//! rustls with ring: the CA file or the system roots, an optional client
//! certificate), user authentication, HTTP/2 keep-alive so a dead
//! connection is noticed within seconds even on an idle watch stream, and
//! `require_leader` so a request to a member cut off from its quorum fails
//! instead of waiting. Per-request deadlines are not set on the client
//! (they would also bound the watch streams); `rpc` puts one on each unary
//! call instead.

use std::future::Future;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::error::ClusterError;
use crate::config::ClusterConfig;

/// Longest wait for one unary request (get, put, txn, lease grant).
pub const RPC_TIMEOUT: Duration = Duration::from_secs(2);

/// Connects (lazily: the client dials on first use, so this succeeds while
/// etcd is down — except with `user`, whose token is fetched here).
pub async fn connect(cfg: &ClusterConfig) -> Result<Client, ClusterError> {
    let endpoints: Vec<String> = cfg.endpoints.iter().map(ToString::to_string).collect();
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(RPC_TIMEOUT)
        .with_keep_alive(Duration::from_secs(1), Duration::from_secs(2))
        .with_keep_alive_while_idle(true)
        .with_require_leader(true);
    if let Some(tls) = &cfg.tls {
        let mut t = TlsOptions::new();
        match &tls.ca {
            Some(ca) => {
                let pem = std::fs::read(&ca.path).map_err(|e| {
                    ClusterError::Config(format!("cannot read {}: {e}", ca.path.display()))
                })?;
                t = t.ca_certificate(Certificate::from_pem(pem));
            }
            None => t = t.with_native_roots(),
        }
        if let Some((cert, key)) = &tls.identity {
            let read = |p: &std::path::Path| {
                std::fs::read(p)
                    .map_err(|e| ClusterError::Config(format!("cannot read {}: {e}", p.display())))
            };
            t = t.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        opts = opts.with_tls(t);
    }
    if let Some(auth) = &cfg.auth {
        let password = auth.password().map_err(ClusterError::Config)?;
        opts = opts.with_user(auth.user.clone(), password);
    }
    rpc(Client::connect(endpoints, Some(opts))).await
}

/// One unary request under `RPC_TIMEOUT`.
pub async fn rpc<T>(
    fut: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(RPC_TIMEOUT, fut).await {
        Ok(r) => r.map_err(ClusterError::from),
        Err(_) => Err(ClusterError::Unavailable(format!(
            "no answer within {RPC_TIMEOUT:?}"
        ))),
    }
}
