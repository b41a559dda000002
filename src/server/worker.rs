//! A worker: one OS thread running one current-thread tokio runtime that
//! accepts on its own socket and serves its connections to completion. Like
//! nginx workers, nothing per-request crosses threads; shared state is the
//! routing table (`ArcSwap`) and backend atomics. A worker with an HTTPS
//! listener accepts on its own TLS socket too (`https`).

use std::net::TcpListener as StdListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{https, preface};
use crate::config::{Http1Engine, ServerConfig};
use crate::proxy::proxy_protocol::Intake as ProxyIntake;
use crate::proxy::{h1, upstream, Proxy};
use crate::stats::clock;
use crate::stats::throttle::ACCEPT_FAILED;

/// What a worker needs; cloned once per worker.
#[derive(Clone)]
pub(crate) struct WorkerCtx {
    pub table: Arc<arc_swap::ArcSwap<crate::table::RoutingTable>>,
    pub server: ServerConfig,
    pub shutdown: CancellationToken,
    /// Open client connections across all workers.
    pub connections: Arc<AtomicUsize>,
    /// The access log, when on.
    pub access: Option<Arc<crate::telemetry::access::AccessLog>>,
    /// HTTPS: the acceptor and HSTS, when `listen_tls` is set.
    pub https: Option<Arc<https::Https>>,
    /// The plain listener redirects to https (`server.redirect_http`).
    pub redirect: Option<https::Redirect>,
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
    // Shared with the TLS connection tasks, which serve after their handshake.
    let builder = Arc::new(http_builder(&ctx.server));
    let redirect = ctx.redirect;
    let lean = (ctx.server.http1 == Http1Engine::Lean)
        .then(|| Arc::new(lean_path(&ctx, &proxy, &builder, &tunnels, None)));
    let lean_tls = lean
        .as_ref()
        .and(ctx.https.as_ref())
        .map(|h| Arc::new(lean_path(&ctx, &proxy, &builder, &tunnels, h.hsts.clone())));
    let intake = Arc::new(ProxyIntake::new(&ctx.server));
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
                let (mut stream, peer) = (stream, peer);
                if let Err(e) = stream.set_nodelay(true) {
                    tracing::debug!(error = %e, "TCP_NODELAY failed");
                }
                if let Some(lean) = &lean {
                    let (lean, intake) = (lean.clone(), intake.clone());
                    let connections = ctx.connections.clone();
                    connections.fetch_add(1, Ordering::Relaxed);
                    tunnels.spawn(async move {
                        // Served only after its PROXY header, when it owes one.
                        if let Some(info) = intake.conn_info(&mut stream, peer, "http").await {
                            h1::serve_plain(lean, stream, Arc::new(info)).await;
                        }
                        connections.fetch_sub(1, Ordering::Relaxed);
                    });
                    continue;
                }
                let proxy = proxy.clone();
                let (intake, builder) = (intake.clone(), builder.clone());
                let watcher = graceful.watcher();
                let connections = ctx.connections.clone();
                connections.fetch_add(1, Ordering::Relaxed);
                let header_timeout = ctx.server.client_header_timeout;
                let shutdown = ctx.shutdown.clone();
                tokio::spawn(async move {
                    // Served only after its PROXY header, when it owes one.
                    if let Some(info) = intake.conn_info(&mut stream, peer, "http").await {
                        // A broken HTTP/2 preface gets GOAWAY, not an HTTP/1.1 400.
                        let first = match preface::read(&mut stream, false, header_timeout, &shutdown).await {
                            preface::Opening::Http1(got) | preface::Opening::Http2(got) => got,
                            preface::Opening::Done => {
                                connections.fetch_sub(1, Ordering::Relaxed);
                                return;
                            }
                        };
                        let stream = h1::Prefixed::new(first, stream);
                        let info = Arc::new(info);
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
                        let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        if let Err(e) = watcher.watch(conn.into_owned()).await {
                            tracing::debug!(client = %peer, error = %e, "client connection ended with an error");
                        }
                    }
                    connections.fetch_sub(1, Ordering::Relaxed);
                });
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
                        lean: lean_tls.clone(),
                        proxy: proxy.clone(),
                        builder: builder.clone(),
                        watcher: graceful.watcher(),
                        connections: ctx.connections.clone(),
                        shutdown: ctx.shutdown.clone(),
                        intake: intake.clone(),
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

/// The lean HTTP/1 path of this worker (`server.http1 = "lean"`); a
/// plain connection that opens with the HTTP/2 preface goes to hyper's
/// server. `hsts`: for the TLS listener.
fn lean_path(
    ctx: &WorkerCtx,
    proxy: &Proxy,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    tasks: &TaskTracker,
    hsts: Option<http::HeaderValue>,
) -> h1::Lean {
    let redirect = match (ctx.redirect, &hsts) {
        (Some(r), None) => Some(
            Arc::new(move |req: &http::Request<()>| https::redirect(&r, req)) as h1::RedirectFn,
        ),
        _ => None,
    };
    let (h2_proxy, h2_builder) = (proxy.clone(), builder.clone());
    let (connections, shutdown, tasks) =
        (ctx.connections.clone(), ctx.shutdown.clone(), tasks.clone());
    let header_timeout = ctx.server.client_header_timeout;
    let h2: h1::H2Fn = Arc::new(move |mut io, info| {
        let proxy = h2_proxy.clone();
        let builder = h2_builder.clone();
        let (connections, shutdown) = (connections.clone(), shutdown.clone());
        connections.fetch_add(1, Ordering::Relaxed);
        // Tracked with the worker's tunnels: shutdown waits for it (GOAWAY
        // first) under the same grace.
        tasks.spawn(async move {
            // It began with `PRI * HTTP/2.0`: the rest of the preface or
            // GOAWAY (never an HTTP/1.1 answer).
            let first = match preface::read(&mut io, true, header_timeout, &shutdown).await {
                preface::Opening::Http2(got) => got,
                _ => {
                    connections.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            };
            let service = service_fn(move |req| {
                let (proxy, info) = (proxy.clone(), info.clone());
                Box::pin(async move {
                    Ok::<_, std::convert::Infallible>(proxy.handle(req, &info).await)
                })
            });
            let io = h1::Prefixed::new(first, io);
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(io), service)
                .into_owned();
            tokio::pin!(conn);
            let ended = tokio::select! {
                r = conn.as_mut() => r,
                _ = shutdown.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "h2c connection ended with an error");
            }
            connections.fetch_sub(1, Ordering::Relaxed);
        });
    });
    h1::Lean {
        proxy: proxy.clone(),
        max_header_bytes: ctx.server.max_header_bytes,
        max_headers: ctx.server.max_headers,
        header_timeout: ctx.server.client_header_timeout,
        shutdown: ctx.shutdown.clone(),
        hsts,
        redirect,
        h2: Some(h2),
    }
}

fn http_builder(s: &ServerConfig) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(s.client_header_timeout)
        .max_buf_size(s.max_header_bytes.max(8192))
        .max_headers(s.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(s.max_header_bytes as u32)
        .max_concurrent_streams(256);
    b
}
