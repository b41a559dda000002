//! TLS for tests: a private CA made with rcgen (and intermediates), the
//! certificates it issues, written as PEM files; rustls client
//! configurations restricted to one TLS version or ALPN protocol; a client
//! that reports what the server presented; and a TLS backend that answers
//! like `TestBackend` (same handler, same counters).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::client::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig, SupportedProtocolVersion};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::backend::Stats;
use super::{collect, Answer, TestBackend, TestProxy};

/// A certificate authority.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.distinguished_name.push(DnType::CommonName, name);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let issuer = CertifiedIssuer::self_signed(ca_params(name), key).expect("CA");
        Self { issuer }
    }

    /// An intermediate CA signed by this one.
    pub fn intermediate(&self, name: &str) -> Self {
        let key = KeyPair::generate().expect("key");
        let issuer =
            CertifiedIssuer::signed_by(ca_params(name), key, &self.issuer).expect("intermediate");
        Self { issuer }
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("params");
        p.distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        let cert = p.signed_by(&key, &self.issuer).expect("sign");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    /// Writes the CA certificate to `dir/name`.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, self.pem()).expect("write CA");
        p
    }
}

impl Leaf {
    /// Writes `dir/{stem}.crt` (with `chain` appended) and `dir/{stem}.key`.
    pub fn write(&self, dir: &Path, stem: &str, chain: &[&TestCa]) -> (PathBuf, PathBuf) {
        let mut pem = self.cert_pem.clone();
        for c in chain {
            pem.push_str(&c.pem());
        }
        let (c, k) = (
            dir.join(format!("{stem}.crt")),
            dir.join(format!("{stem}.key")),
        );
        write_atomic(&c, &pem);
        write_atomic(&k, &self.key_pem);
        (c, k)
    }
}

/// Writes through a temp file and a rename, as certbot and editors do.
pub fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

/// A client trusting `ca`, speaking only `versions`, offering `alpn`.
pub fn client_config(
    ca: &TestCa,
    versions: &[&'static SupportedProtocolVersion],
    alpn: &[&[u8]],
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.der()).expect("root");
    let mut cfg = ClientConfig::builder_with_provider(switchyard::tls::provider())
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(cfg)
}

/// A TLS 1.3-or-1.2 HTTP/1.1 client trusting `ca`.
pub fn default_client(ca: &TestCa) -> Arc<ClientConfig> {
    client_config(ca, rustls::ALL_VERSIONS, &[b"http/1.1"])
}

/// Connects and handshakes, sending `sni`.
pub async fn connect(
    addr: SocketAddr,
    sni: &str,
    cfg: Arc<ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).expect("server name");
    TlsConnector::from(cfg).connect(name, tcp).await
}

/// The certificate the server presented on `tls`.
pub fn presented(tls: &TlsStream<TcpStream>) -> CertificateDer<'static> {
    tls.get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("a server certificate")
        .clone()
        .into_owned()
}

/// An HTTP/1.1 connection over `tls`.
pub async fn h1(tls: TlsStream<TcpStream>) -> http1::SendRequest<Empty<Bytes>> {
    let (tx, conn) = http1::handshake(TokioIo::new(tls))
        .await
        .expect("h1 handshake");
    tokio::spawn(conn);
    tx
}

