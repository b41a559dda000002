//! The control plane over real files and sockets: file watching in every
//! editing style, broken edits, the admin API with write-back, auth,
//! optimistic concurrency, history, and `switchyard ctl`.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

const BIN: &str = env!("CARGO_BIN_EXE_switchyard");

/// Two pools of one backend each and one route `web` with a comment on
/// every interesting line.
fn commented(blue: &TestBackend, green: &TestBackend, extra_admin: &str) -> String {
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

fn split_of(proxy: &TestProxy) -> Vec<(String, u32)> {
    let t = proxy.table();
    t.routes()[0]
        .split()
        .map(|(p, w)| (p.name.to_string(), w))
        .collect()
}

async fn wait_generation(proxy: &TestProxy, at_least: u64) {
    eventually(
        Duration::from_secs(10),
        &format!("generation {at_least}"),
        || async { proxy.table().generation >= at_least },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_in_every_style_are_picked_up() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let text = commented(&blue, &green, "");
    let proxy = TestProxy::start(&text).await;
    let path = proxy.path.clone();
    let weights = |b: u32, g: u32| {
        text.replace(
            "{ blue = 100, green = 0 }",
            &format!("{{ blue = {b}, green = {g} }}"),
        )
    };

    // 1. in-place write
    std::fs::write(&path, weights(90, 10)).unwrap();
    wait_generation(&proxy, 2).await;
    assert_eq!(
        split_of(&proxy),
        vec![("blue".into(), 90), ("green".into(), 10)]
    );

    // 2. an editor's write-to-temp-and-rename
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, weights(50, 50)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_generation(&proxy, 3).await;
    assert_eq!(
        split_of(&proxy),
        vec![("blue".into(), 50), ("green".into(), 50)]
    );

    // 3. sed -i (also a rename, from sed's own temp file)
    let status = Command::new("sed")
        .arg("-i")
        .arg("s/blue = 50, green = 50/blue = 10, green = 90/")
        .arg(&path)
        .status()
        .unwrap();
    assert!(status.success());
    wait_generation(&proxy, 4).await;
    assert_eq!(
        split_of(&proxy),
        vec![("blue".into(), 10), ("green".into(), 90)]
    );

    // 4. an identical rewrite is not a new generation: the next real edit
    //    lands exactly one generation later.
    std::fs::write(&path, weights(10, 90)).unwrap();
    std::fs::write(&path, weights(0, 100)).unwrap();
    wait_generation(&proxy, 5).await;
    assert_eq!(split_of(&proxy), vec![("green".into(), 100)]);
    assert_eq!(proxy.table().generation, 5);
    let a = get(&client(), &proxy.url("/"), &[]).await;
    assert_eq!(a.header("x-backend"), Some("green"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubernetes_configmap_symlink_swap_is_picked_up() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let text = commented(&blue, &green, "");
    // The layout the kubelet makes: file -> ..data/file, ..data -> ..<timestamp>
    let dir = tempfile::tempdir().unwrap();
    let v1 = dir.path().join("..2026_11_26_v1");
    std::fs::create_dir(&v1).unwrap();
    std::fs::write(v1.join("switchyard.toml"), &text).unwrap();
    std::os::unix::fs::symlink("..2026_11_26_v1", dir.path().join("..data")).unwrap();
    let path = dir.path().join("switchyard.toml");
    std::os::unix::fs::symlink("..data/switchyard.toml", &path).unwrap();
    let proxy = TestProxy::start_at(dir, path.clone()).await;

    // The update: a new timestamped directory, then an atomic swap of ..data.
    let root = path.parent().unwrap();
    let v2 = root.join("..2026_11_26_v2");
    std::fs::create_dir(&v2).unwrap();
    std::fs::write(
        v2.join("switchyard.toml"),
        text.replace("blue = 100, green = 0", "blue = 0, green = 100"),
    )
    .unwrap();
    std::os::unix::fs::symlink("..2026_11_26_v2", root.join("..data_tmp")).unwrap();
    std::fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    wait_generation(&proxy, 2).await;
    assert_eq!(split_of(&proxy), vec![("green".into(), 100)]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_old_split_and_is_reported() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let text = commented(&blue, &green, "");
    let proxy = TestProxy::start(&text).await;
    let c = client();
    std::fs::write(
        &proxy.path,
        text.replace("blue = 100, green = 0", "blue = 100, grene = 0"),
    )
    .unwrap();
    eventually(
        Duration::from_secs(10),
        "the error shows in /api/v1/status",
        || async {
            let s = get(&c, &proxy.admin_url("/api/v1/status"), &[])
                .await
                .json();
            s["last_reload"]["error"]
                .as_str()
                .is_some_and(|e| e.contains("switchyard.toml:17:23: routes[0].split.grene"))
        },
    )
    .await;
    assert_eq!(proxy.table().generation, 1);
    assert_eq!(
        get(&c, &proxy.url("/"), &[]).await.header("x-backend"),
        Some("blue")
    );
    let h = get(&c, &proxy.admin_url("/api/v1/history"), &[])
        .await
        .json();
    assert_eq!(h["events"][0]["result"], "rejected");

    std::fs::write(
        &proxy.path,
        text.replace("blue = 100, green = 0", "blue = 0, green = 100"),
    )
    .unwrap();
    wait_generation(&proxy, 2).await;
    assert_eq!(
        get(&c, &proxy.url("/"), &[]).await.header("x-backend"),
        Some("green")
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_are_written_back_keeping_every_comment() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let text = commented(&blue, &green, "");
    let proxy = TestProxy::start(&text).await;
    let c = client();
    let a = send(
        &c,
        "PUT",
        &proxy.admin_url("/api/v1/routes/web/split"),
        &[],
        r#"{"blue": 75, "green": 25}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let v = a.json();
    assert_eq!(v["generation"], 2);
    assert_eq!(v["persisted"], true);
    assert_eq!(a.header("etag"), Some("\"2\""));
    assert_eq!(
        split_of(&proxy),
        vec![("blue".into(), 75), ("green".into(), 25)]
    );
    let on_disk = std::fs::read_to_string(&proxy.path).unwrap();
    assert_eq!(
        on_disk,
        text.replace("{ blue = 100, green = 0 }", "{ blue = 75, green = 25 }")
    );

    // drain writes the backend's table form; undrain restores the file exactly
    let drain = proxy.admin_url(&format!("/api/v1/backends/blue/{}/drain", blue.addr));
    assert_eq!(send(&c, "POST", &drain, &[], "").await.status, 200);
    assert!(proxy.table().pools()[0].backends[0].is_draining());
    assert!(std::fs::read_to_string(&proxy.path)
        .unwrap()
        .contains(&format!(
            "{{ addr = \"{}\", drain = true }}]   # one box",
            blue.addr
        )));
    let undrain = drain.replace("/drain", "/undrain");
    assert_eq!(send(&c, "POST", &undrain, &[], "").await.status, 200);
    assert_eq!(std::fs::read_to_string(&proxy.path).unwrap(), on_disk);

    // three API changes, three generations: our own write-backs did not
    // come back through the file watcher as extra reloads
    assert_eq!(proxy.table().generation, 4);
    let written = std::fs::read_to_string(&proxy.path).unwrap();
    proxy.stop().await;

    // a restart from the file comes back in the state the API left
    let restarted = TestProxy::start(&written).await;
    assert_eq!(
        split_of(&restarted),
        vec![("blue".into(), 75), ("green".into(), 25)]
    );
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_file_applies_in_memory_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let text = commented(&blue, &green, "");
    let proxy = TestProxy::start(&text).await;
    std::fs::set_permissions(&proxy.path, std::fs::Permissions::from_mode(0o444)).unwrap();
    let a = send(
        &client(),
        "POST",
        &proxy.admin_url("/api/v1/routes/web/flip"),
        &[],
        r#"{"to": "green"}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["persisted"], false);
    assert_eq!(split_of(&proxy), vec![("green".into(), 100)]);
    assert_eq!(std::fs::read_to_string(&proxy.path).unwrap(), text);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flip_rollback_and_history() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let proxy = TestProxy::start(&commented(&blue, &green, "")).await;
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
    assert_eq!(
        get(&c, &proxy.url("/"), &[]).await.header("x-backend"),
        Some("green")
    );
    let a = post("/api/v1/routes/web/rollback", "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json()["split"],
        serde_json::json!({"blue": 100, "green": 0})
    );
    assert_eq!(
        get(&c, &proxy.url("/"), &[]).await.header("x-backend"),
        Some("blue")
    );
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
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let proxy = TestProxy::start(&commented(&blue, &green, "")).await;
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
async fn concurrent_api_calls_lose_no_update() {
    let backends: Vec<TestBackend> = futures_join(8).await;
    let list: Vec<String> = backends.iter().map(|b| format!("\"{}\"", b.addr)).collect();
    let text = format!(
        "[pools.blue]\nbackends = [{}]\n\n[[routes]]\nname = \"web\"\nsplit = {{ blue = 1 }}\n",
        list.join(", ")
    );
    let proxy = TestProxy::start(&text).await;
    let c = client();
    let calls: Vec<_> = backends
        .iter()
        .map(|b| {
            let (c, url) = (
                c.clone(),
                proxy.admin_url(&format!("/api/v1/backends/blue/{}/drain", b.addr)),
            );
            tokio::spawn(async move { send(&c, "POST", &url, &[], "").await.status })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap(), 200);
    }
    assert_eq!(proxy.table().generation, 9);
    assert!(proxy.table().pools()[0]
        .backends
        .iter()
        .all(|b| b.is_draining()));
    let on_disk = std::fs::read_to_string(&proxy.path).unwrap();
    assert_eq!(on_disk.matches("drain = true").count(), 8, "{on_disk}");
    proxy.stop().await;
}

async fn futures_join(n: usize) -> Vec<TestBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(TestBackend::start(&format!("b{i}")).await);
    }
    v
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

fn ctl(proxy: &TestProxy, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("ctl")
        .args(["--admin", &format!("http://{}", proxy.admin)])
        .args(args)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_drives_the_api_with_clear_output_and_exit_codes() {
    let (blue, green) = (
        TestBackend::start("blue").await,
        TestBackend::start("green").await,
    );
    let proxy = TestProxy::start(&commented(&blue, &green, "")).await;
    let run = |args: Vec<String>| {
        let proxy = &proxy;
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(proxy, &args)
    };
    let (code, out, err) = run(vec!["status".into()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("generation 1")
            && out.contains("blue 100 (100%)")
            && out.contains(&blue.addr.to_string()),
        "{out}"
    );

    let (code, out, err) = run(vec![
        "split".into(),
        "web".into(),
        "blue=75".into(),
        "green=25".into(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.trim(),
        "route web: blue 75 (75%), green 25 (25%) (generation 2, written to the file)"
    );

    let (code, out, _) = run(vec!["flip".into(), "web".into(), "green".into()]);
    assert_eq!(code, 0);
    assert!(out.contains("green 100 (100%)"), "{out}");
    let (code, out, _) = run(vec!["rollback".into(), "web".into()]);
    assert_eq!(code, 0);
    assert!(out.contains("blue 75 (75%), green 25 (25%)"), "{out}");

    let (code, out, _) = run(vec!["drain".into(), "blue".into(), blue.addr.to_string()]);
    assert_eq!(code, 0);
    assert_eq!(
        out.trim(),
        format!(
            "backend blue/{} drained (generation 5, written to the file)",
            blue.addr
        )
    );
    let (code, _, _) = run(vec!["undrain".into(), "blue".into(), blue.addr.to_string()]);
    assert_eq!(code, 0);

    let (code, out, _) = run(vec!["history".into()]);
    assert_eq!(code, 0);
    for action in ["split", "flip", "rollback", "drain", "undrain"] {
        assert!(out.contains(action), "{action} missing from:\n{out}");
    }
    let (code, out, _) = run(vec!["--json".into(), "reload".into()]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["changed"], false);

    // refused by the API: exit 1 with the API's reason
    let (code, _, err) = run(vec!["flip".into(), "nope".into(), "green".into()]);
    assert_eq!(code, 1);
    assert!(
        err.contains("404 not_found: route \"nope\" not found"),
        "{err}"
    );
    let (code, _, err) = run(vec![
        "--if-match".into(),
        "1".into(),
        "flip".into(),
        "web".into(),
        "green".into(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("409 generation_mismatch"), "{err}");
    // bad usage: exit 2 (clap)
    let (code, _, _) = run(vec!["split".into(), "web".into(), "blue:75".into()]);
    assert_eq!(code, 2);
    proxy.stop().await;

    // nothing listening: exit 69
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = Command::new(BIN)
        .args(["ctl", "--admin", &format!("http://{dead}"), "status"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(69),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
