//! `GET /routes/{route}/shadow`: a route's shadow traffic — per mirror
//! pool the shadow window over the last seconds (copies, comparisons,
//! mismatches by kind, mirror errors, dropped copies, both sides'
//! latency) and the latest mismatch samples, secrets already redacted
//! (built by `admin::shadow`; read by `ctl shadow diff` and the console).

use serde::{Deserialize, Serialize};

use crate::event::names;

names! {
    /// Why a pair mismatched (the first that differs, in this order).
    MismatchKind {
        /// 2xx against 5xx, and the like.
        StatusClass = "status_class",
        /// Same class, another status (200 against 201).
        Status = "status",
        /// Same status, another body.
        Body = "body",
    }
}

/// The whole answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowAnswer {
    pub route: String,
    /// The routing table generation read.
    pub generation: u64,
    /// Seconds summed in each pool's `window`: the last N up to and
    /// including the current one.
    pub seconds: u64,
    /// Where the route's copies go: its `mirror` pool and its rollout's
    /// shadow-step pool (one entry when they are the same pool).
    pub pools: Vec<ShadowPool>,
}

/// One mirror pool of the route.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowPool {
    pub pool: String,
    /// Copies go here now (the shadow step, while it runs, takes the
    /// place of the route's `mirror`).
    pub active: bool,
    /// The share copied by the route's `mirror`, when it names this pool.
    pub mirror_percent: Option<f64>,
    /// The share copied during the rollout's shadow step, when its canary
    /// is this pool.
    pub step_percent: Option<f64>,
    pub window: ShadowWindowTotals,
    /// The latest mismatched pairs, newest first (at most the `samples`
    /// asked for; the proxy keeps 32 per pool and admits a few a second).
    pub samples: Vec<ShadowSample>,
}

/// A shadow window summed over the answer's `seconds`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ShadowWindowTotals {
    /// Copies sent.
    pub mirrored: u64,
    /// Pairs with both answers, compared.
    pub compared: u64,
    /// Mismatched pairs, all kinds.
    pub mismatched: u64,
    pub mismatched_status_class: u64,
    pub mismatched_status: u64,
    pub mismatched_body: u64,
    /// Mismatched / compared (0 without comparisons).
    pub mismatch_rate: f64,
    /// Copies the mirror did not answer (connect error, reset, timeout).
    pub mirror_errors: u64,
    /// Compared pairs whose mirror answered 5xx.
    pub mirror_5xx: u64,
    /// (Mirror errors + mirror 5xx) / (compared + mirror errors).
    pub error_rate: f64,
    /// Copies due but not sent: the worker's `max_in_flight` was reached.
    pub dropped_in_flight: u64,
    /// Copies due but not sent: the request body was over the limit.
    pub dropped_body_too_big: u64,
    /// Compared pairs whose bodies could not be (too big, compressed).
    pub body_skipped: u64,
    /// p99 of the time to the response headers, compared pairs only.
    pub primary_p99_ms: Option<f64>,
    pub mirror_p99_ms: Option<f64>,
    /// The mirror's p99 over the primary's on the same pairs (what the
    /// shadow step's `max_latency_ratio` limits).
    pub p99_latency_ratio: Option<f64>,
}

/// One answer of a mismatched pair.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowSide {
    pub status: u16,
    /// Time to the response headers.
    pub latency_ms: f64,
    /// Response headers in the order received, secrets redacted.
    pub headers: Vec<(String, String)>,
}

/// One mismatched pair, as kept (secrets were redacted before it was).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowSample {
    /// When it was compared (Unix ms).
    pub at_ms: u64,
    pub method: String,
    /// Path and query, secret-looking query values redacted.
    pub target: String,
    /// The client's request headers, secrets redacted.
    pub request_headers: Vec<(String, String)>,
    pub primary: ShadowSide,
    pub mirror: ShadowSide,
    pub kind: MismatchKind,
    /// The short diff, primary → mirror (`$.price: 12 → 1`).
    pub diff: Vec<String>,
}

/// `?seconds=N&samples=N` of `GET /routes/{route}/shadow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShadowQuery {
    /// 1..=120 (the window ring holds no more).
    pub seconds: u64,
    /// Samples per pool, 0..=32.
    pub samples: usize,
}

impl ShadowQuery {
    pub const MAX_SECONDS: u64 = 120;
    pub const MAX_SAMPLES: usize = 32;

    /// Defaults: the last 60 seconds, every sample kept.
    pub const DEFAULT: ShadowQuery = ShadowQuery {
        seconds: 60,
        samples: Self::MAX_SAMPLES,
    };

    /// Reads a query string; a value out of range is an error that says
    /// which.
    pub fn parse(query: Option<&str>) -> Result<Self, String> {
        let mut q = Self::DEFAULT;
        for (k, v) in query
            .unwrap_or("")
            .split('&')
            .filter_map(|kv| kv.split_once('='))
        {
            match k {
                "seconds" => {
                    q.seconds = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=Self::MAX_SECONDS).contains(n))
                        .ok_or_else(|| {
                            format!(
                                "seconds must be a whole number from 1 to {}, got {v:?}",
                                Self::MAX_SECONDS
                            )
                        })?;
                }
                "samples" => {
                    q.samples = v
                        .parse()
                        .ok()
                        .filter(|n| *n <= Self::MAX_SAMPLES)
                        .ok_or_else(|| {
                            format!(
                                "samples must be a whole number from 0 to {}, got {v:?}",
                                Self::MAX_SAMPLES
                            )
                        })?;
                }
                _ => {}
            }
        }
        Ok(q)
    }

    /// The full path for `route` with this query.
    pub fn path(&self, route: &str) -> String {
        format!(
            "{}?seconds={}&samples={}",
            super::path(super::paths::SHADOW, &[route]),
            self.seconds,
            self.samples
        )
    }
}

/// The shadow step of a rollout while it runs (paused or not): its
/// settings and the shadow window since it began, refreshed at every tick.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ShadowProgress {
    /// Where copies go (the rollout's canary).
    pub pool: String,
    /// The share of the route's requests copied.
    pub percent: f64,
    /// When the step (or its last resume) began, Unix ms.
    pub started_ms: u64,
    /// How long it lasts before a passing check moves to step 1.
    pub duration_ms: u64,
    pub min_requests: u64,
    pub max_mismatch_rate: f64,
    pub max_error_rate: f64,
    pub max_latency_ratio: Option<f64>,
    /// Since `started_ms`.
    pub window: ShadowWindowTotals,
}
