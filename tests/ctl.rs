//! `switchyard ctl` against a running proxy: every command's output and
//! exit code (0 done, 1 refused by the API with its reason, 2 bad usage,
//! 69 nothing listening).

mod support;

use serde_json::Value;
use support::cli::{ctl, run};
use support::route::commented_proxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_drives_the_api_with_clear_output_and_exit_codes() {
    let (blue, _green, proxy) = commented_proxy().await;
    let addr = blue.addr.to_string();
    let (code, out, err) = ctl(&proxy, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("generation 1")
            && out.contains("blue 100 (100%)")
            && out.contains(&blue.addr.to_string()),
        "{out}"
    );

    let (code, out, err) = ctl(&proxy, &["split", "web", "blue=75", "green=25"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "route web: blue 75 (75%), green 25 (25%) (generation 2, written to the file)"
    );

    let (code, out, _) = ctl(&proxy, &["flip", "web", "green"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("green 100 (100%)"), "{out}");
    let (code, out, _) = ctl(&proxy, &["rollback", "web"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("blue 75 (75%), green 25 (25%)"), "{out}");

    let (code, out, _) = ctl(&proxy, &["drain", "blue", &addr]).await;
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!(
            "backend blue/{} drained (generation 5, written to the file)",
            blue.addr
        )
    );
    let (code, _, _) = ctl(&proxy, &["undrain", "blue", &addr]).await;
    assert_eq!(code, 0);

    let (code, out, _) = ctl(&proxy, &["history"]).await;
    assert_eq!(code, 0);
    for action in ["split", "flip", "rollback", "drain", "undrain"] {
        assert!(out.contains(action), "{action} missing from:\n{out}");
    }
    let (code, out, _) = ctl(&proxy, &["--json", "reload"]).await;
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changed"], false);

    // refused by the API: exit 1 with the API's reason
    let (code, _, err) = ctl(&proxy, &["flip", "nope", "green"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("404 not_found: route \"nope\" not found"),
        "{err}"
    );
    let (code, _, err) = ctl(&proxy, &["--if-match", "1", "flip", "web", "green"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("409 generation_mismatch"), "{err}");
    // bad usage: exit 2 (clap)
    let (code, _, _) = ctl(&proxy, &["split", "web", "blue:75"]).await;
    assert_eq!(code, 2);
    proxy.stop().await;

    // nothing listening: exit 69
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let admin = format!("http://{dead}");
    let (code, _, err) = run(&["ctl", "--admin", &admin, "status"]);
    assert_eq!(code, 69, "{err}");
}
