//! The mismatch samples of one (route, mirror pool): a small ring of the
//! latest mismatched pairs — request line and headers, both statuses and
//! latencies, the short diff — with secrets redacted before anything is
//! kept, for `GET /api/v1/routes/{route}/shadow` and `ctl shadow diff`.
//!
//! Building a sample formats strings, so the ring admits a few per second
//! (`admit`, one atomic) and the rest of a burst of mismatches costs only
//! the counters in the window. The ring itself is behind a mutex: it is
//! touched only for an admitted sample, off the client's path (after the
//! client's answer was sent), and by the admin API.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use http::{HeaderMap, HeaderName};
use serde::{Deserialize, Serialize};

/// Samples kept per (route, pool).
pub const SAMPLES: usize = 32;

/// Samples admitted per second per (route, pool).
pub const SAMPLES_PER_SECOND: u64 = 4;

/// Headers kept per side of a sample.
const MAX_HEADERS: usize = 32;

/// Longest header value or request target kept.
const MAX_VALUE: usize = 160;

/// Headers never shown, whatever the configuration says.
pub const ALWAYS_REDACTED: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// What replaces a hidden value.
pub const REDACTED: &str = "[redacted]";

/// One answer of a mismatched pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SideSample {
    pub status: u16,
    /// Time to the response headers.
    pub latency_ms: f64,
    /// The response headers (secrets redacted), in the order received.
    pub headers: Vec<(String, String)>,
}

/// One mismatched pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// When the comparison was made (Unix ms).
    pub at_ms: u64,
    pub method: String,
    /// Path and query, secret-looking query values redacted.
    pub target: String,
    /// The client's request headers (secrets redacted).
    pub request_headers: Vec<(String, String)>,
    pub primary: SideSample,
    pub mirror: SideSample,
    /// `status_class`, `status` or `body` (`compare::Kind`).
    pub kind: String,
    /// The short diff, primary → mirror.
    pub diff: Vec<String>,
}

/// The latest samples of one (route, pool).
#[derive(Debug, Default)]
pub struct SampleRing {
    /// The second samples were last admitted in (high 44 bits) and how
    /// many were (low 20 bits), in one word so `admit` is one CAS.
    budget: AtomicU64,
    samples: Mutex<VecDeque<Sample>>,
}

impl SampleRing {
    /// May a sample be built at second `now`? At most
    /// `SAMPLES_PER_SECOND` answers yes per second.
    pub fn admit(&self, now: u64) -> bool {
        let mut cur = self.budget.load(Ordering::Relaxed);
        loop {
            let (sec, n) = (cur >> 20, cur & 0xF_FFFF);
            let next = match sec == now & 0xFFF_FFFF_FFFF {
                true if n >= SAMPLES_PER_SECOND => return false,
                true => cur + 1,
                false => ((now & 0xFFF_FFFF_FFFF) << 20) | 1,
            };
            // Relaxed: the budget orders nothing else; a lost race retries.
            match self
                .budget
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(seen) => cur = seen,
            }
        }
    }

    /// Keeps `sample`, dropping the oldest beyond `SAMPLES`.
    pub fn push(&self, sample: Sample) {
        // A panic while holding this lock cannot leave the deque broken
        // (push/pop are complete or not done), so a poisoned lock is used.
        let mut ring = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() >= SAMPLES {
            ring.pop_front();
        }
        ring.push_back(sample);
    }

    /// The samples kept, newest first.
    pub fn newest_first(&self) -> Vec<Sample> {
        let ring = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().rev().cloned().collect()
    }
}

/// `headers` as kept in a sample: the secrets and the `extra` names
/// redacted, at most `MAX_HEADERS`, long values cut.
pub fn headers(headers: &HeaderMap, extra: &[HeaderName]) -> Vec<(String, String)> {
    headers
        .iter()
        .take(MAX_HEADERS)
        .map(|(name, value)| {
            let secret =
                ALWAYS_REDACTED.contains(&name.as_str()) || extra.iter().any(|e| e == name);
            let shown = match secret {
                true => REDACTED.to_owned(),
                false => cut(&String::from_utf8_lossy(value.as_bytes())),
            };
            (name.as_str().to_owned(), shown)
        })
        .collect()
}

/// Is a query parameter of this name likely to carry a secret?
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n == "code"
        || [
            "token", "secret", "password", "passwd", "key", "sig", "auth", "session",
        ]
        .iter()
        .any(|s| n.contains(s))
}

/// A request target as kept in a sample: the values of query parameters
/// whose names look secret (`token`, `api_key`, `password`, `sig`, ...)
/// redacted, long targets cut.
pub fn target(path_and_query: &str) -> String {
    let Some((path, query)) = path_and_query.split_once('?') else {
        return cut(path_and_query);
    };
    let mut out = String::with_capacity(path_and_query.len());
    out.push_str(path);
    out.push('?');
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        match pair.split_once('=') {
            Some((name, _)) if secret_param(name) => {
                out.push_str(name);
                out.push('=');
                out.push_str(REDACTED);
            }
            _ => out.push_str(pair),
        }
    }
    cut(&out)
}

fn cut(s: &str) -> String {
    super::cut(s, MAX_VALUE)
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    fn sample(n: u16) -> Sample {
        let side = SideSample {
            status: n,
            latency_ms: 1.0,
            headers: Vec::new(),
        };
        Sample {
            at_ms: u64::from(n),
            method: "GET".into(),
            target: "/".into(),
            request_headers: Vec::new(),
            primary: side.clone(),
            mirror: side,
            kind: "status".into(),
            diff: Vec::new(),
        }
    }

    #[test]
    fn secrets_never_reach_a_sample() {
        let mut h = HeaderMap::new();
        for (name, value) in [
            ("authorization", "Bearer abc"),
            ("cookie", "session=1"),
            ("set-cookie", "id=2"),
            ("proxy-authorization", "Basic x"),
            ("x-api-key", "k-123"),
            ("accept", "application/json"),
        ] {
            h.append(name, HeaderValue::from_static(value));
        }
        let kept = headers(&h, &[HeaderName::from_static("x-api-key")]);
        let text = format!("{kept:?}");
        for secret in ["abc", "session=1", "id=2", "Basic", "k-123"] {
            assert!(!text.contains(secret), "{secret} in {text}");
        }
        assert!(kept.contains(&("accept".into(), "application/json".into())));
        assert_eq!(kept.len(), 6);
    }

    #[test]
    fn secret_looking_query_values_are_redacted() {
        assert_eq!(
            target("/items?page=2&api_key=s3&access_token=t&q=shoes&sig=x&code=9"),
            "/items?page=2&api_key=[redacted]&access_token=[redacted]&q=shoes&sig=[redacted]&code=[redacted]"
        );
        assert_eq!(target("/plain/path"), "/plain/path");
        assert_eq!(target("/?flag"), "/?flag");
        let long = format!("/{}", "a".repeat(500));
        assert_eq!(target(&long).chars().count(), MAX_VALUE + 1);
    }

    #[test]
    fn the_ring_keeps_the_latest_and_admits_a_few_per_second() {
        let r = SampleRing::default();
        for n in 0..(SAMPLES as u16 + 5) {
            r.push(sample(n));
        }
        let kept = r.newest_first();
        assert_eq!(kept.len(), SAMPLES);
        assert_eq!(kept[0].at_ms, SAMPLES as u64 + 4);
        assert_eq!(kept.last().unwrap().at_ms, 5);

        let admitted = (0..10).filter(|_| r.admit(100)).count();
        assert_eq!(admitted as u64, SAMPLES_PER_SECOND);
        assert!(r.admit(101), "a new second has a new budget");
    }
}
