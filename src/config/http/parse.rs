//! Pure parsers of this module's values: sizes (`"10MiB"`, nginx's
//! `"10m"`), rates (`"100/s"`), and which headers a rule may not touch.

use std::time::Duration;

use http::HeaderName;

/// `"10MiB"`, `"512 KiB"`, `"10m"` (nginx: binary multiples), `"1048576"`.
pub fn parse_size(s: &str) -> Result<u64, &'static str> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err("a size is a number of bytes, optionally with a unit");
    }
    let n: u64 = s[..digits].parse().map_err(|_| "the number is too large")?;
    let mult: u64 = match s[digits..].trim_start() {
        "" | "B" | "b" => 1,
        "k" | "K" | "KiB" => 1 << 10,
        "m" | "M" | "MiB" => 1 << 20,
        "g" | "G" | "GiB" => 1 << 30,
        "KB" | "kB" | "MB" | "GB" => {
            return Err("KB/MB/GB are ambiguous; use KiB, MiB, GiB (1024-based)")
        }
        _ => return Err("unknown unit; use KiB, MiB or GiB (or nginx's k, m, g)"),
    };
    n.checked_mul(mult).ok_or("the size is too large")
}

/// `"100/s"`, `"100r/s"` (nginx), `"6000/m"`, `"10/h"`: (count, period).
pub fn parse_rate(s: &str) -> Result<(u32, Duration), &'static str> {
    const HINT: &str = "write a rate as requests per unit: \"100/s\", \"6000/m\", \"10/h\"";
    let (n, unit) = s.trim().split_once('/').ok_or(HINT)?;
    let n = n.trim();
    let n = n.strip_suffix('r').unwrap_or(n);
    let count: u32 = n.parse().map_err(|_| HINT)?;
    if count == 0 || count > 1_000_000 {
        return Err("the rate must be from 1 to 1000000 requests per unit");
    }
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(HINT),
    };
    Ok((count, per))
}

/// Which message a header rule changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// What a rule does to a header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Set,
    Add,
    Remove,
}

/// Why a rule may not touch `name`, or `None` when it may. These are the
/// headers the proxy owns: framing and hop-by-hop headers (they belong to
/// each connection), `X-Forwarded-*` and `X-Request-Id` (what backends
/// and logs rely on to find the client and follow a request), switchyard's
/// own, and a request's `Host`, which may be replaced (`set`) but never
/// doubled or dropped.
pub fn owned(side: Side, op: Op, name: &HeaderName) -> Option<&'static str> {
    let n = name.as_str();
    const HOP: [&str; 8] = [
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
    ];
    if HOP.contains(&n) {
        return Some("framing and hop-by-hop headers belong to each connection");
    }
    if n.starts_with("x-switchyard-") {
        return Some("switchyard sets its own headers");
    }
    if side == Side::Response {
        return None;
    }
    if n.starts_with("x-forwarded-") {
        return Some(
            "switchyard sets X-Forwarded-For, -Proto, -Host and -Prefix itself \
             (see trusted_proxies and strip_prefix)",
        );
    }
    if n == "x-request-id" {
        return Some(
            "switchyard passes the client's X-Request-Id or makes one; $request_id copies it",
        );
    }
    if n == "host" && op != Op::Set {
        return Some("a request has exactly one Host; it may be replaced with set");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("10m"), Ok(10 << 20));
        assert_eq!(parse_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("123"), Ok(123));
        assert!(parse_size("10MB").unwrap_err().contains("ambiguous"));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("10 parsecs").is_err());
        assert!(parse_size("99999999999999999999").is_err());
        assert!(parse_size("17179869184G").is_err());
    }

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("100r/s"), Ok((100, Duration::from_secs(1))));
        assert_eq!(parse_rate("6000/m"), Ok((6000, Duration::from_secs(60))));
        assert_eq!(parse_rate("10/h"), Ok((10, Duration::from_secs(3600))));
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("100").is_err());
        assert!(parse_rate("100/d").is_err());
        assert!(parse_rate("-1/s").is_err());
    }

    #[test]
    fn owned_headers() {
        let h = |s: &str| HeaderName::from_bytes(s.as_bytes()).unwrap();
        assert!(owned(Side::Request, Op::Set, &h("X-Forwarded-For")).is_some());
        assert!(owned(Side::Request, Op::Remove, &h("x-request-id")).is_some());
        assert!(owned(Side::Request, Op::Set, &h("host")).is_none());
        assert!(owned(Side::Request, Op::Add, &h("host")).is_some());
        assert!(owned(Side::Request, Op::Remove, &h("host")).is_some());
        assert!(owned(Side::Response, Op::Set, &h("transfer-encoding")).is_some());
        assert!(owned(Side::Response, Op::Add, &h("x-request-id")).is_none());
        assert!(owned(Side::Response, Op::Remove, &h("server")).is_none());
        assert!(owned(Side::Request, Op::Set, &h("x-switchyard-pool")).is_some());
    }

    proptest! {
        #[test]
        fn a_byte_count_is_itself(n: u32) {
            prop_assert_eq!(parse_size(&n.to_string()), Ok(u64::from(n)));
        }
    }
}
