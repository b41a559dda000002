//! `switchyard ctl rolling-update` end to end: real `switchyard backend`
//! processes replaced by the update's command while a load generator sends
//! requests through the proxy (no retries, so every error would show); a
//! command that fails half-way; the refusals and the dry run. (Waiting for
//! in-flight requests and interrupting are in `rolling_update_interrupt.rs`.)

mod support;

use std::time::Duration;

use serde_json::Value;
use support::admin::{backend_states, drain_history, wait_pool_healthy};
use support::cli::ctl_env;
use support::load::fetch;
use support::rolling::{proxy_under_load, version_of, Fleet, SETTINGS, TIMEOUTS};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_replaces_every_backend_without_a_client_error() {
    let fleet = Fleet::start(3).await;
    let (proxy, load) = proxy_under_load(&fleet).await;
    let before = load.ok();

    let exec = fleet.exec();
    let mut args = vec!["--json", "rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let (code, stdout, stderr) = ctl_env(&proxy, &args, &[]).await;
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The load ran during the whole update and is still served afterwards.
    let during = load.ok() - before;
    eventually(Duration::from_secs(10), "load after the update", || async {
        load.ok() >= before + during + 20
    })
    .await;
    load.finish_without_errors().await;
    assert!(during >= 20, "only {during} requests during the update");

    let summary: Value = serde_json::from_str(&stdout).expect("JSON summary");
    assert_eq!(summary["result"], "updated");
    let results: Vec<&str> = summary["backends"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["result"].as_str().unwrap())
        .collect();
    assert_eq!(results, ["updated"; 3]);
    for stage in ["drain", "exec", "health", "undrain"] {
        assert!(
            stderr.contains(&format!("{} {stage}:", fleet.addrs[2])),
            "{stderr}"
        );
    }
    assert!(
        stderr.contains("restarted"),
        "the command's output is shown: {stderr}"
    );

    for addr in &fleet.addrs {
        assert_eq!(version_of(*addr).await, "v2", "{addr}");
    }
    let expected: Vec<String> = fleet
        .addrs
        .iter()
        .flat_map(|a| [format!("drain web/{a}"), format!("undrain web/{a}")])
        .collect();
    assert_eq!(drain_history(&proxy).await, expected);
    assert!(backend_states(&proxy, "web")
        .await
        .iter()
        .all(|(_, d, h)| !d && h == "healthy"));
    let v = fetch(&client(), &proxy.url("/")).await.unwrap();
    assert_eq!(v["version"], "v2");
    assert!(!std::fs::read_to_string(&proxy.path)
        .unwrap()
        .contains("drain"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_stops_the_update_and_the_rest_keeps_serving() {
    let fleet = Fleet::start(3).await;
    let [first, second, third] = [fleet.addrs[0], fleet.addrs[1], fleet.addrs[2]];
    let (proxy, load) = proxy_under_load(&fleet).await;

    let exec = fleet.exec();
    let mut args = vec!["rolling-update", "web", "--exec", &exec];
    args.extend(TIMEOUTS);
    let fail_port = second.port().to_string();
    let (code, stdout, stderr) = ctl_env(&proxy, &args, &[("FAIL_PORT", &fail_port)]).await;
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stderr.contains(&format!("{second} failed at stage exec: exit status: 3")),
        "{stderr}"
    );
    assert!(
        stderr.contains("deploy of") && stderr.contains("image v2 not found"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("switchyard ctl undrain web {second}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("untouched and in service: {third}")),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("{first} undrain: back in service")),
        "{stdout}"
    );

    // Traffic keeps flowing on the first and third.
    let n = load.ok();
    eventually(
        Duration::from_secs(10),
        "load after the failure",
        || async { load.ok() >= n + 50 },
    )
    .await;
    load.finish_without_errors().await;

    assert_eq!(version_of(first).await, "v2");
    assert_eq!(
        version_of(second).await,
        "v1",
        "the failing command touched nothing"
    );
    assert_eq!(version_of(third).await, "v1");
    let s = backend_states(&proxy, "web").await;
    let draining: Vec<bool> = s.iter().map(|(_, d, _)| *d).collect();
    assert_eq!(
        draining,
        [false, true, false],
        "only the failed backend stays drained"
    );
    assert!(s.iter().all(|(_, _, h)| h == "healthy"), "{s:?}");
    assert_eq!(
        drain_history(&proxy).await,
        [
            format!("drain web/{first}"),
            format!("undrain web/{first}"),
            format!("drain web/{second}")
        ]
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_and_dry_run_change_nothing() {
    let bs = [
        TestBackend::start("a").await,
        TestBackend::start("b").await,
        TestBackend::start("c").await,
    ];
    let config = format!(
        "{SETTINGS}{}",
        config_for(&[("web", &[&bs[0], &bs[1], &bs[2]])], "split = { web = 1 }")
    );
    let proxy = TestProxy::start(&config).await;
    wait_pool_healthy(&proxy, "web").await;
    let cases: [(&[&str], i32, &str); 4] = [
        (
            &["rolling-update", "nope", "--exec", "true"],
            1,
            "pool \"nope\" is not in the running configuration",
        ),
        (
            &[
                "rolling-update",
                "web",
                "--exec",
                "true",
                "--max-unavailable",
                "3",
            ],
            1,
            "--max-unavailable 3 would take every backend of pool \"web\" that is in service \
             out at once (3 of 3 are healthy and not drained); use at most 2",
        ),
        (
            &[
                "rolling-update",
                "web",
                "--exec",
                "true",
                "--max-unavailable",
                "0",
            ],
            2,
            "0",
        ),
        (
            &["--if-match", "1", "rolling-update", "web", "--exec", "true"],
            2,
            "--if-match",
        ),
    ];
    for (args, code, needle) in cases {
        let (c, out, err) = ctl_env(&proxy, args, &[]).await;
        assert_eq!(c, code, "{args:?}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains(needle), "{args:?}: {err}");
    }

    let (code, out, err) = ctl_env(
        &proxy,
        &[
            "rolling-update",
            "web",
            "--exec",
            "deploy {host} {port}",
            "--max-unavailable",
            "2",
            "--dry-run",
        ],
        &[],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!(
            "[1/2] {}: sh -c \"deploy 127.0.0.1 {}\"",
            bs[1].addr,
            bs[1].addr.port()
        )),
        "{out}"
    );
    assert!(out.contains(&format!("[2/2] {}", bs[2].addr)), "{out}");
    assert!(drain_history(&proxy).await.is_empty());
    assert!(backend_states(&proxy, "web")
        .await
        .iter()
        .all(|(_, d, _)| !d));
    proxy.stop().await;
}
