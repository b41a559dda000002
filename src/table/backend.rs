//! Backend state that outlives routing tables. A `Backend` is keyed by pool
//! name and address (never by weight), so a new table generation gets the
//! very same `Arc<Backend>` and keeps its health, in-flight count, passive
//! failure counters and pooled connections. The `Registry` is owned by the
//! controller (the single writer of tables); health is written by the
//! backend's probe task (`health`), ejection by the data plane and the
//! health supervisor; the data plane reads it all through a table.
//!
//! Availability is one atomic byte (health, draining, ejected, and whether
//! an unprobed backend may take traffic), so the per-request check is a
//! single relaxed load.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::outlier::PoolShared;
use super::probe_failure::ProbeFailure;
use super::route::StandbyShared;
use crate::config::Config;

/// Result of active health checking.
///
/// `Unknown` means "not probed yet". A backend present when the process
/// starts may take traffic while Unknown (the first probe round runs at once
/// and `/ready` stays false until it is done, so only clients that ignore
/// readiness see this, and they are better served than refused); a backend
/// added by a later reload may not: it takes traffic after its first
/// passing probe. The first probe result decides an Unknown backend's state
/// directly; after that, the thresholds apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Health {
    Unknown = 0,
    Healthy = 1,
    Unhealthy = 2,
}

const HEALTH_MASK: u8 = 0b11;
const DRAINING: u8 = 1 << 2;
pub(super) const EJECTED: u8 = 1 << 3;
/// An Unknown backend may take traffic (it was there at start-up).
const ADMIT_UNKNOWN: u8 = 1 << 4;

/// `ramp` value of a backend at full share (per mille).
pub const RAMP_FULL: u16 = 1000;

/// One upstream server of one pool.
#[derive(Debug)]
pub struct Backend {
    /// Process-unique, never reused: keys this backend's idle connections
    /// and its probe task.
    pub id: u64,
    pub pool: Arc<str>,
    pub addr: SocketAddr,
    in_flight: AtomicU32,
    /// Health bits, DRAINING, EJECTED and ADMIT_UNKNOWN in one byte.
    pub(super) state: AtomicU8,
    /// `ProbeFailure::encode` of the latest probe (0: it passed).
    probe_failure: AtomicU32,
    /// State shared by every backend of the pool (ejection count, retry
    /// budget); outlives table generations like the backend itself.
    pub(super) shared: Arc<PoolShared>,
    /// Failed requests in a row (passive detection).
    pub(super) failures: AtomicU32,
    /// When the current ejection ends, in `clock::ms`.
    pub(super) ejected_until: AtomicU64,
    /// Ejections in a row (the n-th lasts n × ejection_time).
    pub(super) ejections: AtomicU32,
    /// When the latest ejection ended, in `clock::ms` (0: never ejected).
    pub(super) returned_at: AtomicU64,
    /// Slow-start share in per mille (`RAMP_FULL` = full share).
    pub(super) ramp: AtomicU16,
    /// When the current slow start began, in `clock::ms`.
    pub(super) ramp_since: AtomicU64,
    /// Counters exported as Prometheus metrics at scrape time.
    pub stats: BackendStats,
    /// TLS to this backend (its pool's client configuration); `None`:
    /// plain HTTP. Part of the backend's identity: the registry replaces a
    /// backend whose pool's TLS settings changed.
    pub tls: Option<Arc<crate::tls::UpstreamTls>>,
}

/// Why a try on a backend failed, for `switchyard_upstream_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamErrorKind {
    Connect = 0,
    ConnectTimeout = 1,
    Timeout = 2,
    Reset = 3,
    Tls = 4,
}

impl UpstreamErrorKind {
    pub const ALL: [UpstreamErrorKind; 5] = [
        UpstreamErrorKind::Connect,
        UpstreamErrorKind::ConnectTimeout,
        UpstreamErrorKind::Timeout,
        UpstreamErrorKind::Reset,
        UpstreamErrorKind::Tls,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UpstreamErrorKind::Connect => "connect",
            UpstreamErrorKind::ConnectTimeout => "connect_timeout",
            UpstreamErrorKind::Timeout => "timeout",
            UpstreamErrorKind::Reset => "reset",
            UpstreamErrorKind::Tls => "tls",
        }
    }
}

