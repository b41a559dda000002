//! Which settings a reload cannot change (issue 18, item 4): the ones read
//! once at start — sockets, threads, the admin's token and guard, the file
//! watcher, the access log, the TLS listener's certificate index, the
//! cluster. A reload that changes one applies everything else and reports
//! the key, in the log, in `/api/v1/status` (`restart_needed`) and in
//! `switchyard check` ([`FIXED_AT_START`]), instead of saying nothing.
//!
//! Everything else applies on reload: routes, pools, health, outlier,
//! retry, notify, and the `[server]` settings the routing table carries —
//! per request (upstream timeouts, the idle pool, `underscores_in_headers`)
//! and per accepted connection (the client-side limits, `redirect_http`,
//! `hsts`: `table::Listening`, read by `server::front`).
//!
//! [`restart_needed`] destructures every `[server]` and `[admin]` field
//! without `..`, so a new field does not compile until it is classified.

use super::model::{AdminConfig, Config, ServerConfig};

/// Every key a reload does not change, as written in the file.
pub const FIXED_AT_START: &[&str] = &[
    "server.listen",
    "server.workers",
    "server.shutdown_grace",
    "server.watch",
    "server.watch_interval",
    "server.listen_tls",
    "server.access_log",
    "server.access_log_format",
    "server.access_log_buffer",
    "server.proxy_protocol",
    "server.trusted_proxies",
    "server.http1",
    "admin.listen",
    "admin.token_env",
    "admin.token_file",
    "admin.history_file",
    "admin.metrics",
    "admin.metrics_open",
    "admin.allowed_hosts",
    "tls",
    "cluster",
];

/// The keys whose value in `new` differs from `running` (the configuration
/// the process started with) and that only a restart applies, in
/// [`FIXED_AT_START`]'s order.
pub fn restart_needed(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut out = Vec::new();
    server(&running.server, &new.server, &mut out);
    admin(&running.admin, &new.admin, &mut out);
    if running.tls != new.tls {
        out.push("tls");
    }
    if running.cluster != new.cluster {
        out.push("cluster");
    }
    debug_assert!(out.iter().all(|k| FIXED_AT_START.contains(k)));
    out
}

fn server(a: &ServerConfig, b: &ServerConfig, out: &mut Vec<&'static str>) {
    let ServerConfig {
        listen,
        workers,
        shutdown_grace,
        // Carried by the routing table: they apply on reload.
        connect_timeout: _,
        upstream_timeout: _,
        upstream_idle_timeout: _,
        upstream_max_idle: _,
        underscores_in_headers: _,
        // Merged into each route's limit at validation.
        max_body_bytes: _,
        // Carried by the routing table and read by the workers once per
        // accepted connection: new connections take them after a reload,
        // open ones keep theirs (`server::front`).
        client_header_timeout: _,
        max_header_bytes: _,
        max_headers: _,
        redirect: _,
        hsts: _,
        watch,
        watch_interval,
        listen_tls,
        access_log,
        access_log_format,
        access_log_buffer,
        proxy_protocol,
        trusted_proxies,
        // Each worker picks its HTTP/1 engine when it starts.
        http1,
    } = a;
    let fixed = [
        ("server.listen", *listen != b.listen),
        ("server.workers", *workers != b.workers),
        ("server.shutdown_grace", *shutdown_grace != b.shutdown_grace),
        ("server.watch", *watch != b.watch),
        ("server.watch_interval", *watch_interval != b.watch_interval),
        ("server.listen_tls", *listen_tls != b.listen_tls),
        ("server.access_log", *access_log != b.access_log),
        (
            "server.access_log_format",
            *access_log_format != b.access_log_format,
        ),
        (
            "server.access_log_buffer",
            *access_log_buffer != b.access_log_buffer,
        ),
        ("server.proxy_protocol", *proxy_protocol != b.proxy_protocol),
        (
            "server.trusted_proxies",
            *trusted_proxies != b.trusted_proxies,
        ),
        ("server.http1", *http1 != b.http1),
    ];
    out.extend(fixed.into_iter().filter(|(_, d)| *d).map(|(k, _)| k));
}

fn admin(a: &AdminConfig, b: &AdminConfig, out: &mut Vec<&'static str>) {
    let AdminConfig {
        listen,
        token_env,
        token_file,
        history_file,
        metrics,
        metrics_open,
        allowed_hosts,
    } = a;
    let fixed = [
        ("admin.listen", *listen != b.listen),
        ("admin.token_env", *token_env != b.token_env),
        ("admin.token_file", *token_file != b.token_file),
        ("admin.history_file", *history_file != b.history_file),
        ("admin.metrics", *metrics != b.metrics),
        ("admin.metrics_open", *metrics_open != b.metrics_open),
        ("admin.allowed_hosts", *allowed_hosts != b.allowed_hosts),
    ];
    out.extend(fixed.into_iter().filter(|(_, d)| *d).map(|(k, _)| k));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(text: &str) -> Config {
        match super::super::parse(text, Path::new("t.toml")) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        }
    }

    const BASE: &str =
        "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 100 }\n";

    #[test]
    fn reloadable_changes_need_no_restart() {
        let a = parse(BASE);
        let b = parse(&format!(
            "[server]\nconnect_timeout = \"1s\"\nupstream_timeout = \"5s\"\n\
             client_header_timeout = \"2s\"\nmax_header_bytes = 16384\nmax_headers = 7\n{BASE}"
        ));
        assert_eq!(restart_needed(&a, &b), Vec::<&str>::new());
        assert_eq!(restart_needed(&a, &a), Vec::<&str>::new());
    }

    #[test]
    fn fixed_settings_are_named() {
        let a = parse(BASE);
        let b = parse(&format!(
            "[server]\nlisten = \"127.0.0.1:1\"\nworkers = 7\nshutdown_grace = \"1s\"\n[admin]\nlisten = \"127.0.0.1:2\"\n{BASE}"
        ));
        assert_eq!(
            restart_needed(&a, &b),
            [
                "server.listen",
                "server.workers",
                "server.shutdown_grace",
                "admin.listen"
            ]
        );
    }
}
