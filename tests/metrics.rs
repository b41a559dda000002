//! `/metrics` after a known mix of requests: every counter has the exact
//! expected value, and the gauges follow a reload.

mod support;

use std::collections::HashMap;

use support::*;

/// `name{a="x",b="y"}` → value, for every sample line.
fn parse(text: &str) -> HashMap<String, f64> {
    let mut out = HashMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        // normalise label order so lookups do not depend on the exporter's
        let key = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or(rest);
                let inner = inner.strip_suffix('"').unwrap_or(inner);
                let mut labels: Vec<&str> = inner.split("\",").collect();
                labels.sort();
                format!("{name}{{{}}}", labels.join(","))
            }
            None => series.to_owned(),
        };
        out.insert(key, value);
    }
    out
}

fn key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}")).collect();
    l.sort();
    if l.is_empty() {
        name.to_owned()
    } else {
        format!("{name}{{{}}}", l.join(","))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_have_exact_values_after_a_known_mix() {
    let (b1, b2, good) = (
        TestBackend::start("b1").await,
        TestBackend::start("b2").await,
        TestBackend::start("good").await,
    );
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = format!(
        r#"
[health]
enabled = false

[pools.blue]
backends = ["{}", "{}"]

[pools.flaky]
backends = ["{refused}", "{}"]
balance = "round_robin"

[pools.dead]
backends = ["{refused}"]

[[routes]]
name = "api"
host = "api.test"
split = {{ blue = 100, flaky = 0, dead = 0 }}
force_header = "X-Pool"
"#,
        b1.addr, b2.addr, good.addr
    );
    let proxy = TestProxy::start(&cfg).await;
    let c = client();
    let host = ("Host", "api.test");
    for _ in 0..10 {
        assert_eq!(get(&c, &proxy.url("/"), &[host]).await.status, 200);
    }
    for _ in 0..3 {
        assert_eq!(
            get(&c, &proxy.url("/status/503"), &[host]).await.status,
            503
        );
    }
    for _ in 0..4 {
        assert_eq!(
            get(&c, &proxy.url("/"), &[host, ("X-Pool", "dead")])
                .await
                .status,
            502
        );
    }
    for _ in 0..20 {
        assert_eq!(
            get(&c, &proxy.url("/"), &[host, ("X-Pool", "flaky")])
                .await
                .status,
            200
        );
    }
    assert_eq!(
        get(&c, &proxy.url("/"), &[("Host", "other.test")])
            .await
            .status,
        404
    );

    let m = parse(&get(&c, &proxy.admin_url("/metrics"), &[]).await.text());
    let v = |name: &str, labels: &[(&str, &str)]| m.get(&key(name, labels)).copied().unwrap_or(0.0);
    let req = |pool: &str, backend: &str, code: &str| {
        v(
            "switchyard_requests_total",
            &[
                ("route", "api"),
                ("pool", pool),
                ("backend", backend),
                ("code", code),
            ],
        )
    };
    let (a1, a2, ag, ar) = (
        b1.addr.to_string(),
        b2.addr.to_string(),
        good.addr.to_string(),
        refused.to_string(),
    );

    // blue: 13 answers split over its two backends exactly as they saw them
    let (n1, n2) = (b1.requests() as f64, b2.requests() as f64);
    assert_eq!(n1 + n2, 13.0);
    assert_eq!(
        req("blue", &a1, "2xx") + req("blue", &a1, "5xx"),
        n1,
        "{m:?}"
    );
    assert_eq!(req("blue", &a2, "2xx") + req("blue", &a2, "5xx"), n2);
    assert_eq!(req("blue", &a1, "5xx") + req("blue", &a2, "5xx"), 3.0);
    // dead: four 502s, each a refused connect, no retry possible (one backend)
    assert_eq!(req("dead", &ar, "5xx"), 4.0);
    assert_eq!(
        v(
            "switchyard_upstream_errors_total",
            &[("pool", "dead"), ("backend", &ar), ("kind", "connect")]
        ),
        4.0
    );
    assert_eq!(
        v(
            "switchyard_retries_total",
            &[("route", "api"), ("pool", "dead")]
        ),
        0.0
    );
    // flaky: 20 answers, all from the good backend; every refused try was
    // retried; after 5 failures in a row the refused backend is ejected
    assert_eq!(req("flaky", &ag, "2xx"), 20.0);
    assert_eq!(good.requests(), 20);
    let refused_tries = v(
        "switchyard_upstream_errors_total",
        &[("pool", "flaky"), ("backend", &ar), ("kind", "connect")],
    );
    assert_eq!(refused_tries, 5.0, "{m:?}");
    assert_eq!(
        v(
            "switchyard_retries_total",
            &[("route", "api"), ("pool", "flaky")]
        ),
        refused_tries
    );
    assert_eq!(
        v(
            "switchyard_ejections_total",
            &[("pool", "flaky"), ("backend", &ar)]
        ),
        1.0
    );
    // no route
    assert_eq!(
        v(
            "switchyard_requests_total",
            &[
                ("route", ""),
                ("pool", ""),
                ("backend", ""),
                ("code", "4xx")
            ]
        ),
        1.0
    );
    // latency histogram: one sample per answered request of the pool
    assert_eq!(
        v(
            "switchyard_request_duration_seconds_count",
            &[("route", "api"), ("pool", "blue")]
        ),
        13.0
    );
    assert_eq!(
        v(
            "switchyard_request_duration_seconds_count",
            &[("route", "api"), ("pool", "flaky")]
        ),
        20.0
    );
    // gauges
    assert_eq!(
        v(
            "switchyard_route_weight",
            &[("route", "api"), ("pool", "blue")]
        ),
        100.0
    );
    assert_eq!(
        v(
            "switchyard_route_weight",
            &[("route", "api"), ("pool", "flaky")]
        ),
        0.0
    );
    assert_eq!(
        v(
            "switchyard_backend_healthy",
            &[("pool", "blue"), ("backend", &a1)]
        ),
        1.0
    );
    assert_eq!(
        v(
            "switchyard_backend_inflight",
            &[("pool", "blue"), ("backend", &a1)]
        ),
        0.0
    );
    assert_eq!(v("switchyard_config_generation", &[]), 1.0);
    assert_eq!(
        v(
            "switchyard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert!(m.contains_key(&key("switchyard_connections_active", &[])));

    // a reload moves the weight and generation gauges, and counts itself
    proxy
        .reload(&cfg.replace("blue = 100, flaky = 0", "blue = 60, flaky = 40"))
        .await;
    let m = parse(&get(&c, &proxy.admin_url("/metrics"), &[]).await.text());
    let v = |name: &str, labels: &[(&str, &str)]| m.get(&key(name, labels)).copied().unwrap_or(0.0);
    assert_eq!(
        v(
            "switchyard_route_weight",
            &[("route", "api"), ("pool", "blue")]
        ),
        60.0
    );
    assert_eq!(
        v(
            "switchyard_route_weight",
            &[("route", "api"), ("pool", "flaky")]
        ),
        40.0
    );
    assert_eq!(v("switchyard_config_generation", &[]), 2.0);
    assert_eq!(
        v(
            "switchyard_config_reloads_total",
            &[("result", "applied"), ("source", "file")]
        ),
        1.0
    );
    // counts survive the new generation
    assert_eq!(req("flaky", &ag, "2xx"), 20.0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_need_the_token_unless_open_on_loopback() {
    let b = TestBackend::start("b").await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "t0k").unwrap();
    let base = config_for(&[("p", &[&b])], "split = { p = 1 }");
    let closed = format!("[admin]\ntoken_file = \"{}\"\n{base}", token.display());
    let proxy = TestProxy::start(&closed).await;
    let c = client();
    assert_eq!(get(&c, &proxy.admin_url("/metrics"), &[]).await.status, 401);
    assert_eq!(
        get(
            &c,
            &proxy.admin_url("/metrics"),
            &[("Authorization", "Bearer t0k")]
        )
        .await
        .status,
        200
    );
    proxy.stop().await;
    let open = closed.replace("[admin]\n", "[admin]\nmetrics_open = true\n");
    let proxy = TestProxy::start(&open).await;
    let a = get(&c, &proxy.admin_url("/metrics"), &[]).await;
    assert_eq!(a.status, 200);
    assert!(a.text().contains("switchyard_build_info"));
    // the rest of the API still needs the token
    assert_eq!(
        get(&c, &proxy.admin_url("/api/v1/status"), &[])
            .await
            .status,
        401
    );
    proxy.stop().await;
}
