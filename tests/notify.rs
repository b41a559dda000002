//! Webhook notifications (`[[notify]]`) over real sockets: a receiver gets
//! a rollout's events and a flip in order with their fields; failures are
//! retried, given up after `retries` and counted; a dead receiver delays
//! neither the API nor the traffic; a reload moves deliveries to the new
//! URL (and a bad `[[notify]]` is rejected with its key and line); HTTPS
//! receivers are verified against `ca_file`.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::release::{post, Load, WAIT};
use support::route::canary_config;
use support::webhook::{BlackHole, Receiver};
use support::*;

/// Route `r` from blue to canary (two steps of 300 ms, 5 requests each),
/// then `notify`.
fn config(blue: &TestBackend, canary: &TestBackend, notify: &str) -> String {
    canary_config(
        blue,
        canary,
        "",
        &format!("steps = [50, 100]\nstep_interval = \"300ms\"\nmin_requests = 5\n\n{notify}"),
    )
}

async fn flip(proxy: &TestProxy, to: &str) -> Answer {
    let body = json!({ "to": to }).to_string();
    let a = send(
        &client(),
        "POST",
        &proxy.admin_url("/api/v1/routes/r/flip"),
        &[],
        &body,
    )
    .await;
    assert_eq!(a.status, 200, "flip to {to}: {}", a.text());
    a
}

