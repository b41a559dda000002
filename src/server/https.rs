//! The HTTPS side of the workers: the TLS listener each worker accepts on
//! (its own SO_REUSEPORT socket, like the plain one), the handshake run on
//! the worker, `X-Forwarded-Proto: https` and HSTS for what it serves, and
//! the plain listener's redirect to https (`server.redirect_http`).

use std::io;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use super::front::Front;
use super::{listener, preface, StartError};
use crate::config::{RedirectConfig, ServerConfig};
use crate::proxy::h1::Prefixed;
use crate::proxy::{Proxy, ProxyBody};
use crate::tls::{self, CertStore};

/// ACME http-01 challenges live under this path.
const ACME_PREFIX: &str = "/.well-known/acme-challenge/";

/// The HTTPS listener handed over by the caller: the socket it bound and
/// the certificates it loaded (so that an unusable certificate stops
/// `main` before anything is bound, like an invalid configuration).
pub struct TlsListener {
    pub socket: StdListener,
    pub certs: Arc<CertStore>,
}

impl TlsListener {
    /// Loads the certificates of `cfg` and binds `addr` (port-sharing, for
    /// the workers' sibling sockets).
    pub fn bind(addr: SocketAddr, cfg: &crate::config::TlsConfig) -> Result<Self, StartError> {
        let certs = Arc::new(CertStore::load(cfg).map_err(StartError::Certificate)?);
        let socket =
            listener::bind(addr).map_err(|source| StartError::Listener { worker: 0, source })?;
        Ok(Self { socket, certs })
    }
}

/// What a worker needs to serve HTTPS that only a restart changes (HSTS
/// and the handshake's timeout come with each connection's `Front`).
pub(crate) struct Https {
    pub acceptor: TlsAcceptor,
    /// The port the TLS listener is bound to (the redirect's default).
    pub port: u16,
}

/// The plain listener's redirect to https.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Redirect {
    /// Port for the `Location`; `None` for 443.
    pub port: Option<u16>,
    pub acme_passthrough: bool,
}

/// The HTTPS listener ready for the workers.
pub(crate) struct Prepared {
    pub addr: SocketAddr,
    /// One socket per worker.
    pub sockets: Vec<StdListener>,
    pub https: Arc<Https>,
    pub certs: Arc<CertStore>,
}

/// Checks the listener against the configuration and makes the workers'
/// sockets and the rustls configuration.
pub(crate) fn prepare(
    server: &ServerConfig,
    given: Option<TlsListener>,
    workers: usize,
) -> Result<Option<Prepared>, StartError> {
    let l = match (server.listen_tls, given) {
        (None, None) => return Ok(None),
        (Some(_), Some(l)) => l,
        (Some(_), None) => {
            return Err(StartError::TlsListener(
                "server.listen_tls is set, but no TLS socket was handed over",
            ))
        }
        (None, Some(_)) => {
            return Err(StartError::TlsListener(
                "a TLS socket was handed over, but server.listen_tls is not set",
            ))
        }
    };
    let addr = l
        .socket
        .local_addr()
        .map_err(|source| StartError::Listener { worker: 0, source })?;
    let mut sockets = Vec::with_capacity(workers);
    for i in 1..workers {
        sockets.push(
            listener::sibling(&l.socket)
                .map_err(|source| StartError::Listener { worker: i, source })?,
        );
    }
    sockets.insert(0, l.socket);
    let config = tls::server_config(l.certs.clone()).map_err(StartError::Tls)?;
    Ok(Some(Prepared {
        addr,
        sockets,
        https: Arc::new(Https {
            acceptor: TlsAcceptor::from(config),
            port: addr.port(),
        }),
        certs: l.certs,
    }))
}

/// The plain listener's redirect for `redirect_http` (`cfg`), to the TLS
/// listener bound to `tls_port` unless `redirect_https_port` says otherwise.
pub(crate) fn redirect_to(cfg: Option<RedirectConfig>, tls_port: u16) -> Option<Redirect> {
    cfg.map(|r| {
        let port = r.https_port.unwrap_or(tls_port);
        Redirect {
            port: (port != 443).then_some(port),
            acme_passthrough: r.acme_passthrough,
        }
    })
}

