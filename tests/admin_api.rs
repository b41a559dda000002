//! The admin API's mutations and refusals: flip, rollback and the history
//! they leave; every refusal with its status and error code, changing
//! nothing; optimistic concurrency with `If-Match`; the bearer token when
//! one is configured.

mod support;

use support::route::{commented, commented_proxy, served_by};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_rollback_and_history() {
    let (_blue, _green, proxy) = commented_proxy().await;
    let c = client();
    let post = |path: &str, body: &'static str| {
        let (c, url) = (c.clone(), proxy.admin_url(path));
        async move { send(&c, "POST", &url, &[], body).await }
    };
    let a = post("/api/v1/routes/web/flip", r#"{"to": "green"}"#).await;
    assert_eq!(
        a.json()["split"],
        serde_json::json!({"blue": 0, "green": 100})
    );
    assert_eq!(served_by(&c, &proxy).await.as_deref(), Some("green"));
    let a = post("/api/v1/routes/web/rollback", "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json()["split"],
        serde_json::json!({"blue": 100, "green": 0})
    );
    assert_eq!(served_by(&c, &proxy).await.as_deref(), Some("blue"));
    // nothing left to roll back to
    let a = post("/api/v1/routes/web/rollback", "").await;
    assert_eq!(a.status, 409, "{}", a.text());
    assert_eq!(a.json()["error"], "nothing_to_roll_back");

    let h = get(&c, &proxy.admin_url("/api/v1/history"), &[])
        .await
        .json();
    let events = h["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, vec!["rollback", "flip"], "{h}");
    assert_eq!(
        events[1]["old_split"],
        serde_json::json!({"blue": 100, "green": 0})
    );
    assert_eq!(
        events[1]["new_split"],
        serde_json::json!({"blue": 0, "green": 100})
    );
    assert_eq!(events[1]["source"], "api");
    assert_eq!(events[0]["generation"], 3);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_have_the_right_status() {
    let (_blue, _green, proxy) = commented_proxy().await;
    let c = client();
    let split = proxy.admin_url("/api/v1/routes/web/split");
    let big = "x".repeat(100_000);
    let cases: Vec<(&str, String, &str, u16, &str)> = vec![
        ("PUT", split.clone(), "{not json", 400, "bad_request"),
        (
            "PUT",
            proxy.admin_url("/api/v1/routes/nope/split"),
            r#"{"blue": 1}"#,
            404,
            "not_found",
        ),
        (
            "PUT",
            split.clone(),
            r#"{"blue": 0, "green": 0}"#,
            422,
            "invalid_change",
        ),
        (
            "PUT",
            split.clone(),
            r#"{"purple": 10}"#,
            422,
            "invalid_change",
        ),
        (
            "PUT",
            split.clone(),
            r#"{"blue": -1}"#,
            422,
            "invalid_change",
        ),
        ("PUT", split.clone(), &big, 413, "body_too_large"),
        ("GET", split.clone(), "", 405, "method_not_allowed"),
        (
            "POST",
            proxy.admin_url("/api/v1/routes/web/flip"),
            r#"{"to": "purple"}"#,
            404,
            "not_found",
        ),
        (
            "POST",
            proxy.admin_url("/api/v1/backends/blue/127.0.0.1:1/drain"),
            "",
            404,
            "not_found",
        ),
        (
            "GET",
            proxy.admin_url("/api/v1/nothing"),
            "",
            404,
            "not_found",
        ),
    ];
    for (method, url, body, status, error) in cases {
        let a = send(&c, method, &url, &[], body).await;
        assert_eq!(a.status, status, "{method} {url} {body:.40}: {}", a.text());
        assert_eq!(a.json()["error"], error, "{method} {url}");
    }
    assert_eq!(
        proxy.table().generation,
        1,
        "a refused change changed something"
    );

    // If-Match: a stale generation is refused, the current one accepted
    let a = send(
        &c,
        "PUT",
        &split,
        &[("If-Match", "\"7\"")],
        r#"{"blue": 50, "green": 50}"#,
    )
    .await;
    assert_eq!(a.status, 409);
    assert_eq!(a.json()["error"], "generation_mismatch");
    let a = send(
        &c,
        "PUT",
        &split,
        &[("If-Match", "1")],
        r#"{"blue": 50, "green": 50}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = send(
        &c,
        "PUT",
        &split,
        &[("If-Match", "1")],
        r#"{"blue": 60, "green": 40}"#,
    )
    .await;
    assert_eq!(
        a.status, 409,
        "a second writer with the old generation must lose"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_is_required_when_configured() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let proxy = TestProxy::start(&commented(
        &blue,
        &green,
        &format!("token_file = \"{}\"", token_file.display()),
    ))
    .await;
    let c = client();
    let status = proxy.admin_url("/api/v1/status");
    assert_eq!(get(&c, &status, &[]).await.status, 401);
    assert_eq!(
        get(&c, &status, &[("Authorization", "Bearer wrong")])
            .await
            .status,
        401
    );
    assert_eq!(
        get(&c, &status, &[("Authorization", "Bearer s3cret")])
            .await
            .status,
        200
    );
    let flip = proxy.admin_url("/api/v1/routes/web/flip");
    assert_eq!(
        send(&c, "POST", &flip, &[], r#"{"to": "green"}"#)
            .await
            .status,
        401
    );
    assert_eq!(proxy.table().generation, 1);
    // probes stay open
    assert_eq!(get(&c, &proxy.admin_url("/health"), &[]).await.status, 200);
    proxy.stop().await;
}
