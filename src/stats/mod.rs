//! Request statistics that outlive routing tables. Per (route, pool): the
//! rollout engine's `Window` (one-second rings, `window` over `ring`) and
//! the Prometheus handles of its requests; per (route, pool, backend,
//! status class): a request counter. All of it is kept by *name* in a
//! `StatsRegistry` (owned by the controller, like the backend registry), so
//! every table generation gets the very same windows and counters.
//!
//! `RoutingTable::build` asks the registry for the handles of each route ×
//! pool and keeps them on its routes (`PoolHandles`); the pick hands the
//! request a `Recorder` (one `Arc` clone); the request calls
//! `Recorder::finish` when its answer is known. Nothing is looked up again,
//! so a request that spans a table swap is counted where it was routed.
//!
//! This layer knows no metric names and no recorder: whoever builds the
//! registry passes a `Meters` (telemetry does, with its Prometheus
//! recorder); without one only the windows are kept.

pub mod clock;
mod recorder;
mod registry;
pub mod ring;
pub mod shadow;
pub mod throttle;
pub mod window;

use std::net::SocketAddr;
use std::sync::Arc;

use metrics::{Counter, Histogram};

pub use recorder::Recorder;
pub use registry::{Generation, StatsRegistry};
pub use window::{Stats, Window};

/// Makes the metric handles of requests (telemetry implements it with the
/// names and labels of `/metrics`).
pub trait Meters: Send + Sync {
    /// Answers of `route`/`pool` from `backend` in status class `class`
    /// (`"2xx"`…); an empty name where there was none.
    fn requests(&self, route: &str, pool: &str, backend: &str, class: &str) -> Counter;
    /// Time to the response headers of `route`/`pool`, in seconds.
    fn duration(&self, route: &str, pool: &str) -> Histogram;
    /// Retries sent for `route`/`pool`.
    fn retries(&self, route: &str, pool: &str) -> Counter;
    /// The shadow traffic handles of `route` mirrored to `pool` (`None`:
    /// not counted in metrics, only in the shadow window).
    fn shadow(&self, route: &str, pool: &str) -> Option<shadow::ShadowMeters> {
        let _ = (route, pool);
        None
    }
}

/// Status classes, 1xx to 5xx, as labelled.
pub const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One counter per status class.
#[derive(Debug, Clone)]
pub struct Classes([Counter; 5]);

impl Classes {
    fn new(make: impl Fn(&str) -> Counter) -> Self {
        Classes(CLASSES.map(make))
    }

    /// Counts an answer with `status`.
    #[inline]
    pub fn count(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.0[class].increment(1);
    }

    /// Keeps the series from expiring (an idle series is dropped from
    /// `/metrics`; one that a table still routes to must stay).
    pub fn touch(&self) {
        for c in &self.0 {
            c.increment(0);
        }
    }
}

/// A backend as the handles know it.
#[derive(Debug, Clone, Copy)]
pub struct BackendRef {
    pub id: u64,
    pub addr: SocketAddr,
}

/// The metric handles of one (route, pool) in one table generation.
#[derive(Debug)]
struct PoolMeters {
    duration: Histogram,
    retries: Counter,
    /// Answers the proxy made itself before a backend was chosen.
    no_backend: Classes,
    /// By backend, in the order of `PoolHandles::backends`.
    by_backend: Box<[Classes]>,
}

/// Everything a request routed to (route, pool) records into, for one
/// table generation: the window (the same `Arc` in every generation), the
/// metric handles, and the names for the access log.
#[derive(Debug)]
pub struct PoolHandles {
    route: Arc<str>,
    pool: Arc<str>,
    window: Arc<Window>,
    /// The pool's backends in this generation, in the pool's order.
    backends: Box<[BackendRef]>,
    /// `None`: metrics are off.
    meters: Option<PoolMeters>,
}

impl PoolHandles {
    pub fn route(&self) -> &Arc<str> {
        &self.route
    }

    pub fn pool(&self) -> &Arc<str> {
        &self.pool
    }

    /// The rollout window of this (route, pool).
    pub fn window(&self) -> &Arc<Window> {
        &self.window
    }

    /// The position of backend `id` among this generation's backends.
    pub fn backend_index(&self, id: u64) -> Option<usize> {
        self.backends.iter().position(|b| b.id == id)
    }

    /// Keeps every series from expiring (see `Classes::touch`).
    pub fn touch(&self) {
        if let Some(m) = &self.meters {
            m.retries.increment(0);
            m.no_backend.touch();
            for c in m.by_backend.iter() {
                c.touch();
            }
        }
    }
}

/// The handles of a route's answers that no pool was chosen for.
#[derive(Debug)]
pub struct RouteHandles {
    route: Arc<str>,
    /// `None`: metrics are off.
    no_pool: Option<Classes>,
}

impl RouteHandles {
    pub fn touch(&self) {
        if let Some(c) = &self.no_pool {
            c.touch();
        }
    }
}
