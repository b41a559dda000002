//! What a route does to a request besides choosing a pool, as a client and
//! a backend see it, on each data path (HTTP/1.1 on both engines, HTTP/2):
//! `strip_prefix` and `rewrite`, header rules (and that they cannot break
//! the proxy's own headers), and the answers a route makes by itself —
//! `respond`, `redirect`, maintenance.

mod support;

use support::admin::{route_history, status};
use support::cli::ctl;
use support::paths::paths;
use support::*;

fn config(b: &TestBackend, server: &str, routes: &str) -> String {
    format!(
        "[server]\n{server}\n[pools.app]\nbackends = [\"{}\"]\n\n{routes}",
        b.addr
    )
}

#[tokio::test]
async fn strip_prefix_and_rewrite_change_only_the_path() {
    let b = TestBackend::start("app").await;
    let routes = r#"
[[routes]]
name = "api"
path_prefix = "/api"
strip_prefix = true
rewrite = { from = "^/v1/(?P<rest>.*)", to = "/v2/${rest}" }
split = { app = 1 }

[[routes]]
name = "old"
path_prefix = "/old/"
rewrite = { from = "^/old/([a-z]+)", to = "/new/$1" }
split = { app = 1 }

[[routes]]
name = "plain"
split = { app = 1 }
"#;
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server, routes)).await;
        let seen = |a: &Answer| {
            let j = a.json();
            let prefix = j["headers"]["x-forwarded-prefix"]
                .as_str()
                .map(str::to_owned);
            (j["path"].as_str().unwrap_or("").to_owned(), prefix)
        };
        let cases = [
            ("/api/users?page=2", "/users?page=2", Some("/api")),
            ("/api", "/", Some("/api")),
            ("/api/v1/items/7", "/v2/items/7", Some("/api")),
            // not at a segment boundary: forwarded as it is, no prefix header
            ("/apix/y", "/apix/y", None),
            ("/old/abc/def?x=1", "/new/abc/def?x=1", None),
            ("/old/123", "/old/123", None),
            ("/other", "/other", None),
        ];
        for (sent, path, prefix) in cases {
            let a = get(&c, &proxy.url(sent), &[]).await;
            assert_eq!(a.status, 200, "{via} {sent}: {}", a.text());
            let (got, got_prefix) = seen(&a);
            assert_eq!(got, path, "{via}: {sent}");
            assert_eq!(got_prefix.as_deref(), prefix, "{via}: {sent}");
        }
        // a client's own X-Forwarded-Prefix never passes unchanged
        let a = get(&c, &proxy.url("/other"), &[("X-Forwarded-Prefix", "/evil")]).await;
        assert_eq!(seen(&a).1, None, "{via}");
        let a = get(&c, &proxy.url("/api/x"), &[("X-Forwarded-Prefix", "/evil")]).await;
        assert_eq!(seen(&a).1.as_deref(), Some("/api"), "{via}");
        proxy.stop().await;
    }
}

