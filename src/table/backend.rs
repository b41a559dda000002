//! Backend state that outlives routing tables. A `Backend` is keyed by pool
//! name and address (never by weight), so a new table generation gets the
//! very same `Arc<Backend>` and keeps its health, in-flight count and pooled
//! connections. The `Registry` is owned by the controller (the single
//! writer); the data plane only reads backends through a table.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;

use crate::config::Config;

/// Result of active health checking (filled in by the health checker).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

/// One upstream server of one pool.
#[derive(Debug)]
pub struct Backend {
    /// Process-unique, never reused: keys this backend's idle connections.
    pub id: u64,
    pub pool: Arc<str>,
    pub addr: SocketAddr,
    in_flight: AtomicU32,
    health: AtomicU8,
    /// Set when the backend left the configuration (or an operator drained
    /// it): no new requests, in-flight ones finish.
    draining: AtomicBool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Backend {
    pub fn new(pool: Arc<str>, addr: SocketAddr) -> Self {
        Self {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pool,
            addr,
            in_flight: AtomicU32::new(0),
            health: AtomicU8::new(Health::Unknown as u8),
            draining: AtomicBool::new(false),
        }
    }

    /// May this backend take a new request?
    #[inline]
    pub fn is_available(&self) -> bool {
        // Relaxed: a stale read only shifts one pick, and the next request sees it.
        !self.draining.load(Ordering::Relaxed) && self.health() != Health::Unhealthy
    }

    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        match self.health.load(Ordering::Relaxed) {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }

    pub fn set_health(&self, h: Health) {
        self.health.store(h as u8, Ordering::Relaxed);
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Counts a request in flight until the guard drops.
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }
}

/// A request in flight on a backend; decrements the count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<Backend>);

impl InFlight {
    pub fn backend(&self) -> &Arc<Backend> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Every live backend by (pool, address). Only the controller mutates it.
#[derive(Debug, Default)]
pub struct Registry {
    backends: HashMap<(Arc<str>, SocketAddr), Arc<Backend>>,
}

impl Registry {
    /// Makes the registry match `config`: keeps backends that stay, creates
    /// new ones, and marks the ones that left as draining (they disappear
    /// once no table and no request holds them).
    pub fn reconcile(&mut self, config: &Config) {
        let mut next = HashMap::with_capacity(self.backends.len());
        for pool in &config.pools {
            for b in &pool.backends {
                let key = (Arc::<str>::from(pool.name.as_str()), b.addr);
                let backend = self
                    .backends
                    .remove(&key)
                    .unwrap_or_else(|| Arc::new(Backend::new(key.0.clone(), b.addr)));
                next.insert(key, backend);
            }
        }
        for (_, gone) in self.backends.drain() {
            tracing::info!(pool = %gone.pool, backend.addr = %gone.addr,
                in_flight = gone.in_flight(), "backend left the configuration; draining");
            gone.set_draining(true);
        }
        self.backends = next;
    }

    pub fn get(&self, pool: &str, addr: SocketAddr) -> Option<&Arc<Backend>> {
        // The key type needs an Arc<str>; pools are few, so a scan is fine here.
        self.backends
            .iter()
            .find(|((p, a), _)| &**p == pool && *a == addr)
            .map(|(_, b)| b)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }
}
