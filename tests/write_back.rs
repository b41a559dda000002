//! Admin API changes written back to the config file: every comment is
//! kept, drain and undrain round-trip exactly, a restart comes back in the
//! state the API left, a read-only file applies in memory and says so,
//! concurrent calls lose no update, and an operator's save that races a
//! write-back is never lost (the controller re-reads the file just before
//! its rename and plans the change again on top of an edit saved
//! meanwhile). A change that cannot be written (the file holds an invalid
//! edit) says why, and is written on top of the file once it is fixed,
//! unless the fix set the same key to a third value (the file wins, and
//! the history says the change was rejected).

mod support;

use support::route::{blue_green, commented, commented_proxy, split};
use support::*;

use std::time::Duration;

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
    let a = flip_to_green(&proxy).await;
    assert_eq!(a.json()["persisted"], false);
    // The answer says why.
    let why = a.json()["persist_error"].as_str().map(str::to_owned);
    assert!(
        why.as_deref().is_some_and(|w| w.contains("read-only")),
        "{why:?}"
    );
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

/// Flips route `web` to green through the API; the answer (200).
async fn flip_to_green(proxy: &TestProxy) -> Answer {
    let url = proxy.admin_url("/api/v1/routes/web/flip");
    let a = send(&client(), "POST", &url, &[], r#"{"to": "green"}"#).await;
    assert_eq!(a.status, 200, "{}", a.text());
    a
}

/// Saves `text` as the proxy's file the way an editor does (a temporary
/// file renamed over it), so the watcher never reads half of it.
fn save(proxy: &TestProxy, text: &str) {
    let tmp = proxy.path.with_extension("editor-tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, &proxy.path).unwrap();
}

/// Breaks the file of a fresh `commented_proxy`, flips `web` to green and
/// checks the answer says why the file does not hold the flip.
async fn flip_on_a_broken_file() -> (TestBackend, TestBackend, TestProxy, String) {
    let (blue, green, proxy) = commented_proxy().await;
    let text = commented(&blue, &green, "");
    save(&proxy, &format!("{text}bogus_key = 1\n"));
    let c = client();
    let v = flip_to_green(&proxy).await.json();
    assert_eq!(v["persisted"], false, "{v}");
    let why = v["persist_error"].as_str().unwrap_or_default();
    assert!(
        why.contains("holds an edit that is not valid") && why.contains("bogus_key"),
        "{v}"
    );
    assert_eq!(split(&proxy), vec![("green".into(), 100)]);
    // The status lists the flip as unsaved, with the same reason.
    let s = get(&c, &proxy.admin_url("/api/v1/status"), &[])
        .await
        .json();
    assert_eq!(s["unsaved"][0]["action"], "flip", "{s}");
    assert_eq!(s["unsaved"][0]["reason"].as_str(), Some(why), "{s}");
    (blue, green, proxy, text)
}

/// Whether `/api/v1/status` lists no unsaved change.
async fn nothing_unsaved(proxy: &TestProxy) -> bool {
    let s = get(&client(), &proxy.admin_url("/api/v1/status"), &[])
        .await
        .json();
    s.get("unsaved").is_none()
}

/// The history's events for action `action`, newest first.
async fn events_of(proxy: &TestProxy, action: &str) -> Vec<serde_json::Value> {
    let h = get(&client(), &proxy.admin_url("/api/v1/history"), &[])
        .await
        .json();
    h["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_kept_in_memory_is_written_on_top_of_the_fixed_file() {
    let (_blue, _green, proxy, text) = flip_on_a_broken_file().await;
    // The operator fixes the file; it still holds the old split.
    save(&proxy, &format!("{text}# fixed\n"));
    let written = "split = { blue = 0, green = 100 }   # edit this line";
    eventually(
        Duration::from_secs(10),
        "the flip written to the fixed file",
        || {
            let on_disk = std::fs::read_to_string(&proxy.path).unwrap_or_default();
            async move { on_disk.contains(written) }
        },
    )
    .await;
    let on_disk = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(on_disk.contains("# fixed\n"), "{on_disk}");
    assert!(on_disk.contains("standby = \"blue\""), "{on_disk}");
    assert!(!on_disk.contains("bogus_key"), "{on_disk}");
    // The flip is still in force, and nothing is unsaved any more.
    assert_eq!(split(&proxy), vec![("green".into(), 100)]);
    eventually(Duration::from_secs(10), "no unsaved change", || {
        nothing_unsaved(&proxy)
    })
    .await;
    let flips = events_of(&proxy, "flip").await;
    assert_eq!(flips[0]["result"], "applied", "{flips:?}");
    assert_eq!(flips[0]["persisted"], true, "{flips:?}");
    assert!(
        flips[0]["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("re-applied"),
        "{flips:?}"
    );
    // A restart from the file comes back flipped.
    proxy.stop().await;
    let restarted = TestProxy::start(&on_disk).await;
    assert_eq!(split(&restarted), vec![("green".into(), 100)]);
    restarted.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_file_that_sets_a_third_split_wins_and_the_flip_is_rejected() {
    let (_blue, _green, proxy, text) = flip_on_a_broken_file().await;
    let fixed = text.replace("{ blue = 100, green = 0 }", "{ blue = 50, green = 50 }");
    save(&proxy, &fixed);
    eventually(Duration::from_secs(10), "the file's split in force", || {
        let now = split(&proxy);
        async move { now == vec![("blue".into(), 50), ("green".into(), 50)] }
    })
    .await;
    eventually(Duration::from_secs(10), "no unsaved change", || {
        nothing_unsaved(&proxy)
    })
    .await;
    // The file is not rewritten: the operator's edit stands as saved.
    assert_eq!(std::fs::read_to_string(&proxy.path).unwrap(), fixed);
    let flips = events_of(&proxy, "flip").await;
    assert_eq!(flips[0]["result"], "rejected", "{flips:?}");
    let detail = flips[0]["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains("web.split = blue 50, green 50") && detail.contains("file's edit wins"),
        "{flips:?}"
    );
    proxy.stop().await;
}
