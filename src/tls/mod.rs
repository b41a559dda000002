//! TLS with rustls (the `ring` provider): the HTTPS listener's certificates
//! and handshakes, their hot reload, and TLS to backends.
//!
//! - PEM files are read by `config::pem` (config validation, start-up and
//!   reloads alike, so that a file `switchyard check` accepts is a file the
//!   listener can serve);
//! - `certs`: the SNI certificate store, a `ResolvesServerCert` whose keys
//!   sit in one `ArcSwap` — handshakes load it, the reload task stores it;
//! - `reload`: watching the certificate files (directory events plus
//!   content polling, the rules of the configuration file) and reloading;
//! - `accept`: the server handshake on a worker, with its timeout and the
//!   failure counters by reason (`handshake_failures`);
//! - `upstream`: client configurations for pools whose backends speak TLS.
//!
//! TLS 1.2 and 1.3 only, rustls' default cipher suites; ALPN offers `h2`
//! and `http/1.1` to clients and `http/1.1` to backends.

mod accept;
mod certs;
mod reload;
mod upstream;

use std::sync::{Arc, OnceLock};

use rustls::crypto::CryptoProvider;

pub use accept::{accept, handshake_failures, HandshakeFailure};
pub use certs::CertStore;
pub use reload::watch_certs;
pub use upstream::UpstreamTls;

/// The one crypto provider of the process (`ring`: it builds with a C
/// compiler alone, where `aws-lc-rs` wants cmake). Explicit rather than
/// rustls' process default, so no other crate's feature can change it.
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The rustls server configuration of the HTTPS listener: certificates
/// from `store` (chosen by SNI, hot-reloadable), TLS 1.2 and 1.3, ALPN h2
/// then http/1.1, and stateless resumption tickets (keys rotated every 6 h
/// by rustls): returning clients skip the full handshake without a shared
/// session cache to fill and lock.
pub fn server_config(store: Arc<CertStore>) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(store);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(cfg))
}
