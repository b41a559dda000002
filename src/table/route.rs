//! A route of one table generation: its matchers, its weighted split and
//! sticky buckets, and the pool-then-backend pick with failover: when the
//! chosen pool has no available backend, its share goes to the route's
//! other pools (weighted for anonymous requests; for a sticky key, the pool
//! that would own its bucket without the dead one, so those users stick
//! to their new pool and come back when it recovers). A route also holds
//! the statistics handles of its answers in every pool of the table (a
//! forced pool need not be in the split), which the pick hands on.
//!
//! A route may have a **standby** pool (`standby = "blue"`, kept by a flip
//! or a promotion): it takes the route's traffic only when no pool of the
//! split can (after failover), and gives it back as soon as one can. Whether
//! traffic is on the standby lives in a `StandbyShared` kept across table
//! generations (a reload does not log the fall-back again); each change of
//! it is announced on the registry's `Notify`, which the controller's
//! standby watcher turns into history events. The route also carries its `RouteHttp` (body limit, rewrites, header rules,
//! rate limit, fixed answers) for the data paths.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use http::HeaderName;

use super::backend::Backend;
use super::mirror::RouteMirror;
use super::pool::Pool;
use super::sticky;
use crate::config::{RouteConfig, RouteHttp, StickyConfig};
use crate::stats::{BackendRef, Generation, PoolHandles, Recorder, RouteHandles};

/// A route: matchers, the weighted split and the sticky settings.
#[derive(Debug)]
pub struct Route {
    /// Position in the table (indexes the table's metric handles).
    pub index: usize,
    pub name: Arc<str>,
    pub path_prefix: Box<str>,
    /// Pools with weight > 0, in the order written.
    split: Box<[SplitEntry]>,
    total: u32,
    /// Bucket → index into `split`, when the route is sticky.
    buckets: Option<Box<[u8]>>,
    pub sticky: Option<StickyConfig>,
    pub force_header: Option<HeaderName>,
    /// Send a dead pool's share to the other pools (else answer 503).
    pub failover: bool,
    /// Statistics handles of this route's answers in each pool of the
    /// table, by pool index.
    handles: Box<[Arc<PoolHandles>]>,
    /// Statistics handles of this route's answers that had no pool.
    no_pool: Arc<RouteHandles>,
    /// Takes the traffic while no pool of the split has an available
    /// backend.
    standby: Option<Standby>,
    /// What the route does besides choosing a pool (`config::http`); a
    /// route using none of it has `http.is_plain()`.
    pub http: Arc<RouteHttp>,
    /// Shadow traffic (`mirror`, the rollout's shadow step), if any.
    pub mirror: Option<Box<RouteMirror>>,
}

#[derive(Debug)]
struct Standby {
    pool: Arc<Pool>,
    shared: Arc<StandbyShared>,
}

/// A route's standby state across table generations (`Registry`, by
/// route name).
#[derive(Debug, Default)]
pub struct StandbyShared {
    /// Traffic is on the standby; set and cleared by the request that sees
    /// the change, so each transition is logged once.
    serving: AtomicBool,
    /// Transitions so far (to the standby and back), for the watcher: an
    /// odd count means traffic is on the standby.
    transitions: AtomicU64,
    /// Told of each transition (shared by every route of the registry).
    news: Arc<tokio::sync::Notify>,
}

impl StandbyShared {
    pub(super) fn new(news: Arc<tokio::sync::Notify>) -> Self {
        StandbyShared {
            serving: AtomicBool::new(false),
            transitions: AtomicU64::new(0),
            news,
        }
    }

    /// Traffic is on the standby (as the last request that saw a change
    /// of it left it).
    pub fn serving(&self) -> bool {
        // Relaxed: a flag for reporting; no other memory depends on it.
        self.serving.load(Ordering::Relaxed)
    }

    /// Transitions to the standby and back since the route first had
    /// one (odd: on the standby).
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    /// Sets the flag; on a change, counts it, tells the watcher and
    /// answers true.
    fn set(&self, on: bool) -> bool {
        let changed = self.serving.swap(on, Ordering::Relaxed) != on;
        if changed {
            self.transitions.fetch_add(1, Ordering::Relaxed);
            self.news.notify_one();
        }
        changed
    }

