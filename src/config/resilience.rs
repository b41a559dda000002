//! Validation of the resilience settings: `[outlier]`, `[retry]` (global
//! defaults, each overridable per pool like `[health]`) and a pool's
//! `slow_start`. Kept apart from `validate` so that file stays about the
//! routing shape.

use std::time::Duration;

use toml::Spanned;

use super::model::{OutlierConfig, RetryConfig};
use super::raw::{RawOutlier, RawRetry};
use super::validate::Validator;

/// Upper bound on `retries`; the proxy tracks tried backends in a fixed
/// array of `MAX_RETRIES + 1` ids.
pub const MAX_RETRIES: u32 = 5;

impl Validator<'_> {
    /// `[outlier]` (key "outlier") or `[pools.NAME.outlier]` merged over `base`.
    pub(crate) fn outlier(
        &mut self,
        key: &str,
        raw: &RawOutlier,
        base: &OutlierConfig,
    ) -> OutlierConfig {
        let consecutive_failures = self.int(
            &format!("{key}.consecutive_failures"),
            raw.consecutive_failures.as_ref(),
            0,
            1000,
            i64::from(base.consecutive_failures),
        ) as u32;
        let ejection_time = self.duration(
            &format!("{key}.ejection_time"),
            raw.ejection_time.as_ref(),
            base.ejection_time,
            false,
        );
        let max_ejection_time = self.duration(
            &format!("{key}.max_ejection_time"),
            raw.max_ejection_time.as_ref(),
            base.max_ejection_time,
            false,
        );
        if max_ejection_time < ejection_time {
            let (name, at) = match (&raw.max_ejection_time, &raw.ejection_time) {
                (Some(m), _) => ("max_ejection_time", m.span()),
                (None, Some(e)) => ("ejection_time", e.span()),
                (None, None) => ("max_ejection_time", 0..0),
            };
            self.error(
                at,
                format!("{key}.{name}"),
                format!(
                    "max_ejection_time {max_ejection_time:?} is shorter than ejection_time {ejection_time:?}"
                ),
                Some("repeated ejections grow from ejection_time up to max_ejection_time".into()),
            );
        }
        let max_ejected_percent = self.int(
            &format!("{key}.max_ejected_percent"),
            raw.max_ejected_percent.as_ref(),
            0,
            100,
            i64::from(base.max_ejected_percent),
        ) as u32;
        OutlierConfig {
            consecutive_failures,
            ejection_time,
            max_ejection_time,
            max_ejected_percent,
        }
    }

    /// `[retry]` (key "retry") or `[pools.NAME.retry]` merged over `base`.
    pub(crate) fn retry(&mut self, key: &str, raw: &RawRetry, base: &RetryConfig) -> RetryConfig {
        let retries = self.int(
            &format!("{key}.retries"),
            raw.retries.as_ref(),
            0,
            i64::from(MAX_RETRIES),
            i64::from(base.retries),
        ) as u32;
        let per_try_timeout = match &raw.per_try_timeout {
            None => base.per_try_timeout,
            Some(t) => Some(self.duration(
                &format!("{key}.per_try_timeout"),
                Some(t),
                Duration::from_secs(1),
                false,
            )),
        };
        let budget_percent = self.int(
            &format!("{key}.budget_percent"),
            raw.budget_percent.as_ref(),
            0,
            100,
            i64::from(base.budget_percent),
        ) as u32;
        RetryConfig {
            retries,
            per_try_timeout,
            budget_percent,
        }
    }

    /// A pool's `slow_start`; "0s" (or no key) means none.
    pub(crate) fn slow_start(
        &mut self,
        pool_key: &str,
        raw: Option<&Spanned<String>>,
    ) -> Option<Duration> {
        let d = self.duration(&format!("{pool_key}.slow_start"), raw, Duration::ZERO, true);
        if d > Duration::from_secs(3600) {
            if let Some(raw) = raw {
                self.error(
                    raw.span(),
                    format!("{pool_key}.slow_start"),
                    format!("slow start {d:?} is longer than an hour"),
                    Some("use a few seconds to a few minutes".into()),
                );
            }
            return None;
        }
        (!d.is_zero()).then_some(d)
    }
}
