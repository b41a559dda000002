//! Per-route rate limits (`rate_limit = { rate, burst, key }`): a token
//! bucket per key, kept by each worker for itself, so the hot path takes
//! no lock and shares no cache line with another core.
//!
//! The bucket is stored as GCRA's one number per key (the "theoretical
//! arrival time": when the bucket would be full again), which is exactly a
//! token bucket of `burst` tokens refilled at `rate`: a request at `now`
//! passes when `tat - now <= (burst - 1) × interval`, and then moves `tat`
//! one interval on. A key whose `tat` is in the past has a full bucket, so
//! forgetting it loses nothing; that is how memory stays bounded (at most
//! [`MAX_KEYS`] keys per route and worker): when the map is full, full
//! buckets are swept out, and if that frees too little the least recently
//! refilled of a small sample is evicted (that key starts over with a full
//! bucket — the limit errs towards letting requests through).
//!
//! Approximate across workers and replicas, by design: each worker (and
//! each replica) keeps its own buckets, so a client whose connections land
//! on k workers may get up to k × `rate`. One keep-alive connection (or
//! one HTTP/2 connection) always lands on one worker and gets the rate
//! exactly. Keys are 64-bit keyed hashes (SipHash with a per-worker random
//! key), so a client cannot choose keys that collide.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::RateLimitConfig;

/// Keys remembered per route and worker (about 1.2 MB when full).
pub const MAX_KEYS: usize = 65_536;

/// How many entries an eviction looks at to choose the oldest.
const SAMPLE: usize = 8;

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit; a token comes back after this long.
    Deny {
        retry_after: Duration,
    },
}

/// The buckets of one route in one worker.
#[derive(Debug)]
pub struct Limiter {
    /// Nanoseconds per token.
    interval: u64,
    /// `(burst - 1) × interval`: how far `tat` may run ahead of now.
    tolerance: u64,
    /// Key fingerprint → theoretical arrival time (ns on the caller's clock).
    tats: HashMap<u64, u64, BuildHasherDefault<Identity>>,
    capacity: usize,
    /// Inserts since the last sweep, so sweeps stay amortised O(1).
    since_sweep: usize,
}

impl Limiter {
    pub fn new(cfg: &RateLimitConfig, capacity: usize) -> Self {
        let mut l = Limiter {
            interval: 1,
            tolerance: 0,
            tats: HashMap::default(),
            capacity: capacity.max(1),
            since_sweep: 0,
        };
        l.configure(cfg);
        l
    }

    /// Takes a reload's settings; the buckets carry over.
    pub fn configure(&mut self, cfg: &RateLimitConfig) {
        self.interval = (cfg.interval().as_nanos() as u64).max(1);
        self.tolerance = self
            .interval
            .saturating_mul(u64::from(cfg.burst.max(1) - 1));
    }

    /// Takes a token for `key` at `now` (nanoseconds, any monotonic origin).
    pub fn check(&mut self, key: u64, now: u64) -> Decision {
        let known = self.tats.get(&key).copied();
        let tat = known.unwrap_or(now).max(now);
        let ahead = tat - now;
        if ahead > self.tolerance {
            return Decision::Deny {
                retry_after: Duration::from_nanos(ahead - self.tolerance),
            };
        }
        if known.is_none() && self.tats.len() >= self.capacity {
            self.make_room(now);
        }
        self.tats.insert(key, tat.saturating_add(self.interval));
        Decision::Allow
    }

    /// Keys currently remembered.
    pub fn len(&self) -> usize {
        self.tats.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tats.is_empty()
    }

    fn make_room(&mut self, now: u64) {
        self.since_sweep += 1;
        if self.since_sweep >= self.capacity / 4 {
            // Full buckets hold nothing worth keeping.
            self.tats.retain(|_, tat| *tat > now);
            self.since_sweep = 0;
            if self.tats.len() < self.capacity {
                return;
            }
        }
        let oldest = self
            .tats
            .iter()
            .take(SAMPLE)
            .min_by_key(|(_, tat)| **tat)
            .map(|(k, _)| *k);
        if let Some(k) = oldest {
            self.tats.remove(&k);
        }
    }
}

