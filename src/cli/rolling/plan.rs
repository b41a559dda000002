//! The plan of a rolling update, made from the pool as `/api/v1/status`
//! shows it: which backends, in which batches, and whether starting (and
//! then each batch) is safe. Pure functions; `rolling` does the I/O.

use std::net::SocketAddr;

use switchyard::api::{BackendStatus, Status};

/// What the update is going to do.
#[derive(Debug, PartialEq)]
pub struct Plan {
    /// Backends to replace, `max_unavailable` at a time, in pool order.
    pub batches: Vec<Vec<SocketAddr>>,
    /// Backends drained before the update began: an operator took them out
    /// on purpose, so they are left alone (and left drained).
    pub skipped: Vec<SocketAddr>,
}

/// Why the update does not start.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum Refusal {
    #[error("pool {0:?} is not in the running configuration")]
    UnknownPool(String),
    #[error("pool {0:?} has no backends")]
    EmptyPool(String),
    #[error("every backend of pool {0:?} is drained; there is nothing to update")]
    AllDrained(String),
    #[error(
        "no backend of pool {0:?} is in service (healthy and not drained); \
         a rolling update needs one to carry the traffic"
    )]
    NoneInService(String),
    #[error(
        "--max-unavailable {n} would take every backend of pool {pool:?} that is in service \
         out at once ({in_service} of {total} are healthy and not drained); use at most {}",
        in_service - 1
    )]
    TooMany {
        pool: String,
        n: usize,
        in_service: usize,
        total: usize,
    },
}

/// The backends of `pool` in a status answer.
pub fn pool_backends(status: &Status, pool: &str) -> Result<Vec<BackendStatus>, Refusal> {
    status
        .pool(pool)
        .map(|p| p.backends.clone())
        .ok_or_else(|| Refusal::UnknownPool(pool.to_owned()))
}

/// Plans the update of `backends` (of `pool`), `max_unavailable` at a time.
pub fn plan(
    pool: &str,
    backends: &[BackendStatus],
    max_unavailable: usize,
) -> Result<Plan, Refusal> {
    if backends.is_empty() {
        return Err(Refusal::EmptyPool(pool.to_owned()));
    }
    let (skipped, todo): (Vec<_>, Vec<_>) = backends.iter().partition(|b| b.draining);
    if todo.is_empty() {
        return Err(Refusal::AllDrained(pool.to_owned()));
    }
    let in_service = backends.iter().filter(|b| b.in_service()).count();
    if in_service == 0 {
        return Err(Refusal::NoneInService(pool.to_owned()));
    }
    if max_unavailable >= in_service {
        return Err(Refusal::TooMany {
            pool: pool.to_owned(),
            n: max_unavailable,
            in_service,
            total: backends.len(),
        });
    }
    let todo: Vec<SocketAddr> = todo.iter().map(|b| b.addr).collect();
    Ok(Plan {
        batches: todo
            .chunks(max_unavailable.max(1))
            .map(<[_]>::to_vec)
            .collect(),
        skipped: skipped.iter().map(|b| b.addr).collect(),
    })
}

