//! A pool inside one table generation: its backends (shared state from the
//! registry), the precomputed slot order used to pick one of them, and the
//! pool's resilience settings (health checks, outlier ejection, retries,
//! slow start) as the data plane and the health supervisor read them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use super::backend::{Backend, Registry};
use super::outlier::{OutlierSettings, PoolShared};
use crate::config::{Balance, HealthConfig, PoolConfig, RetryConfig};

#[derive(Debug)]
pub struct Pool {
    /// Position in the table (indexes the table's metric handles).
    pub index: usize,
    pub name: Arc<str>,
    /// `name` ready to send as `X-Switchyard-Pool`.
    pub header: HeaderValue,
    pub backends: Box<[Arc<Backend>]>,
    /// Backend indices, each repeated by its weight in smooth weighted
    /// round-robin order; both balancers pick from it, so weights need no
    /// arithmetic per request.
    slots: Box<[u32]>,
    balance: Balance,
    rr: AtomicUsize,
    /// Active checks of this pool's backends (read by the health supervisor).
    pub health: HealthConfig,
    pub outlier: OutlierSettings,
    /// The pool's retry settings; `retries` is 0 when the pool has a single
    /// backend (there is nowhere to retry, so no request copy is kept).
    pub retry: RetryConfig,
    pub slow_start: Option<Duration>,
    /// Ejection count and retry budget, kept across generations.
    pub shared: Arc<PoolShared>,
}

impl Pool {
    pub(super) fn new(cfg: &PoolConfig, registry: &Registry) -> Self {
        let backends: Box<[Arc<Backend>]> = cfg
            .backends
            .iter()
            .filter_map(|b| registry.get(&cfg.name, b.addr).cloned())
            .collect();
        let weights: Vec<u32> = cfg.backends.iter().map(|b| b.weight).collect();
        Pool {
            index: 0,
            name: cfg.name.as_str().into(),
            header: super::header_value(&cfg.name),
            backends,
            slots: smooth_wrr(&weights).into(),
            balance: cfg.balance,
            // Start round robin at a random place so that several proxies
            // (or a fresh generation) do not all hit the first backend.
            rr: AtomicUsize::new(fastrand::usize(..)),
            health: cfg.health.clone(),
            outlier: OutlierSettings::new(&cfg.outlier, cfg.backends.len()),
            retry: RetryConfig {
                retries: if cfg.backends.len() > 1 {
                    cfg.retry.retries
                } else {
                    0
                },
                ..cfg.retry
            },
            slow_start: cfg.slow_start,
            shared: registry.pool_shared(&cfg.name),
        }
    }

    /// Picks an available backend, or `None` when none is. A backend in
    /// slow start is admitted with the probability of its ramp.
    #[inline]
    pub fn pick(&self) -> Option<&Arc<Backend>> {
        self.pick_index().map(|i| &self.backends[i])
    }

    /// `pick`, answering the backend's position in `backends` (which
    /// indexes its statistics handles, `Route::recorder`).
    #[inline]
    pub fn pick_index(&self) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let at = |i: usize| self.slots[i % n] as usize;
        let ok = |i: usize| {
            let b = &self.backends[i];
            b.is_available() && b.slow_start_admits()
        };
        match self.balance {
            Balance::RoundRobin => {
                // Relaxed: the counter only spreads load; no ordering needed.
                let start = self.rr.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|k| at(start + k))
                    .find(|&i| ok(i))
                    .or_else(|| self.least_loaded_available(&[]))
            }
            Balance::LeastRequest => {
                let a = at(fastrand::usize(..n));
                let b = at(fastrand::usize(..n));
                let load = |i: usize| self.backends[i].in_flight();
                match (ok(a), ok(b)) {
                    (true, true) if load(b) < load(a) => Some(b),
                    (true, _) => Some(a),
                    (false, true) => Some(b),
                    (false, false) => self.least_loaded_available(&[]),
                }
            }
        }
    }

    /// An available backend whose id is not in `tried` (for a retry), or
    /// `None` when every available one was tried.
    pub fn pick_other(&self, tried: &[u64]) -> Option<&Arc<Backend>> {
        self.least_loaded_available(tried)
            .map(|i| &self.backends[i])
    }

    /// Slow path: the least loaded available backend not in `skip`,
    /// preferring backends past their slow start; never `None` while an
    /// available backend is left, so slow start cannot empty a pool.
    fn least_loaded_available(&self, skip: &[u64]) -> Option<usize> {
        let n = self.backends.len();
        if n == 0 {
            return None;
        }
        let start = fastrand::usize(..n);
        (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| {
                let b = &self.backends[i];
                b.is_available() && !skip.contains(&b.id)
            })
            .min_by_key(|&i| {
                let b = &self.backends[i];
                (b.in_slow_start(), b.in_flight())
            })
    }

    /// Has at least one backend that can take a request.
    pub fn is_servable(&self) -> bool {
        self.backends.iter().any(|b| b.is_available())
    }
}

/// nginx's smooth weighted round robin, unrolled into one full cycle:
/// weights 5,1,1 give a,a,b,a,c,a,a rather than a,a,a,a,a,b,c.
fn smooth_wrr(weights: &[u32]) -> Vec<u32> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut out = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        out.push(best as u32);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::smooth_wrr;
    use crate::config;
    use crate::table::{Registry, RoutingTable};

    #[test]
    fn slow_start_ramps_the_share_without_emptying_the_pool() {
        for balance in ["least_request", "round_robin"] {
            let cfg = config::parse(
                &format!("[pools.a]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\nbalance = \"{balance}\"\n\
                 [[routes]]\nname = \"r\"\nsplit = {{ a = 1 }}\n"),
                Path::new("t.toml"),
            )
            .unwrap();
            let mut reg = Registry::default();
            reg.reconcile(&cfg);
            let t = RoutingTable::build(&cfg, &reg, &mut Default::default(), 1);
            let pool = &t.pools()[0];
            let share = |n: usize| {
                (0..n)
                    .filter(|_| pool.pick().unwrap().addr.port() == 2)
                    .count()
            };
            pool.backends[1].begin_slow_start(0);
            assert_eq!(share(1000), 0, "{balance}: ramp 0 takes nothing");
            pool.backends[1].advance_slow_start(5_000, Some(std::time::Duration::from_secs(10)));
            let half = share(10_000);
            assert!(
                (2_000..=4_500).contains(&half),
                "{balance}: half ramp got {half}"
            );
            // alone in the pool, a ramping backend still serves
            pool.backends[0].set_draining(true);
            assert_eq!(share(100), 100);
        }
    }

    #[test]
    fn smooth_wrr_interleaves_by_weight() {
        assert_eq!(smooth_wrr(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_wrr(&[1, 1, 1]), vec![0, 1, 2]);
        assert!(smooth_wrr(&[]).is_empty());
    }
}
