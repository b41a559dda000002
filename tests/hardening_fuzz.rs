//! Issue 18's config fuzzer: mutated configuration files — a value
//! swapped for a hostile one (overflowing numbers and durations, wrong
//! types, empty and odd strings), a line dropped, doubled, cut or moved,
//! bytes flipped, a known key put in the wrong table — never panic
//! `config::parse` (what `check` and every reload run) nor the preflight
//! `run` does; and a mutated file that both accept is *run*: it serves a
//! request, reloads another mutation, and shuts down, with no panic
//! anywhere in the process (tasks and worker threads included). Bounded
//! (proptest cases below), so it runs in CI with the other tests.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Once;
use std::time::Duration;

use proptest::prelude::*;

use support::*;

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            default(info);
        }));
    });
}

/// A file with most sections; every line is a mutation site.
const SEED: &str = r#"[server]
connect_timeout = "2s"
upstream_timeout = "10s"
upstream_idle_timeout = "4s"
client_header_timeout = "5s"
shutdown_grace = "1s"
max_headers = 100
max_header_bytes = 65536
upstream_max_idle = 16
workers = 1
watch = "off"
[admin]
metrics = true
[health]
enabled = true
path = "/health"
interval = "1s"
timeout = "500ms"
healthy_threshold = 2
unhealthy_threshold = 2
expect_status = "200-299"
[outlier]
consecutive_failures = 5
ejection_time = "30s"
max_ejection_time = "300s"
max_ejected_percent = 50
[retry]
retries = 2
per_try_timeout = "1s"
budget_percent = 20
[pools.blue]
backends = ["127.0.0.1:1", "127.0.0.1:2"]
balance = "round_robin"
slow_start = "10s"
[pools.canary]
backends = ["127.0.0.1:3"]
[[routes]]
name = "api"
host = "api.example.com"
path_prefix = "/"
split = { blue = 90, canary = 10 }
sticky = { header = "X-User-ID", cookie = "sy" }
force_header = "X-Switchyard-Pool"
[routes.rollout]
canary = "canary"
stable = "blue"
steps = [5, 10, 25, 50, 100]
step_interval = "1m"
min_requests = 500
max_error_rate = 0.01
max_p99_latency = "2s"
[[routes]]
name = "rest"
split = { blue = 1 }
"#;

/// Values that have broken parsers and arithmetic before.
const HOSTILE: &[&str] = &[
    "\"18446744073709551615s\"",
    "\"5124095576030431h\"",
    "\"-1s\"",
    "\"0s\"",
    "\"0\"",
    "\"1e309s\"",
    "\"\"",
    "\"🦀\"",
    "\"1 s\"",
    "\"999999999999999999999ms\"",
    "18446744073709551615",
    "9223372036854775807",
    "-9223372036854775808",
    "-1",
    "0",
    "1e308",
    "nan",
    "-inf",
    "true",
    "[]",
    "{}",
    "[1, \"a\"]",
    "{ blue = -1 }",
    "{ blue = 4294967296 }",
    "{ nosuch = 1 }",
    "\"127.0.0.1:0\"",
    "\"[::1]:99999\"",
    "\"*.\"",
    "\"/\\u0000\"",
    "\"a\\nb\"",
    "1979-05-27T07:32:00Z",
];

#[derive(Debug, Clone)]
enum Mutation {
    /// The value of line `at` becomes `HOSTILE[v]`.
    Value(usize, usize),
    Drop(usize),
    Double(usize),
    /// Line `at` moves to position `to`.
    Move(usize, usize),
    /// The text is cut at byte `at` (of its length, modulo).
    Cut(usize),
    /// Byte `at` (modulo the length) becomes `b`.
    Byte(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        4 => (any::<usize>(), 0..HOSTILE.len()).prop_map(|(a, v)| Mutation::Value(a, v)),
        1 => any::<usize>().prop_map(Mutation::Drop),
        1 => any::<usize>().prop_map(Mutation::Double),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Mutation::Move(a, b)),
        1 => any::<usize>().prop_map(Mutation::Cut),
        1 => (any::<usize>(), any::<u8>()).prop_map(|(a, b)| Mutation::Byte(a, b)),
    ]
}

