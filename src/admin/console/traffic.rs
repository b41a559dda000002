//! `GET /api/v1/traffic`: what the web console shows that `/api/v1/status`
//! does not — per route the settings (sticky, force header, failover, the
//! rollout plan) and per (route, pool) requests/s, error rate and p99 over
//! the last seconds with a per-second series for sparklines; per backend
//! the passive and slow-start state (ejected, ramp, last probe failure);
//! per route its shadow windows (`admin::shadow`, without samples).
//!
//! Read-only: it reads the current table and the rollout windows, which
//! the data plane writes with relaxed atomics; nothing here is cached.
//! The answer types (`api::Traffic` and its parts) live in `src/api/` with
//! the rest of the admin API's types; this builds them.

use crate::api::{BackendState, PoolTraffic, RolloutPlan, RouteTraffic, Series, Sticky, Traffic};
use crate::stats::clock;
use crate::stats::window::{Stats, Window, SLOTS};
use crate::table::{Pool, Route, RoutingTable, RAMP_FULL};

/// Seconds summed for the "now" figures (requests/s, error rate, p99).
pub const RECENT_SECONDS: u64 = 10;

/// Default length of the per-second series; at most `SLOTS` (the window
/// ring holds no more).
pub const DEFAULT_SERIES_SECONDS: u64 = 120;

/// `seconds=N` of the query (1..=SLOTS), else the default.
pub fn series_seconds(query: Option<&str>) -> Result<u64, String> {
    let Some(v) = query.and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("seconds=")))
    else {
        return Ok(DEFAULT_SERIES_SECONDS);
    };
    v.parse::<u64>()
        .ok()
        .filter(|n| (1..=SLOTS as u64).contains(n))
        .ok_or_else(|| format!("seconds must be a whole number from 1 to {SLOTS}, got {v:?}"))
}

/// The answer for `table` at second `now` of `stats::clock`.
pub fn traffic(table: &RoutingTable, now: u64, series_seconds: u64) -> Traffic {
    let routes = table
        .routes()
        .iter()
        .map(|r| route(table, r, now, series_seconds))
        .collect();
    let backends = table
        .pools()
        .iter()
        .flat_map(|p| p.backends.iter())
        .map(|b| BackendState {
            pool: b.pool.to_string(),
            addr: b.addr.to_string(),
            ejected: b.is_ejected(),
            slow_start_percent: b
                .in_slow_start()
                .then(|| f64::from(b.ramp()) * 100.0 / f64::from(RAMP_FULL)),
            probe_failure: b.probe_failure().map(|f| f.to_string()),
        })
        .collect();
    Traffic {
        generation: table.generation,
        recent_seconds: RECENT_SECONDS,
        series_seconds,
        routes,
        backends,
    }
}

fn route(table: &RoutingTable, r: &Route, now: u64, seconds: u64) -> RouteTraffic {
    let weight = |p: &Pool| r.split().find(|(q, _)| q.name == p.name).map(|(_, w)| w);
    let mut weighted = Vec::new();
    let mut others = Vec::new();
    for p in table.pools() {
        let Some(window) = r.handles(p).map(|h| h.window()) else {
            continue;
        };
        let t = pool(&p.name, weight(p).unwrap_or(0), window, now, seconds);
        match weight(p) {
            Some(_) => weighted.push(t),
            None if t.series.requests.iter().any(|&n| n > 0) => others.push(t),
            None => {}
        }
    }
    // The split's order, as written, not the pools' declaration order.
    let order: Vec<_> = r.split().map(|(p, _)| p.name.clone()).collect();
    weighted.sort_by_key(|t| order.iter().position(|n| **n == *t.pool));
    weighted.extend(others);
    RouteTraffic {
        name: r.name.to_string(),
        path_prefix: r.path_prefix.to_string(),
        sticky: r.sticky.as_ref().map(|s| Sticky {
            header: s.header.as_ref().map(|h| h.to_string()),
            cookie: s.cookie.clone(),
        }),
        force_header: r.force_header.as_ref().map(|h| h.to_string()),
        failover: r.failover,
        rollout: table
            .rollouts
            .get(r.index)
            .cloned()
            .flatten()
            .map(|c| RolloutPlan {
                canary: c.canary.clone(),
                stable: c.stable.clone(),
                steps: c.steps.clone(),
                step_interval_ms: u64::try_from(c.step_interval.as_millis()).unwrap_or(u64::MAX),
            }),
        pools: weighted,
        // The shadow windows over the same seconds as the figures above
        // (with the current one: comparisons land after the answers);
        // samples come from `/routes/{route}/shadow`.
        shadow: crate::admin::shadow::pools(
            r,
            now,
            crate::api::ShadowQuery {
                seconds: RECENT_SECONDS,
                samples: 0,
            },
        ),
    }
}