/// An HTTP/2 connection over `tls`.
pub async fn h2(tls: TlsStream<TcpStream>) -> http2::SendRequest<Empty<Bytes>> {
    let (tx, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    tx
}

fn request(host: &str, path: &str, h2: bool) -> http::Request<Empty<Bytes>> {
    let b = if h2 {
        http::Request::get(format!("https://{host}{path}"))
    } else {
        http::Request::get(path).header("host", host)
    };
    b.body(Empty::new()).expect("request")
}

/// GET over an HTTP/1.1 connection.
pub async fn get1(tx: &mut http1::SendRequest<Empty<Bytes>>, host: &str, path: &str) -> Answer {
    tx.ready().await.expect("connection ready");
    collect(
        tx.send_request(request(host, path, false))
            .await
            .expect("response"),
    )
    .await
}

/// GET over an HTTP/2 connection.
pub async fn get2(tx: &mut http2::SendRequest<Empty<Bytes>>, host: &str, path: &str) -> Answer {
    tx.ready().await.expect("connection ready");
    collect(
        tx.send_request(request(host, path, true))
            .await
            .expect("response"),
    )
    .await
}

/// One GET on a new TLS connection (SNI `host`).
pub async fn get_tls(addr: SocketAddr, host: &str, path: &str, cfg: Arc<ClientConfig>) -> Answer {
    let tls = connect(addr, host, cfg).await.expect("TLS handshake");
    get1(&mut h1(tls).await, host, path).await
}

/// A TLS acceptor presenting `leaf` (TLS 1.2 and 1.3, no ALPN).
pub fn acceptor(leaf: &Leaf) -> TlsAcceptor {
    let chain = vec![leaf.der.clone()];
    let key: PrivateKeyDer<'static> =
        rustls::pki_types::pem::PemObject::from_pem_slice(leaf.key_pem.as_bytes())
            .expect("key PEM");
    let cfg = ServerConfig::builder_with_provider(switchyard::tls::provider())
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(cfg))
}

/// A backend speaking HTTPS with `leaf`, answering like `TestBackend`.
pub struct TlsBackend {
    pub addr: SocketAddr,
    pub stats: Arc<Stats>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsBackend {
    pub async fn start(name: &str, leaf: &Leaf) -> TlsBackend {
        let acceptor = acceptor(leaf);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(Stats::default());
        let (s, name) = (stats.clone(), name.to_owned());
        let task = super::accept_each(listener, move |tcp| {
            let (acceptor, s, name) = (acceptor.clone(), s.clone(), name.clone());
            async move {
                // A client that rejects our certificate ends here.
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc =
                    service_fn(move |req| super::backend::handle(req, name.clone(), s.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), svc)
                    .await;
            }
        });
        TlsBackend { addr, stats, task }
    }

    pub fn requests(&self) -> usize {
        self.stats
            .requests
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn probes(&self) -> usize {
        self.stats.probes.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn last_headers(&self) -> http::HeaderMap {
        self.stats
            .last_headers
            .lock()
            .unwrap()
            .clone()
            .expect("a request arrived")
    }
}

impl Drop for TlsBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// Proxy set-ups shared by the TLS tests.

/// How long a TLS test waits for a reload or a count.
pub const WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes `config` beside the certificate files in `dir` and starts a proxy.
pub async fn start(dir: tempfile::TempDir, config: &str) -> TestProxy {
    let path = dir.path().join("switchyard.toml");
    std::fs::write(&path, config).expect("write config");
    TestProxy::start_at(dir, path).await
}

pub fn tls_config(backend: &TestBackend, extra_server: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen_tls = "127.0.0.1:8443"
watch_interval = "100ms"
{extra_server}

[tls]
cert = "default.crt"
key = "default.key"
{extra}

[pools.blue]
backends = ["{}"]
health = {{ enabled = false }}

[[routes]]
name = "r"
split = {{ blue = 100 }}
"#,
        backend.addr
    )
}

/// A CA, a temp dir, and a default certificate for `default.test` in it.
pub fn setup() -> (TestCa, tempfile::TempDir, Leaf) {
    let ca = TestCa::new("switchyard test CA");
    let dir = tempfile::tempdir().expect("tempdir");
    let leaf = ca.issue(&["default.test", "other.test"]);
    leaf.write(dir.path(), "default", &[]);
    (ca, dir, leaf)
}

#[allow(unused_imports)]
pub use super::admin::status;

pub fn backend_pool(name: &str, addr: &str, keys: &str) -> String {
    format!("[pools.{name}]\nbackends = [\"{addr}\"]\nhealth = {{ enabled = false }}\n{keys}\n")
}

pub fn routes(pools: &[&str]) -> String {
    pools
        .iter()
        .map(|p| {
            format!(
                "[[routes]]\nname = \"{p}\"\npath_prefix = \"/{p}\"\nsplit = {{ {p} = 100 }}\n\n"
            )
        })
        .collect()
}
