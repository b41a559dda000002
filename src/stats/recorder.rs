//! `Recorder`: what one request records into. The routing decision hands
//! it out (`Route::pick`, `Route::recorder`, `RoutingTable::no_route`); the
//! request notes its retries on it and calls `finish` once, when the
//! status is known. It holds its handles (an `Arc`), so nothing is looked
//! up at the end and a table swap in between changes nothing.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::time::Instant;

use super::window::is_failure;
use super::{clock, Classes, PoolHandles, RouteHandles};

/// Where a request's answer is counted; see the module doc.
#[derive(Debug, Default)]
pub struct Recorder {
    target: Target,
    retries: u32,
}

#[derive(Debug, Default)]
enum Target {
    /// Counted nowhere (no route and metrics off, or not routed yet).
    #[default]
    Nowhere,
    /// No route matched: the table's no-route counters.
    NoRoute(Arc<Classes>),
    /// A route without a pool to send to.
    Route(Arc<RouteHandles>),
    /// A (route, pool), and the backend's position in its handles (`None`:
    /// the proxy answered before a backend was chosen).
    Pool {
        handles: Arc<PoolHandles>,
        backend: Option<usize>,
    },
}

impl Recorder {
    /// A request that matched no route.
    pub fn no_route(classes: Option<&Arc<Classes>>) -> Self {
        Recorder {
            target: classes.map_or(Target::Nowhere, |c| Target::NoRoute(c.clone())),
            retries: 0,
        }
    }

    /// A request of a route that had no pool for it.
    pub fn route(handles: &Arc<RouteHandles>) -> Self {
        Recorder {
            target: Target::Route(handles.clone()),
            retries: 0,
        }
    }

    /// A request sent to a pool: to its `backend`-th backend (in the
    /// order of the pool the handles were built for), or to none.
    #[inline]
    pub fn pool(handles: &Arc<PoolHandles>, backend: Option<usize>) -> Self {
        Recorder {
            target: Target::Pool {
                handles: handles.clone(),
                backend,
            },
            retries: 0,
        }
    }

    /// The request was retried on backend `id`. When that backend is not
    /// in this generation's handles (it joined the pool after the request
    /// was routed), `newer(route, pool)` gives the handles of a newer
    /// table, which the recorder moves to (the window and the counters are
    /// the same ones: they are kept by name).
    pub fn retried_on(
        &mut self,
        id: u64,
        newer: impl FnOnce(&str, &str) -> Option<Arc<PoolHandles>>,
    ) {
        self.retries += 1;
        let Target::Pool { handles, backend } = &mut self.target else {
            return;
        };
        *backend = handles.backend_index(id);
        if backend.is_none() {
            if let Some(h) = newer(&handles.route, &handles.pool) {
                *backend = h.backend_index(id);
                *handles = h;
            }
        }
    }

    /// The request was retried on backend `id` of another pool of its
    /// route (the route's standby): it records into `handles` from now on.
    pub fn retried_in(&mut self, handles: Arc<PoolHandles>, id: u64) {
        self.retries += 1;
        if let Target::Pool {
            handles: h,
            backend,
        } = &mut self.target
        {
            *backend = handles.backend_index(id);
            *h = handles;
        }
    }

    /// Retries noted so far.
    pub fn retries(&self) -> u32 {
        self.retries
    }

    /// The route's name, when one matched.
    pub fn route_name(&self) -> Option<&Arc<str>> {
        match &self.target {
            Target::Route(r) => Some(&r.route),
            Target::Pool { handles, .. } => Some(&handles.route),
            Target::Nowhere | Target::NoRoute(_) => None,
        }
    }

    /// The pool's name, when one was chosen.
    pub fn pool_name(&self) -> Option<&Arc<str>> {
        match &self.target {
            Target::Pool { handles, .. } => Some(&handles.pool),
            _ => None,
        }
    }

    /// The backend's address, when one was chosen.
    pub fn backend_addr(&self) -> Option<SocketAddr> {
        match &self.target {
            Target::Pool {
                handles,
                backend: Some(i),
            } => handles.backends.get(*i).map(|b| b.addr),
            _ => None,
        }
    }

    /// Records the answer: `status`, and the time from `started` to now
    /// (the response headers). Reads the clock once.
    #[inline]
    pub fn finish(self, status: u16, started: Instant) {
        let (handles, backend) = match self.target {
            Target::Nowhere => return,
            Target::NoRoute(classes) => return classes.count(status),
            Target::Route(r) => {
                if let Some(c) = &r.no_pool {
                    c.count(status);
                }
                return;
            }
            Target::Pool { handles, backend } => (handles, backend),
        };
        let now = Instant::now();
        let elapsed = now.saturating_duration_since(started);
        handles
            .window
            .record(clock::secs(now), is_failure(status), elapsed);
        let Some(m) = &handles.meters else { return };
        backend
            .and_then(|i| m.by_backend.get(i))
            .unwrap_or(&m.no_backend)
            .count(status);
        m.duration.record(elapsed.as_secs_f64());
        if self.retries > 0 {
            m.retries.increment(u64::from(self.retries));
        }
    }
}
