//! The HTTP/1 conformance suite: every case of `conformance/requests.rs`
//! and `conformance/responses.rs` is sent as raw bytes through the proxy to
//! a raw backend that logs what it receives, and judged on both what the
//! client got and what the backend received. It runs against both HTTP/1
//! engines (`server.http1 = "hyper" | "lean"`); a case marked
//! `hyper_differs` documents where the hyper path is known to be wrong and
//! must fail there (so a fix is noticed).

mod support;

#[path = "conformance/backend.rs"]
mod backend;
#[path = "conformance/case.rs"]
mod case;
#[path = "conformance/client.rs"]
mod client;
#[path = "conformance/requests.rs"]
mod requests;
#[path = "conformance/responses.rs"]
mod responses;

use backend::RawBackend;
use case::{judge, Case};
use support::TestProxy;

fn config(backend: &RawBackend, engine: &str) -> String {
    format!(
        "[server]\nhttp1 = \"{engine}\"\nworkers = 1\n\n[health]\nenabled = false\n\n\
         [pools.p]\nbackends = [\"{}\"]\n\n[[routes]]\nname = \"r\"\nsplit = {{ p = 1 }}\n",
        backend.addr
    )
}

/// Runs every case against `engine`; panics listing every failure.
async fn run_suite(engine: &str) {
    let backend = RawBackend::start().await;
    let proxy = TestProxy::start(&config(&backend, engine)).await;
    let mut failures = Vec::new();
    let mut passed = 0;
    let all: Vec<&Case> = requests::CASES.iter().chain(responses::CASES).collect();
    let names: std::collections::HashSet<_> = all.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), all.len(), "case names are unique");
    for case in all {
        backend.begin(case.replies);
        let seen = client::run(proxy.addr, case.steps, case.head).await;
        let verdict = judge(case, &backend.log(), &seen).map_err(|e| {
            // Messages stay readable when a case sent kilobytes.
            e.chars().take(600).collect::<String>()
        });
        let known = (engine == "hyper").then_some(case.hyper_differs).flatten();
        match (verdict, known) {
            (Ok(()), None) => passed += 1,
            (Err(e), None) => failures.push(format!("{} ({}): {e}", case.name, case.why)),
            (Err(e), Some(why)) => {
                passed += 1;
                eprintln!("known difference on {engine}: {}: {why} [{e}]", case.name);
            }
            (Ok(()), Some(why)) => failures.push(format!(
                "{} passes on {engine} now; remove its `hyper_differs` mark ({why})",
                case.name
            )),
        }
    }
    proxy.stop().await;
    eprintln!(
        "{engine}: {passed} cases as expected, {} not",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures on {engine}:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hyper() {
    run_suite("hyper").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_lean() {
    run_suite("lean").await;
}
