//! The web console over real sockets: its files are served without the
//! token and with the security headers, and `GET /api/v1/traffic` (what
//! the console shows beyond the status) needs the token and counts the
//! proxied requests per route and pool. The page itself is exercised in a
//! real browser by `tests/browser/` (run by `scripts/test`).

mod support;

use std::time::Duration;

use support::{client, config_for, eventually, get, send, TestBackend, TestProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_served_with_a_strict_policy_and_its_data_needs_the_token() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k\n").unwrap();
    let base = config_for(
        &[("blue", &[&blue]), ("green", &[&green])],
        "split = { blue = 3, green = 1 }\nsticky = { cookie = \"sid\" }",
    );
    let proxy = TestProxy::start(&format!(
        "[admin]\ntoken_file = \"{}\"\n{base}",
        token.display()
    ))
    .await;
    let c = client();

    // The files: no token needed, the right types, no framing, no inline code.
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/releases.js", "text/javascript"),
        ("/console/app.css", "text/css"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let a = get(&c, &proxy.admin_url(path), &[]).await;
        assert_eq!(a.status, 200, "{path}");
        assert!(
            a.header("content-type").unwrap().starts_with(kind),
            "{path}"
        );
        let csp = a.header("content-security-policy").unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(a.header("x-frame-options"), Some("DENY"));
        assert_eq!(a.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(a.header("cache-control"), Some("no-cache"));
        let etag = a.header("etag").unwrap().to_owned();
        let again = get(&c, &proxy.admin_url(path), &[("If-None-Match", &etag)]).await;
        assert_eq!((again.status, again.body.len()), (304, 0), "{path}");
    }
    let html = get(&c, &proxy.admin_url("/"), &[]).await.text();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    let post = send(&c, "POST", &proxy.admin_url("/"), &[], "").await;
    assert_eq!(post.status, 405);

    // The data needs the token, like the rest of the API.
    let traffic = proxy.admin_url("/api/v1/traffic?seconds=30");
    assert_eq!(get(&c, &traffic, &[]).await.status, 401);
    let auth = [("Authorization", "Bearer t0k")];
    for _ in 0..40 {
        assert_eq!(get(&c, &proxy.url("/"), &[]).await.status, 200);
    }
    // Counted per second: the figures include a second once it is over.
    let served = |a: &serde_json::Value| -> u64 {
        a["routes"][0]["pools"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|p| {
                p["series"]["requests"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|n| n.as_u64())
            .sum()
    };
    eventually(
        Duration::from_secs(5),
        "the requests in the traffic",
        || {
            let (c, url) = (c.clone(), traffic.clone());
            async move { served(&get(&c, &url, &auth).await.json()) == 40 }
        },
    )
    .await;
    let answer = get(&c, &traffic, &auth).await.json();
    assert_eq!(served(&answer), 40);
    let route = &answer["routes"][0];
    assert_eq!(answer["series_seconds"], 30);
    assert_eq!(route["sticky"]["cookie"], "sid");
    let pools: Vec<_> = route["pools"].as_array().unwrap().iter().collect();
    assert_eq!(pools[0]["pool"], "blue");
    assert_eq!(pools[0]["weight"], 3);
    assert_eq!(pools[0]["series"]["requests"].as_array().unwrap().len(), 30);
    let rps: f64 = pools
        .iter()
        .map(|p| p["requests_per_second"].as_f64().unwrap())
        .sum();
    assert!((rps - 4.0).abs() < 1e-9, "40 requests over 10 s, got {rps}");
    assert_eq!(answer["backends"].as_array().unwrap().len(), 2);
    assert_eq!(answer["backends"][0]["ejected"], false);

    let bad = get(&c, &proxy.admin_url("/api/v1/traffic?seconds=0"), &auth).await;
    assert_eq!(
        (bad.status, bad.json()["error"].as_str()),
        (400, Some("bad_request"))
    );
    let wrong = send(&c, "POST", &traffic, &auth, "{}").await;
    assert_eq!(wrong.status, 405);
    proxy.stop().await;
}
