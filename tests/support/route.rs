//! Route set-ups and what the proxy makes of them: config builders for the
//! pools and route `r` most tests use (blue-green, blue-canary with a
//! rollout, the commented file of the control-plane tests), the split the
//! routing table holds, and which backend answers a request.

use std::time::Duration;

use super::{eventually, get, HttpClient, TestBackend, TestProxy};

/// A config with one pool per (name, backends) and one route `r`.
pub fn config_for(pools: &[(&str, &[&TestBackend])], route_extra: &str) -> String {
    let mut s = String::new();
    for (name, backends) in pools {
        let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
        s.push_str(&format!(
            "[pools.{name}]\nbackends = [{}]\n\n",
            list.join(", ")
        ));
    }
    s.push_str(&format!("[[routes]]\nname = \"r\"\n{route_extra}\n"));
    s
}

/// Pools `blue` and `canary` (one backend each) and route `r` with
/// `split = { blue = 100, canary = 0 }`, then `route_extra` (more keys of
/// the route), then its `[routes.rollout]` table (`canary = "canary"`,
/// `stable = "blue"`) ending with `rollout`. Whatever follows the rollout's
/// keys in `rollout` (e.g. `[[notify]]` tables) ends up at the file's end.
pub fn canary_config(
    blue: &TestBackend,
    canary: &TestBackend,
    route_extra: &str,
    rollout: &str,
) -> String {
    config_for(
        &[("blue", &[blue]), ("canary", &[canary])],
        &format!(
            "split = {{ blue = 100, canary = 0 }}\n{route_extra}\n[routes.rollout]\n\
             canary = \"canary\"\nstable = \"blue\"\n{rollout}"
        ),
    )
}

/// Backends `blue` and `green` and a proxy with pools of one backend each
/// and route `r` at `split = { blue = 100, green = 0 }`.
pub async fn blue_green() -> (TestBackend, TestBackend, TestProxy) {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let proxy = TestProxy::start(&config_for(
        &[("blue", &[&blue]), ("green", &[&green])],
        "split = { blue = 100, green = 0 }",
    ))
    .await;
    (blue, green, proxy)
}

/// Two pools of one backend each and one route `web` with a comment on
/// every interesting line (the write-back tests check that comments stay);
/// the file is watched every 100 ms; `extra_admin` goes into `[admin]`.
pub fn commented(blue: &TestBackend, green: &TestBackend, extra_admin: &str) -> String {
    format!(
        r#"# switchyard test config
[server]
watch_interval = "100ms"   # poll fast in tests

[admin]
{extra_admin}

# the stable fleet
[pools.blue]
backends = ["{}"]   # one box

[pools.green]
backends = ["{}"]

[[routes]]
name = "web"
split = {{ blue = 100, green = 0 }}   # edit this line
"#,
        blue.addr, green.addr
    )
}

/// Backends `blue` and `green` behind a proxy started from
/// `commented(blue, green, "")`.
pub async fn commented_proxy() -> (TestBackend, TestBackend, TestProxy) {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let proxy = TestProxy::start(&commented(&blue, &green, "")).await;
    (blue, green, proxy)
}

/// The first route's split as the routing table holds it: (pool, weight),
/// pools without weight left out.
pub fn split(proxy: &TestProxy) -> Vec<(String, u32)> {
    proxy.table().routes()[0]
        .split()
        .map(|(p, w)| (p.name.to_string(), w))
        .collect()
}

/// An expected `split`: the pairs with a weight, in the order given.
pub fn weights(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
    pairs
        .iter()
        .filter(|(_, w)| *w > 0)
        .map(|(p, w)| ((*p).to_owned(), *w))
        .collect()
}

/// The weight of `pool` in the first route (0 when it has none).
pub fn weight(proxy: &TestProxy, pool: &str) -> u32 {
    proxy.table().routes()[0]
        .split()
        .find(|(p, _)| &*p.name == pool)
        .map_or(0, |(_, w)| w)
}

/// The name of the backend (its `x-backend` header) that answers a GET of
/// `/` through the proxy, sent on `c`.
pub async fn served_by(c: &HttpClient, proxy: &TestProxy) -> Option<String> {
    get(c, &proxy.url("/"), &[])
        .await
        .header("x-backend")
        .map(str::to_owned)
}

/// Waits (10 s at most) until the routing table's generation is at least
/// `at_least`.
pub async fn wait_generation(proxy: &TestProxy, at_least: u64) {
    eventually(
        Duration::from_secs(10),
        &format!("generation {at_least}"),
        || async { proxy.table().generation >= at_least },
    )
    .await;
}