#[tokio::test]
async fn header_rules_with_variables_and_the_proxys_own_headers_intact() {
    let b = TestBackend::start("app").await;
    let routes = r#"
[[routes]]
name = "api"
split = { app = 1 }
request_headers = { set = { X-Env = "prod", X-Real-IP = "$remote_addr" }, add = { X-Trace = "$request_id@$pool/$route $host" }, remove = ["X-Debug"] }
response_headers = { set = { X-Frame-Options = "DENY", X-Request-Id = "$request_id" }, add = { Cache-Control = "no-store" }, remove = ["X-Backend"] }

[pools.dead]
backends = ["127.0.0.1:1"]
health = { enabled = false }
retry = { retries = 0 }

[[routes]]
name = "down"
path_prefix = "/down"
split = { dead = 1 }
response_headers = { set = { X-Frame-Options = "DENY" } }
"#;
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server, routes)).await;
        let a = get(
            &c,
            &proxy.url("/"),
            &[
                ("X-Env", "dev"),
                ("X-Debug", "1"),
                ("X-Request-Id", "req-42"),
                ("X-Forwarded-For", "198.51.100.9"),
            ],
        )
        .await;
        assert_eq!(a.status, 200, "{via}: {}", a.text());
        let h = &a.json()["headers"];
        assert_eq!(h["x-env"], "prod", "{via}");
        assert_eq!(h["x-real-ip"], "127.0.0.1", "{via}");
        assert!(h.get("x-debug").is_none(), "{via}");
        let host = proxy.addr.to_string();
        let host = host.split(':').next().unwrap();
        assert_eq!(h["x-trace"], format!("req-42@app/api {host}"), "{via}");
        // the proxy's own headers are as they always are
        assert_eq!(h["x-request-id"], "req-42", "{via}");
        assert_eq!(h["x-forwarded-for"], "198.51.100.9, 127.0.0.1", "{via}");
        assert_eq!(h["x-forwarded-proto"], "http", "{via}");
        assert_eq!(h["x-switchyard-pool"], "app", "{via}");
        // and the answer's rules
        assert_eq!(a.header("x-frame-options"), Some("DENY"), "{via}");
        assert_eq!(a.header("x-request-id"), Some("req-42"), "{via}");
        assert_eq!(a.header("cache-control"), Some("no-store"), "{via}");
        assert_eq!(a.header("x-backend"), None, "{via}");
        // an answer the proxy makes about a failure keeps only its own headers
        let down = get(&c, &proxy.url("/down"), &[]).await;
        assert_eq!(down.status, 502, "{via}: {}", down.text());
        assert_eq!(down.header("x-frame-options"), None, "{via}");
        assert_eq!(
            down.header("x-switchyard-error"),
            Some("upstream-connect"),
            "{via}"
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn respond_redirect_and_maintenance() {
    let b = TestBackend::start("app").await;
    let routes = |maintenance: bool| {
        format!(
            r#"
[[routes]]
name = "api"
path_prefix = "/api/"
split = {{ app = 1 }}
maintenance = {maintenance}
maintenance_response = {{ body = "back soon\n", retry_after = "2m" }}
response_headers = {{ set = {{ X-Route = "$route" }} }}

[[routes]]
name = "robots"
path_prefix = "/robots.txt"
respond = {{ status = 200, body = "User-agent: *\nDisallow: /\n" }}

[[routes]]
name = "old-docs"
path_prefix = "/old-docs"
strip_prefix = true
redirect = {{ to = "https://docs.example$uri$query", status = 308 }}

[[routes]]
name = "moved"
path_prefix = "/moved/"
redirect = {{ to = "https://new.example$request_uri", status = 301 }}
"#
        )
    };
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server, &routes(false))).await;
        let before = b.requests();
        let a = get(&c, &proxy.url("/robots.txt"), &[]).await;
        assert_eq!(
            (a.status, a.text().as_str()),
            (200, "User-agent: *\nDisallow: /\n"),
            "{via}"
        );
        assert_eq!(
            a.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{via}"
        );
        assert!(a.header("x-request-id").is_some(), "{via}");
        let a = get(&c, &proxy.url("/old-docs/a/b?q=1"), &[]).await;
        assert_eq!(a.status, 308, "{via}");
        assert_eq!(
            a.header("location"),
            Some("https://docs.example/a/b?q=1"),
            "{via}"
        );
        let a = get(&c, &proxy.url("/moved/x?y=1"), &[]).await;
        assert_eq!(a.status, 301, "{via}");
        assert_eq!(
            a.header("location"),
            Some("https://new.example/moved/x?y=1"),
            "{via}"
        );
        assert_eq!(b.requests(), before, "{via}: no backend was asked");

        let a = get(&c, &proxy.url("/api/data"), &[]).await;
        assert_eq!(a.status, 200, "{via}");
        assert_eq!(a.header("x-route"), Some("api"), "{via}");

        // maintenance on (a file edit), then off again
        proxy.reload(&config(&b, server, &routes(true))).await;
        let before = b.requests();
        let a = get(&c, &proxy.url("/api/data"), &[]).await;
        assert_eq!((a.status, a.text().as_str()), (503, "back soon\n"), "{via}");
        assert_eq!(a.header("retry-after"), Some("120"), "{via}");
        assert_eq!(a.header("x-switchyard-error"), Some("maintenance"), "{via}");
        assert_eq!(
            a.header("x-route"),
            Some("api"),
            "{via}: response rules apply"
        );
        assert_eq!(b.requests(), before, "{via}: the backend was not asked");
        proxy.reload(&config(&b, server, &routes(false))).await;
        assert_eq!(
            get(&c, &proxy.url("/api/data"), &[]).await.status,
            200,
            "{via}"
        );
        proxy.stop().await;
    }
}

/// `ctl maintenance ROUTE on|off`: the route answers its maintenance
/// response without asking the backend, the file gains `maintenance = true`
/// (and loses it again), the history says so, a rollback has nothing new to
/// undo, and a route that does not exist is refused.
#[tokio::test]
async fn ctl_maintenance_is_written_back_and_answers_from_the_route() {
    let b = TestBackend::start("app").await;
    let routes = r#"
[[routes]]
name = "api"
split = { app = 1 }  # the only pool
maintenance_response = { body = "back soon\n", retry_after = "30s" }
"#;
    let proxy = TestProxy::start(&config(&b, "", routes)).await;
    let c = client();
    assert_eq!(get(&c, &proxy.url("/x"), &[]).await.status, 200);

    let (code, out, err) = ctl(&proxy, &["maintenance", "api", "on"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("route api: in maintenance"), "{out}");
    let before = b.requests();
    let a = get(&c, &proxy.url("/x"), &[]).await;
    assert_eq!((a.status, a.text().as_str()), (503, "back soon\n"));
    assert_eq!(a.header("retry-after"), Some("30"));
    assert_eq!(b.requests(), before, "the backend was not asked");
    let file = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(file.contains("maintenance = true"), "{file}");
    assert!(file.contains("# the only pool"), "comments kept:\n{file}");
    assert_eq!(status(&proxy).await["routes"][0]["maintenance"], true);
    let events = route_history(&proxy, "api").await;
    let on = events.last().expect("the maintenance event");
    assert_eq!(
        (on["action"].as_str(), on["detail"].as_str()),
        (Some("maintenance"), Some("maintenance: on")),
        "{on}"
    );

    // on again changes nothing; a rollback has no earlier split to go to
    let (code, out, err) = ctl(&proxy, &["maintenance", "api", "on"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = ctl(&proxy, &["rollback", "api"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("no earlier split"), "{err}");

    let (code, out, err) = ctl(&proxy, &["maintenance", "api", "off"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("out of maintenance"), "{out}");
    assert_eq!(get(&c, &proxy.url("/x"), &[]).await.status, 200);
    let file = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(!file.contains("maintenance ="), "{file}");
    assert_eq!(status(&proxy).await["routes"][0]["maintenance"], false);

    let (code, out, err) = ctl(&proxy, &["maintenance", "nope", "on"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("\"nope\""), "{err}");
    let (code, out, err) = ctl(&proxy, &["maintenance", "api", "maybe"]).await;
    assert_eq!(code, 2, "{out}{err}");
    proxy.stop().await;
}
