//! `StatsRegistry`: windows and metric handles by name, across table
//! generations. Owned by the controller (the only builder of tables); each
//! build opens a `Generation`, asks it for the handles of every route ×
//! pool, and when the generation ends, whatever it did not ask for is
//! forgotten (a route or pool that left the configuration; its last
//! tables and requests keep their `Arc`s until they are done).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use metrics::{Counter, Histogram};

use super::shadow::ShadowHandles;
use super::{BackendRef, Classes, Meters, PoolHandles, PoolMeters, RouteHandles, Window};

/// An entry and the build that last asked for it.
struct Kept<T> {
    used: u64,
    value: T,
}

/// What a (route, pool) keeps across generations.
#[derive(Clone)]
struct PoolEntry {
    window: Arc<Window>,
    meters: Option<(Histogram, Counter, Classes)>,
}

type PoolKey = (Arc<str>, Arc<str>);

/// Windows and metric handles by (route, pool[, backend]) name.
#[derive(Default)]
pub struct StatsRegistry {
    /// `None`: metrics are off; only the windows are kept.
    meters: Option<Arc<dyn Meters>>,
    /// Counts builds; an entry whose `used` is older was not asked for.
    epoch: u64,
    no_route: Option<Arc<Classes>>,
    routes: HashMap<Arc<str>, Kept<Arc<RouteHandles>>>,
    pools: HashMap<PoolKey, Kept<PoolEntry>>,
    backends: HashMap<(PoolKey, SocketAddr), Kept<Classes>>,
    /// Shadow traffic of (route, mirror pool).
    shadow: HashMap<PoolKey, Kept<Arc<ShadowHandles>>>,
}

impl std::fmt::Debug for StatsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StatsRegistry")
            .field("metrics", &self.meters.is_some())
            .field("pools", &self.pools.len())
            .field("backends", &self.backends.len())
            .finish_non_exhaustive()
    }
}

impl StatsRegistry {
    /// A registry whose metric handles `meters` makes (`None`: windows only).
    pub fn new(meters: Option<Arc<dyn Meters>>) -> Self {
        let no_route = meters
            .as_ref()
            .map(|m| Arc::new(Classes::new(|c| m.requests("", "", "", c))));
        StatsRegistry {
            meters,
            no_route,
            ..Default::default()
        }
    }

    /// Starts handing out the handles of a new table.
    pub fn generation(&mut self) -> Generation<'_> {
        self.epoch += 1;
        Generation { reg: self }
    }
}

/// The handles of one table being built; see the module doc.
pub struct Generation<'r> {
    reg: &'r mut StatsRegistry,
}

impl Generation<'_> {
    /// The counters of answers that matched no route.
    pub fn no_route(&self) -> Option<Arc<Classes>> {
        self.reg.no_route.clone()
    }

    /// The handles of `route`'s answers that no pool was chosen for.
    pub fn route(&mut self, route: &Arc<str>) -> Arc<RouteHandles> {
        let (epoch, meters) = (self.reg.epoch, &self.reg.meters);
        let kept = self
            .reg
            .routes
            .entry(route.clone())
            .or_insert_with(|| Kept {
                used: epoch,
                value: Arc::new(RouteHandles {
                    route: route.clone(),
                    no_pool: meters
                        .as_ref()
                        .map(|m| Classes::new(|c| m.requests(route, "", "", c))),
                }),
            });
        kept.used = epoch;
        kept.value.clone()
    }

    /// The handles of (`route`, `pool`) with the pool's `backends` of this
    /// generation, in the pool's order.
    pub fn pool(
        &mut self,
        route: &Arc<str>,
        pool: &Arc<str>,
        backends: impl IntoIterator<Item = BackendRef>,
    ) -> Arc<PoolHandles> {
        let epoch = self.reg.epoch;
        let meters = self.reg.meters.clone();
        let key = (route.clone(), pool.clone());
        let kept = self.reg.pools.entry(key.clone()).or_insert_with(|| Kept {
            used: epoch,
            value: PoolEntry {
                window: Arc::default(),
                meters: meters.as_ref().map(|m| {
                    (
                        m.duration(route, pool),
                        m.retries(route, pool),
                        Classes::new(|c| m.requests(route, pool, "", c)),
                    )
                }),
            },
        });
        kept.used = epoch;
        let entry = kept.value.clone();
        let backends: Box<[BackendRef]> = backends.into_iter().collect();
        let meters = match (&meters, entry.meters) {
            (Some(m), Some((duration, retries, no_backend))) => {
                let by_backend = backends
                    .iter()
                    .map(|b| {
                        let kept = self
                            .reg
                            .backends
                            .entry((key.clone(), b.addr))
                            .or_insert_with(|| {
                                let addr = b.addr.to_string();
                                Kept {
                                    used: epoch,
                                    value: Classes::new(|c| m.requests(route, pool, &addr, c)),
                                }
                            });
                        kept.used = epoch;
                        kept.value.clone()
                    })
                    .collect();
                Some(PoolMeters {
                    duration,
                    retries,
                    no_backend,
                    by_backend,
                })
            }
            _ => None,
        };
        Arc::new(PoolHandles {
            route: route.clone(),
            pool: pool.clone(),
            window: entry.window,
            backends,
            meters,
        })
    }
}

