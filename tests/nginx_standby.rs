//! The way back after a flip (issue 14, item 1): `ctl flip r green` keeps
//! blue as the route's standby. Under steady load, killing every green
//! backend moves the traffic to blue with no failed request, sticky users
//! keep one fallback (green, then blue, then green — never back and forth),
//! and the traffic returns when green recovers; status, metrics, `ctl
//! status` and the history say so. `ctl standby r none` removes the way
//! back, `ctl standby r blue` sets it again, and draining a pool's last
//! backend says who takes over.

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use support::admin::*;
use support::cli::ctl;
use support::*;

const WAIT: Duration = Duration::from_secs(20);

/// `engine` is the HTTP/1 engine (`server.http1`): the standby's try on a
/// failed request is on both paths.
fn config(engine: &str, blue: &[&TestBackend], green: &[&TestBackend]) -> String {
    let list = |v: &[&TestBackend]| {
        v.iter()
            .map(|b| format!("\"{}\"", b.addr))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "[server]\nhttp1 = \"{engine}\"\n\n[health]\ninterval = \"100ms\"\ntimeout = \"80ms\"\nhealthy_threshold = 1\nunhealthy_threshold = 1\n\n\
         [pools.blue]\nbackends = [{}]\n\n[pools.green]\nbackends = [{}]\n\n\
         [[routes]]\nname = \"r\"\nsplit = {{ blue = 100, green = 0 }}\n\
         sticky = {{ header = \"X-User-ID\" }}\n",
        list(blue),
        list(green)
    )
}

