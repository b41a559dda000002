//! Command-line parsing and the process lifecycle around the library.

mod ctl;
mod demo;
mod fit;
mod rolling;
mod watch;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use switchyard::config::pem::CertError;
use switchyard::config::{self, Config, ConfigError};
use switchyard::control::ChangeSource;
use switchyard::server::{self, listener, Listeners, Source, TlsListener};
use switchyard::telemetry::log_writer::LogWriter;

/// Exit code for an invalid configuration or usage (BSD EX_USAGE).
const EXIT_CONFIG: u8 = 64;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A traffic-splitting reverse proxy for blue-green, canary and rolling deployments"
)]
struct Cli {
    /// Log output format.
    #[arg(long, value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the proxy from a configuration file.
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Validate a configuration file and print the routing table it gives.
    Check {
        /// The TOML configuration file.
        file: PathBuf,
        /// The file a running switchyard started with: lists the settings
        /// of FILE that a reload would not apply (they need a restart).
        #[arg(long, value_name = "RUNNING_FILE")]
        against: Option<PathBuf>,
    },
    /// Start demo backends (pools blue, green, canary) and the proxy in front of them.
    Demo {
        /// Proxy listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Admin listen address.
        #[arg(long, default_value = "127.0.0.1:9901")]
        admin_listen: SocketAddr,
        /// Where to write the demo configuration.
        #[arg(long, default_value = "config/demo.toml")]
        config: PathBuf,
    },
    /// Drive a running switchyard through its admin API.
    Ctl(ctl::Ctl),
    /// Run one demo backend (answers JSON naming its pool; /health is 200).
    Backend {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value = "blue")]
        pool: String,
        #[arg(long, default_value = "v1")]
        version: String,
    },
}

/// Writes to stderr, ignoring failure: `eprintln!` panics when stderr is
/// gone (a closed pipe), and an exit message is not worth a panic.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        // Nobody left to tell: the reader of stderr has gone.
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = init_logging(cli.log_format);
    let code = dispatch(cli.command);
    if let Some(log) = log {
        // The last lines ("shut down", errors) before the process ends.
        log.flush(std::time::Duration::from_secs(2));
    }
    code
}

fn dispatch(command: Command) -> ExitCode {
    let result = match command {
        Command::Check { file, against } => return check(&file, against.as_deref()),
        Command::Ctl(c) => return ctl::main(c),
        Command::Run { config } => {
            let (cfg, text) = match config::load(&config) {
                Ok(ok) => ok,
                Err(e) => return config_error(&e),
            };
            return match run(cfg, Some(config.clone()), text) {
                Err(e) => match e.downcast_ref::<server::StartError>() {
                    Some(se) if se.is_config() => start_error(&config, se),
                    _ => report(e),
                },
                Ok(()) => ExitCode::SUCCESS,
            };
        }
        Command::Demo {
            listen,
            admin_listen,
            config,
        } => demo::run(listen, admin_listen, &config),
        Command::Backend {
            listen,
            pool,
            version,
        } => backend(listen, pool, version),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => report(e),
    }
}

fn report(e: anyhow::Error) -> ExitCode {
    if let Some(ce) = e.downcast_ref::<ConfigError>() {
        return config_error(ce);
    }
    if let Some(ce) = e.downcast_ref::<CertError>() {
        say!("switchyard: invalid configuration\n[tls]: {ce}");
        return ExitCode::from(EXIT_CONFIG);
    }
    say!("switchyard: {e:#}");
    ExitCode::FAILURE
}

/// Lines the log writer holds before it drops new ones.
const LOG_QUEUE: usize = 8192;

/// Logs go to stderr through `LogWriter`: queued, written by a thread of
/// their own, dropped and counted when stderr is slow or gone, so logging
/// never blocks or kills serving.
fn init_logging(format: LogFormat) -> Option<LogWriter> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let writer = match LogWriter::stderr(LOG_QUEUE) {
        Ok(w) => w,
        Err(e) => {
            say!("switchyard: cannot start the log writer thread: {e}");
            return None;
        }
    };
    // Our writer never fails a write; were it to, tracing-subscriber's
    // report of it would be an `eprintln!`, which panics without stderr.
    // Colour only for a person at a terminal: a file, a pipe, journald or a
    // container log driver gets plain text (and NO_COLOR is honoured).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer.clone())
        .log_internal_errors(false);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Some(writer)
}

/// A configuration that parses but that `run` cannot start with (issue
/// 18, item 3: `check` and `run` say the same, with the same exit code).
fn start_error(file: &Path, e: &server::StartError) -> ExitCode {
    say!("switchyard: invalid configuration\n{}: {e}", file.display());
    ExitCode::from(EXIT_CONFIG)
}

fn config_error(e: &ConfigError) -> ExitCode {
    say!("switchyard: invalid configuration\n{e}");
    ExitCode::from(EXIT_CONFIG)
}

fn check(file: &Path, against: Option<&Path>) -> ExitCode {
    let (cfg, _) = match config::load(file) {
        Ok(ok) => ok,
        Err(e) => return config_error(&e),
    };
    let running = match against.map(config::load).transpose() {
        Ok(r) => r.map(|(c, _)| c),
        Err(e) => return config_error(&e),
    };
    // What `run` reads besides the file (token, certificates, access log)
    // is checked by the same function `run` calls.
    if let Err(e) = server::preflight(&cfg) {
        return start_error(file, &e);
    }
    use std::io::Write as _;
    // `check | head -1` closes stdout early; that is not an error of ours.
    let _ = write!(
        std::io::stdout(),
        "{}: configuration is valid\n{}",
        file.display(),
        summary(&cfg)
    );
    if let (Some(running), Some(path)) = (running, against) {
        let keys = config::restart_needed(&running, &cfg);
        let _ = if keys.is_empty() {
            writeln!(
                std::io::stdout(),
                "a reload applies all of it (against {})",
                path.display()
            )
        } else {
            writeln!(
                std::io::stdout(),
                "needs a restart (against {}): {}",
                path.display(),
                keys.join(", ")
            )
        };
    }
    ExitCode::SUCCESS
}

