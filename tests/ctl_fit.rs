//! `switchyard ctl` as a new user meets it: `--admin HOST:PORT` works, a
//! missing and a wrong token are told apart and name the variable to set,
//! and `history` and `rollout watch` fit 80 columns (`COLUMNS=80`, as on
//! an 80-column terminal) while `--wide` keeps every field.

mod support;

use std::time::Duration;

use support::cli::{ctl, ctl_env, run};
use support::release::{canary_rollout, Load};
use support::route::commented;
use support::*;

/// Route `web` over blue and green, `extra` in `[admin]`.
async fn blue_green(extra: &str) -> ([TestBackend; 2], TestProxy) {
    let b = [
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    ];
    let proxy = TestProxy::start(&commented(&b[0], &b[1], extra)).await;
    (b, proxy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_accepts_host_port_and_says_what_it_takes() {
    let (_b, proxy) = blue_green("").await;
    let admin = proxy.admin.to_string();
    let (code, out, err) = run(&["ctl", "--admin", &admin, "status"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("generation 1"), "{out}");
    let (code, _, err) = run(&["ctl", "--admin", "no such thing", "status"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("give HOST:PORT (127.0.0.1:9901) or a URL"),
        "{err}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_and_a_wrong_token_are_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let extra = format!("token_file = \"{}\"", token_file.display());
    let (_b, proxy) = blue_green(&extra).await;

    let (code, _, err) = ctl(&proxy, &["status"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("none was sent: set SWITCHYARD_ADMIN_TOKEN"),
        "{err}"
    );
    let wrong = [("SWITCHYARD_ADMIN_TOKEN", "wrong")];
    let (code, _, err) = ctl_env(&proxy, &["status"], &wrong).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the token was refused: SWITCHYARD_ADMIN_TOKEN"),
        "{err}"
    );
    let right = [("SWITCHYARD_ADMIN_TOKEN", "s3cret")];
    assert_eq!(ctl_env(&proxy, &["status"], &right).await.0, 0);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_fits_80_columns_and_wide_keeps_everything() {
    let (_b, proxy) = blue_green("").await;
    for args in [
        &["split", "web", "blue=75", "green=25"][..],
        &["flip", "web", "green"],
        &["rollback", "web"],
    ] {
        assert_eq!(ctl(&proxy, args).await.0, 0, "{args:?}");
    }
    let cols = [("COLUMNS", "80")];
    let (code, out, err) = ctl_env(&proxy, &["history"], &cols).await;
    assert_eq!(code, 0, "{err}");
    for line in out.lines() {
        assert!(
            line.chars().count() <= 80,
            "{} columns: {line}",
            line.chars().count()
        );
    }
    for word in ["split", "flip", "rollback", "blue 75, green 25"] {
        assert!(out.contains(word), "{word:?} missing:\n{out}");
    }
    let (code, wide, _) = ctl_env(&proxy, &["--wide", "history"], &cols).await;
    assert_eq!(code, 0);
    assert!(wide.contains("blue 75 (75%), green 25 (25%)"), "{wide}");
    assert!(wide.lines().any(|l| l.chars().count() > 80), "{wide}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_watch_fits_80_columns_with_error_rate_p99_and_time_left() {
    let (_blue, _canary, proxy) = canary_rollout(
        "steps = [20, 100]\nstep_interval = \"300ms\"\nmin_requests = 5\nmax_error_rate = 0.01",
    )
    .await;
    let _load = Load::start(proxy.url("/"), 2, Duration::ZERO);
    assert_eq!(ctl(&proxy, &["rollout", "start", "r"]).await.0, 0);
    let (code, out, err) = ctl_env(&proxy, &["rollout", "watch", "r"], &[("COLUMNS", "80")]).await;
    assert_eq!(code, 0, "{out}{err}");
    let lines: Vec<&str> = out.lines().filter(|l| l.contains('│')).collect();
    assert!(!lines.is_empty(), "{out}");
    for line in &lines {
        assert!(line.chars().count() < 80, "{line}");
        assert!(line.contains("err ") && line.contains("p99 "), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("next ") || l.contains("judging")),
        "{out}"
    );
    proxy.stop().await;
}
