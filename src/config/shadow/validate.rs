//! Validation of `mirror` and `[routes.rollout] shadow`: every problem is
//! reported with its key and position, like the rest of the file.

use std::time::Duration;

use http::{HeaderName, Method};
use toml::Spanned;

use super::*;
use crate::config::error::closest;
use crate::config::http::{parse_size, RawSize};
use crate::config::validate::Validator;
use crate::config::values::{ms, DAY};

/// Largest `max_body_bytes` of either kind: copies and kept answers live in
/// memory.
const MAX_KEPT_BYTES: u64 = 64 << 20;

/// The keys the mirror and the shadow step share, borrowed from either.
pub(in crate::config) struct RawOptions<'a> {
    pub methods: &'a Option<Spanned<Vec<Spanned<String>>>>,
    pub max_body_bytes: &'a Option<Spanned<RawSize>>,
    pub max_in_flight: &'a Option<Spanned<i64>>,
    pub compare: &'a Option<Spanned<RawCompare>>,
}

/// The rollout's own values a shadow step falls back to.
pub(in crate::config) struct StepDefaults {
    pub duration: Duration,
    pub max_error_rate: f64,
    pub max_latency_ratio: Option<f64>,
    pub min_requests: u64,
}

impl Validator<'_> {
    /// A route's `mirror`. `answers`: the route answers by itself
    /// (`respond`, `redirect`), so there is nothing to copy.
    pub(in crate::config) fn mirror(
        &mut self,
        key: &str,
        raw: &Spanned<RawMirror>,
        pool_names: &[&str],
        answers: bool,
    ) -> Option<MirrorConfig> {
        let key = format!("{key}.mirror");
        let m = raw.get_ref();
        if answers {
            self.error(
                raw.span(),
                &key,
                "a route that answers by itself has no requests to mirror",
                None,
            );
            return None;
        }
        let pool = match &m.pool {
            None => {
                self.error(
                    raw.span(),
                    format!("{key}.pool"),
                    "mirror has no pool",
                    Some("e.g. mirror = { pool = \"green\", percent = 10 }".into()),
                );
                return None;
            }
            Some(p) if !pool_names.contains(&p.get_ref().as_str()) => {
                let hint = match closest(p.get_ref(), pool_names.iter().copied()) {
                    Some(c) => format!(
                        "did you mean {c:?}? defined pools: {}",
                        pool_names.join(", ")
                    ),
                    None => format!("defined pools: {}", pool_names.join(", ")),
                };
                self.error(
                    p.span(),
                    format!("{key}.pool"),
                    format!("mirror names unknown pool {:?}", p.get_ref()),
                    Some(hint),
                );
                return None;
            }
            Some(p) => p.get_ref().clone(),
        };
        let percent = self.percent(&format!("{key}.percent"), m.percent.as_ref(), 100.0);
        let copy = self.mirror_options(
            &key,
            RawOptions {
                methods: &m.methods,
                max_body_bytes: &m.max_body_bytes,
                max_in_flight: &m.max_in_flight,
                compare: &m.compare,
            },
        );
        Some(MirrorConfig {
            pool,
            percent,
            copy,
        })
    }

    /// `[routes.rollout] shadow`; `key` is the rollout's.
    pub(in crate::config) fn shadow_step(
        &mut self,
        key: &str,
        raw: &Spanned<RawShadowStep>,
        defaults: StepDefaults,
    ) -> ShadowStepConfig {
        let key = format!("{key}.shadow");
        let s = raw.get_ref();
        let duration = self.duration_in(
            &format!("{key}.duration"),
            s.duration.as_ref(),
            defaults.duration,
            ms(10)..=DAY,
        );
        let percent = self.percent(
            &format!("{key}.percent"),
            s.percent.as_ref(),
            DEFAULT_SHADOW_PERCENT,
        );
        if s.percent.as_ref().is_some_and(|p| *p.get_ref() == 0.0) {
            let span = s.percent.as_ref().map_or(raw.span(), |p| p.span());
            self.error(
                span,
                format!("{key}.percent"),
                "a shadow step that mirrors nothing can never pass",
                Some("use a share above 0, e.g. percent = 20".into()),
            );
        }
        let fraction = |this: &mut Self, name: &str, v: &Option<Spanned<f64>>, max: f64| {
            let v = v.as_ref()?;
            if !(0.0..=max).contains(v.get_ref()) {
                this.error(
                    v.span(),
                    format!("{key}.{name}"),
                    format!("{name} must be between 0 and {max}"),
                    None,
                );
            }
            Some(*v.get_ref())
        };
        let max_mismatch_rate = fraction(self, "max_mismatch_rate", &s.max_mismatch_rate, 1.0)
            .unwrap_or(DEFAULT_MAX_MISMATCH_RATE);
        let max_error_rate = fraction(self, "max_error_rate", &s.max_error_rate, 1.0)
            .unwrap_or(defaults.max_error_rate);
        let max_latency_ratio = fraction(self, "max_latency_ratio", &s.max_latency_ratio, f64::MAX)
            .or(defaults.max_latency_ratio);
        let min_requests = self.int(
            &format!("{key}.min_requests"),
            s.min_requests.as_ref(),
            0,
            1_000_000_000,
            defaults.min_requests as i64,
        ) as u64;
        let copy = self.mirror_options(
            &key,
            RawOptions {
                methods: &s.methods,
                max_body_bytes: &s.max_body_bytes,
                max_in_flight: &s.max_in_flight,
                compare: &s.compare,
            },
        );
        ShadowStepConfig {
            duration,
            percent,
            max_mismatch_rate,
            max_error_rate,
            max_latency_ratio,
            min_requests,
            copy,
        }
    }

    fn percent(&mut self, key: &str, raw: Option<&Spanned<f64>>, default: f64) -> f64 {
        let Some(raw) = raw else { return default };
        let v = *raw.get_ref();
        if !(0.0..=100.0).contains(&v) {
            self.error(
                raw.span(),
                key,
                format!("{v} is not a percentage"),
                Some("use 0 to 100, e.g. percent = 10".into()),
            );
            return default;
        }
        v
    }

    fn mirror_options(&mut self, key: &str, raw: RawOptions<'_>) -> MirrorOptions {
        let d = MirrorOptions::default();
        let methods = match raw.methods {
            None => d.methods,
            Some(list) => self.methods(&format!("{key}.methods"), list),
        };
        MirrorOptions {
            methods,
            max_body_bytes: self.size(
                &format!("{key}.max_body_bytes"),
                raw.max_body_bytes.as_ref(),
                d.max_body_bytes,
            ),
            max_in_flight: self.int(
                &format!("{key}.max_in_flight"),
                raw.max_in_flight.as_ref(),
                1,
                100_000,
                i64::from(d.max_in_flight),
            ) as u32,
            compare: raw
                .compare
                .as_ref()
                .map(|c| self.compare(&format!("{key}.compare"), c))
                .unwrap_or_default(),
        }
    }

    fn methods(&mut self, key: &str, raw: &Spanned<Vec<Spanned<String>>>) -> Vec<Method> {
        let mut out: Vec<Method> = Vec::new();
        if raw.get_ref().is_empty() {
            self.error(
                raw.span(),
                key,
                "an empty list mirrors nothing",
                Some("remove the mirror, or list methods, e.g. [\"GET\", \"HEAD\"]".into()),
            );
        }
        for m in raw.get_ref() {
            let name = m.get_ref();
            let upper = name.to_ascii_uppercase();
            let problem = match Method::from_bytes(name.as_bytes()) {
                Err(_) => Some((format!("invalid method {name:?}"), None)),
                Ok(_) if *name != upper => Some((
                    format!("methods are case-sensitive; {name:?} is not {upper:?}"),
                    Some(format!("did you mean {upper:?}?")),
                )),
                Ok(Method::CONNECT) => {
                    Some(("CONNECT opens a tunnel and cannot be mirrored".into(), None))
                }
                Ok(method) => {
                    if !out.contains(&method) {
                        out.push(method);
                    }
                    None
                }
            };
            if let Some((message, hint)) = problem {
                self.error(m.span(), key, message, hint);
            }
        }
        out
    }

    fn size(&mut self, key: &str, raw: Option<&Spanned<RawSize>>, default: u64) -> u64 {
        let Some(raw) = raw else { return default };
        let parsed = match raw.get_ref() {
            RawSize::Bytes(n) => u64::try_from(*n).map_err(|_| "a size cannot be negative"),
            RawSize::Text(s) => parse_size(s),
        };
        match parsed {
            Ok(n) if n <= MAX_KEPT_BYTES => n,
            Ok(_) => {
                self.error(
                    raw.span(),
                    key,
                    "the size is above 64MiB",
                    Some(
                        "copies and compared answers are held in memory; use at most \"64MiB\""
                            .into(),
                    ),
                );
                default
            }
            Err(why) => {
                self.error(
                    raw.span(),
                    key,
                    format!("invalid size: {why}"),
                    Some("e.g. \"64KiB\" (0: only bodiless requests / status only)".into()),
                );
                default
            }
        }
    }

    fn compare(&mut self, key: &str, raw: &Spanned<RawCompare>) -> CompareConfig {
        let c = raw.get_ref();
        let body = match c.body.as_ref().map(|b| (b, b.get_ref().as_str())) {
            None | Some((_, "none")) => BodyCompare::None,
            Some((_, "hash")) => BodyCompare::Hash,
            Some((_, "json")) => BodyCompare::Json,
            Some((b, other)) => {
                self.error(
                    b.span(),
                    format!("{key}.body"),
                    format!("unknown body comparison {other:?}"),
                    Some("use \"none\", \"hash\" or \"json\"".into()),
                );
                BodyCompare::None
            }
        };
        let paths = |this: &mut Self, name: &str, list: &Option<Spanned<Vec<Spanned<String>>>>| {
            let Some(list) = list else { return Vec::new() };
            if body != BodyCompare::Json && !list.get_ref().is_empty() {
                this.error(
                    list.span(),
                    format!("{key}.{name}"),
                    format!("{name} names JSON fields, but bodies are not compared as JSON"),
                    Some("add body = \"json\" to the compare table".into()),
                );
            }
            let mut out = Vec::new();
            for p in list.get_ref() {
                match JsonPath::parse(p.get_ref()) {
                    Ok(path) => out.push(path),
                    Err(e) => this.error(
                        p.span(),
                        format!("{key}.{name}"),
                        format!("invalid JSON path {:?}: {}", p.get_ref(), e.message),
                        Some(e.hint.into()),
                    ),
                }
            }
            out
        };
        let ignore = paths(self, "ignore", &c.ignore);
        let redact = paths(self, "redact", &c.redact);
        let redact_headers = match &c.redact_headers {
            None => Vec::new(),
            Some(list) => list
                .get_ref()
                .iter()
                .filter_map(|h| self.header_name(&format!("{key}.redact_headers"), h))
                .collect::<Vec<HeaderName>>(),
        };
        let max_body_bytes = self.size(
            &format!("{key}.max_body_bytes"),
            c.max_body_bytes.as_ref(),
            DEFAULT_COMPARE_BODY_BYTES,
        );
        if body == BodyCompare::Json && max_body_bytes == 0 {
            let span = c.max_body_bytes.as_ref().map_or(raw.span(), |m| m.span());
            self.error(
                span,
                format!("{key}.max_body_bytes"),
                "bodies are compared as JSON, but none may be kept",
                Some("use a size above 0, or body = \"hash\" (nothing is kept)".into()),
            );
        }
        CompareConfig {
            body,
            ignore,
            redact,
            redact_headers,
            max_body_bytes,
        }
    }
}