/// A readable routing summary, like `nginx -T` but short.
pub(crate) fn summary(cfg: &Config) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "listen {}  admin {}",
        cfg.server.listen, cfg.admin.listen
    );
    if let (Some(addr), Some(tls)) = (cfg.server.listen_tls, &cfg.tls) {
        let _ = writeln!(out, "listen_tls {addr}  certificates {}", tls.certs.len());
    }
    for r in &cfg.routes {
        let total: u32 = r.split.iter().map(|(_, w)| w).sum();
        let host = match &r.host {
            None => "*".to_owned(),
            Some(config::HostMatch::Exact(h)) => h.clone(),
            Some(config::HostMatch::Suffix(s)) => format!("*{s}"),
        };
        let split: Vec<String> = r
            .split
            .iter()
            .map(|(p, w)| {
                format!(
                    "{p} {:.1}%",
                    100.0 * f64::from(*w) / f64::from(total.max(1))
                )
            })
            .collect();
        let _ = write!(
            out,
            "route {:<12} host {host} prefix {}  ->  {}",
            r.name,
            r.path_prefix,
            split.join(", ")
        );
        if let Some(s) = &r.sticky {
            let by: Vec<String> = s
                .header
                .iter()
                .map(|h| format!("header {h}"))
                .chain(s.cookie.iter().map(|c| format!("cookie {c}")))
                .collect();
            let _ = write!(out, "  (sticky by {})", by.join(" / "));
        }
        out.push('\n');
    }
    for p in &cfg.pools {
        let backends: Vec<String> = p
            .backends
            .iter()
            .map(|b| {
                if b.weight == 1 {
                    b.addr.to_string()
                } else {
                    format!("{} (weight {})", b.addr, b.weight)
                }
            })
            .collect();
        let _ = writeln!(
            out,
            "pool  {:<12} {}{}  {}",
            p.name,
            p.balance.as_str(),
            if p.tls.is_some() { " tls" } else { "" },
            backends.join(", ")
        );
    }
    for n in &cfg.notify {
        let events: Vec<String> = n.events.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            out,
            "notify {}  events {}  timeout {:?}  retries {}",
            n.url,
            events.join(", "),
            n.timeout,
            n.retries
        );
    }
    out
}

/// Binds, starts, and runs until SIGTERM/SIGINT; SIGHUP reloads.
pub(crate) fn run(cfg: Config, path: Option<PathBuf>, text: String) -> anyhow::Result<()> {
    // A missing token, unusable certificates or an access log that cannot
    // be opened stop us before any port is bound (exit 64, as `check`).
    let certs = server::preflight(&cfg)?;
    let proxy = listener::bind(cfg.server.listen)
        .with_context(|| format!("cannot listen on {} (server.listen)", cfg.server.listen))?;
    let admin = listener::bind_single(cfg.admin.listen)
        .with_context(|| format!("cannot listen on {} (admin.listen)", cfg.admin.listen))?;
    let tls = match (cfg.server.listen_tls, certs) {
        (Some(addr), Some(certs)) => Some(TlsListener {
            socket: listener::bind(addr)
                .with_context(|| format!("cannot listen on {addr} (server.listen_tls)"))?,
            certs,
        }),
        _ => None,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the control runtime")?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let running = server::start(
            cfg,
            Source { path, text },
            Listeners { proxy, admin, tls },
            shutdown.clone(),
        )?;
        spawn_signal_handlers(&running, shutdown)?;
        running.wait().await;
        tracing::info!("shut down");
        Ok(())
    })
}

#[cfg(unix)]
fn spawn_signal_handlers(
    running: &server::Running,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("SIGHUP handler")?;
    let mut usr1 = signal(SignalKind::user_defined1()).context("SIGUSR1 handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!(
            "shutdown signal received; finishing in-flight requests (signal again to stop at once)"
        );
        shutdown.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: stopping now");
        std::process::exit(1);
    });
    let access = running.access_log();
    tokio::spawn(async move {
        while usr1.recv().await.is_some() {
            match &access {
                Some(a) => a.reopen(),
                None => tracing::info!("SIGUSR1: no access log file to reopen"),
            }
        }
    });
    let control = running.control.clone();
    let certs = running.certificates();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            if let Some(c) = &certs {
                // Like nginx, SIGHUP re-reads the certificates too.
                c.reload();
            }
            // The controller logs and records the outcome itself.
            let _ = control.reload(ChangeSource::Signal).await;
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn spawn_signal_handlers(_: &server::Running, shutdown: CancellationToken) -> anyhow::Result<()> {
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    });
    Ok(())
}

fn backend(listen: SocketAddr, pool: String, version: String) -> anyhow::Result<()> {
    let l = std::net::TcpListener::bind(listen)
        .with_context(|| format!("cannot listen on {listen}"))?;
    // The bound address: with port 0 the log line is how a caller learns it.
    let listen = l.local_addr().context("bound address")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start runtime")?;
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let s = shutdown.clone();
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            s.cancel();
        });
        tracing::info!(%listen, %pool, "demo backend listening");
        switchyard::demo::serve_backend(l, pool, version, shutdown).await?;
        Ok(())
    })
}
