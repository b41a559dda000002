//! Traffic splitting through a real proxy: weights, stickiness, forcing,
//! host and path matching.

mod support;

use std::collections::HashMap;
use std::sync::Arc;

use support::*;
use switchyard::table::sticky;

/// Sends `n` GETs with up to `concurrency` in flight; returns the count per
/// backend name (from the `x-backend` response header).
async fn spread(
    proxy: &TestProxy,
    n: usize,
    concurrency: usize,
    headers: Vec<(String, String)>,
) -> HashMap<String, usize> {
    let client = client();
    let url = Arc::new(proxy.url("/"));
    let headers = Arc::new(headers);
    let per_task = n / concurrency;
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, url, headers) = (client.clone(), url.clone(), headers.clone());
            tokio::spawn(async move {
                let mut counts: HashMap<String, usize> = HashMap::new();
                for _ in 0..per_task {
                    let h: Vec<(&str, &str)> = headers
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    let a = get(&client, &url, &h).await;
                    assert_eq!(a.status, 200, "{}", a.text());
                    *counts
                        .entry(a.header("x-backend").unwrap_or("?").to_owned())
                        .or_default() += 1;
                }
                counts
            })
        })
        .collect();
    let mut total = HashMap::new();
    for t in tasks {
        for (k, v) in t.await.expect("task") {
            *total.entry(k).or_default() += v;
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_90_10_is_accurate_and_zero_weight_gets_nothing() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let green = TestBackend::start("green").await;
    let proxy = TestProxy::start(&config_for(
        &[
            ("blue", &[&blue]),
            ("canary", &[&canary]),
            ("green", &[&green]),
        ],
        "split = { blue = 90, canary = 10, green = 0 }",
    ))
    .await;
    let counts = spread(&proxy, 20_000, 50, vec![]).await;
    let canary_share = counts.get("canary").copied().unwrap_or(0) as f64 / 20_000.0;
    assert!(
        (canary_share - 0.10).abs() <= 0.015,
        "canary share {canary_share:.4}, counts {counts:?}"
    );
    assert_eq!(
        counts.get("blue").copied().unwrap_or(0) + counts.get("canary").copied().unwrap_or(0),
        20_000
    );
    assert_eq!(green.requests(), 0, "a zero-weight pool received traffic");
    proxy.stop().await;
}

const STICKY: &str = "sticky = { header = \"X-User-ID\" }";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sticky_key_always_sees_one_pool() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let proxy = TestProxy::start(&config_for(
        &[("blue", &[&blue]), ("canary", &[&canary])],
        &format!("split = {{ blue = 50, canary = 50 }}\n{STICKY}"),
    ))
    .await;
    let counts = spread(
        &proxy,
        1_000,
        10,
        vec![("X-User-ID".into(), "alice".into())],
    )
    .await;
    assert_eq!(counts.len(), 1, "alice saw several pools: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 1_000);
    // the backend is told the decision, and the bucket is the documented one
    let h = if blue.requests() > 0 {
        blue.last_headers()
    } else {
        canary.last_headers()
    };
    assert_eq!(
        h["x-switchyard-bucket"].to_str().unwrap(),
        sticky::bucket(b"alice").to_string()
    );
    assert_eq!(
        h["x-switchyard-pool"].to_str().unwrap(),
        counts.keys().next().unwrap()
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raising_the_canary_never_moves_a_user_back_to_stable() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let cfg = |c: u32| {
        config_for(
            &[("blue", &[&blue]), ("canary", &[&canary])],
            &format!("split = {{ blue = {}, canary = {c} }}\n{STICKY}", 100 - c),
        )
    };
    let proxy = TestProxy::start(&cfg(10)).await;
    let client = client();
    let users: Vec<String> = (0..400).map(|i| format!("user-{i}")).collect();
    let mut prev_on_canary: Vec<bool> = vec![false; users.len()];
    for (step, c) in [10u32, 25, 50].into_iter().enumerate() {
        if step > 0 {
            proxy.reload(&cfg(c)).await;
        }
        let mut on_canary = 0;
        for (i, u) in users.iter().enumerate() {
            let a = get(&client, &proxy.url("/"), &[("X-User-ID", u)]).await;
            let now = a.header("x-backend") == Some("canary");
            assert!(
                !prev_on_canary[i] || now,
                "{u} moved from canary back to blue at {c}%"
            );
            prev_on_canary[i] = now;
            on_canary += usize::from(now);
        }
        let share = on_canary as f64 / users.len() as f64;
        assert!(
            (share - f64::from(c) / 100.0).abs() < 0.08,
            "step {c}%: canary share {share}"
        );
    }
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_header_picks_any_pool_and_ignores_unknown_names() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let proxy = TestProxy::start(&config_for(
        &[("blue", &[&blue]), ("green", &[&green])],
        "split = { blue = 100, green = 0 }\nforce_header = \"X-Switchyard-Pool\"",
    ))
    .await;
    let c = client();
    for _ in 0..20 {
        let a = get(&c, &proxy.url("/"), &[("X-Switchyard-Pool", "green")]).await;
        assert_eq!(a.header("x-backend"), Some("green"));
    }
    let before = switchyard::proxy::FORCE_UNKNOWN.load(std::sync::atomic::Ordering::Relaxed);
    let a = get(&c, &proxy.url("/"), &[("X-Switchyard-Pool", "purple")]).await;
    assert_eq!(a.header("x-backend"), Some("blue"));
    assert!(switchyard::proxy::FORCE_UNKNOWN.load(std::sync::atomic::Ordering::Relaxed) > before);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_and_path_prefix_select_the_route() {
    let web = TestBackend::start("web").await;
    let api = TestBackend::start("api").await;
    let apiv2 = TestBackend::start("apiv2").await;
    let tenant = TestBackend::start("tenant").await;
    let cfg = format!(
        r#"
[pools.web]
backends = ["{}"]
[pools.api]
backends = ["{}"]
[pools.apiv2]
backends = ["{}"]
[pools.tenant]
backends = ["{}"]

[[routes]]
name = "web"
split = {{ web = 1 }}

[[routes]]
name = "api"
host = "api.example.com"
split = {{ api = 1 }}

[[routes]]
name = "api-v2"
host = "api.example.com"
path_prefix = "/v2/"
split = {{ apiv2 = 1 }}

[[routes]]
name = "tenants"
host = "*.tenants.example.com"
split = {{ tenant = 1 }}
"#,
        web.addr, api.addr, apiv2.addr, tenant.addr
    );
    let proxy = TestProxy::start(&cfg).await;
    let c = client();
    let who = |host: &'static str, path: &'static str| {
        let (c, url) = (c.clone(), proxy.url(path));
        async move {
            get(&c, &url, &[("Host", host)])
                .await
                .header("x-backend")
                .map(str::to_owned)
        }
    };
    assert_eq!(
        who("api.example.com", "/v1/users").await.as_deref(),
        Some("api")
    );
    assert_eq!(
        who("API.example.com:8080", "/v2/users").await.as_deref(),
        Some("apiv2")
    );
    assert_eq!(
        who("acme.tenants.example.com", "/").await.as_deref(),
        Some("tenant")
    );
    assert_eq!(
        who("www.example.com", "/v2/users").await.as_deref(),
        Some("web")
    );
    // the backend sees the client's Host, untouched
    assert_eq!(api.last_headers()["host"], "api.example.com");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_matching_route_is_404_with_reason() {
    let web = TestBackend::start("web").await;
    let proxy = TestProxy::start(&config_for(
        &[("web", &[&web])],
        "host = \"only.example.com\"\nsplit = { web = 1 }",
    ))
    .await;
    let a = get(&client(), &proxy.url("/"), &[("Host", "other.example.com")]).await;
    assert_eq!(a.status, 404);
    assert_eq!(a.header("x-switchyard-error"), Some("no-route"));
    assert_eq!(web.requests(), 0);
    proxy.stop().await;
}

#[test]
fn two_independently_built_tables_agree_on_every_key() {
    let text = "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.canary]\nbackends = [\"127.0.0.1:2\"]\n[[routes]]\nname = \"r\"\nsplit = { blue = 75, canary = 25 }\nsticky = { header = \"X-User-ID\" }\n";
    let build = || {
        let cfg = switchyard::config::parse(text, std::path::Path::new("t.toml")).unwrap();
        let mut reg = switchyard::table::Registry::default();
        reg.reconcile(&cfg);
        switchyard::table::RoutingTable::build(&cfg, &reg, &mut Default::default(), 1)
    };
    let (a, b) = (build(), build());
    let (ra, rb) = (a.route(None, "/").unwrap(), b.route(None, "/").unwrap());
    for i in 0..10_000 {
        let key = format!("user-{i}");
        let pa = ra.pick_pool(Some(key.as_bytes())).unwrap();
        let pb = rb.pick_pool(Some(key.as_bytes())).unwrap();
        assert_eq!(
            (&*pa.pool.name, pa.bucket),
            (&*pb.pool.name, pb.bucket),
            "{key}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_is_minted_when_the_client_has_no_key() {
    let blue = TestBackend::start("blue").await;
    let canary = TestBackend::start("canary").await;
    let proxy = TestProxy::start(&config_for(
        &[("blue", &[&blue]), ("canary", &[&canary])],
        "split = { blue = 50, canary = 50 }\nsticky = { header = \"X-User-ID\", cookie = \"sy\" }",
    ))
    .await;
    let c = client();
    let first = get(&c, &proxy.url("/"), &[]).await;
    let cookie = first
        .header("set-cookie")
        .expect("a sticky cookie")
        .to_owned();
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("sy="), "{cookie}");
    let pool = first.header("x-backend").unwrap().to_owned();
    for _ in 0..50 {
        let a = get(&c, &proxy.url("/"), &[("Cookie", &pair)]).await;
        assert_eq!(a.header("x-backend"), Some(pool.as_str()));
        assert!(a.header("set-cookie").is_none());
    }
    proxy.stop().await;
}