/// A hasher for keys that are already keyed hashes.
#[derive(Debug, Default)]
pub struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only u64 keys are hashed; fold anything else in case.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One worker's limiters, by route, kept across table generations.
#[derive(Debug, Default)]
pub struct Limiters {
    /// The table generation `by_route` was laid out for.
    generation: Option<u64>,
    /// By route index of that generation: the route's name and limiter.
    by_route: Vec<Option<(Arc<str>, Limiter)>>,
    /// Keys the fingerprints (random per worker).
    seed: RandomState,
}

/// What a request is counted by.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    Ip(IpAddr),
    Value(&'a [u8]),
}

impl Limiters {
    /// Lays the limiters out for a new generation: a route keeps its
    /// buckets when its name stays (its rate may change), a new route
    /// starts empty, a removed one is forgotten. `routes` gives each
    /// route of the new table, in index order, with its limit.
    pub fn relayout<'r>(
        &mut self,
        generation: u64,
        routes: impl Iterator<Item = (&'r Arc<str>, Option<&'r RateLimitConfig>)>,
    ) {
        let mut old = std::mem::take(&mut self.by_route);
        self.by_route = routes
            .map(|(name, cfg)| {
                let cfg = cfg?;
                let kept = old
                    .iter_mut()
                    .find(|e| e.as_ref().is_some_and(|(n, _)| n == name))
                    .and_then(Option::take);
                Some(match kept {
                    Some((n, mut l)) => {
                        l.configure(cfg);
                        (n, l)
                    }
                    None => (name.clone(), Limiter::new(cfg, MAX_KEYS)),
                })
            })
            .collect();
        self.generation = Some(generation);
    }

    /// Is the layout that of `generation`?
    pub fn is_current(&self, generation: u64) -> bool {
        self.generation == Some(generation)
    }

    /// The fingerprint of a key (tagged, so a header value that spells an
    /// address never shares that address's bucket).
    pub fn fingerprint(&self, key: Key<'_>) -> u64 {
        let mut h = self.seed.build_hasher();
        match key {
            Key::Ip(IpAddr::V4(ip)) => {
                h.write_u8(4);
                h.write(&ip.octets());
            }
            Key::Ip(IpAddr::V6(ip)) => {
                h.write_u8(6);
                h.write(&ip.octets());
            }
            Key::Value(v) => {
                h.write_u8(0);
                h.write(v);
            }
        }
        h.finish()
    }

    /// Takes a token for `key` on route `index` of the current layout;
    /// a route without a limit allows everything.
    pub fn check(&mut self, index: usize, key: Key<'_>, now: u64) -> Decision {
        let fp = self.fingerprint(key);
        match self.by_route.get_mut(index).and_then(Option::as_mut) {
            Some((_, l)) => l.check(fp, now),
            None => Decision::Allow,
        }
    }
}

thread_local! {
    /// This worker's limiters (workers are single-threaded runtimes).
    static LIMITERS: RefCell<Limiters> = RefCell::new(Limiters::default());
}

/// Runs `f` on this worker's limiters.
pub fn with_limiters<T>(f: impl FnOnce(&mut Limiters) -> T) -> T {
    LIMITERS.with(|l| f(&mut l.borrow_mut()))
}

/// This worker's decision for a request of `route` (of `table`) counted
/// by `key` at `now`. The first request of a new table generation lays
/// the buckets out again (kept by route name), so a reload keeps them.
pub fn check(
    table: &crate::table::RoutingTable,
    route: &crate::table::Route,
    key: Key<'_>,
    now: tokio::time::Instant,
) -> Decision {
    let at = now.saturating_duration_since(epoch()).as_nanos();
    let at = u64::try_from(at).unwrap_or(u64::MAX);
    with_limiters(|l| {
        if !l.is_current(table.generation) {
            let routes = table.routes().iter();
            l.relayout(
                table.generation,
                routes.map(|r| (&r.name, r.http.rate_limit.as_ref())),
            );
        }
        l.check(route.index, key, at)
    })
}