    /// No standby any more: the flag starts from "not serving" (a count
    /// left odd is made even, unreported).
    pub(super) fn reset(&self) {
        if self.serving.swap(false, Ordering::Relaxed) {
            self.transitions.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[derive(Debug)]
struct SplitEntry {
    pool: Arc<Pool>,
    weight: u32,
    /// Cumulative weight up to and including this pool.
    cum: u32,
    /// `fnv1a64(pool name)`, for rendezvous scores of sticky failover.
    seed: u64,
    /// This pool's share is being sent elsewhere; set and cleared by the
    /// request that sees the change, so each transition is logged once.
    failing_over: AtomicBool,
}

/// The pool a request goes to, and why.
#[derive(Debug)]
pub struct PoolPick<'t> {
    pub pool: &'t Arc<Pool>,
    /// The sticky bucket, when a sticky key decided.
    pub bucket: Option<u16>,
    /// Index of the pool in the split.
    index: usize,
}

/// A pool and one of its backends.
#[derive(Debug)]
pub struct Pick<'t> {
    pub pool: &'t Arc<Pool>,
    pub backend: &'t Arc<Backend>,
    pub bucket: Option<u16>,
    /// Where the request records its answer (`Recorder::finish`).
    pub recorder: Recorder,
}

/// Why a route could not serve a request.
#[derive(Debug)]
pub enum Unservable<'t> {
    /// The route has no pool with weight.
    NoPool,
    /// The chosen pool has no available backend, and failover is off or
    /// the route has no other pool.
    Pool(&'t Arc<Pool>),
    /// No pool of the route has an available backend (the chosen one given).
    AllPools(&'t Arc<Pool>),
}

impl Route {
    pub(super) fn new(
        r: &RouteConfig,
        pools: &[Arc<Pool>],
        stats: &mut Generation<'_>,
        standby: Arc<StandbyShared>,
    ) -> Self {
        let find = |name: &str| pools.iter().find(|p| &*p.name == name).cloned();
        let name: Arc<str> = r.name.as_str().into();
        let handles = pools
            .iter()
            .map(|p| {
                let backends = p.backends.iter().map(|b| BackendRef {
                    id: b.id,
                    addr: b.addr,
                });
                stats.pool(&name, &p.name, backends)
            })
            .collect();
        let mut acc = 0u32;
        let split: Box<[SplitEntry]> = r
            .split
            .iter()
            .filter(|(_, w)| *w > 0)
            .filter_map(|(name, w)| {
                acc += *w;
                find(name).map(|pool| SplitEntry {
                    pool,
                    weight: *w,
                    cum: acc,
                    seed: sticky::fnv1a64(name.as_bytes()),
                    failing_over: AtomicBool::new(false),
                })
            })
            .collect();
        let buckets = r.sticky.as_ref().and_then(|_| {
            let weights: Vec<(&str, u32)> = r
                .split
                .iter()
                .filter(|(_, w)| *w > 0)
                .map(|(n, w)| (n.as_str(), *w))
                .collect();
            sticky::assign(&weights)
        });
        Route {
            index: 0,
            no_pool: stats.route(&name),
            mirror: RouteMirror::new(r, &name, pools, stats),
            handles,
            name,
            path_prefix: r.path_prefix.as_str().into(),
            split,
            total: acc,
            buckets,
            sticky: r.sticky.clone(),
            force_header: r.force_header.clone(),
            failover: r.failover,
            standby: r
                .http
                .standby
                .as_deref()
                .and_then(find)
                .map(|pool| Standby {
                    pool,
                    shared: standby,
                }),
            http: Arc::new(r.http.clone()),
        }
    }

    /// The pool for a request by weight alone: the sticky key's bucket when
    /// there is a key, else a weighted random choice. Health is not looked
    /// at; `pick` does that.
    #[inline]
    pub fn pick_pool(&self, sticky_key: Option<&[u8]>) -> Option<PoolPick<'_>> {
        if let (Some(key), Some(buckets)) = (sticky_key, &self.buckets) {
            let bucket = sticky::bucket(key);
            let index = usize::from(buckets[usize::from(bucket)]);
            return self.split.get(index).map(|e| PoolPick {
                pool: &e.pool,
                bucket: Some(bucket),
                index,
            });
        }
        let index = match self.split.len() {
            0 => return None,
            1 => 0,
            _ => {
                let x = fastrand::u32(0..self.total);
                self.split.iter().position(|e| x < e.cum)?
            }
        };
        Some(PoolPick {
            pool: &self.split[index].pool,
            bucket: None,
            index,
        })
    }

    /// The statistics handles of this route's answers in `pool`.
    pub fn handles(&self, pool: &Pool) -> Option<&Arc<PoolHandles>> {
        self.handles.get(pool.index)
    }

    /// The recorder of a request of this route sent to `pool` — to its
    /// `backend`-th backend, or to none (the proxy answered itself).
    #[inline]
    pub fn recorder(&self, pool: &Pool, backend: Option<usize>) -> Recorder {
        self.handles(pool)
            .map_or_else(Recorder::default, |h| Recorder::pool(h, backend))
    }

    /// The recorder of a request of this route that had no pool.
    pub fn no_pool_recorder(&self) -> Recorder {
        Recorder::route(&self.no_pool)
    }

    /// Keeps this route's metric series from expiring.
    pub(super) fn touch_metrics(&self) {
        self.no_pool.touch();
        for h in self.handles.iter() {
            h.touch();
        }
        if let Some(m) = &self.mirror {
            m.touch();
        }
    }

    /// A pick of `pool`'s `backend`-th backend.
    #[inline]
    fn picked<'t>(&'t self, pool: &'t Arc<Pool>, backend: usize, bucket: Option<u16>) -> Pick<'t> {
        Pick {
            pool,
            backend: &pool.backends[backend],
            bucket,
            recorder: self.recorder(pool, Some(backend)),
        }
    }

    /// The pool and backend for a request, failing over to the route's
    /// other pools when the chosen pool has no available backend, and to
    /// the standby when none of them has.
    #[inline]
    pub fn pick(&self, sticky_key: Option<&[u8]>) -> Result<Pick<'_>, Unservable<'_>> {
        let Some(first) = self.pick_pool(sticky_key) else {
            return self.or_standby(Unservable::NoPool, None);
        };
        let entry = &self.split[first.index];
        if let Some(backend) = first.pool.pick_index() {
            // Relaxed: flags for logging only.
            if entry.failing_over.load(Ordering::Relaxed) {
                self.failover_ended(entry);
            }
            if let Some(s) = &self.standby {
                if s.shared.serving() {
                    self.standby_released(s, first.pool);
                }
            }
            return Ok(self.picked(first.pool, backend, first.bucket));
        }
        let picked = self.failover_pick(&first, entry);
        match picked {
            Some(p) => Ok(p),
            None if !self.failover || self.split.len() == 1 => {
                self.or_standby(Unservable::Pool(first.pool), first.bucket)
            }
            None => self.or_standby(Unservable::AllPools(first.pool), first.bucket),
        }
    }

    /// The standby's backend when the split could not serve (`why`).
    fn or_standby<'t>(
        &'t self,
        why: Unservable<'t>,
        bucket: Option<u16>,
    ) -> Result<Pick<'t>, Unservable<'t>> {
        let Some(s) = &self.standby else {
            return Err(why);
        };
        let Some(backend) = s.pool.pick_index() else {
            return Err(why);
        };
        if !s.shared.serving() && s.shared.set(true) {
            tracing::warn!(route = %self.name, standby = %s.pool.name,
                "no pool of the split has an available backend; traffic falls back to the standby pool");
        }
        Ok(self.picked(&s.pool, backend, bucket))
    }