impl Generation<'_> {
    /// The shadow traffic handles of `route` mirrored to `pool`.
    pub fn shadow(&mut self, route: &Arc<str>, pool: &Arc<str>) -> Arc<ShadowHandles> {
        let (epoch, meters) = (self.reg.epoch, &self.reg.meters);
        let kept = self
            .reg
            .shadow
            .entry((route.clone(), pool.clone()))
            .or_insert_with(|| Kept {
                used: epoch,
                value: Arc::new(ShadowHandles::new(
                    route.clone(),
                    pool.clone(),
                    meters.as_ref().and_then(|m| m.shadow(route, pool)),
                )),
            });
        kept.used = epoch;
        kept.value.clone()
    }
}

impl Drop for Generation<'_> {
    /// Forgets what this generation did not ask for.
    fn drop(&mut self) {
        let epoch = self.reg.epoch;
        self.reg.routes.retain(|_, k| k.used == epoch);
        self.reg.pools.retain(|_, k| k.used == epoch);
        self.reg.backends.retain(|_, k| k.used == epoch);
        self.reg.shadow.retain(|_, k| k.used == epoch);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Mutex;

    use metrics::{CounterFn, HistogramFn};

    use super::*;

    /// Meters over a plain map of atomics: what each (name, labels) got.
    #[derive(Default)]
    struct Plain(Mutex<HashMap<String, Arc<Atomic>>>);

    #[derive(Default)]
    struct Atomic(AtomicU64);

    impl CounterFn for Atomic {
        fn increment(&self, v: u64) {
            self.0.fetch_add(v, Ordering::Relaxed);
        }
        fn absolute(&self, v: u64) {
            self.0.store(v, Ordering::Relaxed);
        }
    }

    impl HistogramFn for Atomic {
        fn record(&self, _: f64) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Plain {
        fn get(&self, key: &str) -> Arc<Atomic> {
            self.0
                .lock()
                .unwrap()
                .entry(key.into())
                .or_default()
                .clone()
        }
        fn value(&self, key: &str) -> u64 {
            self.get(key).0.load(Ordering::Relaxed)
        }
    }

    impl Meters for Plain {
        fn requests(&self, route: &str, pool: &str, backend: &str, class: &str) -> Counter {
            Counter::from_arc(self.get(&format!("req {route} {pool} {backend} {class}")))
        }
        fn duration(&self, route: &str, pool: &str) -> Histogram {
            Histogram::from_arc(self.get(&format!("dur {route} {pool}")))
        }
        fn retries(&self, route: &str, pool: &str) -> Counter {
            Counter::from_arc(self.get(&format!("retries {route} {pool}")))
        }
    }

    fn b(id: u64, port: u16) -> BackendRef {
        BackendRef {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn handles_are_kept_by_name_and_forgotten_when_not_asked_for() {
        let plain = Arc::new(Plain::default());
        let mut reg = StatsRegistry::new(Some(plain.clone()));
        let (r, p): (Arc<str>, Arc<str>) = ("api".into(), "blue".into());
        let first = reg.generation().pool(&r, &p, [b(1, 1), b(2, 2)]);
        // The next generation: the pool lost backend 1 and gained backend 3.
        let second = reg.generation().pool(&r, &p, [b(3, 3), b(2, 2)]);
        assert!(Arc::ptr_eq(first.window(), second.window()));
        assert_eq!(second.backend_index(2), Some(1));
        assert_eq!(second.backend_index(1), None);
        crate::stats::Recorder::pool(&second, Some(1)).finish(204, tokio::time::Instant::now());
        crate::stats::Recorder::pool(&first, Some(1)).finish(503, tokio::time::Instant::now());
        assert_eq!(plain.value("req api blue 127.0.0.1:2 2xx"), 1);
        assert_eq!(plain.value("req api blue 127.0.0.1:2 5xx"), 1);
        assert_eq!(plain.value("dur api blue"), 2);
        let now = crate::stats::clock::secs(tokio::time::Instant::now());
        assert_eq!(second.window().last(now, 2).requests, 2);
        // A generation without the pair forgets it: the next one starts over.
        drop(reg.generation());
        let third = reg.generation().pool(&r, &p, [b(2, 2)]);
        assert!(!Arc::ptr_eq(first.window(), third.window()));
    }

    #[test]
    fn without_meters_only_the_window_counts() {
        let mut reg = StatsRegistry::new(None);
        let mut gen = reg.generation();
        assert!(gen.no_route().is_none());
        let h = gen.pool(&"r".into(), &"p".into(), [b(1, 1)]);
        let mut rec = crate::stats::Recorder::pool(&h, Some(0));
        rec.retried_on(9, |_, _| None);
        assert_eq!((rec.retries(), rec.backend_addr()), (1, None));
        rec.finish(200, tokio::time::Instant::now());
        let now = crate::stats::clock::secs(tokio::time::Instant::now());
        assert_eq!(h.window().last(now, 2).requests, 1);
    }
}
