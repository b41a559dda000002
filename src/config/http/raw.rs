//! The route and server keys of this module as serde sees them
//! (`deny_unknown_fields`, spans kept for errors).

use serde::Deserialize;
use toml::Spanned;

use crate::config::raw::Ordered;

/// `max_body_bytes = 10485760` or `"10MiB"` (nginx-style `"10m"` too).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum RawSize {
    Bytes(i64),
    Text(String),
}

/// `request_headers` / `response_headers`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeaderRules {
    pub set: Option<Spanned<Ordered<Spanned<String>>>>,
    pub add: Option<Spanned<Ordered<Spanned<String>>>>,
    pub remove: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `rewrite = { from = "^/old/(.*)", to = "/new/$1" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRewrite {
    pub from: Option<Spanned<String>>,
    pub to: Option<Spanned<String>>,
}

/// `rate_limit = { rate = "100/s", burst = 50, key = "ip" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub rate: Option<Spanned<String>>,
    pub burst: Option<Spanned<i64>>,
    pub key: Option<Spanned<String>>,
}

/// `respond` / `maintenance_response`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRespond {
    pub status: Option<Spanned<i64>>,
    pub body: Option<Spanned<String>>,
    pub content_type: Option<Spanned<String>>,
    pub retry_after: Option<Spanned<String>>,
}

/// `redirect = { to = "...", status = 301 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedirect {
    pub to: Option<Spanned<String>>,
    pub status: Option<Spanned<i64>>,
}