    fn standby_released(&self, s: &Standby, to: &Pool) {
        if s.shared.set(false) {
            tracing::info!(route = %self.name, standby = %s.pool.name, pool = %to.name,
                "the split serves again; traffic returns from the standby pool");
        }
    }

    /// Failover inside the split: another pool for the chosen one's share.
    fn failover_pick<'t>(&'t self, first: &PoolPick<'t>, entry: &SplitEntry) -> Option<Pick<'t>> {
        if !self.failover || self.split.len() == 1 {
            return None;
        }
        let alternative = match first.bucket {
            Some(bucket) => self.sticky_alternative(bucket, first.index),
            None => self.weighted_alternative(first.index),
        };
        let picked = alternative.and_then(|i| {
            let pool = &self.split[i].pool;
            pool.pick_index()
                .map(|backend| self.picked(pool, backend, first.bucket))
        });
        if !entry.failing_over.swap(true, Ordering::Relaxed) {
            match &picked {
                Some(p) => tracing::warn!(route = %self.name, pool = %entry.pool.name,
                    to = %p.pool.name, "pool has no available backend; its share goes to the route's other pools"),
                None => tracing::warn!(route = %self.name, pool = %entry.pool.name,
                    "pool has no available backend and no other pool of the route has one"),
            }
        }
        picked
    }