/// Checked again, on a fresh status, just before a batch is drained: the
/// pool must keep at least one backend in service outside the batch (one
/// may have failed its health checks since the update began). Answers why
/// not.
pub fn batch_is_safe(backends: &[BackendStatus], batch: &[SocketAddr]) -> Result<(), String> {
    if let Some(gone) = batch
        .iter()
        .find(|a| !backends.iter().any(|b| b.addr == **a))
    {
        return Err(format!("{gone} is no longer in the pool"));
    }
    let others: Vec<&BackendStatus> = backends
        .iter()
        .filter(|b| !batch.contains(&b.addr))
        .collect();
    if others.iter().any(|b| b.in_service()) {
        return Ok(());
    }
    let states: Vec<String> = others
        .iter()
        .map(|b| {
            let state = if b.draining {
                "drained"
            } else {
                b.health.as_str()
            };
            format!("{} {state}", b.addr)
        })
        .collect();
    Err(format!(
        "draining it would leave no backend of the pool in service ({})",
        if states.is_empty() {
            "no other backends".to_owned()
        } else {
            states.join(", ")
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(port: u16, health: &str, draining: bool) -> BackendStatus {
        BackendStatus {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            health: serde_json::from_value(serde_json::json!(health)).unwrap(),
            draining,
            in_flight: 0,
        }
    }

    fn addrs(ports: &[u16]) -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    #[test]
    fn batches_follow_pool_order_and_skip_drained_backends() {
        let pool = [
            b(1, "healthy", false),
            b(2, "healthy", true),
            b(3, "healthy", false),
            b(4, "unhealthy", false),
            b(5, "healthy", false),
        ];
        let p = plan("web", &pool, 2).unwrap();
        assert_eq!(p.batches, vec![addrs(&[1, 3]), addrs(&[4, 5])]);
        assert_eq!(p.skipped, addrs(&[2]));
        let p = plan("web", &pool, 1).unwrap();
        assert_eq!(p.batches.len(), 4);
    }

    #[test]
    fn refuses_to_take_every_backend_in_service_out() {
        let pool = [b(1, "healthy", false), b(2, "unhealthy", false)];
        assert_eq!(
            plan("web", &pool, 1),
            Err(Refusal::TooMany {
                pool: "web".into(),
                n: 1,
                in_service: 1,
                total: 2
            })
        );
        let three = [
            b(1, "healthy", false),
            b(2, "healthy", false),
            b(3, "healthy", false),
        ];
        assert!(plan("web", &three, 2).is_ok());
        let e = plan("web", &three, 3).unwrap_err();
        assert!(e.to_string().contains("use at most 2"), "{e}");
        assert_eq!(plan("web", &[], 1), Err(Refusal::EmptyPool("web".into())));
        assert_eq!(
            plan("web", &[b(1, "healthy", true)], 1),
            Err(Refusal::AllDrained("web".into()))
        );
        assert_eq!(
            plan(
                "web",
                &[b(1, "unhealthy", false), b(2, "unknown", false)],
                1
            ),
            Err(Refusal::NoneInService("web".into()))
        );
    }

    #[test]
    fn a_batch_must_leave_one_backend_in_service() {
        let pool = [
            b(1, "healthy", false),
            b(2, "unhealthy", false),
            b(3, "healthy", true),
        ];
        assert_eq!(batch_is_safe(&pool, &addrs(&[2])), Ok(()));
        let e = batch_is_safe(&pool, &addrs(&[1])).unwrap_err();
        assert!(
            e.contains("127.0.0.1:2 unhealthy") && e.contains("127.0.0.1:3 drained"),
            "{e}"
        );
        let e = batch_is_safe(&pool, &addrs(&[9])).unwrap_err();
        assert!(e.contains("no longer in the pool"), "{e}");
    }

    #[test]
    fn reads_the_status_answer() {
        let status = serde_json::json!({"generation": 1, "routes": [], "connections": 0,
            "controller": {"running": true, "error": null},
            "last_reload": {"generation": 1, "source": null, "error": null},
            "restart_needed": [], "tls": null, "rollouts": [], "flips": [], "pools": [
            {"name": "blue", "backends": []},
            {"name": "web", "backends": [
                {"addr": "127.0.0.1:8001", "health": "healthy", "draining": false, "in_flight": 2},
                {"addr": "[::1]:8002", "health": "unknown", "draining": true, "in_flight": 0},
            ]},
        ]});
        let status: Status = serde_json::from_value(status).unwrap();
        let web = pool_backends(&status, "web").unwrap();
        assert_eq!(web.len(), 2);
        assert_eq!(web[0].in_flight, 2);
        assert!(web[0].in_service() && !web[1].in_service());
        assert_eq!(web[1].addr.port(), 8002);
        assert_eq!(pool_backends(&status, "blue").unwrap(), vec![]);
        assert_eq!(
            pool_backends(&status, "green"),
            Err(Refusal::UnknownPool("green".into()))
        );
    }
}
