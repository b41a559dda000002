//! The configuration file as serde sees it: every table and key the TOML may
//! contain, with `deny_unknown_fields` everywhere and spans on the values that
//! validation needs to point at. Nothing here is interpreted; `validate` turns
//! it into the typed model in `model`.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

/// A TOML table kept in the order it was written (pools, split weights).
#[derive(Debug)]
pub struct Ordered<V>(pub Vec<(Spanned<String>, V)>);

impl<V> Default for Ordered<V> {
    fn default() -> Self {
        Ordered(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Ordered<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V2<V>(PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = Ordered<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some((k, v)) = map.next_entry()? {
                    out.push((k, v));
                }
                Ok(Ordered(out))
            }
        }
        d.deserialize_map(V2(PhantomData))
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    #[serde(default)]
    pub health: RawHealth,
    #[serde(default)]
    pub outlier: RawOutlier,
    #[serde(default)]
    pub retry: RawRetry,
    #[serde(default)]
    pub pools: Ordered<Spanned<RawPool>>,
    #[serde(default)]
    pub routes: Vec<Spanned<RawRoute>>,
    pub tls: Option<Spanned<RawTls>>,
    #[serde(default)]
    pub notify: Vec<Spanned<RawNotify>>,
    pub cluster: Option<Spanned<super::cluster::RawCluster>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<Spanned<String>>,
    pub workers: Option<Spanned<i64>>,
    pub shutdown_grace: Option<Spanned<String>>,
    pub connect_timeout: Option<Spanned<String>>,
    pub upstream_timeout: Option<Spanned<String>>,
    pub upstream_idle_timeout: Option<Spanned<String>>,
    pub upstream_max_idle: Option<Spanned<i64>>,
    pub client_header_timeout: Option<Spanned<String>>,
    pub max_header_bytes: Option<Spanned<i64>>,
    pub max_headers: Option<Spanned<i64>>,
    pub underscores_in_headers: Option<Spanned<bool>>,
    pub watch: Option<Spanned<String>>,
    pub watch_interval: Option<Spanned<String>>,
    pub listen_tls: Option<Spanned<String>>,
    pub redirect_http: Option<Spanned<bool>>,
    pub redirect_https_port: Option<Spanned<i64>>,
    pub acme_passthrough: Option<Spanned<bool>>,
    pub hsts: Option<Spanned<String>>,
    pub access_log: Option<Spanned<String>>,
    pub access_log_format: Option<Spanned<String>>,
    pub access_log_buffer: Option<Spanned<i64>>,
    /// Request body limit (`config::http`).
    pub max_body_bytes: Option<Spanned<super::http::RawSize>>,
    /// PROXY protocol on the listeners (`config::http`).
    pub proxy_protocol: Option<Spanned<bool>>,
    /// Peers whose PROXY header and `X-Forwarded-For` are believed.
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,
    pub http1: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    pub listen: Option<Spanned<String>>,
    pub token_env: Option<Spanned<String>>,
    pub token_file: Option<Spanned<String>>,
    pub history_file: Option<Spanned<String>>,
    pub metrics: Option<bool>,
    pub metrics_open: Option<bool>,
    pub allowed_hosts: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub enabled: Option<bool>,
    pub path: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub interval: Option<Spanned<String>>,
    pub timeout: Option<Spanned<String>>,
    pub healthy_threshold: Option<Spanned<i64>>,
    pub unhealthy_threshold: Option<Spanned<i64>>,
    pub expect_status: Option<Spanned<String>>,
}

/// `[outlier]` defaults and `[pools.NAME.outlier]` overrides (passive
/// ejection).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOutlier {
    pub consecutive_failures: Option<Spanned<i64>>,
    pub ejection_time: Option<Spanned<String>>,
    pub max_ejection_time: Option<Spanned<String>>,
    pub max_ejected_percent: Option<Spanned<i64>>,
}

