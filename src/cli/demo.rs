//! `switchyard demo`: demo backends for pools blue, green and canary on
//! loopback, a generated configuration pointing at them, and the proxy.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use switchyard::config;

const POOLS: &[(&str, usize, &str)] = &[
    ("blue", 2, "v1"),
    ("green", 2, "v2"),
    ("canary", 1, "v2-rc1"),
];

pub fn run(listen: SocketAddr, admin: SocketAddr, path: &Path) -> anyhow::Result<()> {
    // Backends run on a runtime of their own thread, apart from the proxy.
    let mut addrs: Vec<(&str, Vec<SocketAddr>)> = Vec::new();
    let mut listeners = Vec::new();
    for (pool, n, version) in POOLS {
        let mut v = Vec::new();
        for _ in 0..*n {
            let l =
                std::net::TcpListener::bind("127.0.0.1:0").context("cannot bind a demo backend")?;
            v.push(l.local_addr()?);
            listeners.push((l, pool.to_string(), version.to_string()));
        }
        addrs.push((pool, v));
    }
    std::thread::Builder::new()
        .name("demo-backends".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    tracing::error!(error = %e, "demo backends cannot start");
                    return;
                }
            };
            rt.block_on(async move {
                let never = CancellationToken::new();
                let tasks: Vec<_> = listeners
                    .into_iter()
                    .map(|(l, pool, version)| {
                        tokio::spawn(switchyard::demo::serve_backend(
                            l,
                            pool,
                            version,
                            never.clone(),
                        ))
                    })
                    .collect();
                for t in tasks {
                    if let Ok(Err(e)) = t.await {
                        tracing::error!(error = %e, "demo backend failed");
                    }
                }
            });
        })
        .context("cannot start demo backends")?;

    let text = demo_config(listen, admin, &addrs);
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    let cfg = config::parse(&text, path)?;
    let split_line = text
        .lines()
        .position(|l| l.starts_with("split"))
        .map_or(0, |i| i + 1);
    // `switchyard` may not be on PATH under `cargo run`.
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| {
            let cwd = std::env::current_dir().ok()?;
            Some(p.strip_prefix(&cwd).map(|r| r.to_path_buf()).unwrap_or(p))
        })
        .map_or_else(|| "switchyard".to_owned(), |p| p.display().to_string());
    println!(
        "\nswitchyard demo: proxy on http://{listen}, admin on http://{admin}\n\
         backends: {}\n\n\
         try:\n  \
         curl -s http://{listen}/                                   # 90% blue, 10% canary\n  \
         for i in $(seq 20); do curl -s http://{listen}/; done | sort | uniq -c\n  \
         curl -s -H 'X-User-ID: alice' http://{listen}/           # sticky: same pool every time\n  \
         curl -s -H 'X-Switchyard-Pool: green' http://{listen}/     # force a pool\n  \
         curl -s http://{admin}/api/v1/status\n\n\
         shift traffic: edit line {split_line} of {} (split = ...) and save; it applies within a second.\n\n\
         release by the book (in another terminal; export SWITCHYARD_ADMIN=http://{admin}):\n  \
         while sleep 0.02; do curl -s http://{listen}/ >/dev/null; done &   # some traffic\n  \
         {exe} ctl rollout start web && {exe} ctl rollout watch web\n  \
         {exe} ctl flip web green --verify 20s --wait     # blue-green, checked\n",
        addrs
            .iter()
            .map(|(p, a)| format!("{p} {}", a.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")))
            .collect::<Vec<_>>()
            .join(", "),
        path.display()
    );
    super::run(cfg, Some(path.to_owned()), text)
}

fn demo_config(listen: SocketAddr, admin: SocketAddr, pools: &[(&str, Vec<SocketAddr>)]) -> String {
    let mut out = format!(
        "# Written by `switchyard demo` on each start: the demo backends listen on\n\
         # fresh ports every time. Edit the split line below and save to shift traffic.\n\n\
         [server]\nlisten = \"{listen}\"\nshutdown_grace = \"5s\"\n\n[admin]\nlisten = \"{admin}\"\n\n"
    );
    for (pool, addrs) in pools {
        let list: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
        out.push_str(&format!(
            "[pools.{pool}]\nbackends = [{}]\n\n",
            list.join(", ")
        ));
    }
    out.push_str(
        "[[routes]]\nname = \"web\"\n\
         split = { blue = 90, green = 0, canary = 10 }\n\
         sticky = { header = \"X-User-ID\" }\n\
         force_header = \"X-Switchyard-Pool\"\n\n         # `switchyard ctl rollout start web` walks canary from 10 % to 100 %,\n         # judging each step by what the proxy sees (needs some traffic).\n         [routes.rollout]\ncanary = \"canary\"\nstable = \"blue\"\n         steps = [10, 25, 50, 100]\nstep_interval = \"10s\"\nmin_requests = 20\n         max_error_rate = 0.01\nmax_p99_latency = \"500ms\"\n",
    );
    out
}
