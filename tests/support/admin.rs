//! The admin API as tests call it: plain requests, the JSON documents
//! (`/api/v1/status`, history, `/metrics`), readiness, and the per-backend
//! state of a pool as `/api/v1/status` reports it.

use std::time::Duration;

use serde_json::Value;

use super::{client, eventually, get, send, Answer, TestProxy};

/// `METHOD path` on the admin API, without a body.
pub async fn admin(proxy: &TestProxy, method: &str, path: &str) -> Answer {
    send(&client(), method, &proxy.admin_url(path), &[], "").await
}

/// `METHOD path` on the admin API, the answer as JSON.
pub async fn api(proxy: &TestProxy, method: &str, path: &str) -> Value {
    admin(proxy, method, path).await.json()
}

/// `POST` to the admin API without a body.
pub async fn post(proxy: &TestProxy, path: &str) -> Answer {
    admin(proxy, "POST", path).await
}

/// `POST` a JSON body (with its content type) to the admin API.
pub async fn post_json(proxy: &TestProxy, path: &str, body: &Value) -> Answer {
    let headers = [("content-type", "application/json")];
    send(
        &client(),
        "POST",
        &proxy.admin_url(path),
        &headers,
        &body.to_string(),
    )
    .await
}

/// `GET /api/v1/status`.
pub async fn status(proxy: &TestProxy) -> Value {
    get(&client(), &proxy.admin_url("/api/v1/status"), &[])
        .await
        .json()
}

/// The text of `GET /metrics`.
pub async fn metrics(proxy: &TestProxy) -> String {
    get(&client(), &proxy.admin_url("/metrics"), &[])
        .await
        .text()
}

/// The history events of `route`, oldest first.
pub async fn route_history(proxy: &TestProxy, route: &str) -> Vec<Value> {
    let h = get(&client(), &proxy.admin_url("/api/v1/history"), &[])
        .await
        .json();
    let mut v: Vec<_> = h["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["route"] == route)
        .cloned()
        .collect();
    v.reverse();
    v
}

/// Drain and undrain events, oldest first, as `drain POOL/ADDR`.
pub async fn drain_history(proxy: &TestProxy) -> Vec<String> {
    let h = api(proxy, "GET", "/api/v1/history?limit=1000").await;
    let mut v: Vec<String> = h["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "drain" || e["action"] == "undrain")
        .map(|e| {
            format!(
                "{} {}",
                e["action"].as_str().unwrap(),
                e["backend"].as_str().unwrap()
            )
        })
        .collect();
    v.reverse();
    v
}

/// `(addr, draining, health)` of each backend of `pool`, as
/// `/api/v1/status` lists them.
pub async fn backend_states(proxy: &TestProxy, pool: &str) -> Vec<(String, bool, String)> {
    let s = api(proxy, "GET", "/api/v1/status").await;
    let pool = s["pools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == pool)
        .unwrap();
    pool["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            let (addr, health) = (b["addr"].as_str().unwrap(), b["health"].as_str().unwrap());
            (addr.to_owned(), b["draining"] == true, health.to_owned())
        })
        .collect()
}

/// Waits (10 s at most) until every backend of `pool` is reported healthy.
pub async fn wait_pool_healthy(proxy: &TestProxy, pool: &str) {
    eventually(Duration::from_secs(10), "every backend healthy", || async {
        backend_states(proxy, pool)
            .await
            .iter()
            .all(|(_, _, h)| h == "healthy")
    })
    .await;
}

/// `GET /ready` on the admin listener.
pub async fn ready(proxy: &TestProxy) -> Answer {
    get(&client(), &proxy.admin_url("/ready"), &[]).await
}

/// Waits (5 s at most) until `/ready` answers 200.
pub async fn wait_ready(proxy: &TestProxy) {
    eventually(Duration::from_secs(5), "/ready says ready", || async {
        ready(proxy).await.status == 200
    })
    .await;
}
