//! The controller: the single writer of the routing table. It owns the
//! running configuration and the backend registry; every change (a file
//! edit, SIGHUP, and later the admin API and the rollout engine) arrives as
//! a message, is validated and built, then stored with one `ArcSwap::store`.
//! A change that fails validation leaves the running table untouched.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{self, Config, ConfigError};
use crate::table::{Registry, RoutingTable};

/// What asked for a change; recorded with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeSource {
    File,
    Signal,
    Api,
}

impl std::fmt::Display for ChangeSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ChangeSource::File => "file",
            ChangeSource::Signal => "signal",
            ChangeSource::Api => "api",
        })
    }
}

/// The outcome of the latest reload attempt.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub generation: u64,
    pub source: Option<ChangeSource>,
    /// `None` when it succeeded.
    pub error: Option<String>,
    pub at: SystemTime,
}

enum Command {
    Reload {
        source: ChangeSource,
        reply: Option<oneshot::Sender<Result<u64, Arc<ConfigError>>>>,
    },
}

/// A cheap handle to the controller.
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Command>,
    table: Arc<ArcSwap<RoutingTable>>,
    status: watch::Receiver<ReloadStatus>,
}

impl ControlHandle {
    /// The live routing table.
    pub fn table(&self) -> &Arc<ArcSwap<RoutingTable>> {
        &self.table
    }

    /// Re-reads the configuration file; answers the generation in force.
    pub async fn reload(&self, source: ChangeSource) -> Result<u64, Arc<ConfigError>> {
        let (reply, rx) = oneshot::channel();
        let sent = self
            .tx
            .send(Command::Reload {
                source,
                reply: Some(reply),
            })
            .await;
        if sent.is_err() {
            return Ok(self.table.load().generation);
        }
        rx.await
            .unwrap_or_else(|_| Ok(self.table.load().generation))
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }
}

/// The controller's state; lives inside its task.
struct Controller {
    path: Option<PathBuf>,
    text: String,
    config: Config,
    registry: Registry,
    table: Arc<ArcSwap<RoutingTable>>,
    status: watch::Sender<ReloadStatus>,
}

/// Builds the first table from `config` and starts the controller task on
/// the current runtime. `path` and `text` are the file it came from, if any.
pub fn spawn(config: Config, path: Option<PathBuf>, text: String) -> ControlHandle {
    let mut registry = Registry::default();
    registry.reconcile(&config);
    let table = Arc::new(ArcSwap::from_pointee(RoutingTable::build(
        &config, &registry, 1,
    )));
    let (status_tx, status_rx) = watch::channel(ReloadStatus {
        generation: 1,
        source: None,
        error: None,
        at: SystemTime::now(),
    });
    let (tx, rx) = mpsc::channel(64);
    let controller = Controller {
        path,
        text,
        config,
        registry,
        table: table.clone(),
        status: status_tx,
    };
    tokio::spawn(controller.run(rx));
    ControlHandle {
        tx,
        table,
        status: status_rx,
    }
}

impl Controller {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        while let Some(cmd) = rx.recv().await {
            match cmd {
                Command::Reload { source, reply } => {
                    let result = self.reload(source);
                    if let Some(reply) = reply {
                        // The caller may have given up waiting; that is fine.
                        let _ = reply.send(result);
                    }
                }
            }
        }
    }

    fn reload(&mut self, source: ChangeSource) -> Result<u64, Arc<ConfigError>> {
        let current = self.table.load().generation;
        let Some(path) = self.path.clone() else {
            return Ok(current);
        };
        let loaded = config::load(&path);
        let (config, text) = match loaded {
            Ok(ok) => ok,
            Err(e) => {
                tracing::error!(source = %source, file = %path.display(),
                    "configuration rejected; the running routing table stays in force:\n{e}");
                self.status.send_replace(ReloadStatus {
                    generation: current,
                    source: Some(source),
                    error: Some(e.to_string()),
                    at: SystemTime::now(),
                });
                return Err(Arc::new(e));
            }
        };
        if text == self.text {
            tracing::debug!(source = %source, "configuration unchanged");
            return Ok(current);
        }
        if config.server.listen != self.config.server.listen || config.admin != self.config.admin {
            tracing::warn!("listener or admin settings changed; they take effect after a restart");
        }
        let generation = self.apply(config, text);
        tracing::info!(source = %source, generation, file = %path.display(), "configuration applied");
        self.status.send_replace(ReloadStatus {
            generation,
            source: Some(source),
            error: None,
            at: SystemTime::now(),
        });
        Ok(generation)
    }

    fn apply(&mut self, config: Config, text: String) -> u64 {
        let generation = self.table.load().generation + 1;
        self.registry.reconcile(&config);
        let table = RoutingTable::build(&config, &self.registry, generation);
        self.table.store(Arc::new(table));
        self.config = config;
        self.text = text;
        generation
    }
}

/// Polls the configuration file's metadata and asks for a reload when it
/// changes. Catches in-place writes and rename-on-save alike (the path is
/// re-resolved each time).
pub async fn watch_file(
    path: PathBuf,
    handle: ControlHandle,
    every: Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let stamp = |p: &PathBuf| {
        std::fs::metadata(p).ok().map(|m| {
            #[cfg(unix)]
            let ino = std::os::unix::fs::MetadataExt::ino(&m);
            #[cfg(not(unix))]
            let ino = 0u64;
            (m.modified().ok(), m.len(), ino)
        })
    };
    let mut last = stamp(&path);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let now = stamp(&path);
        if now != last {
            last = now;
            // Errors are logged and recorded by the controller itself.
            let _ = handle.reload(ChangeSource::File).await;
        }
    }
}