fn pool(name: &str, weight: u32, w: &Window, now: u64, seconds: u64) -> PoolTraffic {
    // Complete seconds only: the current one is still being counted (and
    // in the clock's first second there is none).
    let last = now.checked_sub(1);
    let recent = last.map_or_else(Stats::default, |l| {
        w.since(l.saturating_sub(RECENT_SECONDS - 1), l)
    });
    PoolTraffic {
        pool: name.to_owned(),
        weight,
        requests_per_second: recent.requests as f64 / RECENT_SECONDS as f64,
        error_rate: recent.error_rate(),
        p99_seconds: p99(&recent).map(|ms| ms / 1000.0),
        series: series(w, last, seconds),
    }
}

/// One point per second of `last - seconds + 1 ..= last`.
fn series(w: &Window, last: Option<u64>, seconds: u64) -> Series {
    let mut s = Series::default();
    // Seconds before the clock's epoch have no slot: counted as empty.
    if let Some(last) = last {
        for sec in (last + 1).saturating_sub(seconds)..=last {
            let one = w.since(sec, sec);
            s.requests.push(one.requests);
            s.failures.push(one.failures);
            s.p99_ms.push(p99(&one));
        }
    }
    while (s.requests.len() as u64) < seconds {
        s.requests.insert(0, 0);
        s.failures.insert(0, 0);
        s.p99_ms.insert(0, None);
    }
    s
}

fn p99(s: &Stats) -> Option<f64> {
    s.percentile(0.99).map(|d| d.as_secs_f64() * 1000.0)
}

/// The current second of the windows' clock.
pub fn now() -> u64 {
    clock::secs(tokio::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn table(text: &str) -> RoutingTable {
        let c = crate::config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let mut registry = crate::table::Registry::default();
        registry.reconcile(&c);
        RoutingTable::build(&c, &registry, &mut Default::default(), 3)
    }

    const CONFIG: &str = r#"
[pools.blue]
backends = ["127.0.0.1:1"]
[pools.green]
backends = ["127.0.0.1:2"]
[pools.canary]
backends = ["127.0.0.1:3"]
[[routes]]
name = "web"
split = { canary = 10, blue = 90, green = 0 }
sticky = { header = "X-User-ID" }
force_header = "X-Switchyard-Pool"
[routes.rollout]
canary = "canary"
stable = "blue"
steps = [10, 100]
step_interval = "2s"
"#;

    #[test]
    fn pools_come_in_split_order_with_rates_over_complete_seconds() {
        let t = table(CONFIG);
        let blue = t.window("web", "blue").unwrap();
        // Seconds 91..=100 complete, 101 is the current one (not counted).
        for sec in 91..=100 {
            for i in 0..4 {
                blue.record(sec, sec == 100 && i == 0, Duration::from_millis(3));
            }
        }
        blue.record(101, true, Duration::from_millis(3));
        // Green has no weight but served forced requests: listed last.
        t.window("web", "green")
            .unwrap()
            .record(99, false, Duration::from_millis(1));
        let a = traffic(&t, 101, 5);
        assert_eq!(a.generation, 3);
        let r = &a.routes[0];
        let names: Vec<_> = r.pools.iter().map(|p| p.pool.as_str()).collect();
        assert_eq!(names, ["canary", "blue", "green"]);
        let b = &r.pools[1];
        assert_eq!(b.weight, 90);
        assert!((b.requests_per_second - 4.0).abs() < 1e-9);
        assert!((b.error_rate - 1.0 / 40.0).abs() < 1e-9);
        assert!(b.p99_seconds.unwrap() >= 0.003);
        assert_eq!(b.series.requests, [4, 4, 4, 4, 4]);
        assert_eq!(b.series.failures, [0, 0, 0, 0, 1]);
        assert_eq!(r.pools[2].weight, 0);
        assert_eq!(r.pools[2].series.requests, [0, 0, 0, 1, 0]);
        let canary = &r.pools[0];
        assert_eq!(
            (canary.requests_per_second, canary.p99_seconds),
            (0.0, None)
        );
        assert_eq!(canary.series.p99_ms, [None; 5]);
        assert_eq!(
            r.sticky.as_ref().and_then(|s| s.header.as_deref()),
            Some("x-user-id")
        );
        assert_eq!(r.force_header.as_deref(), Some("x-switchyard-pool"));
        let plan = r.rollout.as_ref().unwrap();
        assert_eq!(
            (plan.steps.clone(), plan.step_interval_ms),
            (vec![10, 100], 2000)
        );
        assert_eq!(a.backends.len(), 3);
        assert!(a
            .backends
            .iter()
            .all(|b| !b.ejected && b.slow_start_percent.is_none()));
    }

    #[test]
    fn series_near_the_epoch_are_padded_and_seconds_are_bounded() {
        let t = table(CONFIG);
        for now in [0, 2] {
            let a = traffic(&t, now, 10);
            assert!(a.routes[0]
                .pools
                .iter()
                .all(|p| p.series.requests.len() == 10));
        }
        assert_eq!(series_seconds(None), Ok(DEFAULT_SERIES_SECONDS));
        assert_eq!(series_seconds(Some("seconds=30")), Ok(30));
        assert!(series_seconds(Some("seconds=0")).is_err());
        assert!(series_seconds(Some("seconds=121")).is_err());
        assert!(series_seconds(Some("seconds=x")).is_err());
    }
}
