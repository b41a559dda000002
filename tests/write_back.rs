//! Admin API changes written back to the config file: every comment is
//! kept, drain and undrain round-trip exactly, a restart comes back in the
//! state the API left, a read-only file applies in memory and says so,
//! concurrent calls lose no update, and an operator's save that races a
//! write-back is never lost (the controller re-reads the file just before
//! its rename and plans the change again on top of an edit saved
//! meanwhile).

mod support;

use support::route::{blue_green, commented, commented_proxy, split};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_are_written_back_keeping_every_comment() {
    let (blue, green, proxy) = commented_proxy().await;
    let text = commented(&blue, &green, "");
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
        split(&proxy),
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
        split(&restarted),
        vec![("blue".into(), 75), ("green".into(), 25)]
    );
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_file_applies_in_memory_and_says_so() {
    use std::os::unix::fs::PermissionsExt;
    let (blue, green, proxy) = commented_proxy().await;
    let text = commented(&blue, &green, "");
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
    assert_eq!(split(&proxy), vec![("green".into(), 100)]);
    assert_eq!(std::fs::read_to_string(&proxy.path).unwrap(), text);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_api_calls_lose_no_update() {
    let backends: Vec<TestBackend> = backends(8).await;
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

/// Backends `b0`, `b1`, ... started one after the other.
async fn backends(n: usize) -> Vec<TestBackend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(TestBackend::start(&format!("b{i}")).await);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_saved_during_a_write_back_is_kept() {
    let (_blue, _green, proxy) = blue_green().await;
    let c = client();
    for round in 0..20 {
        // An editor's save (read, change, write a temporary file, rename)
        // and an API change, at the same moment.
        let path = proxy.path.clone();
        let save = tokio::task::spawn_blocking(move || {
            let text = std::fs::read_to_string(&path).unwrap();
            let tmp = path.with_extension("editor-tmp");
            std::fs::write(&tmp, format!("{text}# operator note {round}\n")).unwrap();
            std::fs::rename(&tmp, &path).unwrap();
        });
        let body = if round % 2 == 0 {
            r#"{"blue": 0, "green": 100}"#
        } else {
            r#"{"blue": 100, "green": 0}"#
        };
        let url = proxy.admin_url("/api/v1/routes/r/split");
        let api = send(&c, "PUT", &url, &[], body);
        let (saved, answer) = tokio::join!(save, api);
        saved.unwrap();
        assert_eq!(answer.status, 200, "{}", answer.text());
        let text = std::fs::read_to_string(&proxy.path).unwrap();
        for n in 0..=round {
            assert!(
                text.contains(&format!("# operator note {n}\n")),
                "round {round}: the save of note {n} was overwritten:\n{text}"
            );
        }
    }
    proxy.stop().await;
}
