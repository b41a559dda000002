use std::path::Path;

use super::*;
use crate::config;

fn table(text: &str) -> (RoutingTable, Registry) {
    let cfg = config::parse(text, Path::new("t.toml")).expect("valid config");
    let mut reg = Registry::default();
    reg.reconcile(&cfg);
    (
        RoutingTable::build(&cfg, &reg, &mut Default::default(), 1),
        reg,
    )
}

const ROUTES: &str = r#"
[pools.a]
backends = ["127.0.0.1:1"]
[pools.b]
backends = ["127.0.0.1:2"]
[pools.c]
backends = ["127.0.0.1:3"]
[pools.d]
backends = ["127.0.0.1:4"]

[[routes]]
name = "fallback"
split = { a = 1 }

[[routes]]
name = "api-any-host"
path_prefix = "/api"
split = { a = 1 }

[[routes]]
name = "exact"
host = "api.example.com"
split = { b = 1 }

[[routes]]
name = "exact-v2"
host = "api.example.com"
path_prefix = "/v2"
split = { b = 1 }

[[routes]]
name = "wild"
host = "*.example.com"
split = { c = 1 }

[[routes]]
name = "wilder"
host = "*.eu.example.com"
split = { d = 1 }

[[routes]]
name = "fallback-twin"
split = { d = 1 }
"#;

#[test]
fn host_then_longest_prefix_then_declaration_order() {
    let (t, _) = table(ROUTES);
    let name = |h: Option<&str>, p: &str| t.route(h, p).map(|r| &*r.name);
    assert_eq!(name(Some("api.example.com"), "/v2/x"), Some("exact-v2"));
    assert_eq!(name(Some("API.Example.COM:8080"), "/v1"), Some("exact"));
    assert_eq!(name(Some("www.example.com"), "/"), Some("wild"));
    assert_eq!(name(Some("x.eu.example.com"), "/"), Some("wilder"));
    // the bare domain does not match its wildcard
    assert_eq!(name(Some("example.com"), "/"), Some("fallback"));
    assert_eq!(name(None, "/api/users"), Some("api-any-host"));
    // equal prefixes: the route declared first wins
    assert_eq!(name(Some("other"), "/"), Some("fallback"));
}

#[test]
fn no_route_when_nothing_matches() {
    let (t, _) = table(
        "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nhost = \"a.com\"\nsplit = { a = 1 }\n",
    );
    assert!(t.route(Some("b.com"), "/").is_none());
    assert!(t.route(None, "/").is_none());
}

#[test]
fn backend_state_survives_a_rebuild() {
    let text = "[pools.a]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 1 }\n";
    let (t1, mut reg) = table(text);
    let b1 = t1.pools()[0].backends[0].clone();
    let _guard = b1.start_request();
    // same backends, new weights: the same Arc comes back
    let cfg = config::parse(
        &text.replace("\"127.0.0.1:2\"", "{ addr = \"127.0.0.1:2\", weight = 5 }"),
        Path::new("t"),
    )
    .unwrap();
    reg.reconcile(&cfg);
    let t2 = RoutingTable::build(&cfg, &reg, &mut Default::default(), 2);
    assert!(Arc::ptr_eq(&t2.pools()[0].backends[0], &b1));
    assert_eq!(t2.pools()[0].backends[0].in_flight(), 1);
    // backend removed: drained, not reused
    let cfg = config::parse(&text.replace("\"127.0.0.1:1\", ", ""), Path::new("t")).unwrap();
    reg.reconcile(&cfg);
    assert!(b1.is_draining());
}

#[test]
fn weighted_pick_follows_weights_and_skips_zero() {
    let (t, _) = table(
        "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[pools.b]\nbackends = [\"127.0.0.1:2\"]\n[pools.z]\nbackends = [\"127.0.0.1:3\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 90, b = 10, z = 0 }\n",
    );
    let r = t.route(None, "/").unwrap();
    let mut b = 0;
    for _ in 0..20_000 {
        match &*r.pick_pool(None).unwrap().pool.name {
            "b" => b += 1,
            "z" => panic!("zero-weight pool picked"),
            _ => {}
        }
    }
    assert!((1700..=2300).contains(&b), "b got {b}");
}

#[test]
fn pool_pick_skips_unavailable_backends() {
    let (t, _) = table(
        "[pools.a]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\", \"127.0.0.1:3\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 1 }\n",
    );
    let pool = &t.pools()[0];
    pool.backends[0].set_health(Health::Unhealthy);
    pool.backends[1].set_draining(true);
    for _ in 0..100 {
        assert_eq!(pool.pick().unwrap().addr.port(), 3);
    }
    pool.backends[2].set_health(Health::Unhealthy);
    assert!(pool.pick().is_none());
    assert!(!pool.is_servable());
}

#[test]
fn least_request_prefers_idle_backends() {
    let (t, _) = table(
        "[pools.a]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:2\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 1 }\n",
    );
    let pool = &t.pools()[0];
    let busy: Vec<_> = (0..10).map(|_| pool.backends[0].start_request()).collect();
    let idle = (0..1000)
        .filter(|_| pool.pick().unwrap().addr.port() == 2)
        .count();
    // two random choices: the busy one wins only when both draws hit it
    assert!(idle > 650, "idle backend picked {idle}/1000");
    drop(busy);
}

#[test]
fn windows_survive_table_rebuilds_by_name() {
    let text = |pools: &str| format!("{pools}[[routes]]\nname = \"r\"\nsplit = {{ blue = 1 }}\n");
    let two = text("[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.canary]\nbackends = [\"127.0.0.1:2\"]\n");
    let one = text("[pools.canary]\nbackends = [\"127.0.0.1:2\"]\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n");
    let mut stats = crate::stats::StatsRegistry::new(None);
    let mut registry = Registry::default();
    let mut build = |t: &str, generation| {
        let c = config::parse(t, Path::new("t.toml")).unwrap();
        registry.reconcile(&c);
        RoutingTable::build(&c, &registry, &mut stats, generation)
    };
    let t1 = build(&two, 1);
    let route = t1.route(None, "/").unwrap();
    let canary = t1.pool(b"canary").unwrap();
    // A request to the canary, answered after the pools were reordered.
    let rec = route.recorder(canary, Some(0));
    let t2 = build(&one, 2);
    assert_ne!(canary.index, t2.pool(b"canary").unwrap().index);
    rec.finish(500, tokio::time::Instant::now());
    let (w1, w2) = (
        t1.window("r", "canary").unwrap(),
        t2.window("r", "canary").unwrap(),
    );
    assert!(Arc::ptr_eq(w1, w2));
    let now = crate::stats::clock::secs(tokio::time::Instant::now());
    assert_eq!(w2.last(now, 2).failures, 1);
    assert_eq!(t2.window("r", "blue").unwrap().last(now, 2).requests, 0);
    assert!(t2.window("r", "green").is_none());
}