/// Sticky users asking in a loop; each keeps the sequence of pools that
/// answered it (runs collapsed), and every failure is kept.
struct Users {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<HashMap<String, Vec<String>>>>,
    errors: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Users {
    fn start(proxy: &TestProxy, n: usize) -> Users {
        let stop: Arc<AtomicBool> = Arc::default();
        let seen: Arc<Mutex<HashMap<String, Vec<String>>>> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let tasks = (0..n)
            .map(|i| {
                let (stop, seen, errors) = (stop.clone(), seen.clone(), errors.clone());
                let url = proxy.url("/");
                tokio::spawn(async move {
                    let c = client();
                    let user = format!("user-{i}");
                    while !stop.load(Ordering::SeqCst) {
                        let a = get(&c, &url, &[("X-User-ID", &user)]).await;
                        if a.status != 200 {
                            errors
                                .lock()
                                .unwrap()
                                .push(format!("{}: {}", a.status, a.text()));
                            continue;
                        }
                        let pool = a.json()["headers"]["x-switchyard-pool"]
                            .as_str()
                            .unwrap_or("?")
                            .to_owned();
                        {
                            let mut seen = seen.lock().unwrap();
                            let runs = seen.entry(user.clone()).or_default();
                            if runs.last() != Some(&pool) {
                                runs.push(pool);
                            }
                        }
                        // Pacing, not synchronisation.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Users {
            stop,
            seen,
            errors,
            tasks,
        }
    }

    /// Has every user's latest answer come from `pool`?
    fn all_on(&self, pool: &str) -> bool {
        let seen = self.seen.lock().unwrap();
        !seen.is_empty()
            && seen
                .values()
                .all(|r| r.last().map(String::as_str) == Some(pool))
    }

    async fn finish(self) -> (HashMap<String, Vec<String>>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("user task");
        }
        let seen = std::mem::take(&mut *self.seen.lock().unwrap());
        let errors = std::mem::take(&mut *self.errors.lock().unwrap());
        (seen, errors)
    }
}

/// The route's moves to and from its standby in the history, oldest first.
async fn standby_moves(proxy: &TestProxy) -> Vec<String> {
    route_history(proxy, "r")
        .await
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("standby_"))
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_keeps_the_old_pool_as_the_way_back_lean() {
    a_flip_keeps_the_old_pool_as_the_way_back("lean").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flip_keeps_the_old_pool_as_the_way_back_hyper() {
    a_flip_keeps_the_old_pool_as_the_way_back("hyper").await;
}

async fn a_flip_keeps_the_old_pool_as_the_way_back(engine: &str) {
    let (b1, b2) = (
        TestBackend::start("blue-1").await,
        TestBackend::start("blue-2").await,
    );
    let (mut g1, mut g2) = (
        TestBackend::start("green-1").await,
        TestBackend::start("green-2").await,
    );
    let proxy = TestProxy::start(&config(engine, &[&b1, &b2], &[&g1, &g2])).await;
    wait_pool_healthy(&proxy, "green").await;

    let (code, out, err) = ctl(&proxy, &["flip", "r", "green"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("standby blue"), "{out}");
    let file = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(file.contains("standby = \"blue\""), "written back:\n{file}");
    let st = status(&proxy).await;
    assert_eq!(st["routes"][0]["standby"], "blue", "{st}");
    assert_eq!(st["routes"][0]["standby_active"], false, "{st}");
    let m = metrics(&proxy).await;
    assert!(
        m.contains("switchyard_standby{route=\"r\",pool=\"blue\"} 1")
            && m.contains("switchyard_standby{route=\"r\",pool=\"green\"} 0")
            && m.contains("switchyard_standby_serving{route=\"r\",pool=\"blue\"} 0"),
        "{m}"
    );
    let flip = route_history(&proxy, "r").await;
    let flip = flip.last().expect("the flip's event");
    assert_eq!(flip["action"], "flip", "{flip}");
    assert_eq!(flip["detail"], "standby: blue (was none)", "{flip}");

    let users = Users::start(&proxy, 8);
    eventually(WAIT, "every user on green", || async {
        users.all_on("green")
    })
    .await;

    // every green backend dies: the traffic goes to the standby
    g1.kill().await;
    g2.kill().await;
    eventually(WAIT, "every user on blue", || async {
        users.all_on("blue")
    })
    .await;
    assert_eq!(status(&proxy).await["routes"][0]["standby_active"], true);
    assert!(metrics(&proxy)
        .await
        .contains("switchyard_standby_serving{route=\"r\",pool=\"blue\"} 1"));
    let (code, out, err) = ctl(&proxy, &["status"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("blue (serving)"), "{out}");
    // ... and stays there while green is down
    let on_blue = b1.requests() + b2.requests();
    eventually(WAIT, "more traffic on blue", || async {
        b1.requests() + b2.requests() > on_blue + 200
    })
    .await;

    // green recovers: the traffic returns
    g1.restart().await;
    g2.restart().await;
    eventually(WAIT, "every user back on green", || async {
        users.all_on("green")
    })
    .await;
    let (seen, errors) = users.finish().await;
    assert!(
        errors.is_empty(),
        "{} failed requests, first: {:?}",
        errors.len(),
        &errors[..errors.len().min(5)]
    );
    for (user, runs) in &seen {
        assert_eq!(
            runs,
            &["green", "blue", "green"],
            "{user} kept one fallback"
        );
    }
    assert_eq!(status(&proxy).await["routes"][0]["standby_active"], false);
    // the history has the way there and back, once each
    eventually(WAIT, "the return in the history", || async {
        let moves = standby_moves(&proxy).await;
        moves.last().map(String::as_str) == Some("standby_return")
    })
    .await;
    assert_eq!(
        standby_moves(&proxy).await,
        ["standby_fallback", "standby_return"]
    );

    // a pool with weight, or one that does not exist, cannot be the standby
    let (code, out, err) = ctl(&proxy, &["standby", "r", "green"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("carries weight"), "{err}");
    let (code, out, err) = ctl(&proxy, &["standby", "r", "purple"]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("\"purple\""), "{err}");

    // without a standby, a dead green is a clear 503
    let (code, out, err) = ctl(&proxy, &["standby", "r", "none"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let file = std::fs::read_to_string(&proxy.path).unwrap();
    assert!(
        !file.contains("standby ="),
        "removed from the file:\n{file}"
    );
    assert_eq!(status(&proxy).await["routes"][0]["standby"], Value::Null);
    let cleared = route_history(&proxy, "r").await;
    let cleared = cleared.last().expect("the standby's event");
    assert_eq!(cleared["action"], "standby", "{cleared}");
    assert_eq!(cleared["detail"], "standby: none (was blue)", "{cleared}");
    g1.kill().await;
    g2.kill().await;
    let c = client();
    eventually(WAIT, "503 without a standby", || async {
        get(&c, &proxy.url("/"), &[]).await.status == 503
    })
    .await;
    let (code, out, err) = ctl(&proxy, &["standby", "r", "blue"]).await;
    assert_eq!(code, 0, "{out}{err}");
    eventually(WAIT, "blue serves as standby again", || async {
        get(&c, &proxy.url("/"), &[]).await.status == 200
    })
    .await;
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_a_pools_last_backend_says_who_takes_over() {
    let (b1, g1) = (
        TestBackend::start("blue-1").await,
        TestBackend::start("green-1").await,
    );
    let proxy = TestProxy::start(&config("lean", &[&b1], &[&g1])).await;
    wait_pool_healthy(&proxy, "green").await;
    let (code, out, err) = ctl(&proxy, &["flip", "r", "green"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = ctl(&proxy, &["drain", "green", &g1.addr.to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(
        said.contains("last available backend of pool green")
            && said.contains("standby pool blue takes over route r"),
        "{said}"
    );
    let (code, out, err) = ctl(&proxy, &["drain", "blue", &b1.addr.to_string()]).await;
    assert_eq!(code, 0, "{out}{err}");
    let said = format!("{out}{err}");
    assert!(said.contains("route r will answer 503"), "{said}");
    proxy.stop().await;
}
