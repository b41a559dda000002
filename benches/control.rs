//! Control-plane latency and its effect on the data plane, measured in one
//! run on loopback (not a test: it prints numbers).
//!
//! - file edit saved → new split in force (p50, p99 over 100 edits);
//! - API answer → split in force (the answer is sent after the store);
//! - requests/s with no changes vs a storm of 100 API changes per second.
//!
//! `cargo bench --bench control`

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let blue = TestBackend::start("blue").await;
    let green = TestBackend::start("green").await;
    let base = format!(
        "[server]\nworkers = 1\n[pools.blue]\nbackends = [\"{}\"]\n[pools.green]\nbackends = [\"{}\"]\n\
         [[routes]]\nname = \"web\"\nsplit = {{ blue = 100, green = 0 }}\n",
        blue.addr, green.addr
    );
    let proxy = TestProxy::start(&base).await;

    // 1. file edit → in force
    let mut lat = Vec::new();
    for i in 0..100u32 {
        let g = proxy.table().generation;
        let w = i % 100 + 1;
        std::fs::write(
            &proxy.path,
            base.replace(
                "blue = 100, green = 0",
                &format!("blue = {}, green = {w}", 100 - w + 1),
            ),
        )
        .unwrap();
        let t0 = Instant::now();
        while proxy.table().generation == g {
            tokio::time::sleep(Duration::from_micros(200)).await;
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "edit {i} not applied"
            );
        }
        lat.push(t0.elapsed());
    }
    lat.sort();
    println!(
        "file edit -> in force: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (100 edits; notify + 50 ms debounce)",
        percentile(&lat, 0.5).as_secs_f64() * 1e3,
        percentile(&lat, 0.99).as_secs_f64() * 1e3,
        lat[lat.len() - 1].as_secs_f64() * 1e3
    );

    // 2. API answer → in force, and the API round trip itself
    let c = client();
    let mut rtt = Vec::new();
    let mut stale = 0;
    for i in 0..100u32 {
        let t0 = Instant::now();
        let body = format!("{{\"blue\": {}, \"green\": {}}}", 100 - i % 50, i % 50 + 1);
        let a = send(
            &c,
            "PUT",
            &proxy.admin_url("/api/v1/routes/web/split"),
            &[],
            &body,
        )
        .await;
        rtt.push(t0.elapsed());
        let g = a.json()["generation"].as_u64().unwrap();
        if proxy.table().generation < g {
            stale += 1;
        }
    }
    rtt.sort();
    println!(
        "API call -> answer (split in force and written to the file): p50 {:.2} ms, p99 {:.2} ms; \
         answers before the split was in force: {stale}/100",
        percentile(&rtt, 0.5).as_secs_f64() * 1e3,
        percentile(&rtt, 0.99).as_secs_f64() * 1e3
    );

    // 3. throughput with and without a storm of 100 changes/s
    for storm in [false, true, false, true] {
        let stop = Arc::new(AtomicBool::new(false));
        let changes = Arc::new(AtomicU64::new(0));
        let storm_task = storm.then(|| {
            let (stop, changes, c, url) = (
                stop.clone(),
                changes.clone(),
                c.clone(),
                proxy.admin_url("/api/v1/routes/web/split"),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(10));
                let mut i = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    tick.tick().await;
                    i += 1;
                    let body = format!("{{\"blue\": {}, \"green\": {}}}", 50 + i % 50, 50 - i % 50);
                    if send(&c, "PUT", &url, &[], &body).await.status == 200 {
                        changes.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        });
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let t0 = Instant::now();
        let secs = 3;
        let workers: Vec<_> = (0..16)
            .map(|_| {
                let (c, url, done, errors) =
                    (client(), proxy.url("/"), done.clone(), errors.clone());
                tokio::spawn(async move {
                    while t0.elapsed() < Duration::from_secs(secs) {
                        if get(&c, &url, &[]).await.status == 200 {
                            done.fetch_add(1, Ordering::Relaxed);
                        } else {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.await.unwrap();
        }
        stop.store(true, Ordering::Relaxed);
        if let Some(t) = storm_task {
            t.await.unwrap();
        }
        println!(
            "{:<22} {:>8.0} req/s, errors {}, changes applied {}",
            if storm {
                "storm of 100 changes/s"
            } else {
                "no changes"
            },
            done.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64(),
            errors.load(Ordering::Relaxed),
            changes.load(Ordering::Relaxed)
        );
    }
    proxy.stop().await;
}
