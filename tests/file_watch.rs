//! The config file watched over real files: edits in every editing style
//! (in place, write-and-rename, `sed -i`, a Kubernetes ConfigMap's symlink
//! swap) are picked up, an identical rewrite is no new generation, and a
//! broken edit keeps the old split and is reported with file, line and key.

mod support;

use std::process::Command;
use std::time::Duration;

use support::route::{commented, commented_proxy, served_by, split, wait_generation};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_edits_in_every_style_are_picked_up() {
    let (blue, green, proxy) = commented_proxy().await;
    let text = commented(&blue, &green, "");
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
        split(&proxy),
        vec![("blue".into(), 90), ("green".into(), 10)]
    );

    // 2. an editor's write-to-temp-and-rename
    let tmp = path.with_extension("swp");
    std::fs::write(&tmp, weights(50, 50)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    wait_generation(&proxy, 3).await;
    assert_eq!(
        split(&proxy),
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
        split(&proxy),
        vec![("blue".into(), 10), ("green".into(), 90)]
    );

    // 4. an identical rewrite is not a new generation: the next real edit
    //    lands exactly one generation later.
    std::fs::write(&path, weights(10, 90)).unwrap();
    std::fs::write(&path, weights(0, 100)).unwrap();
    wait_generation(&proxy, 5).await;
    assert_eq!(split(&proxy), vec![("green".into(), 100)]);
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
    assert_eq!(split(&proxy), vec![("green".into(), 100)]);
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_edit_keeps_the_old_split_and_is_reported() {
    let (blue, green, proxy) = commented_proxy().await;
    let text = commented(&blue, &green, "");
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
    assert_eq!(served_by(&c, &proxy).await.as_deref(), Some("blue"));
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
    assert_eq!(served_by(&c, &proxy).await.as_deref(), Some("green"));
    proxy.stop().await;
}
