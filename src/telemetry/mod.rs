//! Prometheus metrics through the `metrics` facade and
//! `metrics-exporter-prometheus`, without a global recorder: each running
//! switchyard owns one `Telemetry` (so tests in one process do not share
//! counts).
//!
//! The hot path never looks a metric up: the request handles of every
//! (route, pool, backend, status class) live in `stats` (made through this
//! module's `Meters`), are kept there by name across generations, and sit
//! on the routes of each table; a request holds its own. Gauges, and counters that
//! live as atomics on backends, are set when `/metrics` is scraped. Series
//! that nothing touches for `IDLE` (a backend that left and drained) are
//! dropped from the output; live series are touched at every scrape.

pub mod access;
pub mod log_writer;
mod names;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use metrics_util::MetricKindMask;

pub use names::*;

use crate::shadow::Kind;
use crate::stats::shadow::{Dropped, ShadowMeters};
use crate::stats::Meters;
use crate::table::{Health, RoutingTable, UpstreamErrorKind};

/// Buckets of `switchyard_request_duration_seconds`: web APIs, 1 ms to 10 s.
pub const BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Untouched series are dropped after this long.
const IDLE: Duration = Duration::from_secs(60);

/// The metrics of one running switchyard.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// Access-log lines dropped because the writer fell behind.
    pub access_log_dropped: Arc<AtomicU64>,
    /// Webhook notifications by (sink, result), copied into their counters
    /// at every scrape so that a sink's count never expires. Written by the
    /// notifier (a few times per deployment event), never by the data plane.
    notifications: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

fn meta() -> Metadata<'static> {
    Metadata::new("switchyard", Level::INFO, Some(module_path!()))
}

