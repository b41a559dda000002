//! Process assembly: given a validated config and already-bound listeners,
//! start the controller, the workers and the admin listener, and stop them
//! in order when the shutdown token fires. The library binds no port of its
//! own choosing and handles no signal: `main` (or a test) does both.
//!
//! Shutdown sequence: `/ready` turns false, workers close their listening
//! sockets (new connections are refused), in-flight requests finish and idle
//! keep-alive connections are closed gracefully (HTTP/1 `Connection: close`,
//! HTTP/2 GOAWAY) within `shutdown_grace`; whatever is left is then closed.

mod front;
mod https;
pub mod listener;
mod preface;
mod preflight;
mod worker;

pub use https::TlsListener;
pub use preflight::preflight;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

use crate::admin::{self, Admin};
use crate::config::Config;
use crate::control::{self, ControlHandle};
use crate::health;
use crate::telemetry::access::AccessLog;
use crate::telemetry::Telemetry;

/// Errors starting the server.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot prepare listener for worker {worker}: {source}")]
    Listener {
        worker: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start worker thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("admin token: {0}")]
    Token(String),
    #[error("server.access_log: cannot open {0}: {1}")]
    AccessLog(String, #[source] std::io::Error),
    #[error("{0}")]
    Certificate(#[source] crate::config::pem::CertError),
    #[error("TLS configuration: {0}")]
    Tls(#[source] rustls::Error),
    #[error("{0}")]
    TlsListener(&'static str),
}

impl StartError {
    /// A fault of the configuration (its token, certificates or log file)
    /// rather than of the machine: `run` exits 64 for it, as `check` does.
    pub fn is_config(&self) -> bool {
        matches!(
            self,
            Self::Token(_) | Self::Certificate(_) | Self::Tls(_) | Self::AccessLog(..)
        )
    }
}

/// Sockets bound by the caller.
pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: TcpListener,
    /// The HTTPS listener, when `server.listen_tls` is set.
    pub tls: Option<TlsListener>,
}

/// Where the configuration came from, for reloads.
pub struct Source {
    pub path: Option<PathBuf>,
    pub text: String,
}

/// A running switchyard.
pub struct Running {
    pub proxy_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub control: ControlHandle,
    /// The HTTPS listener's address, when there is one.
    pub tls_addr: Option<SocketAddr>,
    certs: Option<Arc<crate::tls::CertStore>>,
    shutdown: CancellationToken,
    workers: Vec<oneshot::Receiver<()>>,
    access: Option<Arc<AccessLog>>,
}

impl Running {
    /// The access log, for reopening its file (SIGUSR1, after logrotate).
    pub fn access_log(&self) -> Option<Arc<AccessLog>> {
        self.access.clone()
    }

    /// The HTTPS listener's certificates (SIGHUP reloads them).
    pub fn certificates(&self) -> Option<Arc<crate::tls::CertStore>> {
        self.certs.clone()
    }

    /// Begins the graceful shutdown sequence.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Resolves once every worker has finished its shutdown.
    pub async fn wait(self) {
        for w in self.workers {
            // A worker that panicked dropped its sender: it is done too.
            let _ = w.await;
        }
    }
}

/// Starts switchyard on the current tokio runtime (controller, admin) and
/// on worker threads of its own (the data plane).
pub fn start(
    config: Config,
    source: Source,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<Running, StartError> {
    start_with_resolver(
        config,
        source,
        listeners,
        shutdown,
        Arc::new(control::SystemResolver),
    )
}

/// `start` with the resolver used for backends given by DNS name.
pub fn start_with_resolver(
    config: Config,
    source: Source,
    listeners: Listeners,
    shutdown: CancellationToken,
    resolver: Arc<dyn control::Resolve>,
) -> Result<Running, StartError> {
    let token = preflight::resolve_token(&config)?;
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let proxy_addr = listeners
        .proxy
        .local_addr()
        .map_err(|source| StartError::Listener { worker: 0, source })?;
    let admin_addr = listeners
        .admin
        .local_addr()
        .map_err(|source| StartError::Listener { worker: 0, source })?;
    let mut sockets = Vec::with_capacity(workers);
    for i in 1..workers {
        sockets.push(
            listener::sibling(&listeners.proxy)
                .map_err(|source| StartError::Listener { worker: i, source })?,
        );
    }
    sockets.insert(0, listeners.proxy);
    let tls = https::prepare(&config.server, listeners.tls, workers)?;
    let tls_addr = tls.as_ref().map(|t| t.addr);
    let certs = tls.as_ref().map(|t| t.certs.clone());
    let https = tls.as_ref().map(|t| t.https.clone());
    let mut tls_sockets = tls.map(|t| t.sockets).unwrap_or_default().into_iter();

    let server_cfg = config.server.clone();
    let (watch_mode, watch_interval) = (config.server.watch, config.server.watch_interval);
    let telemetry = config.admin.metrics.then(Telemetry::new);
    let metrics_open = config.admin.metrics_open;
    let guard = admin::guard::Guard::new(&config.admin.allowed_hosts);
    let cluster_cfg = config.cluster.clone();
    let seed = cluster_cfg
        .as_ref()
        .map(|_| control::document::shared(&source.text).unwrap_or_default());
    let control = control::spawn_with(
        config,
        source.path.clone(),
        source.text,
        resolver,
        telemetry.clone(),
    );
    if let Some(t) = telemetry.clone() {
        // Histogram samples are aggregated here, off the request path.
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => t.upkeep(),
                }
            }
        });
    }
    {
        // Summaries of the warnings the throttles left out (issue 18, item 5).
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tick.tick() => crate::stats::throttle::flush(crate::stats::clock::now_ms() / 1000),
                }
            }
        });
    }
    // Probes start now (the first round gates /ready) and follow reloads.
    let health = health::spawn(control.watch(), shutdown.clone());
    let connections = Arc::new(AtomicUsize::new(0));
    let access = match &server_cfg.access_log {
        None => None,
        Some(dest) => {
            let dropped = telemetry
                .as_ref()
                .map_or_else(Default::default, |t| t.access_log_dropped.clone());
            let log = AccessLog::with_queue(
                dest,
                server_cfg.access_log_format,
                dropped,
                server_cfg.access_log_buffer,
            )
            .map_err(|e| {
                let name = match dest {
                    crate::config::AccessLogDest::File(p) => p.display().to_string(),
                    crate::config::AccessLogDest::Stdout => "stdout".into(),
                };
                StartError::AccessLog(name, e)
            })?;
            Some(Arc::new(log))
        }
    };
    let ctx = worker::WorkerCtx {
        access: access.clone(),
        table: control.table().clone(),
        server: server_cfg,
        shutdown: shutdown.clone(),
        connections: connections.clone(),
        https,
    };
    let mut done = Vec::with_capacity(workers);
    for (i, socket) in sockets.into_iter().enumerate() {
        let (tx, rx) = oneshot::channel::<()>();
        let ctx = ctx.clone();
        let tls_socket = tls_sockets.next();
        std::thread::Builder::new()
            .name(format!("switchyard-w{i}"))
            .spawn(move || {
                worker::run(i, socket, tls_socket, ctx);
                drop(tx);
            })
            .map_err(StartError::Thread)?;
        done.push(rx);
    }

    let rollouts = crate::rollout::Rollouts::new(
        control.clone(),
        telemetry.clone(),
        source.path.as_deref(),
        shutdown.clone(),
    );
    let cluster = match (cluster_cfg, seed) {
        // The cluster's rollouts resume on its leader, from the cluster.
        (Some(cfg), Some(seed)) => Some(join_cluster(
            cfg,
            seed,
            admin_addr,
            control.clone(),
            rollouts.clone(),
            shutdown.clone(),
        )),
        _ => {
            // A rollout in progress before a restart resumes at its step.
            rollouts.resume_saved();
            None
        }
    };
    let admin = Arc::new(Admin {
        rollouts,
        control: control.clone(),
        token,
        shutdown: shutdown.clone(),
        connections,
        health,
        telemetry,
        metrics_open,
        tls: certs.clone(),
        guard,
        cluster,
    });
    tokio::spawn(admin::serve(listeners.admin, admin));
    if let Some(path) = source.path {
        control::watch_file(
            path,
            watch_mode,
            watch_interval,
            control.clone(),
            shutdown.clone(),
        );
    }
    if let Some(c) = &certs {
        crate::tls::watch_certs(c.clone(), watch_mode, watch_interval, shutdown.clone());
    }
    tracing::info!(proxy.addr = %proxy_addr, admin.addr = %admin_addr, tls.addr = ?tls_addr, workers, "switchyard listening");
    Ok(Running {
        proxy_addr,
        admin_addr,
        control,
        tls_addr,
        certs,
        shutdown,
        workers: done,
        access,
    })
}

/// Joins the cluster in the background (serving never waits for etcd):
/// the controller serves the local file until the cluster's revision
/// arrives, and refuses changes (503) until then. The membership ends
/// (its lease revoked) at shutdown.
fn join_cluster(
    cfg: crate::config::ClusterConfig,
    seed: String,
    admin_addr: SocketAddr,
    control: ControlHandle,
    rollouts: Arc<crate::rollout::Rollouts>,
    shutdown: CancellationToken,
) -> admin::cluster::Slot {
    let slot = admin::cluster::Slot::default();
    let out = slot.clone();
    tokio::spawn(async move {
        let start = crate::cluster::Start {
            seed,
            admin: Some(admin_addr.to_string()),
        };
        let mut cluster = match crate::cluster::Cluster::start(&cfg, start, &shutdown).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot join the cluster; serving the local file, changes are refused");
                return;
            }
        };
        tracing::info!(instance = cluster.instance(), prefix = %cfg.prefix, "joining the cluster");
        cluster.attach(control.clone());
        cluster.drive(control, rollouts);
        // Set once: nothing else writes the slot.
        let _ = out.set(cluster.view());
        shutdown.cancelled().await;
        cluster.stop().await;
    });
    slot
}