fn mutate(text: &str, ms: &[Mutation]) -> String {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let mut cut: Option<usize> = None;
    let mut bytes: Vec<(usize, u8)> = Vec::new();
    for m in ms {
        let n = lines.len().max(1);
        match *m {
            Mutation::Value(at, v) => {
                if let Some(line) = lines.get_mut(at % n) {
                    if let Some(eq) = line.find(" = ") {
                        line.truncate(eq + 3);
                        line.push_str(HOSTILE[v]);
                    }
                }
            }
            Mutation::Drop(at) if !lines.is_empty() => {
                lines.remove(at % n);
            }
            Mutation::Double(at) if !lines.is_empty() => {
                let l = lines[at % n].clone();
                lines.insert(at % n, l);
            }
            Mutation::Move(a, b) if !lines.is_empty() => {
                let l = lines.remove(a % n);
                lines.insert(b % lines.len().max(1), l);
            }
            Mutation::Cut(at) => cut = Some(at),
            Mutation::Byte(at, b) => bytes.push((at, b)),
            _ => {}
        }
    }
    let mut out = lines.join("\n").into_bytes();
    out.push(b'\n');
    for (at, b) in bytes {
        let len = out.len();
        out[at % len] = b;
    }
    if let Some(at) = cut {
        out.truncate(at % (out.len() + 1));
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What `check` does with the text, in process: parse, then the preflight
/// `run` does too. `Some(config)` when both accept it.
fn check(text: &str) -> Option<switchyard::config::Config> {
    let cfg = switchyard::config::parse(text, Path::new("fuzz.toml")).ok()?;
    switchyard::server::preflight(&cfg).ok()?;
    Some(cfg)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn check_never_panics(ms in prop::collection::vec(mutation(), 1..6)) {
        count_panics();
        let text = mutate(SEED, &ms);
        let before = PANICS.load(Ordering::SeqCst);
        let checked = std::panic::catch_unwind(|| check(&text).is_some());
        prop_assert!(checked.is_ok(), "check panicked on:\n{}", text);
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn run_never_panics_on_what_check_accepts(
        first in prop::collection::vec(mutation(), 1..4),
        second in prop::collection::vec(mutation(), 1..4),
    ) {
        count_panics();
        // Mutations check refuses say nothing about run: take the seed then.
        let text = Some(mutate(SEED, &first)).filter(|t| check(t).is_some())
            .unwrap_or_else(|| SEED.to_owned());
        let next = mutate(SEED, &second);
        let before = PANICS.load(Ordering::SeqCst);
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let proxy = TestProxy::start(&text).await;
            let c = client();
            for host in ["api.example.com", "other.test"] {
                let a = tokio::time::timeout(
                    Duration::from_secs(20),
                    get(&c, &proxy.url("/x"), &[("host", host)]),
                )
                .await
                .expect("a request hung");
                assert!(a.status >= 200, "{}", a.status);
            }
            // A reload of another mutation: applied or refused, never a panic.
            std::fs::write(&proxy.path, &next).unwrap();
            let reloaded = proxy
                .running
                .as_ref()
                .unwrap()
                .control
                .reload(switchyard::control::ChangeSource::File)
                .await;
            // A reload validates the file as `check` does (the preflight's
            // token and certificates are read once, at start).
            let valid = switchyard::config::parse(&next, Path::new("f.toml")).is_ok();
            assert_eq!(reloaded.is_ok(), valid, "{reloaded:?} for:\n{next}");
            let a = get(&c, &proxy.url("/x"), &[]).await;
            assert!(a.status >= 200);
            let ready = support::admin::ready(&proxy).await;
            assert!(ready.status == 200 || ready.status == 503);
            proxy.stop().await;
        });
        prop_assert_eq!(PANICS.load(Ordering::SeqCst), before, "a panic running:\n{}", text);
    }
}
