//! Backends given by DNS name: one backend per address, re-resolved, with
//! failures keeping the last good answer. A test resolver stands in for DNS
//! (a real name that answers with two loopback addresses is not available
//! on every machine).

mod support;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use switchyard::control::Resolve;

#[derive(Default)]
struct FakeDns {
    answers: Mutex<HashMap<String, io::Result<Vec<SocketAddr>>>>,
    lookups: AtomicUsize,
}

impl FakeDns {
    fn set(&self, host: &str, answer: io::Result<Vec<SocketAddr>>) {
        self.answers.lock().unwrap().insert(host.to_owned(), answer);
    }
}

impl Resolve for FakeDns {
    fn resolve<'a>(
        &'a self,
        host: &'a str,
        _port: u16,
    ) -> Pin<Box<dyn std::future::Future<Output = io::Result<Vec<SocketAddr>>> + Send + 'a>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        let answer = match self.answers.lock().unwrap().get(host) {
            Some(Ok(a)) => Ok(a.clone()),
            Some(Err(e)) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Err(io::Error::new(io::ErrorKind::NotFound, "no such host")),
        };
        Box::pin(async move { answer })
    }
}

fn addrs_of(proxy: &TestProxy) -> Vec<SocketAddr> {
    let t = proxy.table();
    let mut v: Vec<SocketAddr> = t.pools()[0]
        .backends
        .iter()
        .filter(|b| !b.is_draining())
        .map(|b| b.addr)
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_becomes_one_backend_per_address_and_follows_the_answers() {
    let (b1, b2) = (
        TestBackend::start("one").await,
        TestBackend::start("two").await,
    );
    let dns = Arc::new(FakeDns::default());
    dns.set("app.internal", Ok(vec![b1.addr, b2.addr]));
    let cfg = "[health]\ninterval = \"100ms\"\ntimeout = \"80ms\"\nhealthy_threshold = 1\n\
               [pools.app]\nbackends = [\"app.internal:8000\"]\nresolve_interval = \"100ms\"\n\
               [[routes]]\nname = \"r\"\nsplit = { app = 1 }\n";
    let proxy = TestProxy::start_with_resolver(cfg, dns.clone()).await;
    let mut both = vec![b1.addr, b2.addr];
    both.sort();
    eventually(
        Duration::from_secs(10),
        "both addresses are backends",
        || async { addrs_of(&proxy) == both },
    )
    .await;
    // new addresses take traffic after their first passing probe
    eventually(
        Duration::from_secs(10),
        "both are probed healthy",
        || async {
            proxy.table().pools()[0]
                .backends
                .iter()
                .all(|b| b.health() == switchyard::table::Health::Healthy)
        },
    )
    .await;

    // steady traffic while the answer changes: no request may fail
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicUsize::new(0));
    let load = {
        let (stop, failures, c, url) = (stop.clone(), failures.clone(), client(), proxy.url("/"));
        tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                if get(&c, &url, &[]).await.status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                n += 1;
            }
            n
        })
    };
    eventually(Duration::from_secs(10), "both backends serve", || async {
        b1.requests() > 5 && b2.requests() > 5
    })
    .await;

    dns.set("app.internal", Ok(vec![b2.addr]));
    eventually(
        Duration::from_secs(10),
        "the vanished address is drained",
        || async { addrs_of(&proxy) == vec![b2.addr] },
    )
    .await;
    let served_by_one = b1.requests();

    // a failing lookup keeps the last good answer
    dns.set("app.internal", Err(io::Error::other("SERVFAIL")));
    let lookups = dns.lookups.load(Ordering::SeqCst);
    eventually(Duration::from_secs(10), "two more lookups", || async {
        dns.lookups.load(Ordering::SeqCst) >= lookups + 2
    })
    .await;
    assert_eq!(addrs_of(&proxy), vec![b2.addr]);

    stop.store(true, Ordering::Relaxed);
    let sent = load.await.unwrap();
    assert!(sent > 50, "only {sent} requests were sent");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "requests failed while the answer changed"
    );
    // nothing new went to the drained address after it was drained
    assert!(b1.requests() <= served_by_one + 1);
    let events = get(&client(), &proxy.admin_url("/api/v1/history"), &[])
        .await
        .json();
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "resolve"),
        "{events}"
    );
    proxy.stop().await;
}

#[test]
fn names_validate_and_schemes_are_refused() {
    let ok = "[pools.a]\nbackends = [\"blue:8000\", \"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 1 }\n";
    let cfg = switchyard::config::parse(ok, std::path::Path::new("t.toml")).unwrap();
    assert_eq!(cfg.pools[0].names[0].host, "blue");
    assert_eq!(cfg.pools[0].backends.len(), 1);
    // http:// and https:// are understood (issue 7); other schemes are not.
    let bad = ok.replace("blue:8000", "ftp://blue:8000");
    let e = switchyard::config::parse(&bad, std::path::Path::new("t.toml")).unwrap_err();
    assert!(e.to_string().contains("only http:// and https://"), "{e}");
    // the compose config shipped with the repository is valid
    let compose = concat!(env!("CARGO_MANIFEST_DIR"), "/config/compose.toml");
    let text = std::fs::read_to_string(compose).unwrap();
    switchyard::config::parse(&text, std::path::Path::new(compose))
        .unwrap_or_else(|e| panic!("{e}"));
}
