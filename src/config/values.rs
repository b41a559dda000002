//! Scalar values shared by every section's validation: durations, bounded
//! integers, socket addresses and header names, each reported with its key
//! and position when it does not parse.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::validate::Validator;

/// The longest duration any key accepts. Every duration of a valid
/// configuration is at most this, so the code that adds one to an
/// `Instant`, multiplies it by a retry or step count (≤ 1000), or turns it
/// into milliseconds in a `u64` cannot overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The shortest non-zero duration a key accepts.
pub const MS: Duration = Duration::from_millis(1);

/// Shorthands for the ranges below.
pub(super) const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
pub(super) const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
pub(super) const HOUR: Duration = Duration::from_secs(3600);
pub(super) const DAY: Duration = Duration::from_secs(24 * 3600);

impl Validator<'_> {
    pub(super) fn header_name(&mut self, key: &str, raw: &Spanned<String>) -> Option<HeaderName> {
        match HeaderName::from_bytes(raw.get_ref().as_bytes()) {
            Ok(h) => Some(h),
            Err(_) => {
                self.error(
                    raw.span(),
                    key,
                    format!("invalid header name {:?}", raw.get_ref()),
                    None,
                );
                None
            }
        }
    }

    pub(super) fn socket_addr(
        &mut self,
        key: &str,
        raw: Option<&Spanned<String>>,
        default: SocketAddr,
    ) -> SocketAddr {
        let Some(raw) = raw else { return default };
        match raw.get_ref().parse() {
            Ok(a) => a,
            Err(_) => {
                self.error(
                    raw.span(),
                    key,
                    format!("cannot parse address {:?}", raw.get_ref()),
                    Some("use IP:port, e.g. \"0.0.0.0:8080\" or \"[::]:8080\"".into()),
                );
                default
            }
        }
    }

    /// A duration from 0 (with `zero_ok`) or 1 ms up to [`MAX_DURATION`];
    /// keys with a tighter meaning use [`Validator::duration_in`].
    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: Option<&Spanned<String>>,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let min = if zero_ok { Duration::ZERO } else { MS };
        self.duration_in(key, raw, default, min..=MAX_DURATION)
    }

    /// A duration within `range` (both ends allowed); anything else is an
    /// error naming the key and the range, and `default` is used.
    pub(super) fn duration_in(
        &mut self,
        key: &str,
        raw: Option<&Spanned<String>>,
        default: Duration,
        range: RangeInclusive<Duration>,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        let hint = || {
            Some(format!(
                "use {} to {}",
                humantime::format_duration(*range.start()),
                humantime::format_duration(*range.end())
            ))
        };
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) if d.is_zero() && !range.contains(&d) => {
                self.error(
                    raw.span(),
                    key,
                    "duration must be greater than zero",
                    hint(),
                );
                default
            }
            Ok(d) if !range.contains(&d) => {
                self.error(
                    raw.span(),
                    key,
                    format!("duration {:?} is out of range", raw.get_ref()),
                    hint(),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    raw.span(),
                    key,
                    format!("cannot parse duration {:?}: {e}", raw.get_ref()),
                    Some("write durations as strings like \"250ms\", \"5s\", \"1m\"".into()),
                );
                default
            }
        }
    }

    pub(super) fn int(
        &mut self,
        key: &str,
        raw: Option<&Spanned<i64>>,
        min: i64,
        max: i64,
        default: i64,
    ) -> i64 {
        let Some(raw) = raw else { return default };
        let v = *raw.get_ref();
        if v < min || v > max {
            self.error(
                raw.span(),
                key,
                format!("{v} is out of range"),
                Some(format!("use {min} to {max}")),
            );
            return default;
        }
        v
    }
}
