//! Issue 18, item 4: a setting a reload cannot change is reported, never
//! silently ignored. A live edit applies the rest of the file and lists
//! the keys that wait for a restart in `/api/v1/status`
//! (`restart_needed`); reverting them clears the list; `switchyard check
//! FILE --against RUNNING_FILE` lists the same keys before the edit.

mod support;

use support::admin::status;
use support::cli::run;
use support::*;

fn config(blue: &TestBackend, green: &TestBackend, server: &str, split: &str) -> String {
    format!(
        "[server]\n{server}\n[health]\nenabled = false\n{}",
        config_for(
            &[("blue", &[blue]), ("green", &[green])],
            &format!("split = {{ {split} }}")
        )
    )
}

fn restart_needed(status: &serde_json::Value) -> Vec<String> {
    status["restart_needed"]
        .as_array()
        .unwrap_or_else(|| panic!("no restart_needed in {status}"))
        .iter()
        .map(|k| k.as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_reload_applies_what_it_can_and_lists_what_needs_a_restart() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let start = config(&blue, &green, "workers = 1", "blue = 100, green = 0");
    let proxy = TestProxy::start(&start).await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());

    // Fixed-at-start keys beside a split change and a reloadable timeout.
    let edited = config(
        &blue,
        &green,
        "shutdown_grace = \"7s\"\nworkers = 2\nupstream_timeout = \"9s\"\n\
         [admin]\nmetrics_open = true",
        "blue = 0, green = 100",
    );
    proxy.reload(&edited).await;
    let s = status(&proxy).await;
    assert_eq!(
        restart_needed(&s),
        [
            "server.workers",
            "server.shutdown_grace",
            "admin.metrics_open"
        ]
    );
    assert!(s["last_reload"]["error"].is_null(), "{s}");
    // The rest applied: traffic moved, and the timeout is in the table.
    assert_eq!(
        support::route::served_by(&client(), &proxy)
            .await
            .as_deref(),
        Some("green")
    );
    assert_eq!(
        proxy.table().settings.upstream_timeout,
        std::time::Duration::from_secs(9)
    );

    // `check --against` the file it started with names the same keys.
    let started = proxy.dir.path().join("started.toml");
    std::fs::write(&started, &start).unwrap();
    let (code, out, err) = run(&[
        "check",
        proxy.path.to_str().unwrap(),
        "--against",
        started.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("needs a restart (against")
            && out.contains("server.workers, server.shutdown_grace, admin.metrics_open"),
        "{out}"
    );

    // Back to the started values: nothing waits for a restart any more.
    proxy
        .reload(&config(
            &blue,
            &green,
            "workers = 1",
            "blue = 100, green = 0",
        ))
        .await;
    assert_eq!(restart_needed(&status(&proxy).await), Vec::<String>::new());
    let (code, out, err) = run(&[
        "check",
        proxy.path.to_str().unwrap(),
        "--against",
        started.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("a reload applies all of it"), "{out}");
    proxy.stop().await;
}
