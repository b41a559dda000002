//! End to end with the reference user: real FastAPI apps under real
//! uvicorn (examples/fastapi) as blue, green and canary backends, driven
//! through a split, a file edit, an API flip, a rollback, a backend killed
//! and restarted, and idle gaps just past uvicorn's 5 s keep-alive, with
//! steady traffic and zero failed requests.
//!
//! The Python environment (pinned FastAPI and uvicorn) lives in
//! `target/pyenv`; `scripts/test` prepares it, and this test prepares it
//! itself when run alone.

mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::uvicorn::Uvicorn;
use support::*;

fn config(
    blue: &[&Uvicorn],
    green: &Uvicorn,
    canary: &Uvicorn,
    split: &str,
    extra_server: &str,
) -> String {
    let list = |v: &[&Uvicorn]| {
        v.iter()
            .map(|u| format!("\"{}\"", u.addr()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[server]\n{extra_server}\n\
         [health]\npath = \"/health\"\ninterval = \"500ms\"\ntimeout = \"400ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n\n\
         [pools.blue]\nbackends = [{}]\n\n[pools.green]\nbackends = [{}]\n\n[pools.canary]\nbackends = [{}]\n\n\
         [[routes]]\nname = \"api\"\nsplit = {split}   # the line a deploy edits\n\
         sticky = {{ header = \"X-User-ID\" }}\n",
        list(blue),
        list(&[green]),
        list(&[canary])
    )
}

async fn color(c: &HttpClient, proxy: &TestProxy, user: Option<&str>) -> (u16, String) {
    let headers: Vec<(&str, &str)> = user.map(|u| ("X-User-ID", u)).into_iter().collect();
    let a = get(c, &proxy.url("/api/data"), &headers).await;
    let color = if a.status == 200 {
        a.json()["color"].as_str().unwrap_or("?").to_owned()
    } else {
        a.text()
    };
    (a.status, color)
}

/// Steady background traffic; counts every request and every failure.
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(proxy: &TestProxy, tasks: usize) -> Load {
        let (stop, sent, failed) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicUsize::new(0)),
            Arc::new(AtomicUsize::new(0)),
        );
        let tasks = (0..tasks)
            .map(|i| {
                let (stop, sent, failed, c, url) = (
                    stop.clone(),
                    sent.clone(),
                    failed.clone(),
                    client(),
                    proxy.url("/api/data"),
                );
                tokio::spawn(async move {
                    let user = format!("load-{i}");
                    while !stop.load(Ordering::Relaxed) {
                        let a = get(&c, &url, &[("X-User-ID", &user)]).await;
                        sent.fetch_add(1, Ordering::Relaxed);
                        if a.status != 200 {
                            failed.fetch_add(1, Ordering::Relaxed);
                            eprintln!("failed request: {} {}", a.status, a.text());
                        }
                    }
                })
            })
            .collect();
        Load {
            stop,
            sent,
            failed,
            tasks,
        }
    }

    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            t.await.expect("load task");
        }
        (
            self.sent.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_walkthrough_with_real_uvicorn_backends() {
    let mut blue1 = Uvicorn::start("blue", 0);
    let blue2 = Uvicorn::start("blue", 0);
    let green = Uvicorn::start("green", 0);
    let canary = Uvicorn::start("canary", 0);
    let text = config(
        &[&blue1, &blue2],
        &green,
        &canary,
        "{ blue = 100, green = 0, canary = 0 }",
        "",
    );
    let proxy = TestProxy::start(&text).await;
    let c = client();
    let admin = |path: &str| proxy.admin_url(path);
    eventually(
        Duration::from_secs(15),
        "first probe round passes (ready)",
        || async { get(&c, &admin("/ready"), &[]).await.status == 200 },
    )
    .await;
    let load = Load::start(&proxy, 4);

    // 1. everything on blue
    for _ in 0..20 {
        assert_eq!(color(&c, &proxy, None).await, (200, "blue".to_owned()));
    }

    // 2. a deploy edits the split line: 10 % canary, sticky per user
    std::fs::write(
        &proxy.path,
        text.replace(
            "{ blue = 100, green = 0, canary = 0 }",
            "{ blue = 90, green = 0, canary = 10 }",
        ),
    )
    .unwrap();
    eventually(Duration::from_secs(10), "canary takes traffic", || async {
        let mut seen = false;
        for i in 0..60 {
            seen |= color(&c, &proxy, Some(&format!("u{i}"))).await.1 == "canary";
        }
        seen
    })
    .await;
    let mut per_user = Vec::new();
    for i in 0..100 {
        per_user.push(color(&c, &proxy, Some(&format!("user-{i}"))).await.1);
    }
    let on_canary = per_user.iter().filter(|c| *c == "canary").count();
    assert!(
        (2..=25).contains(&on_canary),
        "{on_canary} of 100 users on the canary"
    );
    for (i, col) in per_user.iter().enumerate() {
        assert_eq!(
            &color(&c, &proxy, Some(&format!("user-{i}"))).await.1,
            col,
            "user-{i} changed pools"
        );
    }

    // 3. blue-green flip through the admin API
    let a = send(
        &c,
        "POST",
        &admin("/api/v1/routes/api/flip"),
        &[],
        r#"{"to": "green"}"#,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.json()["persisted"], true);
    for _ in 0..20 {
        assert_eq!(color(&c, &proxy, None).await, (200, "green".to_owned()));
    }

    // 4. rollback: the split before the flip (blue 90 / canary 10)
    let a = send(&c, "POST", &admin("/api/v1/routes/api/rollback"), &[], "").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        a.json()["split"],
        serde_json::json!({"blue": 90, "green": 0, "canary": 10})
    );
    assert!(std::fs::read_to_string(&proxy.path)
        .unwrap()
        .contains("{ blue = 90, green = 0, canary = 10 }   # the line a deploy edits"));

    // 5. a blue instance crashes under load, then comes back on its port
    let port = blue1.port;
    let before = load.sent.load(Ordering::Relaxed);
    blue1.kill();
    eventually(
        Duration::from_secs(10),
        "the load keeps flowing past the crash",
        || async { load.sent.load(Ordering::Relaxed) > before + 200 },
    )
    .await;
    let restarted = Uvicorn::start("blue", port);
    let pid = restarted.pid();
    eventually(
        Duration::from_secs(15),
        "the restarted instance takes traffic",
        || async {
            let a = get(
                &c,
                &proxy.url("/api/data"),
                &[("X-Switchyard-Pool", "blue")],
            )
            .await;
            a.status == 200 && a.json()["pid"].as_u64() == Some(u64::from(pid))
        },
    )
    .await;
    // On a loaded machine (the whole suite on two cores) the background
    // load may be slow: wait for enough of it, rather than assume a rate.
    eventually(
        Duration::from_secs(30),
        "500 requests in the background load",
        || async { load.sent.load(Ordering::Relaxed) > 500 },
    )
    .await;
    let (sent, failed) = load.finish().await;
    assert!(sent > 500, "only {sent} requests in the background load");
    assert_eq!(failed, 0, "{failed} of {sent} requests failed");
    drop(restarted);
    proxy.stop().await;
}

/// uvicorn closes idle keep-alive connections after 5 s. With the default
/// upstream idle timeout (4 s) switchyard retires them first; with a longer
/// one it must notice the close and use a fresh connection. Either way no
/// request may fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_spaced_past_uvicorns_keep_alive_never_fail() {
    let blue = Uvicorn::start("blue", 0);
    let (green, canary) = (Uvicorn::start("green", 0), Uvicorn::start("canary", 0));
    for idle in ["", "upstream_idle_timeout = \"30s\"\nworkers = 1"] {
        let proxy =
            TestProxy::start(&config(&[&blue], &green, &canary, "{ blue = 100 }", idle)).await;
        let c = client();
        eventually(Duration::from_secs(15), "ready", || async {
            get(&c, &proxy.admin_url("/ready"), &[]).await.status == 200
        })
        .await;
        for i in 0..3 {
            let (status, col) = color(&c, &proxy, None).await;
            assert_eq!(
                (status, col.as_str()),
                (200, "blue"),
                "request {i} with [{idle}]"
            );
            if i < 2 {
                // The idle gap is the scenario under test, not a synchronisation.
                tokio::time::sleep(Duration::from_millis(5300)).await;
            }
        }
        proxy.stop().await;
    }
    drop((blue.color, green, canary));
}
