//! A route's shadow traffic read back (issue 15, item 2): mismatches made
//! by a real new version behind a real mirror, read through `GET
//! /api/v1/routes/{route}/shadow` and through the `switchyard ctl shadow
//! diff` binary — counts, samples, 80 columns and `--wide` — with no
//! secret of the clients' requests in either.

mod support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use switchyard::api::{MismatchKind, ShadowAnswer};

use support::admin::admin;
use support::cli::{ctl, ctl_env};
use support::shadow::{discounted, mirrored, price, quotes, JSON_MIRROR};
use support::{client, eventually, get, TestProxy};

const WAIT: Duration = Duration::from_secs(20);

/// A query value that makes a sample's request line wider than 80 columns.
const LONG: &str = "a-search-term-long-enough-to-overflow-eighty-columns-of-terminal";

/// What every client request carries, none of which may be shown.
const SECRETS: [&str; 3] = ["s3cret-bearer", "k3y-value", "tok3n-query"];

async fn shadow(proxy: &TestProxy, query: &str) -> (String, ShadowAnswer) {
    let a = admin(proxy, "GET", &format!("/api/v1/routes/r/shadow{query}")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let text = a.text();
    let answer = serde_json::from_str(&text).expect("a ShadowAnswer");
    (text, answer)
}

fn assert_no_secret(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{s} in {what}:\n{text}");
    }
}

#[tokio::test]
async fn mismatches_of_a_real_backend_read_through_the_api_and_ctl_without_secrets() {
    let (blue, _) = quotes(price).await;
    let (green, green_served) = quotes(discounted).await;
    let proxy = TestProxy::start(&mirrored("lean", blue, green, JSON_MIRROR)).await;
    let c = client();
    let n = 200u64;
    for item in 0..n {
        let a = get(
            &c,
            &proxy.url(&format!("/quote/{item}?page=1&token=tok3n-query&q={LONG}")),
            &[
                ("authorization", "Bearer s3cret-bearer"),
                ("x-api-key", "k3y-value"),
                ("cookie", "session=s3cret-bearer"),
            ],
        )
        .await;
        assert_eq!(a.json()["price"], price(item), "the client gets blue's");
    }
    eventually(WAIT, "every pair compared", || async {
        shadow(&proxy, "").await.1.pools[0].window.compared == n
    })
    .await;
    assert_eq!(green_served.load(Ordering::SeqCst) as u64, n);

    // The endpoint: the window's counts, the samples, no secret.
    let (text, a) = shadow(&proxy, "?seconds=120").await;
    assert_no_secret("the API's answer", &text);
    assert_eq!((a.route.as_str(), a.seconds, a.pools.len()), ("r", 120, 1));
    let p = &a.pools[0];
    assert_eq!(
        (p.pool.as_str(), p.active, p.mirror_percent, p.step_percent),
        ("green", true, Some(100.0), None)
    );
    let w = &p.window;
    assert_eq!(
        (w.mirrored, w.compared, w.mismatched, w.mismatched_body),
        (n, n, n / 4, n / 4),
        "{w:?}"
    );
    assert_eq!((w.mismatched_status_class, w.mismatched_status), (0, 0));
    assert_eq!((w.mirror_errors, w.mirror_5xx, w.error_rate), (0, 0, 0.0));
    assert!((w.mismatch_rate - 0.25).abs() < 1e-9, "{}", w.mismatch_rate);
    assert!(w.primary_p99_ms.is_some() && w.p99_latency_ratio.is_some());
    assert!(!p.samples.is_empty() && p.samples.len() <= 32);
    for s in &p.samples {
        let item: u64 = s.target["/quote/".len()..]
            .split('?')
            .next()
            .and_then(|i| i.parse().ok())
            .expect("a quote's target");
        assert_eq!(item % 4, 0, "only discounted items mismatch");
        assert_eq!(s.kind, MismatchKind::Body);
        assert_eq!(
            (s.method.as_str(), s.primary.status, s.mirror.status),
            ("GET", 200, 200)
        );
        assert_eq!(s.diff, [format!("$.price: {} → 1", price(item))]);
        assert_eq!(
            s.target,
            format!("/quote/{item}?page=1&token=[redacted]&q={LONG}")
        );
        let header = |name: &str| {
            s.request_headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        for name in ["authorization", "x-api-key", "cookie"] {
            assert_eq!(header(name), Some("[redacted]"), "{name}");
        }
    }
    let (_, two) = shadow(&proxy, "?samples=2").await;
    assert_eq!(two.pools[0].samples, p.samples[..2.min(p.samples.len())]);
    let bad = admin(&proxy, "GET", "/api/v1/routes/r/shadow?seconds=0").await;
    assert_eq!(bad.status, 400, "{}", bad.text());
    let unknown = admin(&proxy, "GET", "/api/v1/routes/nope/shadow").await;
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    // ctl at 80 columns: every line fits, the counts and diffs are there.
    let cols = [("COLUMNS", "80")];
    let (code, out, err) = ctl_env(&proxy, &["shadow", "diff", "r"], &cols).await;
    assert_eq!(code, 0, "{err}");
    assert_no_secret("ctl shadow diff", &out);
    for line in out.lines() {
        assert!(line.chars().count() < 80, "wider than 80 columns: {line:?}");
    }
    assert!(
        out.contains(&format!("mirrored {n}  compared {n}  mismatched {}", n / 4)),
        "{out}"
    );
    let first = &p.samples[0];
    assert!(out.contains(&first.diff[0]), "{out}");
    assert!(out.contains("200 → 200 body"), "{out}");
    assert!(
        !out.contains("request authorization"),
        "headers only with --wide: {out}"
    );

    // --wide: every field, the samples' headers too (redacted).
    let (code, wide, err) = ctl_env(&proxy, &["--wide", "shadow", "diff", "r"], &cols).await;
    assert_eq!(code, 0, "{err}");
    assert_no_secret("ctl --wide shadow diff", &wide);
    assert!(wide.contains("request authorization: [redacted]"), "{wide}");
    assert!(wide.contains("request x-api-key: [redacted]"), "{wide}");
    assert!(wide.contains(&first.target), "{wide}");
    assert!(wide.lines().any(|l| l.chars().count() >= 80), "{wide}");

    // --json: the API's answer as it came.
    let (code, json, _) = ctl(&proxy, &["--json", "shadow", "diff", "r", "--samples", "1"]).await;
    assert_eq!(code, 0);
    assert_no_secret("ctl --json shadow diff", &json);
    let v: Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(v["pools"][0]["samples"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["pools"][0]["window"]["mismatched_body"], n / 4);
}

#[tokio::test]
async fn a_route_without_shadow_traffic_says_so() {
    let (blue, _) = quotes(price).await;
    let config = format!(
        "[pools.blue]\nbackends = [\"{blue}\"]\nhealth = {{ enabled = false }}\n\
         [[routes]]\nname = \"r\"\nsplit = {{ blue = 100 }}\n"
    );
    let proxy = TestProxy::start(&config).await;
    let (_, a) = shadow(&proxy, "").await;
    assert!(a.pools.is_empty(), "{a:?}");
    let (code, out, err) = ctl(&proxy, &["shadow", "diff", "r"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("route r: no shadow traffic"), "{out}");
    let (code, _, err) = ctl(&proxy, &["shadow", "diff", "nope"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("404"), "{err}");
}
