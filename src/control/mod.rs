//! The control plane's single writer. The controller task owns the running
//! configuration (as text and as a model) and the backend registry, and is
//! the only code that stores a routing table. Every change — a file edit,
//! SIGHUP, a DNS answer, an admin API call, a rollout step or a verified
//! flip's switch-back — arrives as a message, is validated and built,
//! stored with one `ArcSwap::store` and announced on a `watch` (through
//! `table::Published`), written back to the file when it came
//! from the API or the rollout engine, recorded in the history (events of
//! the `event` vocabulary), and answered. A change that fails validation
//! changes nothing.

mod clustered;
mod controller;
mod diff;
pub mod document;
mod edit;
mod history;
mod persist;
mod resolve;
mod shared;
mod standby;
mod unsaved;
mod watch;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot, watch as tokio_watch};

/// Re-exported for callers of `ControlHandle::change`; defined in `api`
/// and `event`.
pub use crate::api::Applied;
pub use crate::event::ChangeSource;
pub use edit::{apply as apply_edit, Edit, EditError};
pub use resolve::{Resolve, SystemResolver};
pub use shared::{BoxFuture, ShareError, Shared, SharedDocument, SharedState};
pub use watch::watch_file;

use crate::api::Mutation;
use crate::config::{Config, ConfigError};
use crate::event::Event;
use crate::table::{RoutingTable, TableWatch};

/// A change to ask of the controller. The admin API's mutations arrive as
/// `api::Mutation`s and become one of these (`From`); the rollout engine
/// and the verified flips ask for theirs directly.
#[derive(Debug, Clone)]
pub enum Change {
    /// Re-read the configuration file.
    Reload,
    /// Set a route's weights; pools of the current split left out get 0.
    SetSplit {
        route: String,
        split: Vec<(String, u32)>,
    },
    /// Send all of a route's traffic to one pool; the pool it replaced
    /// becomes the route's standby.
    Flip { route: String, to: String },
    /// A promoted rollout: all of the route's traffic to `to` (the
    /// canary), `stable` kept as the route's standby.
    Promote {
        route: String,
        to: String,
        stable: String,
    },
    /// Set a route's standby pool, or remove it (`None`).
    Standby { route: String, pool: Option<String> },
    /// `maintenance = true` on the route (or the key removed).
    Maintenance { route: String, on: bool },
    /// Restore the split in force before the route's last change.
    Rollback { route: String },
    /// Undo a flip to `to`: set `split`, but only while `to` still has all
    /// of the route's weight (a later change of the split stands).
    RevertFlip {
        route: String,
        to: String,
        split: Vec<(String, u32)>,
    },
    /// Take a backend out of rotation (or put it back).
    Drain {
        pool: String,
        addr: SocketAddr,
        drain: bool,
    },
    /// A revision of the cluster's shared document (`[cluster]`): applied
    /// like a reload, and this replica's file rewritten to match. The
    /// revision served now is applied again when the table holds a local
    /// fallback (so it is dropped).
    Shared(SharedDocument),
    /// Set a route's split in this replica's table only, not stored in the
    /// cluster: the rollout engine's fall-back to stable while the store
    /// is unreachable. The next revision applied replaces it.
    LocalFallback {
        route: String,
        split: Vec<(String, u32)>,
        reason: String,
    },
}

impl From<Mutation> for Change {
    fn from(m: Mutation) -> Self {
        match m {
            Mutation::Reload => Change::Reload,
            Mutation::Split { route, split } => Change::SetSplit {
                route,
                split: split.0,
            },
            Mutation::Rollback { route } => Change::Rollback { route },
            Mutation::Drain { pool, addr } => Change::Drain {
                pool,
                addr,
                drain: true,
            },
            Mutation::Undrain { pool, addr } => Change::Drain {
                pool,
                addr,
                drain: false,
            },
            Mutation::Standby { route, standby } => Change::Standby {
                route,
                pool: standby.pool,
            },
            Mutation::Maintenance { route, maintenance } => Change::Maintenance {
                route,
                on: maintenance.on,
            },
        }
    }
}

/// Why a change was refused. The running table is untouched in every case.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChangeError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("generation {actual} is in force, not {expected}")]
    Conflict { expected: u64, actual: u64 },
    #[error("route {0:?} has no earlier split to roll back to")]
    NothingToRollBack(String),
    /// A conditional change whose condition no longer holds.
    #[error("{0}")]
    Superseded(String),
    /// The change is well-formed but would make an invalid configuration.
    #[error("{0}")]
    Invalid(String),
    /// The configuration file is invalid (reload).
    #[error("{0}")]
    Config(Arc<ConfigError>),
    #[error("the controller has stopped")]
    Stopped,
    /// With `[cluster]`: the change cannot be stored in the cluster now
    /// (etcd unreachable, or not synchronised yet); nothing changed.
    #[error("{0}")]
    Unavailable(String),
    /// A rollout write by a replica that is no longer the cluster's leader.
    #[error("this replica is no longer the cluster's leader; the change was not stored")]
    NotLeader,
}

/// The outcome of the latest reload attempt.
#[derive(Debug, Clone)]
pub struct ReloadStatus {
    pub generation: u64,
    pub source: Option<ChangeSource>,
    /// `None` when it succeeded.
    pub error: Option<String>,
    pub at: SystemTime,
    /// Keys of the file in force that differ from the configuration the
    /// process started with and apply only after a restart
    /// (`config::restart_needed`); empty when none.
    pub restart_needed: Vec<&'static str>,
    /// Changes in force that the file does not hold yet (`unsaved`).
    pub unsaved: Vec<crate::api::UnsavedChange>,
}

type Reply<T> = oneshot::Sender<T>;

