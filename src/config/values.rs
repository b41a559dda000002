//! Scalar values shared by every section's validation: durations, bounded
//! integers, socket addresses and header names, each reported with its key
//! and position when it does not parse.

use std::net::SocketAddr;
use std::time::Duration;

use http::HeaderName;
use toml::Spanned;

use super::validate::Validator;

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

    pub(super) fn duration(
        &mut self,
        key: &str,
        raw: Option<&Spanned<String>>,
        default: Duration,
        zero_ok: bool,
    ) -> Duration {
        let Some(raw) = raw else { return default };
        match humantime::parse_duration(raw.get_ref()) {
            Ok(d) if d.is_zero() && !zero_ok => {
                self.error(raw.span(), key, "duration must be greater than zero", None);
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