/// `[retry]` defaults and `[pools.NAME.retry]` overrides.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub retries: Option<Spanned<i64>>,
    pub per_try_timeout: Option<Spanned<String>>,
    pub budget_percent: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    #[serde(default)]
    pub backends: Vec<Spanned<RawBackend>>,
    pub balance: Option<Spanned<String>>,
    pub resolve_interval: Option<Spanned<String>>,
    pub health: Option<RawHealth>,
    pub outlier: Option<RawOutlier>,
    pub retry: Option<RawRetry>,
    pub slow_start: Option<Spanned<String>>,
    pub tls: Option<Spanned<bool>>,
    pub ca_file: Option<Spanned<String>>,
    pub tls_server_name: Option<Spanned<String>>,
    pub tls_insecure_skip_verify: Option<Spanned<bool>>,
}

/// `"127.0.0.1:8001"` or `{ addr = "127.0.0.1:8001", weight = 3 }`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawBackend {
    Addr(String),
    Weighted(RawWeightedBackend),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWeightedBackend {
    pub addr: String,
    #[serde(default = "one")]
    pub weight: i64,
    /// Set by `POST /backends/{pool}/{addr}/drain`: no new requests.
    #[serde(default)]
    pub drain: bool,
}

fn one() -> i64 {
    1
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    pub name: Option<Spanned<String>>,
    pub host: Option<Spanned<String>>,
    pub path_prefix: Option<Spanned<String>>,
    pub split: Option<Spanned<Ordered<Spanned<i64>>>>,
    pub sticky: Option<Spanned<RawSticky>>,
    pub force_header: Option<Spanned<String>>,
    pub failover: Option<bool>,
    pub rollout: Option<Spanned<RawRollout>>,
    // What the route does besides choosing a pool (`config::http`).
    pub max_body_bytes: Option<Spanned<super::http::RawSize>>,
    pub strip_prefix: Option<Spanned<bool>>,
    pub rewrite: Option<Spanned<super::http::RawRewrite>>,
    pub request_headers: Option<Spanned<super::http::RawHeaderRules>>,
    pub response_headers: Option<Spanned<super::http::RawHeaderRules>>,
    pub rate_limit: Option<Spanned<super::http::RawRateLimit>>,
    pub respond: Option<Spanned<super::http::RawRespond>>,
    pub maintenance: Option<Spanned<bool>>,
    pub maintenance_response: Option<Spanned<super::http::RawRespond>>,
    pub redirect: Option<Spanned<super::http::RawRedirect>>,
    pub standby: Option<Spanned<String>>,
    /// Shadow traffic (`config::shadow`).
    pub mirror: Option<Spanned<super::shadow::RawMirror>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRollout {
    pub canary: Option<Spanned<String>>,
    pub stable: Option<Spanned<String>>,
    pub steps: Option<Spanned<Vec<i64>>>,
    pub step_interval: Option<Spanned<String>>,
    pub min_requests: Option<Spanned<i64>>,
    pub max_error_rate: Option<Spanned<f64>>,
    pub max_p99_latency: Option<Spanned<String>>,
    pub max_error_rate_increase: Option<Spanned<f64>>,
    pub max_latency_ratio: Option<Spanned<f64>>,
    pub failure_threshold: Option<Spanned<i64>>,
    pub max_wait: Option<Spanned<String>>,
    pub on_insufficient_traffic: Option<Spanned<String>>,
    pub shadow: Option<Spanned<super::shadow::RawShadowStep>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSticky {
    pub header: Option<Spanned<String>>,
    pub cookie: Option<Spanned<String>>,
}

/// `[tls]`: the default certificate and `[[tls.certs]]` chosen by SNI.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
    #[serde(default)]
    pub certs: Vec<Spanned<RawTlsCert>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTlsCert {
    pub hosts: Option<Spanned<Vec<Spanned<String>>>>,
    pub cert: Option<Spanned<String>>,
    pub key: Option<Spanned<String>>,
}

/// `[[notify]]`: a webhook that deployment events are posted to.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub url: Option<Spanned<String>>,
    pub events: Option<Spanned<Vec<Spanned<String>>>>,
    pub timeout: Option<Spanned<String>>,
    pub retries: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<String>>,
    pub headers: Option<Spanned<Ordered<Spanned<String>>>>,
    pub ca_file: Option<Spanned<String>>,
}