    fn failover_ended(&self, entry: &SplitEntry) {
        if entry.failing_over.swap(false, Ordering::Relaxed) {
            tracing::info!(route = %self.name, pool = %entry.pool.name,
                "pool serves again; its share is back");
        }
    }

    /// A weighted random choice among the other servable pools, in one
    /// pass (weighted reservoir sampling), without allocating.
    fn weighted_alternative(&self, skip: usize) -> Option<usize> {
        let mut total = 0u32;
        let mut chosen = None;
        for (i, e) in self.split.iter().enumerate() {
            if i == skip || !e.pool.is_servable() {
                continue;
            }
            total += e.weight;
            if fastrand::u32(0..total) < e.weight {
                chosen = Some(i);
            }
        }
        chosen
    }

    /// The servable pool with the best rendezvous score for `bucket` among
    /// the others: where the bucket would live if the dead pool had weight
    /// 0, so a sticky user lands on the same pool every time.
    fn sticky_alternative(&self, bucket: u16, skip: usize) -> Option<usize> {
        let mut best: Option<(f64, usize)> = None;
        for (i, e) in self.split.iter().enumerate() {
            if i == skip || !e.pool.is_servable() {
                continue;
            }
            let s = sticky::score(e.seed, bucket, e.weight);
            if best.is_none_or(|(b, _)| s > b) {
                best = Some((s, i));
            }
        }
        best.map(|(_, i)| i)
    }

    /// Has at least one pool with weight, or the standby, that can take a
    /// request.
    pub fn is_servable(&self) -> bool {
        self.split.iter().any(|e| e.pool.is_servable())
            || self.standby.as_ref().is_some_and(|s| s.pool.is_servable())
    }

    /// The standby pool, and whether it is taking the traffic now (no pool
    /// of the split can, and it can).
    pub fn standby(&self) -> Option<(&Arc<Pool>, bool)> {
        let s = self.standby.as_ref()?;
        let engaged = !self.split.iter().any(|e| e.pool.is_servable()) && s.pool.is_servable();
        Some((&s.pool, engaged))
    }

    /// The standby pool and its state as the data path last left it
    /// (`None`: no standby); what the standby watcher reports.
    pub fn standby_state(&self) -> Option<(&Arc<Pool>, &StandbyShared)> {
        let s = self.standby.as_ref()?;
        Some((&s.pool, &s.shared))
    }