/// The origin of the limiters' clock (any fixed instant will do; a
/// bucket's time only ever runs forward from it).
fn epoch() -> tokio::time::Instant {
    static EPOCH: std::sync::OnceLock<tokio::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(tokio::time::Instant::now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RateKey;
    use proptest::prelude::*;

    const SEC: u64 = 1_000_000_000;

    fn cfg(count: u32, per_secs: u64, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            count,
            per: Duration::from_secs(per_secs),
            burst,
            key: RateKey::Ip,
        }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let mut l = Limiter::new(&cfg(10, 1, 5), 100);
        let t0 = 7 * SEC;
        for _ in 0..5 {
            assert_eq!(l.check(1, t0), Decision::Allow);
        }
        // the sixth at once waits one interval (100 ms)
        assert_eq!(
            l.check(1, t0),
            Decision::Deny {
                retry_after: Duration::from_millis(100)
            }
        );
        // other keys have their own bucket
        assert_eq!(l.check(2, t0), Decision::Allow);
        // then one request per 100 ms
        let mut allowed = 0;
        for ms in 1..=1000u64 {
            if l.check(1, t0 + ms * 1_000_000) == Decision::Allow {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 10);
    }

    #[test]
    fn a_rested_key_has_a_full_bucket_again() {
        let mut l = Limiter::new(&cfg(1, 1, 3), 100);
        for _ in 0..3 {
            assert_eq!(l.check(9, 0), Decision::Allow);
        }
        assert!(matches!(l.check(9, 0), Decision::Deny { .. }));
        for _ in 0..3 {
            assert_eq!(l.check(9, 10 * SEC), Decision::Allow);
        }
    }

    #[test]
    fn memory_is_bounded_and_full_buckets_go_first() {
        let mut l = Limiter::new(&cfg(1, 1, 2), 64);
        // key 0 is busy (its bucket is empty), the others made one request
        // long ago and are full again by now
        l.check(0, 100 * SEC);
        l.check(0, 100 * SEC);
        for k in 1..64 {
            l.check(k, 0);
        }
        assert_eq!(l.len(), 64);
        for k in 1000..1100 {
            assert_eq!(l.check(k, 100 * SEC), Decision::Allow);
            assert!(l.len() <= 64);
        }
        // the busy key was never evicted: it is still limited
        assert!(matches!(l.check(0, 100 * SEC), Decision::Deny { .. }));
    }

    #[test]
    fn a_flood_of_new_keys_stays_bounded() {
        let mut l = Limiter::new(&cfg(1, 1, 1), 128);
        for k in 0..10_000u64 {
            // every key is busy: nothing can be swept
            assert_eq!(
                l.check(k.wrapping_mul(0x9e37_79b9_7f4a_7c15), SEC),
                Decision::Allow
            );
            assert!(l.len() <= 128);
        }
    }

    #[test]
    fn buckets_survive_a_reload_by_route_name() {
        let mut ls = Limiters::default();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let c = cfg(1, 1, 1);
        ls.relayout(1, [(&a, Some(&c)), (&b, None)].into_iter());
        let ip = Key::Ip("192.0.2.1".parse().unwrap());
        assert_eq!(ls.check(0, ip, 0), Decision::Allow);
        assert!(matches!(ls.check(0, ip, 0), Decision::Deny { .. }));
        assert_eq!(ls.check(1, ip, 0), Decision::Allow, "b has no limit");
        // generation 2: route a moved to index 1 and keeps its buckets
        ls.relayout(2, [(&b, None), (&a, Some(&c))].into_iter());
        assert!(ls.is_current(2));
        assert!(matches!(ls.check(1, ip, 0), Decision::Deny { .. }));
        // a header value spelling the address has its own bucket
        assert_eq!(ls.check(1, Key::Value(b"192.0.2.1"), 0), Decision::Allow);
    }

    proptest! {
        /// Over any window, a key gets at most burst + window × rate
        /// requests, and a steady client at the rate is never refused.
        #[test]
        fn never_more_than_burst_plus_rate(
            count in 1u32..50,
            burst in 1u32..20,
            gaps in proptest::collection::vec(0u64..50_000_000, 1..300),
        ) {
            let c = cfg(count, 1, burst);
            let mut l = Limiter::new(&c, 16);
            let mut now = SEC;
            let start = now;
            let mut allowed = 0u64;
            for g in gaps {
                now += g;
                if l.check(5, now) == Decision::Allow {
                    allowed += 1;
                }
            }
            let elapsed = now - start;
            let max = u64::from(burst) + elapsed * u64::from(count) / SEC + 1;
            prop_assert!(allowed <= max, "{allowed} > {max}");

            let mut steady = Limiter::new(&c, 16);
            let interval = c.interval().as_nanos() as u64;
            for i in 0..100u64 {
                prop_assert_eq!(steady.check(5, SEC + i * interval), Decision::Allow);
            }
        }
    }
}
