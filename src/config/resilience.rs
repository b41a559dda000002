//! Validation of the resilience settings: `[outlier]`, `[retry]` (global
//! defaults, each overridable per pool like `[health]`) and a pool's
//! `slow_start`. Kept apart from `validate` so that file stays about the
//! routing shape.

use std::time::Duration;

use toml::Spanned;

use super::model::{OutlierConfig, RetryConfig};
use super::raw::{RawOutlier, RawRetry};
use super::validate::Validator;
use super::values::{DAY, HOUR, MS};

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
        let ejection_time = self.duration_in(
            &format!("{key}.ejection_time"),
            raw.ejection_time.as_ref(),
            base.ejection_time,
            MS..=DAY,
        );
        let max_ejection_time = self.duration_in(
            &format!("{key}.max_ejection_time"),
            raw.max_ejection_time.as_ref(),
            base.max_ejection_time,
            MS..=DAY,
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
            Some(t) => Some(self.duration_in(
                &format!("{key}.per_try_timeout"),
                Some(t),
                Duration::from_secs(1),
                MS..=DAY,
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
        let d = self.duration_in(
            &format!("{pool_key}.slow_start"),
            raw,
            Duration::ZERO,
            Duration::ZERO..=HOUR,
        );
        (!d.is_zero()).then_some(d)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::config::{parse, OutlierConfig, RetryConfig};

    const POOL: &str = "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n";
    const ROUTE: &str = "[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n";

    #[test]
    fn defaults_and_per_pool_overrides_merge() {
        let text = format!(
            "[outlier]\nconsecutive_failures = 3\n[retry]\nretries = 1\nper_try_timeout = \"2s\"\n\
             {POOL}slow_start = \"30s\"\noutlier = {{ ejection_time = \"5s\" }}\nretry = {{ budget_percent = 50 }}\n\
             [pools.green]\nbackends = [\"127.0.0.1:2\"]\n{ROUTE}failover = false\n"
        );
        let c = parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        let (blue, green) = (&c.pools[0], &c.pools[1]);
        assert_eq!(
            blue.outlier,
            OutlierConfig {
                consecutive_failures: 3,
                ejection_time: Duration::from_secs(5),
                ..OutlierConfig::default()
            }
        );
        assert_eq!(
            blue.retry,
            RetryConfig {
                retries: 1,
                per_try_timeout: Some(Duration::from_secs(2)),
                budget_percent: 50,
            }
        );
        assert_eq!(blue.slow_start, Some(Duration::from_secs(30)));
        assert_eq!(green.outlier.consecutive_failures, 3);
        assert_eq!(green.retry.budget_percent, 20);
        assert_eq!(green.slow_start, None);
        assert!(!c.routes[0].failover);
    }

    #[test]
    fn defaults_without_any_key() {
        let c = parse(&format!("{POOL}{ROUTE}"), Path::new("t.toml")).unwrap();
        assert_eq!(c.pools[0].outlier, OutlierConfig::default());
        assert_eq!(c.pools[0].retry, RetryConfig::default());
        assert!(c.routes[0].failover);
    }

    #[test]
    fn invalid_values_name_line_column_and_key() {
        let cases = [
            (
                "[retry]\nretries = 9\n",
                "2:11: retry.retries",
                "out of range",
            ),
            (
                "[outlier]\nmax_ejected_percent = 150\n",
                "2:23: outlier.max_ejected_percent",
                "out of range",
            ),
            (
                "[outlier]\nejection_time = \"1m\"\nmax_ejection_time = \"10s\"\n",
                "3:21: outlier.max_ejection_time",
                "shorter than ejection_time",
            ),
            (
                "[retry]\nper_try_timeout = \"0s\"\n",
                "2:19: retry.per_try_timeout",
                "greater than zero",
            ),
            (
                "[health]\ninterval = \"1s\"\ntimeout = \"1s\"\n",
                "3:11: health.timeout",
                "not shorter than the interval",
            ),
        ];
        for (head, at, fragment) in cases {
            let text = format!("{head}{POOL}{ROUTE}");
            let err = parse(&text, Path::new("bad.toml")).unwrap_err();
            let d = &err.diagnostics()[0];
            assert_eq!(format!("{}:{}: {}", d.line, d.column, d.key), at, "{err}");
            assert!(d.message.contains(fragment), "{err}");
        }
        let text =
            format!("{POOL}slow_start = \"soon\"\nretry = {{ budget_percent = -1 }}\n{ROUTE}");
        let err = parse(&text, Path::new("bad.toml")).unwrap_err();
        let keys: Vec<String> = err
            .diagnostics()
            .iter()
            .map(|d| format!("{}:{}: {}", d.line, d.column, d.key))
            .collect();
        assert_eq!(
            keys,
            [
                "4:28: pools.blue.retry.budget_percent",
                "3:14: pools.blue.slow_start"
            ]
        );
    }
}
