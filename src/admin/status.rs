//! `GET /api/v1/status`: the routing state in force, as `api::Status`.

use std::sync::atomic::Ordering;

use super::Admin;
use crate::api::{
    BackendStatus, ControllerStatus, Health, LastReload, PoolStatus, RouteStatus, Split, Status,
    TlsStatus,
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
        .map(|r| RouteStatus {
            name: r.name.to_string(),
            path_prefix: r.path_prefix.to_string(),
            split: Split(r.split().map(|(p, w)| (p.name.to_string(), w)).collect()),
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
    }
}
