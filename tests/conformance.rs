//! The HTTP/1 conformance suite: every case of `conformance/requests.rs`
//! and `conformance/responses.rs` is sent as raw bytes through the proxy to
//! a raw backend that logs what it receives, and judged on both what the
//! client got and what the backend received. It runs against both HTTP/1
//! engines (`server.http1 = "hyper" | "lean"`); a case marked
//! `hyper_differs` documents where the hyper path is known to be wrong and
//! must fail there (so a fix is noticed).
//!
//! The same cases run against nginx and HAProxy (`conformance/peers.rs`),
//! with `nginx_differs` / `haproxy_differs` marks where they come out
//! otherwise: the suite's claim of parity with them is checked, not
//! asserted, and every difference says why.

mod support;

#[path = "conformance/backend.rs"]
mod backend;
#[path = "conformance/case.rs"]
mod case;
#[path = "conformance/client.rs"]
mod client;
#[path = "conformance/peers.rs"]
mod peers;
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

/// Who is under test: one of switchyard's HTTP/1 engines, or a peer.
#[derive(Clone, Copy)]
enum Subject {
    Engine(&'static str),
    Peer(peers::Peer),
}

impl Subject {
    fn name(self) -> &'static str {
        match self {
            Subject::Engine(e) => e,
            Subject::Peer(p) => p.name(),
        }
    }

    /// Where `case` is known to come out otherwise on this subject.
    fn differs(self, case: &Case) -> Option<&'static str> {
        match self {
            Subject::Engine("hyper") => case.hyper_differs,
            Subject::Engine(_) => None,
            Subject::Peer(peers::Peer::Nginx) => case.nginx_differs,
            Subject::Peer(peers::Peer::Haproxy) => case.haproxy_differs,
        }
    }
}

/// Runs every case against `subject`; panics listing every failure. A case
/// marked as differing on the subject must fail there (so that a change
/// is noticed and the mark removed or its reason rewritten).
async fn run_suite(subject: Subject) {
    let backend = RawBackend::start().await;
    let (proxy, peer) = match subject {
        Subject::Engine(e) => (Some(TestProxy::start(&config(&backend, e)).await), None),
        Subject::Peer(p) => (None, Some(peers::start(p, backend.addr).await)),
    };
    let addr = match (&proxy, &peer) {
        (Some(p), _) => p.addr,
        (_, Some(p)) => p.addr,
        _ => unreachable!("one of them was started"),
    };
    let name = subject.name();
    let mut failures = Vec::new();
    let mut same = 0;
    let mut differ = Vec::new();
    let all: Vec<&Case> = requests::CASES.iter().chain(responses::CASES).collect();
    let names: std::collections::HashSet<_> = all.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), all.len(), "case names are unique");
    for case in &all {
        backend.begin(case.replies);
        let seen = client::run(addr, case.steps, case.head).await;
        let verdict = judge(case, &backend.log(), &seen).map_err(|e| {
            // Messages stay readable when a case sent kilobytes.
            e.chars().take(600).collect::<String>()
        });
        match (verdict, subject.differs(case)) {
            (Ok(()), None) => same += 1,
            (Err(e), None) => failures.push(format!("{} ({}): {e}", case.name, case.why)),
            (Err(e), Some(why)) => {
                differ.push(case.name);
                eprintln!("known difference on {name}: {}: {why} [{e}]", case.name);
            }
            (Ok(()), Some(why)) => failures.push(format!(
                "{} passes on {name} now; remove its `{name}_differs` mark ({why})",
                case.name
            )),
        }
    }
    if let Some(p) = proxy {
        p.stop().await;
    }
    if let Some(p) = peer {
        p.stop().await;
    }
    eprintln!(
        "{name}: {same} of {} cases as switchyard expects, {} known differences ({}), {} unexpected",
        all.len(),
        differ.len(),
        differ.join(", "),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} conformance failures on {name}:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_hyper() {
    run_suite(Subject::Engine("hyper")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_lean() {
    run_suite(Subject::Engine("lean")).await;
}

/// nginx as commonly deployed in front of an app, through the same cases:
/// the parity the suite claims, and each difference with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_nginx() {
    run_suite(Subject::Peer(peers::Peer::Nginx)).await;
}

/// HAProxy (`mode http`, defaults) through the same cases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_haproxy() {
    run_suite(Subject::Peer(peers::Peer::Haproxy)).await;
}
