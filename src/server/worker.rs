//! A worker: one OS thread running one current-thread tokio runtime that
//! accepts on its own socket and serves its connections to completion. Like
//! nginx workers, nothing per-request crosses threads; shared state is the
//! routing table (`ArcSwap`) and backend atomics. A worker with an HTTPS
//! listener accepts on its own TLS socket too (`https`). Each accepted
//! connection is served with the worker's current `front::Front` (the
//! limits, redirect and HSTS a reload may change), taken at accept.

use std::net::{SocketAddr, TcpListener as StdListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::front::{Front, Fronts};
use super::{https, preface};
use crate::config::ServerConfig;
use crate::proxy::{h1, upstream, Proxy};
use crate::stats::clock;
use crate::stats::throttle::ACCEPT_FAILED;

/// What a worker needs; cloned once per worker.
#[derive(Clone)]
pub(crate) struct WorkerCtx {
    pub table: Arc<arc_swap::ArcSwap<crate::table::RoutingTable>>,
    /// `[server]` as started: read only for what a reload cannot change
    /// (the reloadable listener settings come from the table, `front`).
    pub server: ServerConfig,
    pub shutdown: CancellationToken,
    /// Open client connections across all workers.
    pub connections: Arc<AtomicUsize>,
    /// The access log, when on.
    pub access: Option<Arc<crate::telemetry::access::AccessLog>>,
    /// HTTPS: the acceptor and its port, when `listen_tls` is set.
    pub https: Option<Arc<https::Https>>,
}

/// Runs a worker on the current thread until shutdown has completed.
pub(crate) fn run(id: usize, listener: StdListener, tls: Option<StdListener>, ctx: WorkerCtx) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(worker = id, error = %e, "cannot start worker runtime");
            ctx.shutdown.cancel();
            return;
        }
    };
    rt.block_on(serve(id, listener, tls, ctx));
}

async fn serve(id: usize, listener: StdListener, tls: Option<StdListener>, ctx: WorkerCtx) {
    let (listener, tls) = match (
        TcpListener::from_std(listener),
        tls.map(TcpListener::from_std).transpose(),
    ) {
        (Ok(l), Ok(t)) => (l, t),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!(worker = id, error = %e, "cannot register listener");
            ctx.shutdown.cancel();
            return;
        }
    };
    let graceful = GracefulShutdown::new();
    let tunnels = TaskTracker::new();
    let proxy = Proxy::new(ctx.table.clone(), tunnels.clone())
        .with_access_log(ctx.access.as_ref().map(|a| a.sink()));
    let mut fronts = Fronts::new(ctx.clone(), proxy.clone(), tunnels.clone());
    let mut sweep = tokio::time::interval(Duration::from_secs(1));
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);

    loop {
        tokio::select! {
            biased;
            _ = ctx.shutdown.cancelled() => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        if let Some(suppressed) = ACCEPT_FAILED.admit(clock::now_ms() / 1000) {
                            tracing::warn!(worker = id, error = %e, suppressed, "accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY failed");
                }
                // Read once per connection: it keeps these settings.
                let front = fronts.current(&ctx.table).clone();
                ctx.connections.fetch_add(1, Ordering::Relaxed);
                let connections = ctx.connections.clone();
                if front.lean.is_some() {
                    tunnels.spawn(async move {
                        serve_lean(front, stream, peer).await;
                        connections.fetch_sub(1, Ordering::Relaxed);
                    });
                } else {
                    let plain = Plain {
                        proxy: proxy.clone(),
                        watcher: graceful.watcher(),
                        shutdown: ctx.shutdown.clone(),
                        front,
                    };
                    tokio::spawn(async move {
                        serve_hyper(plain, stream, peer).await;
                        connections.fetch_sub(1, Ordering::Relaxed);
                    });
                }
            }
            accepted = https::accept(tls.as_ref()) => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        if let Some(suppressed) = ACCEPT_FAILED.admit(clock::now_ms() / 1000) {
                            tracing::warn!(worker = id, error = %e, suppressed, "TLS accept failed");
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if let Some(h) = &ctx.https {
                    let conn = https::Conn {
                        https: h.clone(),
                        front: fronts.current(&ctx.table).clone(),
                        proxy: proxy.clone(),
                        watcher: graceful.watcher(),
                        connections: ctx.connections.clone(),
                        shutdown: ctx.shutdown.clone(),
                    };
                    https::spawn(conn, stream, peer);
                }
            }
            _ = sweep.tick() => {
                upstream::sweep_idle();
                h1::sweep_idle();
            }
        }
    }

    // Stop accepting: closing the sockets refuses new connections at once.
    drop(listener);
    drop(tls);
    let grace = ctx.server.shutdown_grace;
    // Validation bounds shutdown_grace (an hour); checked anyway, since an
    // overflowing deadline here would panic the worker mid-shutdown.
    let now = tokio::time::Instant::now();
    let deadline = now.checked_add(grace).unwrap_or(now);
    tracing::debug!(worker = id, "draining connections");
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(worker = id, grace = ?grace, "shutdown grace expired; closing remaining connections");
    }
    tunnels.close();
    if tokio::time::timeout_at(deadline, tunnels.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            worker = id,
            "closing upgraded connections still open at the deadline"
        );
    }
    // Dropping the runtime closes whatever is left.
}

/// A plain connection on the lean HTTP/1 path, after its PROXY header
/// when it owes one.
async fn serve_lean(front: Arc<Front>, mut stream: TcpStream, peer: SocketAddr) {
    let Some(lean) = front.lean.clone() else {
        return;
    };
    if let Some(info) = front.intake.conn_info(&mut stream, peer, "http").await {
        h1::serve_plain(lean, stream, Arc::new(info)).await;
    }
}

/// What a plain connection served by hyper takes from its worker.
struct Plain {
    proxy: Proxy,
    front: Arc<Front>,
    watcher: Watcher,
    shutdown: CancellationToken,
}

/// A plain connection served by hyper (HTTP/1.1 with `http1 = "hyper"`,
/// h2c), after its PROXY header when it owes one.
async fn serve_hyper(c: Plain, mut stream: TcpStream, peer: SocketAddr) {
    let Some(info) = c.front.intake.conn_info(&mut stream, peer, "http").await else {
        return;
    };
    // A broken HTTP/2 preface gets GOAWAY, not an HTTP/1.1 400.
    let within = c.front.header_timeout();
    let first = match preface::read(&mut stream, false, within, &c.shutdown).await {
        preface::Opening::Http1(got) | preface::Opening::Http2(got) => got,
        preface::Opening::Done => return,
    };
    let stream = h1::Prefixed::new(first, stream);
    let info = Arc::new(info);
    let (proxy, redirect) = (c.proxy, c.front.redirect);
    let service = service_fn(move |req| {
        let proxy = proxy.clone();
        let info = info.clone();
        // Boxed: the request future is several KB, and hyper keeps
        // room for it inline in every connection's task, idle or not.
        Box::pin(async move {
            if let Some(resp) = redirect.as_ref().and_then(|r| https::redirect(r, &req)) {
                return Ok(resp);
            }
            Ok::<_, std::convert::Infallible>(proxy.handle(req, &info).await)
        })
    });
    let conn = c
        .front
        .builder
        .serve_connection_with_upgrades(TokioIo::new(stream), service);
    if let Err(e) = c.watcher.watch(conn.into_owned()).await {
        tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
    }
}
