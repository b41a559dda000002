//! `GET /api/v1/status`: the routing state as JSON.

use std::sync::atomic::Ordering;

use serde_json::json;

use super::Admin;
use crate::table::Health;

/// The API's name of a health state (status and probe answers).
pub fn health_name(h: Health) -> &'static str {
    match h {
        Health::Unknown => "unknown",
        Health::Healthy => "healthy",
        Health::Unhealthy => "unhealthy",
    }
}

pub fn status(admin: &Admin) -> serde_json::Value {
    let table = admin.control.table().load();
    let reload = admin.control.status();
    let routes: Vec<_> = table
        .routes()
        .iter()
        .map(|r| {
            let split: serde_json::Map<_, _> = r
                .split()
                .map(|(p, w)| (p.name.to_string(), json!(w)))
                .collect();
            json!({"name": &*r.name, "path_prefix": &*r.path_prefix, "split": split})
        })
        .collect();
    let pools: Vec<_> = table
        .pools()
        .iter()
        .map(|p| {
            let backends: Vec<_> = p
                .backends
                .iter()
                .map(|b| {
                    json!({
                        "addr": b.addr.to_string(),
                        "health": health_name(b.health()),
                        "draining": b.is_draining(),
                        "in_flight": b.in_flight(),
                    })
                })
                .collect();
            json!({"name": &*p.name, "backends": backends})
        })
        .collect();
    json!({
        "generation": table.generation,
        "routes": routes,
        "pools": pools,
        "connections": admin.connections.load(Ordering::Relaxed),
        // Issue 18: a dead controller applies nothing; say so and why.
        "controller": {
            "running": admin.control.stopped().is_none(),
            "error": admin.control.stopped(),
        },
        "last_reload": {
            "generation": reload.generation,
            "source": reload.source.map(|s| s.to_string()),
            "error": reload.error,
        },
        // Issue 18: settings changed in the file that wait for a restart.
        "restart_needed": reload.restart_needed,
        // The HTTPS listener's certificates: what is served, and why a
        // changed file is not (null without an HTTPS listener).
        "tls": admin.tls.as_ref().map(|c| json!({"certificates": c.status()})),
        "rollouts": admin.rollouts.all(),
        "flips": admin.rollouts.flip_statuses(),
    })
}
