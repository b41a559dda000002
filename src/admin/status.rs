//! `GET /api/v1/status`: the routing state in force, as `api::Status`;
//! and what a drain left behind (`last_backend`).

use std::sync::atomic::Ordering;

use super::Admin;
use crate::api::{
    BackendStatus, ControllerStatus, Health, LastBackend, LastReload, PoolStatus, RouteStatus,
    Split, Status, TakenBy, Takeover, TlsStatus,
};
use crate::table;

/// The API's view of a backend's health.
pub fn health(h: table::Health) -> Health {
    match h {
        table::Health::Unknown => Health::Unknown,
        table::Health::Healthy => Health::Healthy,
        table::Health::Unhealthy => Health::Unhealthy,
    }
}

pub fn status(admin: &Admin) -> Status {
    let table = admin.control.table().load();
    let reload = admin.control.status();
    let routes = table
        .routes()
        .iter()
        .map(|r| {
            let standby = r.standby();
            RouteStatus {
                name: r.name.to_string(),
                path_prefix: r.path_prefix.to_string(),
                split: Split(r.split().map(|(p, w)| (p.name.to_string(), w)).collect()),
                standby: standby.map(|(p, _)| p.name.to_string()),
                standby_active: standby.is_some_and(|(_, on)| on),
                maintenance: r.http.maintenance,
            }
        })
        .collect();
    let pools = table
        .pools()
        .iter()
        .map(|p| PoolStatus {
            name: p.name.to_string(),
            backends: p
                .backends
                .iter()
                .map(|b| BackendStatus {
                    addr: b.addr,
                    health: health(b.health()),
                    draining: b.is_draining(),
                    in_flight: u64::from(b.in_flight()),
                })
                .collect(),
        })
        .collect();
    Status {
        generation: table.generation,
        routes,
        pools,
        connections: admin.connections.load(Ordering::Relaxed) as u64,
        // Issue 18: a dead controller applies nothing; say so and why.
        controller: ControllerStatus {
            running: admin.control.stopped().is_none(),
            error: admin.control.stopped().map(str::to_owned),
        },
        last_reload: LastReload {
            generation: reload.generation,
            source: reload.source,
            error: reload.error,
        },
        // Issue 18: settings changed in the file that wait for a restart.
        restart_needed: reload
            .restart_needed
            .iter()
            .map(|k| (*k).to_owned())
            .collect(),
        // The HTTPS listener's certificates: what is served, and why a
        // changed file is not (null without an HTTPS listener).
        tls: admin.tls.as_ref().map(|c| TlsStatus {
            certificates: c.status(),
        }),
        rollouts: admin.rollouts.all(),
        flips: admin.rollouts.flip_statuses(),
        cluster: super::cluster::status(admin.cluster.as_ref(), &admin.control),
        // Issue 16: changes in force that the file does not hold yet.
        unsaved: reload.unsaved,
    }
}

/// After a drain of one of `pool`'s backends: when the pool has no
/// available backend left, who serves each route it served (by weight or
/// as the standby) — another pool of the split (failover), the standby,
/// or nobody (503). `None` while the pool can still serve.
pub fn last_backend(table: &table::RoutingTable, pool: &str) -> Option<LastBackend> {
    let drained = table.pool(pool.as_bytes())?;
    if drained.is_servable() {
        return None;
    }
    let routes = table
        .routes()
        .iter()
        .filter_map(|r| takeover(r, &drained.name))
        .collect();
    Some(LastBackend {
        pool: pool.to_owned(),
        routes,
    })
}

/// Who takes `route`'s traffic from `pool`, which has no available
/// backend; `None` when the route does not need it.
fn takeover(route: &table::Route, pool: &str) -> Option<Takeover> {
    let by_weight = route.split().any(|(p, _)| &*p.name == pool);
    let standby = route.standby().map(|(p, _)| p);
    let is_standby = standby.is_some_and(|p| &*p.name == pool);
    let (by, to) = if by_weight {
        let other = route
            .split()
            .find(|(p, _)| &*p.name != pool && p.is_servable())
            .filter(|_| route.failover);
        match (other, standby.filter(|s| s.is_servable())) {
            (Some((p, _)), _) => (TakenBy::Failover, Some(p.name.to_string())),
            (None, Some(s)) => (TakenBy::Standby, Some(s.name.to_string())),
            (None, None) => (TakenBy::Nobody, None),
        }
    } else if is_standby && !route.is_servable() {
        (TakenBy::Nobody, None)
    } else {
        return None;
    };
    Some(Takeover {
        route: route.name.to_string(),
        by,
        pool: to,
    })
}
