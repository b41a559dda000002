//! `POST /api/v1/backends/{pool}/{addr}/probe`: probe one backend now and
//! answer the result together with the proxy's own view of it.
//!
//! The probe is made when the request arrives, so its result is evidence
//! about the backend as it is *now* — which `health` in the status is not
//! right after a restart: a restart quicker than `unhealthy_threshold`
//! probes leaves the earlier `healthy` in place. `switchyard ctl
//! rolling-update` waits for `ok` (a fresh probe passed) *and* `health =
//! healthy` (the probe task agrees, so the backend will take traffic once
//! undrained).
//!
//! The probe is the pool's HTTP health check (path, host, expected status,
//! timeout, TLS) or, for a pool with `enabled = false`, a TCP connect within
//! the configured timeout. It is one-off: the result is answered, not fed to
//! the backend's threshold counter, whose only writer stays the probe task.
//! Nothing is recorded in the history: it changes no state.

use tokio::time::Instant;

use super::status::health;
use crate::api::{ProbeAnswer, ProbeCheck};
use crate::health as probes;
use crate::table::{Backend, Pool};

/// Probes `backend` of `pool` and answers the endpoint's answer.
pub async fn probe(pool: &Pool, backend: &Backend) -> ProbeAnswer {
    // Cloned so no table is held across the probe's awaits.
    let cfg = pool.health.clone();
    let started = Instant::now();
    let (check, result) = if cfg.enabled {
        let r = probes::probe_with(backend.addr, backend.tls.as_deref(), &cfg).await;
        (ProbeCheck::Http, r.map(Some))
    } else {
        let r = probes::connect_only(backend.addr, cfg.timeout).await;
        (ProbeCheck::Tcp, r.map(|()| None))
    };
    ProbeAnswer {
        pool: pool.name.to_string(),
        addr: backend.addr,
        check,
        ok: result.is_ok(),
        status: result.as_ref().ok().copied().flatten(),
        failure: result.as_ref().err().map(ToString::to_string),
        elapsed_ms: started.elapsed().as_millis() as u64,
        // Read after the probe: the proxy's view at the time of the answer.
        health: health(backend.health()),
        draining: backend.is_draining(),
        ejected: backend.is_ejected(),
        in_flight: u64::from(backend.in_flight()),
    }
}
