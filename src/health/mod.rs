//! Active health checking and readiness.
//!
//! One probe task per backend (`task`), kept in step with the routing table
//! by the supervisor (`supervisor`), which runs on the control runtime,
//! follows the generations the controller publishes, and is started by
//! `server::start`. Probes write the backend's health atomic;
//! no table is rebuilt for a health change. The pure threshold logic is in
//! `counter`, the HTTP exchange in `probe`. The admin API's one-off
//! `POST .../probe` uses `probe_with` (or `connect_only` for a pool with
//! checks off) and writes nothing: the probe task stays the only writer of
//! its backend's health. Drained backends keep their probe task.
//!
//! Unknown (not probed yet) is handled so that start-up and reloads are both
//! safe: at start-up the first round of probes runs at once and `/ready`
//! stays false until every start-up backend has had its first probe; in the
//! meantime those backends may take traffic (a client that ignores
//! readiness is served, not refused). A backend added later by a reload is
//! not available until its first passing probe. A pool with `enabled =
//! false` counts its backends as healthy.

pub mod counter;
mod probe;
mod supervisor;
mod task;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::table::{RoutingTable, TableWatch};

pub use probe::{connect_only, probe, probe_with};

/// What readiness needs from health checking.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    /// Start-up backends whose first probe has not finished.
    first_round: Arc<AtomicUsize>,
}

impl HealthHandle {
    /// Has every backend present at start-up had its first probe?
    pub fn first_round_done(&self) -> bool {
        // Acquire pairs with the Release in `FirstRound::drop`.
        self.first_round.load(Ordering::Acquire) == 0
    }
}

/// Starts the health supervisor (and, through it, the first probe round)
/// on the current runtime; it stops when `shutdown` fires.
pub fn spawn(table: TableWatch, shutdown: CancellationToken) -> HealthHandle {
    let first_round = Arc::new(AtomicUsize::new(0));
    let supervisor = supervisor::Supervisor::start(table, first_round.clone());
    tokio::spawn(supervisor.run(shutdown));
    HealthHandle { first_round }
}

/// Why `/ready` answers 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotReady {
    #[error("shutting down")]
    ShuttingDown,
    #[error("first health-check round in progress")]
    FirstRound,
    #[error("route {route} has no pool with an available backend")]
    Unservable { route: Arc<str> },
}

/// Ready when not shutting down, the first probe round is done, and every
/// route with weight has a pool with an available backend.
pub fn readiness(
    table: &RoutingTable,
    health: &HealthHandle,
    shutting_down: bool,
) -> Result<(), NotReady> {
    if shutting_down {
        return Err(NotReady::ShuttingDown);
    }
    if !health.first_round_done() {
        return Err(NotReady::FirstRound);
    }
    match table.unservable_route() {
        Some(r) => Err(NotReady::Unservable {
            route: r.name.clone(),
        }),
        None => Ok(()),
    }
}

/// A task handle that aborts the task when dropped.
pub(crate) struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