/// Accepts on the worker's TLS socket, or waits forever without one.
pub(crate) async fn accept(l: Option<&TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match l {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// Everything a TLS connection task takes from its worker.
pub(crate) struct Conn {
    pub https: Arc<Https>,
    /// The settings it was accepted with: limits, HSTS, the lean HTTP/1
    /// path for connections that did not negotiate h2, hyper's builder.
    pub front: Arc<Front>,
    pub proxy: Proxy,
    /// Taken before the handshake, so shutdown waits for (and then
    /// gracefully closes) a connection whose handshake is in progress.
    pub watcher: Watcher,
    pub connections: Arc<AtomicUsize>,
    pub shutdown: CancellationToken,
}

/// Open-connection count, decremented when the task ends however it ends.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves one accepted TLS connection on the current worker: handshake
/// (abandoned at shutdown), then HTTP/1.1 or HTTP/2 as negotiated.
pub(crate) fn spawn(c: Conn, mut stream: TcpStream, peer: SocketAddr) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "TCP_NODELAY failed");
    }
    c.connections.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let _counted = Counted(c.connections);
        // A balancer's PROXY header comes before the ClientHello.
        let info = tokio::select! {
            biased;
            _ = c.shutdown.cancelled() => return,
            info = c.front.intake.conn_info(&mut stream, peer, "https") => match info {
                Some(info) => info,
                None => return,
            },
        };
        let within = c.front.header_timeout();
        let tls = tokio::select! {
            biased;
            _ = c.shutdown.cancelled() => return,
            tls = tls::accept(&c.https.acceptor, stream, peer, within) => match tls {
                Some(tls) => tls,
                None => return,
            },
        };
        let info = Arc::new(info);
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        if let (Some(lean), false) = (&c.front.lean_tls, h2) {
            // Shutdown reaches the lean path through its token; the
            // watcher, held until the connection ends, makes the
            // worker's graceful shutdown wait for it.
            let _watcher = c.watcher;
            crate::proxy::h1::serve_tls(lean.clone(), tls, info).await;
            return;
        }
        let mut tls = tls;
        // ALPN h2 means HTTP/2 (RFC 9113 §3.3): no HTTP/1.1 fallback.
        let first = if h2 {
            match preface::read(&mut tls, true, within, &c.shutdown).await {
                preface::Opening::Http2(got) => got,
                _ => return,
            }
        } else {
            Vec::new()
        };
        let tls = Prefixed::new(first, tls);
        let (proxy, front) = (c.proxy, c.front);
        let builder = front.builder.clone();
        let service = service_fn(move |req| {
            let (proxy, info, front) = (proxy.clone(), info.clone(), front.clone());
            // Boxed like the plain listener's, for the same reason.
            Box::pin(async move {
                let mut resp = proxy.handle(req, &info).await;
                if let Some(h) = front.hsts() {
                    // A backend's own policy wins.
                    resp.headers_mut()
                        .entry(header::STRICT_TRANSPORT_SECURITY)
                        .or_insert_with(|| h.clone());
                }
                Ok::<_, std::convert::Infallible>(resp)
            })
        });
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), service);
        if let Err(e) = c.watcher.watch(conn.into_owned()).await {
            tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
        }
    });
}

/// The plain listener's answer when redirecting: 308 to the same host
/// (without the plain port), the TLS port unless 443, path and query; `None`
/// for an ACME challenge with `acme_passthrough` (routed normally).
pub(crate) fn redirect<B>(r: &Redirect, req: &Request<B>) -> Option<Response<ProxyBody>> {
    if r.acme_passthrough && req.uri().path().starts_with(ACME_PREFIX) {
        return None;
    }
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .and_then(host_without_port);
    let Some(host) = host else {
        return Some(plain(
            StatusCode::BAD_REQUEST,
            "a redirect to https needs a valid Host header\n",
        ));
    };
    let pq = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| p.starts_with('/'))
        .unwrap_or("/");
    let location = match r.port {
        Some(port) => format!("https://{host}:{port}{pq}"),
        None => format!("https://{host}{pq}"),
    };
    let Ok(location) = HeaderValue::from_str(&location) else {
        return Some(plain(
            StatusCode::BAD_REQUEST,
            "cannot build the https URL\n",
        ));
    };
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    resp.headers_mut().insert(header::LOCATION, location);
    Some(resp)
}

fn plain(status: StatusCode, body: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// `example.com:8080` → `example.com`, `[::1]:8080` → `[::1]`; `None` for
/// anything that is not a plain host name or IP literal.
fn host_without_port(host: &str) -> Option<&str> {
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        (rest.is_empty()
            || rest
                .strip_prefix(':')
                .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit())))
        .then_some(name)?
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            Some(_) => return None,
            None => host,
        }
    };
    let inner = name.trim_start_matches('[').trim_end_matches(']');
    let ok = !inner.is_empty()
        && inner
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b':');
    ok.then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(uri: &str, host: Option<&str>) -> Request<()> {
        let mut b = Request::get(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap()
    }

    fn location(r: &Redirect, uri: &str, host: Option<&str>) -> Option<(u16, Option<String>)> {
        redirect(r, &req(uri, host)).map(|resp| {
            let loc = resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            (resp.status().as_u16(), loc)
        })
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        let r = Redirect {
            port: Some(8443),
            acme_passthrough: false,
        };
        assert_eq!(
            location(&r, "/a/b?x=1", Some("example.com:8080")),
            Some((308, Some("https://example.com:8443/a/b?x=1".into())))
        );
        let r443 = Redirect {
            port: None,
            acme_passthrough: false,
        };
        assert_eq!(
            location(&r443, "/", Some("[::1]:80")),
            Some((308, Some("https://[::1]/".into())))
        );
        assert_eq!(location(&r443, "/", None).map(|x| x.0), Some(400));
        assert_eq!(
            location(&r443, "/", Some("evil.com/x")).map(|x| x.0),
            Some(400)
        );
    }

    #[test]
    fn acme_challenges_pass_only_when_asked() {
        let path = "/.well-known/acme-challenge/token";
        let pass = Redirect {
            port: None,
            acme_passthrough: true,
        };
        assert_eq!(location(&pass, path, Some("a.example")), None);
        let strict = Redirect {
            port: None,
            acme_passthrough: false,
        };
        assert_eq!(
            location(&strict, path, Some("a.example")).map(|x| x.0),
            Some(308)
        );
        assert_eq!(
            location(&pass, "/other", Some("a.example")).map(|x| x.0),
            Some(308)
        );
    }

    #[test]
    fn hosts_lose_their_port() {
        assert_eq!(host_without_port("a.example:80"), Some("a.example"));
        assert_eq!(host_without_port("a.example"), Some("a.example"));
        assert_eq!(host_without_port("[::1]"), Some("[::1]"));
        assert_eq!(host_without_port("[::1]:x"), None);
        assert_eq!(host_without_port("a@b"), None);
    }
}
