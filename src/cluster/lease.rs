//! This replica's lease: granted with `lease_ttl`, kept alive every third
//! of it, granted again when lost. Membership, the leader key and the
//! statistics publication are bound to it, so a replica that dies (or is
//! paused, or cut off) past its TTL disappears from etcd by itself.
//!
//! The state is published on a `watch` channel: `Some(id)` while the lease
//! is believed alive, `None` otherwise. "Believed alive" is conservative:
//! the deadline is counted from the moment the last successful keep-alive
//! was *sent*, so this replica gives the lease up no later than etcd
//! expires it. The same loop is the store's health probe (`Health`).

use std::time::Duration;

use etcd_client::Client;
use tokio::sync::watch;
use tokio::time::{timeout, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::connect::rpc;
use super::error::describe;
use super::health::Health;

/// Runs the lease loop until `shutdown`; then revokes the lease, so the
/// replica's keys go at once instead of after the TTL.
pub async fn run(
    client: Client,
    ttl: Duration,
    lease_tx: watch::Sender<Option<i64>>,
    health: Health,
    shutdown: CancellationToken,
) {
    let mut backoff = Backoff::new(ttl);
    loop {
        let granted = tokio::select! {
            _ = shutdown.cancelled() => return,
            g = grant(&client, ttl) => g,
        };
        let id = match granted {
            Ok(id) => id,
            Err(e) => {
                health.down(&e);
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next()) => continue,
                }
            }
        };
        health.up();
        backoff.reset();
        tracing::info!(lease = id, ttl_s = ttl.as_secs(), "cluster lease granted");
        // `send_replace`: the value matters even when nobody listens yet.
        lease_tx.send_replace(Some(id));
        let end = keep(&client, id, ttl, &health, &shutdown).await;
        lease_tx.send_replace(None);
        match end {
            KeepEnd::Shutdown => {
                let mut c = client.clone();
                // Best effort: if etcd is unreachable the lease simply
                // expires after its TTL.
                if let Err(e) = rpc(c.lease_revoke(id)).await {
                    tracing::debug!(lease = id, error = %e, "lease not revoked at shutdown");
                }
                return;
            }
            KeepEnd::Lost(why) => {
                tracing::warn!(lease = id, reason = %why, "cluster lease lost; granting a new one");
            }
        }
    }
}

async fn grant(client: &Client, ttl: Duration) -> Result<i64, String> {
    let mut c = client.clone();
    let secs = ttl.as_secs().max(1) as i64;
    match rpc(c.lease_grant(secs, None)).await {
        Ok(r) if r.error().is_empty() => Ok(r.id()),
        Ok(r) => Err(r.error().to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

enum KeepEnd {
    Shutdown,
    Lost(String),
}

/// Keeps lease `id` alive until it is lost (etcd says so, or no renewal
/// succeeded within the TTL) or shutdown.
async fn keep(
    client: &Client,
    id: i64,
    ttl: Duration,
    health: &Health,
    shutdown: &CancellationToken,
) -> KeepEnd {
    let period = ttl / 3;
    let mut deadline = Instant::now() + ttl;
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stream = None;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return KeepEnd::Shutdown,
            _ = tick.tick() => {}
        }
        if Instant::now() >= deadline {
            return KeepEnd::Lost(format!("no renewal within {ttl:?}"));
        }
        let sent = Instant::now();
        if stream.is_none() {
            let mut c = client.clone();
            match timeout(period, c.lease_keep_alive(id)).await {
                Ok(Ok(s)) => stream = Some(s),
                Ok(Err(e)) => {
                    health.down(&describe(&e));
                    continue;
                }
                Err(_) => {
                    health.down("lease keep-alive: no answer");
                    continue;
                }
            }
        }
        let Some((keeper, answers)) = stream.as_mut() else {
            continue;
        };
        let round = async {
            keeper.keep_alive().await?;
            answers.message().await
        };
        match timeout(period, round).await {
            Ok(Ok(Some(r))) if r.ttl() > 0 => {
                health.up();
                deadline = sent + ttl;
            }
            Ok(Ok(Some(_))) => return KeepEnd::Lost("etcd says it expired".into()),
            Ok(Ok(None)) => {
                health.down("lease keep-alive stream closed");
                stream = None;
            }
            Ok(Err(e)) => {
                health.down(&describe(&e));
                stream = None;
            }
            Err(_) => {
                health.down("lease keep-alive: no answer");
                stream = None;
            }
        }
    }
}

/// Doubling retry delay from 100 ms up to a third of the TTL, with jitter
/// so replicas that lost etcd together do not retry in step.
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    pub fn new(ttl: Duration) -> Self {
        Backoff {
            next: Duration::from_millis(100),
            max: (ttl / 3).max(Duration::from_millis(200)),
        }
    }

    pub fn next(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(self.max);
        d + d.mul_f64(fastrand::f64() * 0.25)
    }

    pub fn reset(&mut self) {
        self.next = Duration::from_millis(100);
    }
}