fn labels(pairs: &[(&'static str, &str)]) -> Vec<Label> {
    pairs
        .iter()
        .map(|(k, v)| Label::new(*k, (*v).to_owned()))
        .collect()
}

impl Telemetry {
    pub fn new() -> Arc<Self> {
        let builder = PrometheusBuilder::new()
            .idle_timeout(MetricKindMask::COUNTER | MetricKindMask::GAUGE, Some(IDLE));
        let builder = match builder
            .set_buckets_for_metric(Matcher::Full(REQUEST_DURATION.to_owned()), &BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full(SHADOW_DURATION.to_owned()), &BUCKETS)
            }) {
            Ok(b) => b,
            // Only an empty bucket list is refused; ours is constant.
            Err(e) => unreachable!("constant histogram buckets refused: {e}"),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        Arc::new(Telemetry {
            recorder,
            handle,
            access_log_dropped: Arc::new(AtomicU64::new(0)),
            notifications: Mutex::default(),
        })
    }

    pub fn counter(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Counter {
        self.recorder
            .register_counter(&Key::from_parts(name, labels(pairs)), &meta())
    }

    pub fn gauge(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Gauge {
        self.recorder
            .register_gauge(&Key::from_parts(name, labels(pairs)), &meta())
    }

    fn histogram(&self, name: &'static str, pairs: &[(&'static str, &str)]) -> Histogram {
        self.recorder
            .register_histogram(&Key::from_parts(name, labels(pairs)), &meta())
    }

    /// Counts a reload or API change by result and source.
    pub fn count_change(&self, result: &str, source: &str) {
        self.counter(CONFIG_RELOADS, &[("result", result), ("source", source)])
            .increment(1);
    }

    /// Counts a webhook notification: `delivered`, `failed` or `dropped`.
    pub fn count_notification(&self, sink: &str, result: &'static str) {
        // A poisoned lock only means a panic elsewhere; the map stays valid.
        let mut counts = self
            .notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *counts.entry((sink.to_owned(), result)).or_default() += 1;
    }

    /// Notifications counted for `sink` with `result` so far.
    pub fn notifications(&self, sink: &str, result: &'static str) -> u64 {
        self.notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(sink.to_owned(), result))
            .copied()
            .unwrap_or(0)
    }

    /// Aggregates recorded histogram samples; call every few seconds.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text for `/metrics`: sets the gauges from `table`,
    /// copies backend counters, touches live series, renders.
    pub fn render(
        &self,
        table: &RoutingTable,
        connections: usize,
        tls_failures: &[(&'static str, u64)],
    ) -> String {
        table.touch_metrics();
        for pool in table.pools() {
            for b in pool.backends.iter() {
                let addr = b.addr.to_string();
                let l = [("pool", &*pool.name), ("backend", addr.as_str())];
                let up = b.health() == Health::Healthy
                    || (b.health() == Health::Unknown && b.is_available());
                self.gauge(BACKEND_HEALTHY, &l)
                    .set(if up { 1.0 } else { 0.0 });
                self.gauge(BACKEND_INFLIGHT, &l)
                    .set(f64::from(b.in_flight()));
                self.counter(EJECTIONS, &l).absolute(b.stats.ejections());
                for kind in UpstreamErrorKind::ALL {
                    let l = [
                        ("pool", &*pool.name),
                        ("backend", addr.as_str()),
                        ("kind", kind.label()),
                    ];
                    self.counter(UPSTREAM_ERRORS, &l)
                        .absolute(b.stats.errors(kind));
                }
            }
        }
        for r in table.routes() {
            for pool in table.pools() {
                let w = r
                    .split()
                    .find(|(p, _)| p.name == pool.name)
                    .map_or(0, |(_, w)| w);
                let l = [("route", &*r.name), ("pool", &*pool.name)];
                self.gauge(ROUTE_WEIGHT, &l).set(f64::from(w));
                // Issue 14: which pool is the route's standby, and whether
                // it is taking the route's traffic now.
                let standby = r.standby().filter(|(p, _)| p.name == pool.name);
                self.gauge(STANDBY, &l)
                    .set(if standby.is_some() { 1.0 } else { 0.0 });
                self.gauge(STANDBY_SERVING, &l)
                    .set(if standby.is_some_and(|(_, on)| on) {
                        1.0
                    } else {
                        0.0
                    });
            }
        }
        self.gauge(CONFIG_GENERATION, &[])
            .set(table.generation as f64);
        self.gauge(CONNECTIONS_ACTIVE, &[]).set(connections as f64);
        self.gauge(BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))])
            .set(1.0);
        self.counter(ACCESS_LOG_DROPPED, &[])
            .absolute(self.access_log_dropped.load(Ordering::Relaxed));
        self.counter(LOG_LINES_DROPPED, &[])
            .absolute(log_writer::dropped());
        for t in crate::stats::throttle::ALL {
            self.counter(LOG_EVENTS, &[("kind", t.kind)])
                .absolute(t.total());
            self.counter(LOG_SUPPRESSED, &[("kind", t.kind)])
                .absolute(t.suppressed_total());
        }
        for ((sink, result), n) in self
            .notifications
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
        {
            self.counter(NOTIFICATIONS, &[("sink", sink), ("result", result)])
                .absolute(*n);
        }
        for (reason, n) in tls_failures {
            self.counter(TLS_HANDSHAKE_FAILURES, &[("reason", reason)])
                .absolute(*n);
        }
        self.handle.render()
    }
}

/// The request handles of `stats` (which knows no metric names): made
/// here, with this recorder, under the names and labels of `/metrics`.
impl Meters for Telemetry {
    fn requests(&self, route: &str, pool: &str, backend: &str, class: &str) -> Counter {
        self.counter(
            REQUESTS,
            &[
                ("route", route),
                ("pool", pool),
                ("backend", backend),
                ("code", class),
            ],
        )
    }

    fn duration(&self, route: &str, pool: &str) -> Histogram {
        self.histogram(REQUEST_DURATION, &[("route", route), ("pool", pool)])
    }

    fn retries(&self, route: &str, pool: &str) -> Counter {
        self.counter(RETRIES, &[("route", route), ("pool", pool)])
    }

    fn shadow(&self, route: &str, pool: &str) -> Option<ShadowMeters> {
        let at = [("route", route), ("pool", pool)];
        let by = |name, key, value| self.counter(name, &[at[0], at[1], (key, value)]);
        let side = |s| self.histogram(SHADOW_DURATION, &[at[0], at[1], ("side", s)]);
        Some(ShadowMeters {
            mirrored: self.counter(SHADOW_MIRRORED, &at),
            compared: self.counter(SHADOW_COMPARED, &at),
            mismatched: Kind::ALL.map(|k| by(SHADOW_MISMATCHES, "kind", k.as_str())),
            errors: self.counter(SHADOW_ERRORS, &at),
            dropped: Dropped::ALL.map(|d| by(SHADOW_DROPPED, "reason", d.as_str())),
            primary: side("primary"),
            mirror: side("mirror"),
        })
    }
}
