//! A pool inside one table generation: its backends (shared state from the
//! registry) and the precomputed slot order used to pick one of them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http::HeaderValue;

use super::backend::{Backend, Registry};
use crate::config::{Balance, PoolConfig};

#[derive(Debug)]
pub struct Pool {
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
            name: cfg.name.as_str().into(),
            header: super::header_value(&cfg.name),
            backends,
            slots: smooth_wrr(&weights).into(),
            balance: cfg.balance,
            // Start round robin at a random place so that several proxies
            // (or a fresh generation) do not all hit the first backend.
            rr: AtomicUsize::new(fastrand::usize(..)),
        }
    }

    /// Picks an available backend, or `None` when none is.
    #[inline]
    pub fn pick(&self) -> Option<&Arc<Backend>> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        let at = |i: usize| &self.backends[self.slots[i % n] as usize];
        match self.balance {
            Balance::RoundRobin => {
                // Relaxed: the counter only spreads load; no ordering needed.
                let start = self.rr.fetch_add(1, Ordering::Relaxed);
                (0..n).map(|k| at(start + k)).find(|b| b.is_available())
            }
            Balance::LeastRequest => {
                let a = at(fastrand::usize(..n));
                let b = at(fastrand::usize(..n));
                match (a.is_available(), b.is_available()) {
                    (true, true) if b.in_flight() < a.in_flight() => Some(b),
                    (true, _) => Some(a),
                    (false, true) => Some(b),
                    (false, false) => self.least_loaded_available(),
                }
            }
        }
    }

    /// Slow path when both random choices were unavailable.
    fn least_loaded_available(&self) -> Option<&Arc<Backend>> {
        let n = self.backends.len();
        let start = fastrand::usize(..n);
        (0..n)
            .map(|k| &self.backends[(start + k) % n])
            .filter(|b| b.is_available())
            .min_by_key(|b| b.in_flight())
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
    use super::smooth_wrr;

    #[test]
    fn smooth_wrr_interleaves_by_weight() {
        assert_eq!(smooth_wrr(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_wrr(&[1, 1, 1]), vec![0, 1, 2]);
        assert!(smooth_wrr(&[]).is_empty());
    }
}
