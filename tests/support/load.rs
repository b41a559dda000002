//! Steady client load through the proxy that keeps every failure: `tasks`
//! client loops, each sending one GET per `every`, count the good answers
//! (200 with a JSON body, which every test backend sends for `/`) and keep
//! a line for each failed one, so a test can say "not one client error"
//! and show the first. (`release::Load` is the other kind: it runs until
//! dropped and only counts failures, for the canary engine to judge.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::BodyExt;
use serde_json::Value;

use super::{client, empty_request, HttpClient};

pub struct Load {
    ok: Arc<AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(url: String, tasks: usize, every: Duration) -> Load {
        let ok: Arc<AtomicU64> = Arc::default();
        let errors: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop: Arc<AtomicBool> = Arc::default();
        let tasks = (0..tasks)
            .map(|_| {
                let (url, ok, errors, stop) =
                    (url.clone(), ok.clone(), errors.clone(), stop.clone());
                tokio::spawn(async move {
                    let c = client();
                    // Pacing, not synchronisation.
                    let mut tick = tokio::time::interval(every);
                    while !stop.load(Ordering::SeqCst) {
                        tick.tick().await;
                        match fetch(&c, &url).await {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => errors.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            ok,
            errors,
            stop,
            tasks,
        }
    }

    /// Good answers so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(Ordering::Relaxed)
    }

    /// Stops the load: the good answers and every failure.
    pub async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let errors = std::mem::take(&mut *self.errors.lock().unwrap());
        (self.ok.load(Ordering::Relaxed), errors)
    }

    /// Stops the load; fails the test on any client error.
    pub async fn finish_without_errors(self) -> u64 {
        let (ok, errors) = self.finish().await;
        assert!(
            errors.is_empty(),
            "{} client errors, first: {:?}",
            errors.len(),
            &errors[..errors.len().min(5)]
        );
        ok
    }
}

/// GET `url`: the body as JSON when the answer is 200, else what went wrong.
pub async fn fetch(c: &HttpClient, url: &str) -> Result<Value, String> {
    let resp = c
        .request(empty_request(url))
        .await
        .map_err(|e| format!("client error: {e:?}"))?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e:?}"))?
        .to_bytes();
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        return Err(format!("{}: {}", status.as_u16(), text.trim()));
    }
    serde_json::from_slice(&body).map_err(|e| format!("not JSON: {e}"))
}
