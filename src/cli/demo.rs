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
    let guide = Guide {
        listen,
        admin,
        pools: &addrs,
        config: path,
        split_line,
        exe: &command_name(),
    };
    println!("{}", guide.text());
    super::run(cfg, Some(path.to_owned()), text)
}

/// How the user can run this binary from the directory they are in:
/// `switchyard` when it is the one on `PATH` (`cargo install --path .`),
/// else `./target/release/switchyard` (under `cargo run`), else its full
/// path.
fn command_name() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "switchyard".to_owned();
    };
    let same = |p: &Path| p.canonicalize().ok() == exe.canonicalize().ok();
    let on_path = std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|d| {
            let candidate = d.join("switchyard");
            candidate.is_file() && same(&candidate)
        })
    });
    if on_path {
        return "switchyard".to_owned();
    }
    match std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(Path::to_path_buf))
    {
        Some(rel) => format!("./{}", rel.display()),
        None => exe.display().to_string(),
    }
}

/// What the demo prints at start: where everything is, what to try, and
/// how to make the canary fail so that its rollout rolls back. Kept under
/// 80 columns for loopback addresses.
struct Guide<'a> {
    listen: SocketAddr,
    admin: SocketAddr,
    pools: &'a [(&'a str, Vec<SocketAddr>)],
    config: &'a Path,
    split_line: usize,
    exe: &'a str,
}

impl Guide<'_> {
    fn text(&self) -> String {
        let Guide {
            listen,
            admin,
            config,
            split_line,
            exe,
            ..
        } = self;
        let config = config.display();
        let backends: String = self
            .pools
            .iter()
            .map(|(p, a)| {
                let a: Vec<_> = a.iter().map(ToString::to_string).collect();
                format!("\n  {p:<7} {}", a.join(" "))
            })
            .collect();
        let canary = self
            .pools
            .iter()
            .find(|(p, _)| *p == "canary")
            .and_then(|(_, a)| a.first())
            .map_or_else(|| "CANARY".to_owned(), ToString::to_string);
        format!(
            "
switchyard demo: proxy on http://{listen}, admin on http://{admin}
console: open http://{admin}/ in a browser
config:  {config} (written at each start; a rollout's progress is
         kept in {config}.rollout.json)
backends:{backends}

try:
  curl -s http://{listen}/                        # 90 % blue, 10 % canary
  for i in $(seq 20); do curl -s http://{listen}/; done | sort | uniq -c
  curl -s -H 'X-User-ID: alice' http://{listen}/  # sticky
  curl -s -H 'X-Switchyard-Pool: green' http://{listen}/

shift traffic: edit line {split_line} of {config} (split = ...) and save.

a canary rollout, in another terminal:
  export SWITCHYARD_ADMIN=http://{admin}
  while sleep 0.02; do curl -s http://{listen}/ >/dev/null; done &
  {exe} ctl rollout start web
  {exe} ctl rollout watch web

make the canary bad, and the rollout rolls back (rate=0, ms=0 undo):
  curl -X POST 'http://{canary}/_fail?rate=0.3'  # 30 % answer 503
  curl -X POST 'http://{canary}/_slow?ms=600'    # p99 over 500 ms

a verified blue-green flip (switches back by itself if green fails):
  {exe} ctl flip web green --verify 20s --wait
"
        )
    }
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
         force_header = \"X-Switchyard-Pool\"\n\n\
         # `switchyard ctl rollout start web` walks canary from 10 % to 100 %,\n\
         # judging each step by what the proxy sees (needs some traffic).\n\
         [routes.rollout]\ncanary = \"canary\"\nstable = \"blue\"\n\
         steps = [10, 25, 50, 100]\nstep_interval = \"10s\"\nmin_requests = 20\n\
         max_error_rate = 0.01\nmax_p99_latency = \"500ms\"\n",
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs() -> Vec<(&'static str, Vec<SocketAddr>)> {
        let a = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
        vec![
            ("blue", vec![a(40001), a(40002)]),
            ("green", vec![a(40003), a(40004)]),
            ("canary", vec![a(40005)]),
        ]
    }

    #[test]
    fn the_generated_file_is_valid_and_not_indented() {
        let (listen, admin) = (
            "127.0.0.1:8080".parse().unwrap(),
            "127.0.0.1:9901".parse().unwrap(),
        );
        let text = demo_config(listen, admin, &addrs());
        for line in text.lines() {
            assert_eq!(line, line.trim_start(), "indented line in demo.toml");
        }
        let cfg = config::parse(&text, Path::new("demo.toml")).unwrap();
        assert_eq!(cfg.routes.len(), 1);
        assert!(text.contains("\n[routes.rollout]\n"));
    }

    #[test]
    fn the_guide_fits_80_columns_and_names_commands_that_run() {
        let pools = addrs();
        let guide = Guide {
            listen: "127.0.0.1:8080".parse().unwrap(),
            admin: "127.0.0.1:9901".parse().unwrap(),
            pools: &pools,
            config: Path::new("config/demo.toml"),
            split_line: 18,
            exe: "./target/release/switchyard",
        };
        let text = guide.text();
        for line in text.lines() {
            assert!(line.chars().count() <= 80, "{} columns: {line}", line.len());
        }
        assert!(text.contains("\n  ./target/release/switchyard ctl rollout start web\n"));
        assert!(text.contains("curl -X POST 'http://127.0.0.1:40005/_fail?rate=0.3'"));
        assert!(text.contains("config/demo.toml.rollout.json"));
        assert!(text.contains("open http://127.0.0.1:9901/ in a browser"));
    }

    #[test]
    fn the_command_name_is_one_a_shell_can_run() {
        let name = command_name();
        // Under the test harness the binary is not on PATH: a path, which
        // a shell runs only when it has a slash.
        assert!(name == "switchyard" || name.contains('/'), "{name}");
    }
}
