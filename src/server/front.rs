//! What a worker takes a new connection in with, rebuilt when a reload
//! changes it (issue 18, item 4): the client-side limits
//! (`client_header_timeout`, `max_header_bytes`, `max_headers`), the plain
//! listener's redirect (`redirect_http`) and HSTS, as the routing table
//! carries them (`table::Listening`).
//!
//! The worker's accept loop asks [`Fronts::current`] once per accepted
//! connection: one `ArcSwap` load and a generation compare; only a
//! generation whose values differ rebuilds the hyper builder and the lean
//! paths (a split change does not). The connection keeps the `Front` it
//! was accepted with until it closes: a reload changes what new
//! connections get, never the limits of one already open.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use arc_swap::ArcSwap;
use http::HeaderValue;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio_util::task::TaskTracker;

use super::https::{self, Redirect};
use super::preface;
use super::worker::WorkerCtx;
use crate::config::Http1Engine;
use crate::proxy::proxy_protocol::Intake;
use crate::proxy::{h1, Proxy};
use crate::table::{Listening, RoutingTable};

/// One set of per-connection settings, ready to serve with.
pub(crate) struct Front {
    /// The values it was built from.
    pub values: Listening,
    /// hyper's server (HTTP/1.1 with `http1 = "hyper"`, HTTP/2 always).
    pub builder: Arc<auto::Builder<TokioExecutor>>,
    /// The PROXY header's intake (its timeout is `client_header_timeout`).
    pub intake: Arc<Intake>,
    /// The plain listener's redirect to https; only with a TLS listener.
    pub redirect: Option<Redirect>,
    /// The lean HTTP/1 paths (`http1 = "lean"`): plain, and TLS.
    pub lean: Option<Arc<h1::Lean>>,
    pub lean_tls: Option<Arc<h1::Lean>>,
}

impl Front {
    /// The TLS handshake and the HTTP/2 preface are bounded like a head.
    pub fn header_timeout(&self) -> std::time::Duration {
        self.values.client_header_timeout
    }

    pub fn hsts(&self) -> Option<&HeaderValue> {
        self.values.hsts.as_ref()
    }
}

/// A worker's current [`Front`] and what it builds a new one from.
pub(crate) struct Fronts {
    ctx: WorkerCtx,
    proxy: Proxy,
    /// Where the lean path's h2c hand-offs are tracked.
    tasks: TaskTracker,
    /// Made at start (`proxy_protocol`, `trusted_proxies` need a restart).
    intake: Intake,
    /// The generation `current` was last checked against.
    generation: u64,
    current: Arc<Front>,
}

impl Fronts {
    pub fn new(ctx: WorkerCtx, proxy: Proxy, tasks: TaskTracker) -> Self {
        let intake = Intake::new(&ctx.server);
        let (generation, values) = {
            let t = ctx.table.load();
            (t.generation, t.listening.clone())
        };
        let current = Arc::new(build(&ctx, &proxy, &tasks, &intake, values));
        Self {
            ctx,
            proxy,
            tasks,
            intake,
            generation,
            current,
        }
    }

    /// The front for a connection accepted now.
    pub fn current(&mut self, table: &ArcSwap<RoutingTable>) -> &Arc<Front> {
        let t = table.load();
        if t.generation != self.generation {
            self.generation = t.generation;
            if t.listening != self.current.values {
                tracing::debug!(listening = ?t.listening, "new connections take the reloaded limits");
                self.current = Arc::new(build(
                    &self.ctx,
                    &self.proxy,
                    &self.tasks,
                    &self.intake,
                    t.listening.clone(),
                ));
            }
        }
        &self.current
    }
}

fn build(
    ctx: &WorkerCtx,
    proxy: &Proxy,
    tasks: &TaskTracker,
    intake: &Intake,
    values: Listening,
) -> Front {
    let builder = Arc::new(http_builder(&values));
    // Without a TLS listener there is nothing to redirect to (a
    // `listen_tls` added by a reload waits for a restart).
    let redirect = ctx
        .https
        .as_ref()
        .and_then(|h| https::redirect_to(values.redirect, h.port));
    let lean = (ctx.server.http1 == Http1Engine::Lean).then(|| {
        let plain = lean_path(ctx, proxy, &builder, tasks, &values, redirect, None);
        // The TLS path never redirects; it adds HSTS.
        let tls = ctx.https.as_ref().map(|_| {
            Arc::new(lean_path(
                ctx,
                proxy,
                &builder,
                tasks,
                &values,
                None,
                values.hsts.clone(),
            ))
        });
        (Arc::new(plain), tls)
    });
    let (lean, lean_tls) = match lean {
        Some((plain, tls)) => (Some(plain), tls),
        None => (None, None),
    };
    Front {
        intake: Arc::new(Intake {
            timeout: values.client_header_timeout,
            ..intake.clone()
        }),
        builder,
        redirect,
        lean,
        lean_tls,
        values,
    }
}

/// A lean HTTP/1 path: `redirect` for the plain listener, `hsts` for the
/// TLS one. A plain connection that opens with the HTTP/2 preface goes to
/// hyper's server.
fn lean_path(
    ctx: &WorkerCtx,
    proxy: &Proxy,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    tasks: &TaskTracker,
    values: &Listening,
    redirect: Option<Redirect>,
    hsts: Option<HeaderValue>,
) -> h1::Lean {
    let redirect = redirect.map(|r| {
        Arc::new(move |req: &http::Request<()>| https::redirect(&r, req)) as h1::RedirectFn
    });
    h1::Lean {
        proxy: proxy.clone(),
        max_header_bytes: values.max_header_bytes,
        max_headers: values.max_headers,
        header_timeout: values.client_header_timeout,
        shutdown: ctx.shutdown.clone(),
        hsts,
        redirect,
        h2: Some(h2c_handoff(ctx, proxy, builder, tasks, values)),
    }
}

/// Serves a plain connection that began with `PRI * HTTP/2.0` with
/// hyper's h2 server, after the rest of the preface (or GOAWAY).
fn h2c_handoff(
    ctx: &WorkerCtx,
    proxy: &Proxy,
    builder: &Arc<auto::Builder<TokioExecutor>>,
    tasks: &TaskTracker,
    values: &Listening,
) -> h1::H2Fn {
    let (h2_proxy, h2_builder) = (proxy.clone(), builder.clone());
    let (connections, shutdown, tasks) =
        (ctx.connections.clone(), ctx.shutdown.clone(), tasks.clone());
    let header_timeout = values.client_header_timeout;
    Arc::new(move |mut io, info| {
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
    })
}

fn http_builder(v: &Listening) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(v.client_header_timeout)
        .max_buf_size(v.max_header_bytes.max(8192))
        .max_headers(v.max_headers);
    b.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(v.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(256);
    b
}
