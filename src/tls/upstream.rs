//! TLS to backends: one client configuration per TLS pool (its trust
//! anchors, the server name to send and verify, ALPN `http/1.1`), shared by
//! the pool's backends (`Backend::tls`) and their health probes.
//!
//! Verification is on unless the pool says `tls_insecure_skip_verify`
//! (warned about every time the pool is loaded). A configuration that
//! cannot be built never falls back to plain text: its connections fail
//! with the reason, as 502 `upstream-tls`.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::config::PoolTls;

/// TLS settings of one pool's backends, ready to connect with.
pub struct UpstreamTls {
    /// What this was built from; a reload with an equal value keeps the
    /// backends (and their pooled connections) as they are.
    pub config: PoolTls,
    connector: Result<TlsConnector, rustls::Error>,
    /// `None`: each backend's IP address (verified against IP SANs).
    server_name: Option<ServerName<'static>>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("config", &self.config)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl UpstreamTls {
    /// Builds the client configuration of pool `pool`.
    pub fn new(pool: &str, config: &PoolTls) -> Self {
        if config.insecure_skip_verify {
            tracing::warn!(
                pool,
                "tls_insecure_skip_verify = true: the certificates of this pool's \
                backends are NOT verified, so anyone on the network path can impersonate them"
            );
        }
        let connector = client_config(config).map(|c| TlsConnector::from(Arc::new(c)));
        if let Err(e) = &connector {
            tracing::error!(pool, error = %e, "cannot build the TLS client configuration; \
                connections to this pool's backends will fail");
        }
        let server_name = config
            .server_name
            .as_ref()
            .and_then(|n| ServerName::try_from(n.clone()).ok());
        Self {
            config: config.clone(),
            connector,
            server_name,
        }
    }

    /// The TLS handshake with the backend at `addr` over `stream`, by
    /// `deadline` (then a `TimedOut` error).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        stream: TcpStream,
        deadline: Instant,
    ) -> io::Result<TlsStream<TcpStream>> {
        let connector = self
            .connector
            .as_ref()
            .map_err(|e| io::Error::other(e.clone()))?;
        let name = match &self.server_name {
            Some(n) => n.clone(),
            None => ServerName::IpAddress(addr.ip().into()),
        };
        match tokio::time::timeout_at(deadline, connector.connect(name, stream)).await {
            Ok(done) => done,
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "no answer in time")),
        }
    }
}

fn client_config(config: &PoolTls) -> Result<ClientConfig, rustls::Error> {
    let provider = super::provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let mut cfg = if config.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(SkipVerify(provider)))
            .with_no_client_auth()
    } else {
        let roots = match &config.ca {
            Some(ca) => {
                let mut store = RootCertStore::empty();
                for c in &ca.certs {
                    // Validation checked each one already.
                    store.add(c.clone())?;
                }
                Arc::new(store)
            }
            None => system_roots(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    // Backends are spoken to in HTTP/1.1.
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(cfg)
}

/// The operating system's trust store, read once per process.
fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            for e in &found.errors {
                tracing::warn!(error = %e, "error reading the system CA certificates");
            }
            let mut store = RootCertStore::empty();
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                tracing::error!(
                    "no system CA certificates found: backends of TLS pools without \
                    ca_file will fail verification (install ca-certificates, or set ca_file)"
                );
            } else {
                tracing::debug!(added, ignored, "system CA certificates loaded");
            }
            Arc::new(store)
        })
        .clone()
}

/// `tls_insecure_skip_verify`: accepts any certificate, but still checks
/// the handshake signatures (the connection is encrypted, not authenticated).
#[derive(Debug)]
struct SkipVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for SkipVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
