//! `mirror` and `[routes.rollout] shadow` as serde sees them
//! (`deny_unknown_fields`, spans kept for errors).

use serde::Deserialize;
use toml::Spanned;

use crate::config::http::RawSize;

type Names = Option<Spanned<Vec<Spanned<String>>>>;

/// A route's `mirror = { pool = "green", percent = 10, ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawMirror {
    pub pool: Option<Spanned<String>>,
    pub percent: Option<Spanned<f64>>,
    pub methods: Names,
    pub max_body_bytes: Option<Spanned<RawSize>>,
    pub max_in_flight: Option<Spanned<i64>>,
    pub compare: Option<Spanned<RawCompare>>,
}

/// `compare = { body = "json", ignore = [...], ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCompare {
    pub body: Option<Spanned<String>>,
    pub ignore: Names,
    pub redact: Names,
    pub redact_headers: Names,
    pub max_body_bytes: Option<Spanned<RawSize>>,
}

/// `[routes.rollout] shadow = { duration = "5m", percent = 20, ... }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawShadowStep {
    pub duration: Option<Spanned<String>>,
    pub percent: Option<Spanned<f64>>,
    pub max_mismatch_rate: Option<Spanned<f64>>,
    pub max_error_rate: Option<Spanned<f64>>,
    pub max_latency_ratio: Option<Spanned<f64>>,
    pub min_requests: Option<Spanned<i64>>,
    pub methods: Names,
    pub max_body_bytes: Option<Spanned<RawSize>>,
    pub max_in_flight: Option<Spanned<i64>>,
    pub compare: Option<Spanned<RawCompare>>,
}