/// `switchyard_notifications_total{sink, result}` on /metrics (0 if absent).
async fn notifications(proxy: &TestProxy, sink: &str, result: &str) -> f64 {
    let text = get(&client(), &proxy.admin_url("/metrics"), &[])
        .await
        .text();
    let (sink, result) = (format!("sink=\"{sink}\""), format!("result=\"{result}\""));
    text.lines()
        .filter(|l| l.starts_with("switchyard_notifications_total{"))
        .filter(|l| l.contains(&sink) && l.contains(&result))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_and_a_flip_reach_the_receiver_in_order_with_their_fields() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let hook = Receiver::start().await;
    let notify = format!(
        "[[notify]]\nurl = \"{}\"\nheaders = {{ Authorization = \"Bearer t0ken\" }}\n",
        hook.url("/hooks/s3cret?channel=deploys")
    );
    let proxy = TestProxy::start(&config(&blue, &canary, &notify)).await;
    let _traffic = Load::start(proxy.url("/"), 3, Duration::ZERO);
    let started = post(&proxy, "/api/v1/routes/r/rollout/start").await;
    assert_eq!(started.status, 202, "{}", started.text());
    eventually(WAIT, "the rollout's promotion is delivered", || async {
        hook.delivered().contains(&"rollout_promote".to_owned())
    })
    .await;
    flip(&proxy, "blue").await;
    let hooks = hook.wait_delivered(4, WAIT).await;

    // In order; the rollout's `split` events are not in the default events.
    assert_eq!(
        hook.delivered(),
        ["rollout_start", "rollout_step", "rollout_promote", "flip"]
    );
    let details: Vec<&str> = hooks
        .iter()
        .map(|h| h.json["detail"].as_str().unwrap_or(""))
        .collect();
    assert!(
        details[0].starts_with("started at step 1 (50% on canary)"),
        "{details:?}"
    );
    assert!(details[1].starts_with("step 1 passed"), "{details:?}");
    for h in &hooks {
        assert_eq!(h.header("content-type"), "application/json");
        assert_eq!(
            h.header("user-agent"),
            concat!("switchyard/", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(h.header("authorization"), "Bearer t0ken");
        assert_eq!(h.header("x-switchyard-event"), h.action());
        assert_eq!(h.header("x-switchyard-delivery"), h.json["delivery"]);
        assert_eq!(h.json["route"], "r");
        assert_eq!(h.json["result"], "applied");
        assert!(
            h.json["generation"].as_u64().is_some_and(|g| g > 1),
            "{}",
            h.json
        );
        assert!(h.json["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("switchyard: ")));
    }
    assert_eq!(hooks[0].json["source"], "rollout");
    assert_eq!(
        hooks[3].json["text"],
        // The promotion kept blue as the standby; the flip back keeps canary.
        "switchyard: flip on route r: blue=0 canary=100 -> blue=100 canary=0 (by api): standby: canary (was blue)"
    );
    // The flip is the history's event, plus `text` and `delivery`.
    let history = get(&client(), &proxy.admin_url("/api/v1/history?limit=1"), &[])
        .await
        .json();
    let mut posted = hooks[3].json.clone();
    let posted = posted.as_object_mut().unwrap();
    assert!(posted.remove("text").is_some() && posted.remove("delivery").is_some());
    assert_eq!(Value::Object(posted.clone()), history["events"][0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_retried_then_given_up_after_retries_and_counted() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let (flaky, down, refusing) = (
        Receiver::start().await,
        Receiver::start().await,
        Receiver::start().await,
    );
    flaky.answer_first(&[500]);
    down.answer_always(503);
    refusing.answer_always(404);
    let sink = |r: &Receiver, retries: u32| {
        format!(
            "[[notify]]\nurl = \"{}\"\nretries = {retries}\nbackoff = \"50ms\"\n\n",
            r.url("/")
        )
    };
    let notify = sink(&flaky, 3) + &sink(&down, 2) + &sink(&refusing, 3);
    let proxy = TestProxy::start(&config(&blue, &canary, &notify)).await;
    flip(&proxy, "canary").await;

    // 500, then the same delivery again, answered 200.
    flaky.wait_delivered(1, WAIT).await;
    let tries = flaky.hooks();
    assert_eq!(
        tries.iter().map(|h| h.status).collect::<Vec<_>>(),
        [500, 200]
    );
    assert_eq!(tries[0].json, tries[1].json);
    let (down_sink, refusing_sink) = (down.addr.to_string(), refusing.addr.to_string());
    eventually(WAIT, "the dead sink's failure is counted", || async {
        notifications(&proxy, &down_sink, "failed").await == 1.0
    })
    .await;
    eventually(WAIT, "the refusing sink's failure is counted", || async {
        notifications(&proxy, &refusing_sink, "failed").await == 1.0
    })
    .await;
    // The first try and `retries` more, then nothing; a 404 is not retried.
    assert_eq!(down.hooks().len(), 3);
    assert_eq!(refusing.hooks().len(), 1);
    let flaky_sink = flaky.addr.to_string();
    assert_eq!(notifications(&proxy, &flaky_sink, "delivered").await, 1.0);
    assert_eq!(notifications(&proxy, &flaky_sink, "failed").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_webhook_slows_neither_the_api_nor_the_traffic() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let (hole, live) = (BlackHole::start().await, Receiver::start().await);
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let notify = format!(
        "[[notify]]\nurl = \"{}\"\ntimeout = \"60s\"\n\n\
         [[notify]]\nurl = \"http://{closed_port}/\"\nbackoff = \"10s\"\n\n\
         [[notify]]\nurl = \"{}\"\n",
        hole.url("/"),
        live.url("/")
    );
    let proxy = TestProxy::start(&config(&blue, &canary, &notify)).await;
    let c = client();

    flip(&proxy, "canary").await;
    // The black hole now holds the notifier's connection for up to 60 s.
    hole.wait_accepted(1, WAIT).await;
    live.wait_delivered(1, WAIT).await;

    // While it does, the API answers and the traffic flows ...
    flip(&proxy, "blue").await;
    for _ in 0..20 {
        let a = get(&c, &proxy.url("/"), &[]).await;
        assert_eq!((a.status, a.header("x-backend")), (200, Some("blue")));
    }
    let h = get(&c, &proxy.admin_url("/api/v1/history"), &[]).await;
    assert_eq!(h.status, 200);
    // ... and the live sink gets the second flip, all before the black
    // hole let go of its first one.
    live.wait_delivered(2, WAIT).await;
    assert_eq!(live.delivered(), ["flip", "flip"]);
    assert_eq!((hole.accepted(), hole.closed()), (1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_moves_deliveries_and_a_bad_sink_is_rejected() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let (old, new) = (Receiver::start().await, Receiver::start().await);
    let sink = |r: &Receiver| format!("[[notify]]\nurl = \"{}\"\n", r.url("/hook"));
    let proxy = TestProxy::start(&config(&blue, &canary, &sink(&old))).await;
    flip(&proxy, "canary").await;
    old.wait_delivered(1, WAIT).await;

    // The reload also sets the split back to blue = 100.
    proxy.reload(&config(&blue, &canary, &sink(&new))).await;
    flip(&proxy, "canary").await;
    new.wait_delivered(1, WAIT).await;
    assert_eq!(old.hooks().len(), 1, "nothing more goes to the old URL");

    // An invalid [[notify]] is refused with its line and key; the running
    // sinks stay.
    let bad = config(
        &blue,
        &canary,
        "[[notify]]\nurl = \"deploys.internal/s3cret\"\n",
    );
    std::fs::write(&proxy.path, &bad).unwrap();
    let a = post(&proxy, "/api/v1/reload").await;
    assert_ne!(a.status, 200, "{}", a.text());
    let line = bad.lines().position(|l| l.starts_with("url =")).unwrap() + 1;
    assert!(
        a.text().contains(&format!(":{line}:7: notify[0].url")),
        "{}",
        a.text()
    );
    assert!(
        !a.text().contains("s3cret"),
        "the url is echoed: {}",
        a.text()
    );
    std::fs::write(&proxy.path, config(&blue, &canary, &sink(&new))).unwrap();
    flip(&proxy, "canary").await;
    new.wait_delivered(2, WAIT).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_receiver_is_verified_against_ca_file() {
    let (blue, canary) = (
        TestBackend::start("blue").await,
        TestBackend::start("canary").await,
    );
    let ca = tls::TestCa::new("webhook CA");
    let dir = tempfile::tempdir().unwrap();
    let ca_file = ca.write(dir.path(), "ca.pem");
    let trusted = Receiver::start_tls(tls::acceptor(&ca.issue(&["127.0.0.1"]))).await;
    // Same CA file, but the certificate names another host.
    let misnamed = Receiver::start_tls(tls::acceptor(&ca.issue(&["other.test"]))).await;
    let notify = format!(
        "[[notify]]\nurl = \"{}\"\nca_file = \"{}\"\n\n\
         [[notify]]\nurl = \"{}\"\nca_file = \"{}\"\nretries = 0\n",
        trusted.url("/hook"),
        ca_file.display(),
        misnamed.url("/hook"),
        ca_file.display()
    );
    let proxy = TestProxy::start(&config(&blue, &canary, &notify)).await;
    flip(&proxy, "canary").await;
    let hooks = trusted.wait_delivered(1, WAIT).await;
    assert_eq!(hooks[0].action(), "flip");
    let sink = misnamed.addr.to_string();
    eventually(
        WAIT,
        "the misnamed receiver's failure is counted",
        || async { notifications(&proxy, &sink, "failed").await == 1.0 },
    )
    .await;
    assert!(misnamed.hooks().is_empty());
}