enum Command {
    Change {
        source: ChangeSource,
        if_match: Option<u64>,
        change: Change,
        reply: Reply<Result<Applied, ChangeError>>,
    },
    History {
        limit: usize,
        reply: Reply<Vec<Event>>,
    },
    /// An event that changed no table (a rollout's judgement).
    Record(Event),
    /// From now on, changes go through this store (`[cluster]`).
    Attach(Arc<dyn Shared>),
}

/// A cheap, cloneable handle to the controller.
#[derive(Clone)]
pub struct ControlHandle {
    tx: mpsc::Sender<Command>,
    table: TableWatch,
    status: tokio_watch::Receiver<ReloadStatus>,
    /// Set, with the reason, if the controller task ever dies.
    stopped: Arc<std::sync::OnceLock<String>>,
    shared: tokio_watch::Receiver<SharedState>,
}

impl ControlHandle {
    /// The live routing table.
    pub fn table(&self) -> &Arc<ArcSwap<RoutingTable>> {
        self.table.shared()
    }

    /// The live table and news of each new one: the generation the
    /// controller publishes whenever it stores a table.
    pub fn watch(&self) -> TableWatch {
        self.table.subscribe()
    }

    /// Asks for a change; `if_match` is the generation the caller saw.
    pub async fn change(
        &self,
        source: ChangeSource,
        if_match: Option<u64>,
        change: Change,
    ) -> Result<Applied, ChangeError> {
        let (reply, rx) = oneshot::channel();
        let cmd = Command::Change {
            source,
            if_match,
            change,
            reply,
        };
        self.tx.send(cmd).await.map_err(|_| ChangeError::Stopped)?;
        rx.await.map_err(|_| ChangeError::Stopped)?
    }

    /// Re-reads the configuration file; answers the generation in force.
    pub async fn reload(&self, source: ChangeSource) -> Result<u64, ChangeError> {
        self.change(source, None, Change::Reload)
            .await
            .map(|a| a.generation)
    }

    /// The newest `limit` events, newest first.
    pub async fn history(&self, limit: usize) -> Vec<Event> {
        let (reply, rx) = oneshot::channel();
        if self
            .tx
            .send(Command::History { limit, reply })
            .await
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Adds an event to the history (the rollout engine's judgements);
    /// its generation is set to the one in force.
    pub async fn record(&self, mut event: Event) {
        event.generation = self.table.load().generation;
        // A stopped controller keeps no history anyway.
        let _ = self.tx.send(Command::Record(event)).await;
    }

    pub fn status(&self) -> ReloadStatus {
        self.status.borrow().clone()
    }

    /// Why the controller task died, if it did: no change can apply any
    /// more, so `/ready` fails and the status says so.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// Sends every change through `store` from now on (`[cluster]`).
    pub async fn attach(&self, store: Arc<dyn Shared>) {
        // A stopped controller changes nothing anyway.
        let _ = self.tx.send(Command::Attach(store)).await;
    }

    /// The cluster revision served, a local fallback, the last conflict.
    pub fn shared_state(&self) -> tokio_watch::Receiver<SharedState> {
        self.shared.clone()
    }
}

/// Builds the first table from `config` and starts the controller task on
/// the current runtime. `path` and `text` are the file it came from, if any.
pub fn spawn(config: Config, path: Option<PathBuf>, text: String) -> ControlHandle {
    spawn_with(config, path, text, Arc::new(SystemResolver), None)
}

/// `spawn` with a resolver of the caller's choosing for DNS backends and,
/// with `telemetry`, metric handles in every table and changes counted.
pub fn spawn_with(
    config: Config,
    path: Option<PathBuf>,
    text: String,
    resolver: Arc<dyn Resolve>,
    telemetry: Option<Arc<crate::telemetry::Telemetry>>,
) -> ControlHandle {
    let (controller, table, status, shared) =
        controller::Controller::new(config, path, text, resolver, telemetry);
    let (tx, rx) = mpsc::channel(64);
    let stopped = report_panic(tokio::spawn(controller.run(rx)));
    // A weak sender: the watcher never keeps the controller alive.
    tokio::spawn(standby::watch(tx.downgrade(), table.subscribe()));
    ControlHandle {
        tx,
        table,
        status,
        stopped,
        shared,
    }
}

/// Watches the controller task: if it panics (a bug; validation keeps every
/// value in range so none should), the reason is logged and kept, so that
/// `/ready` fails and `/api/v1/status` says why instead of every later
/// change answering 503 with nothing visible.
fn report_panic(task: tokio::task::JoinHandle<()>) -> Arc<std::sync::OnceLock<String>> {
    let stopped = Arc::new(std::sync::OnceLock::new());
    let why = stopped.clone();
    tokio::spawn(async move {
        // Cancelled at runtime shutdown, or ended because every handle was
        // dropped: nothing to report.
        let Err(e) = task.await else { return };
        if !e.is_panic() {
            return;
        }
        let payload = e.into_panic();
        let reason = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or("unknown panic");
        tracing::error!(
            reason,
            "the controller stopped; no configuration change can apply until a restart"
        );
        // Set once: the task can die only once.
        let _ = why.set(format!("panicked: {reason}"));
    });
    stopped
}

#[cfg(test)]
mod stopped_tests {
    use super::report_panic;

    #[tokio::test]
    async fn a_panicking_task_is_reported_with_its_reason() {
        let stopped = report_panic(tokio::spawn(async { panic!("overflow in step") }));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while stopped.get().is_none() && tokio::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            stopped.get().map(String::as_str),
            Some("panicked: overflow in step")
        );
    }

    #[tokio::test]
    async fn a_task_that_ends_normally_is_not_reported() {
        let task = tokio::spawn(async {});
        let stopped = report_panic(task);
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(stopped.get().is_none());
    }
}