/// Per-backend counters; relaxed atomics (statistics only), read when
/// `/metrics` is scraped, so the hot path pays one add per event.
#[derive(Debug, Default)]
pub struct BackendStats {
    ejections: AtomicU64,
    upstream_errors: [AtomicU64; 5],
}

impl BackendStats {
    pub fn count_ejection(&self) {
        self.ejections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn ejections(&self) -> u64 {
        self.ejections.load(Ordering::Relaxed)
    }

    pub fn count_error(&self, kind: UpstreamErrorKind) {
        self.upstream_errors[kind as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn errors(&self, kind: UpstreamErrorKind) -> u64 {
        self.upstream_errors[kind as usize].load(Ordering::Relaxed)
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

impl Backend {
    /// A backend of its own (tests, tools); the registry makes the real ones.
    pub fn new(pool: Arc<str>, addr: SocketAddr) -> Self {
        Self::in_pool(Arc::new(PoolShared::new(pool)), addr, true)
    }

    pub(super) fn in_pool(shared: Arc<PoolShared>, addr: SocketAddr, admit_unknown: bool) -> Self {
        Self {
            // Relaxed: only uniqueness matters.
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            pool: shared.name.clone(),
            addr,
            in_flight: AtomicU32::new(0),
            state: AtomicU8::new(if admit_unknown { ADMIT_UNKNOWN } else { 0 }),
            probe_failure: AtomicU32::new(0),
            shared,
            failures: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
            ramp: AtomicU16::new(RAMP_FULL),
            ramp_since: AtomicU64::new(0),
            stats: BackendStats::default(),
            tls: None,
        }
    }

    /// May this backend take a new request? Not draining, not ejected, and
    /// healthy (or not probed yet, for a backend present at start-up).
    #[inline]
    pub fn is_available(&self) -> bool {
        // Relaxed: a stale read only shifts one pick, and the next request
        // sees the new state; nothing else is published through this byte.
        let s = self.state.load(Ordering::Relaxed);
        if s & (DRAINING | EJECTED) != 0 {
            return false;
        }
        match s & HEALTH_MASK {
            1 => true,
            0 => s & ADMIT_UNKNOWN != 0,
            _ => false,
        }
    }

    #[inline]
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn health(&self) -> Health {
        match self.state.load(Ordering::Relaxed) & HEALTH_MASK {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }

    /// Sets the health state and answers the previous one.
    pub fn set_health(&self, h: Health) -> Health {
        // fetch_update keeps the other flags that share the byte.
        let prev = self
            .state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |s| {
                Some((s & !HEALTH_MASK) | h as u8)
            })
            .unwrap_or_else(|s| s);
        match prev & HEALTH_MASK {
            1 => Health::Healthy,
            2 => Health::Unhealthy,
            _ => Health::Unknown,
        }
    }

    /// Whether an Unknown state lets this backend take traffic.
    pub fn admits_unknown(&self) -> bool {
        self.state.load(Ordering::Relaxed) & ADMIT_UNKNOWN != 0
    }

    pub fn is_draining(&self) -> bool {
        self.state.load(Ordering::Relaxed) & DRAINING != 0
    }

    pub fn set_draining(&self, draining: bool) {
        if draining {
            self.state.fetch_or(DRAINING, Ordering::Relaxed);
        } else {
            self.state.fetch_and(!DRAINING, Ordering::Relaxed);
        }
    }

    /// Taken out of rotation by passive outlier detection.
    pub fn is_ejected(&self) -> bool {
        self.state.load(Ordering::Relaxed) & EJECTED != 0
    }

    /// Why the latest probe failed; `None` when it passed (or none ran).
    pub fn probe_failure(&self) -> Option<ProbeFailure> {
        ProbeFailure::decode(self.probe_failure.load(Ordering::Relaxed))
    }

    pub fn set_probe_failure(&self, f: Option<ProbeFailure>) {
        self.probe_failure
            .store(ProbeFailure::encode(f), Ordering::Relaxed);
    }

    /// Counts a request in flight until the guard drops.
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// The share of traffic a slow-starting backend takes now, in per mille.
    pub fn ramp(&self) -> u16 {
        self.ramp.load(Ordering::Relaxed)
    }

    /// During slow start, admits a pick with probability ramp/1000.
    #[inline]
    pub fn slow_start_admits(&self) -> bool {
        // Relaxed: the ramp is advisory, a stale value shifts one pick.
        let r = self.ramp.load(Ordering::Relaxed);
        r >= RAMP_FULL || fastrand::u16(..RAMP_FULL) < r
    }

    #[inline]
    pub fn in_slow_start(&self) -> bool {
        self.ramp.load(Ordering::Relaxed) < RAMP_FULL
    }

    /// Starts ramping this backend's share up from zero.
    pub fn begin_slow_start(&self, now_ms: u64) {
        self.ramp_since.store(now_ms, Ordering::Relaxed);
        self.ramp.store(0, Ordering::Relaxed);
    }

    /// Moves the ramp to where `slow_start` says it is at `now_ms`; answers
    /// true when the ramp has just reached the full share.
    pub fn advance_slow_start(&self, now_ms: u64, slow_start: Option<Duration>) -> bool {
        if !self.in_slow_start() {
            return false;
        }
        let since = self.ramp_since.load(Ordering::Relaxed);
        let r = ramp_at(now_ms.saturating_sub(since), slow_start);
        self.ramp.store(r, Ordering::Relaxed);
        r >= RAMP_FULL
    }
}

/// Linear slow-start ramp: the share in per mille `elapsed_ms` into it.
pub fn ramp_at(elapsed_ms: u64, slow_start: Option<Duration>) -> u16 {
    let total = slow_start.map_or(0, |d| d.as_millis() as u64);
    if total == 0 || elapsed_ms >= total {
        return RAMP_FULL;
    }
    (elapsed_ms * u64::from(RAMP_FULL) / total) as u16
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

/// Every live backend by (pool, address), and each pool's shared state.
/// Only the controller mutates it.
#[derive(Debug, Default)]
pub struct Registry {
    backends: HashMap<(Arc<str>, SocketAddr), Arc<Backend>>,
    pools: HashMap<Arc<str>, Arc<PoolShared>>,
    /// Each route's standby state, by route name (`route::StandbyShared`).
    standby: HashMap<Arc<str>, Arc<StandbyShared>>,
    /// Told when traffic moves to or from a route's standby.
    standby_news: Arc<tokio::sync::Notify>,
    /// Set by the first reconcile: backends created after it take traffic
    /// only after their first passing probe.
    started: bool,
}

impl Registry {
    /// Makes the registry match `config`: keeps backends that stay, creates
    /// new ones, and marks the ones that left as draining (they disappear
    /// once no table and no request holds them).
    pub fn reconcile(&mut self, config: &Config) {
        let admit_unknown = !self.started;
        self.started = true;
        let mut next = HashMap::with_capacity(self.backends.len());
        let mut pools = HashMap::with_capacity(config.pools.len());
        for pool in &config.pools {
            let name = Arc::<str>::from(pool.name.as_str());
            let shared = self
                .pools
                .remove(&name)
                .unwrap_or_else(|| Arc::new(PoolShared::new(name.clone())));
            // One client configuration per TLS pool and load (it warns when
            // verification is off), shared by the pool's new backends.
            let tls = pool
                .tls
                .as_ref()
                .map(|t| Arc::new(crate::tls::UpstreamTls::new(&pool.name, t)));
            for b in &pool.backends {
                let key = (name.clone(), b.addr);
                let kept = self.backends.remove(&key).and_then(|old| {
                    if old.tls.as_ref().map(|t| &t.config) == pool.tls.as_ref() {
                        return Some(old);
                    }
                    // New transport, new backend: its pooled connections
                    // go, and it is probed again before taking traffic.
                    tracing::info!(pool = %old.pool, backend.addr = %old.addr,
                        "backend TLS settings changed; replacing it (the old one drains)");
                    old.set_draining(true);
                    None
                });
                let backend = kept.unwrap_or_else(|| {
                    let mut backend = Backend::in_pool(shared.clone(), b.addr, admit_unknown);
                    backend.tls = tls.clone();
                    if !pool.health.enabled {
                        // Without active checks a backend counts as healthy.
                        backend.set_health(Health::Healthy);
                    }
                    Arc::new(backend)
                });
                // An operator's drain lives in the config (written back by
                // the admin API), so a restart keeps it.
                backend.set_draining(b.drain);
                next.insert(key, backend);
            }
            pools.insert(name, shared);
        }
        for (_, gone) in self.backends.drain() {
            tracing::info!(pool = %gone.pool, backend.addr = %gone.addr,
                in_flight = gone.in_flight(), "backend left the configuration; draining");
            gone.set_draining(true);
        }
        self.backends = next;
        self.pools = pools;
        let mut standby = HashMap::with_capacity(config.routes.len());
        for r in &config.routes {
            let name = Arc::<str>::from(r.name.as_str());
            let shared = self
                .standby
                .remove(&name)
                .unwrap_or_else(|| Arc::new(StandbyShared::new(self.standby_news.clone())));
            if r.http.standby.is_none() {
                shared.reset();
            }
            standby.insert(name, shared);
        }
        self.standby = standby;
    }

    /// `route`'s standby state (a fresh one for a route `reconcile` has not
    /// seen).
    pub fn standby_shared(&self, route: &str) -> Arc<StandbyShared> {
        self.standby
            .get(route)
            .cloned()
            .unwrap_or_else(|| Arc::new(StandbyShared::new(self.standby_news.clone())))
    }

    /// Told whenever traffic moves to or from a route's standby.
    pub fn standby_news(&self) -> &Arc<tokio::sync::Notify> {
        &self.standby_news
    }

    pub fn get(&self, pool: &str, addr: SocketAddr) -> Option<&Arc<Backend>> {
        // The key type needs an Arc<str>; pools are few, so a scan is fine here.
        self.backends
            .iter()
            .find(|((p, a), _)| &**p == pool && *a == addr)
            .map(|(_, b)| b)
    }

    /// The pool's shared state (a fresh one for a pool `reconcile` has not
    /// seen, which only a table built without reconciling would ask for).
    pub fn pool_shared(&self, pool: &str) -> Arc<PoolShared> {
        self.pools
            .get(pool)
            .cloned()
            .unwrap_or_else(|| Arc::new(PoolShared::new(pool.into())))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.backends.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn availability_combines_the_flags() {
        let b = Backend::new("p".into(), "127.0.0.1:1".parse().unwrap());
        assert!(b.is_available(), "unknown at start-up is admitted");
        let late = Backend::in_pool(b.shared.clone(), b.addr, false);
        assert!(
            !late.is_available(),
            "unknown after start-up waits for a probe"
        );
        late.set_health(Health::Healthy);
        assert!(late.is_available());
        assert_eq!(late.set_health(Health::Unhealthy), Health::Healthy);
        assert!(!late.is_available());
        late.set_health(Health::Healthy);
        late.set_draining(true);
        assert!(!late.is_available() && late.health() == Health::Healthy);
        late.set_draining(false);
        assert!(late.is_available());
    }

    #[test]
    fn ramp_is_linear_and_ends_full() {
        let s = Some(Duration::from_secs(10));
        assert_eq!(ramp_at(0, s), 0);
        assert_eq!(ramp_at(2_500, s), 250);
        assert_eq!(ramp_at(10_000, s), RAMP_FULL);
        assert_eq!(ramp_at(0, None), RAMP_FULL);
    }
}