    /// The pools with weight and their weights, in the order written.
    pub fn split(&self) -> impl Iterator<Item = (&Arc<Pool>, u32)> {
        self.split.iter().map(|e| (&e.pool, e.weight))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config;
    use crate::table::{Health, Registry, RoutingTable, Unservable};

    fn table(text: &str) -> RoutingTable {
        let cfg = config::parse(text, Path::new("t.toml")).expect("valid config");
        let mut reg = Registry::default();
        reg.reconcile(&cfg);
        RoutingTable::build(&cfg, &reg, &mut Default::default(), 1)
    }

    const SPLIT: &str = "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[pools.b]\nbackends = [\"127.0.0.1:2\"]\n\
        [pools.c]\nbackends = [\"127.0.0.1:3\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 50, b = 30, c = 20 }\n\
        sticky = { header = \"X-User\" }\n";

    #[test]
    fn a_dead_pools_share_goes_to_the_others_by_weight() {
        let t = table(SPLIT);
        let r = t.route(None, "/").unwrap();
        t.pools()[0].backends[0].set_health(Health::Unhealthy);
        let mut counts = [0usize; 3];
        for _ in 0..20_000 {
            let p = r.pick(None).expect("b and c serve");
            counts[p.backend.addr.port() as usize - 1] += 1;
        }
        assert_eq!(counts[0], 0);
        // b:c stays 30:20 (60 % of 20,000 = 12,000 for b)
        assert!((11_400..=12_600).contains(&counts[1]), "{counts:?}");
    }

    #[test]
    fn sticky_users_of_a_dead_pool_stay_on_one_other_pool_and_come_back() {
        let t = table(SPLIT);
        let r = t.route(None, "/").unwrap();
        let users: Vec<String> = (0..2000).map(|i| format!("user-{i}")).collect();
        let home: Vec<u16> = users
            .iter()
            .map(|u| r.pick(Some(u.as_bytes())).unwrap().backend.addr.port())
            .collect();
        t.pools()[0].backends[0].set_health(Health::Unhealthy);
        let mut moved = 0;
        for (u, &h) in users.iter().zip(&home) {
            let first = r.pick(Some(u.as_bytes())).unwrap().backend.addr.port();
            // the same user lands on the same pool every time
            for _ in 0..3 {
                assert_eq!(
                    r.pick(Some(u.as_bytes())).unwrap().backend.addr.port(),
                    first
                );
            }
            if h == 1 {
                assert_ne!(first, 1);
                moved += 1;
            } else {
                assert_eq!(first, h, "users of live pools do not move");
            }
        }
        assert!(moved > 0);
        t.pools()[0].backends[0].set_health(Health::Healthy);
        for (u, &h) in users.iter().zip(&home) {
            assert_eq!(r.pick(Some(u.as_bytes())).unwrap().backend.addr.port(), h);
        }
    }

    const STANDBY: &str = "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.green]\nbackends = [\"127.0.0.1:2\", \"127.0.0.1:3\"]\n\
        [[routes]]\nname = \"r\"\nsplit = { blue = 0, green = 100 }\nstandby = \"blue\"\nsticky = { header = \"X-User\" }\n";

    #[test]
    fn the_standby_serves_only_while_the_split_cannot() {
        for extra in ["", "failover = false\n"] {
            let t = table(&format!("{STANDBY}{extra}"));
            let r = t.route(None, "/").unwrap();
            let port =
                |key: Option<&str>| r.pick(key.map(str::as_bytes)).unwrap().backend.addr.port();
            for _ in 0..100 {
                assert_ne!(
                    port(None),
                    1,
                    "no traffic on the standby while green serves"
                );
                assert_ne!(port(Some("u1")), 1);
            }
            assert_eq!(
                r.standby().map(|(p, on)| (&*p.name, on)),
                Some(("blue", false))
            );
            for b in &t.pools()[1].backends {
                b.set_health(Health::Unhealthy);
            }
            for _ in 0..100 {
                assert_eq!(port(None), 1, "{extra}");
                assert_eq!(port(Some("u1")), 1);
            }
            assert_eq!(r.standby().map(|(_, on)| on), Some(true));
            assert!(r.is_servable());
            t.pools()[1].backends[1].set_health(Health::Healthy);
            for _ in 0..100 {
                assert_eq!(port(None), 3, "back on green");
            }
            assert_eq!(r.standby().map(|(_, on)| on), Some(false));
            // nothing available anywhere: the split's error
            for b in t.pools().iter().flat_map(|p| p.backends.iter()) {
                b.set_health(Health::Unhealthy);
            }
            assert!(r.pick(None).is_err());
            assert!(!r.is_servable());
        }
    }

    #[test]
    fn without_failover_or_any_servable_pool_the_pick_fails() {
        let t = table(&SPLIT.replace("sticky = ", "failover = false\nsticky = "));
        let r = t.route(None, "/").unwrap();
        for p in t.pools() {
            p.backends[0].set_health(Health::Unhealthy);
        }
        assert!(matches!(r.pick(None), Err(Unservable::Pool(_))));
        assert!(!r.is_servable());
        let t = table(SPLIT);
        let r = t.route(None, "/").unwrap();
        for p in t.pools() {
            p.backends[0].set_health(Health::Unhealthy);
        }
        assert!(matches!(r.pick(None), Err(Unservable::AllPools(_))));
        assert!(t.unservable_route().is_some());
    }
}
