//! The access log: one line per request, written off the request path.
//! Requests hand a finished entry to a bounded channel with `try_send`; a
//! writer thread formats and writes it. When the writer falls behind, lines
//! are dropped and counted (`switchyard_access_log_dropped_total`), and no
//! request ever waits. SIGUSR1 asks the writer to reopen its file (after
//! logrotate moved it).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderValue, Method, Uri, Version};

use crate::config::{AccessLogDest, AccessLogFormat};

/// How long the writer naps between batches.
const BATCH: Duration = Duration::from_millis(50);

/// One request, as the access log records it.
#[derive(Debug)]
pub struct Entry {
    pub time: SystemTime,
    pub request_id: HeaderValue,
    pub client: SocketAddr,
    pub method: Method,
    pub uri: Uri,
    pub version: Version,
    pub user_agent: Option<HeaderValue>,
    pub referer: Option<HeaderValue>,
    pub route: Option<Arc<str>>,
    pub pool: Option<Arc<str>>,
    pub backend: Option<SocketAddr>,
    pub status: u16,
    /// Until the response headers.
    pub upstream_secs: f64,
    /// Until the last byte of the body (or the client going away).
    pub total_secs: f64,
    /// The request's Content-Length (0 when absent, e.g. chunked).
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub retries: u32,
}

/// The sending side, one per worker (cloned from the log's).
#[derive(Debug, Clone)]
pub struct AccessSink {
    tx: SyncSender<Entry>,
    dropped: Arc<AtomicU64>,
}

impl AccessSink {
    /// Never blocks: a full queue drops the line and counts it.
    pub fn send(&self, e: Entry) {
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = self.tx.try_send(e) {
            // Relaxed: a statistic.
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The running access log.
#[derive(Debug)]
pub struct AccessLog {
    sink: AccessSink,
    reopen: Arc<AtomicBool>,
}

impl AccessLog {
    /// Opens the destination and starts the writer thread; at most `queue`
    /// lines wait for it.
    pub fn with_queue(
        dest: &AccessLogDest,
        format: AccessLogFormat,
        dropped: Arc<AtomicU64>,
        queue: usize,
    ) -> std::io::Result<Self> {
        let out = Output::open(dest)?;
        let (tx, rx) = sync_channel(queue);
        let reopen = Arc::new(AtomicBool::new(false));
        let flag = reopen.clone();
        let dest = dest.clone();
        std::thread::Builder::new()
            .name("switchyard-access-log".into())
            .spawn(move || writer(rx, out, dest, format, flag))?;
        Ok(AccessLog {
            sink: AccessSink { tx, dropped },
            reopen,
        })
    }

    pub fn sink(&self) -> AccessSink {
        self.sink.clone()
    }

    /// Reopen the file before the next line (SIGUSR1).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Release);
    }
}

enum Output {
    Stdout(std::io::BufWriter<std::io::Stdout>),
    File(std::io::BufWriter<std::fs::File>),
}

impl Output {
    fn open(dest: &AccessLogDest) -> std::io::Result<Self> {
        Ok(match dest {
            AccessLogDest::Stdout => Output::Stdout(std::io::BufWriter::new(std::io::stdout())),
            AccessLogDest::File(p) => Output::File(std::io::BufWriter::new(open_append(p)?)),
        })
    }

    fn writer(&mut self) -> &mut dyn Write {
        match self {
            Output::Stdout(w) => w,
            Output::File(w) => w,
        }
    }
}

fn open_append(p: &PathBuf) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
}

fn writer(
    rx: Receiver<Entry>,
    mut out: Output,
    dest: AccessLogDest,
    format: AccessLogFormat,
    reopen: Arc<AtomicBool>,
) {
    let mut line = String::with_capacity(512);
    loop {
        // Poll rather than block in recv: a blocked receiver makes every
        // request's send a futex wake-up (a system call on each side); a
        // writer that naps and then drains everything costs nothing per
        // line on the request path. Lines reach the file within BATCH.
        std::thread::sleep(BATCH);
        let mut batch = Vec::new();
        let mut closed = false;
        loop {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        // Acquire pairs with the Release in `reopen`.
        if reopen.swap(false, Ordering::Acquire) {
            let _ = out.writer().flush(); // the old file is going away anyway
            match Output::open(&dest) {
                Ok(o) => {
                    out = o;
                    tracing::info!("access log reopened");
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reopen the access log; keeping the old file")
                }
            }
        }
        for e in batch {
            match format {
                AccessLogFormat::Json => json_line(&e, &mut line),
                AccessLogFormat::Combined => line = combined_line(&e),
            }
            if let Err(err) = writeln!(out.writer(), "{line}") {
                tracing::warn!(error = %err, "access log write failed");
            }
        }
        if let Err(err) = out.writer().flush() {
            tracing::warn!(error = %err, "access log flush failed");
        }
        if closed {
            return;
        }
    }
}

fn text(v: &Option<HeaderValue>) -> &str {
    v.as_ref().and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// One JSON object, written by hand into `out`: a `serde_json::Value` per
/// line cost the writer more than the proxy spent on the request.
fn json_line(e: &Entry, out: &mut String) {
    use std::fmt::Write as _;
    out.clear();
    out.push_str("{\"time\":\"");
    let _ = write!(out, "{}", humantime::format_rfc3339_millis(e.time));
    out.push_str("\",\"request_id\":");
    json_str(out, e.request_id.to_str().unwrap_or(""));
    let _ = write!(out, ",\"client\":\"{}\",\"route\":", e.client.ip());
    json_opt(out, e.route.as_deref());
    out.push_str(",\"pool\":");
    json_opt(out, e.pool.as_deref());
    out.push_str(",\"backend\":");
    match e.backend {
        Some(b) => {
            let _ = write!(out, "\"{b}\"");
        }
        None => out.push_str("null"),
    }
    out.push_str(",\"method\":");
    json_str(out, e.method.as_str());
    out.push_str(",\"path\":");
    json_str(out, e.uri.path_and_query().map_or("/", |p| p.as_str()));
    let _ = write!(
        out,
        ",\"status\":{},\"upstream_time\":{:.6},\"total_time\":{:.6},\"bytes_in\":{},\"bytes_out\":{},\"retries\":{},\"user_agent\":",
        e.status, e.upstream_secs, e.total_secs, e.bytes_in, e.bytes_out, e.retries
    );
    json_str(out, text(&e.user_agent));
    out.push('}');
}

fn json_opt(out: &mut String, v: Option<&str>) {
    match v {
        Some(v) => json_str(out, v),
        None => out.push_str("null"),
    }
}

/// A JSON string literal (RFC 8259 escapes).
fn json_str(out: &mut String, v: &str) {
    use std::fmt::Write as _;
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// nginx's `combined`, then switchyard's fields as key=value.
fn combined_line(e: &Entry) -> String {
    let time = humantime::format_rfc3339_seconds(e.time);
    let ref_or_dash = |v: &Option<HeaderValue>| {
        if text(v).is_empty() {
            "-".to_owned()
        } else {
            text(v).to_owned()
        }
    };
    format!(
        "{} - - [{}] \"{} {} {:?}\" {} {} \"{}\" \"{}\" rt={:.3} urt={:.3} route={} pool={} backend={} retries={} rid={}",
        e.client.ip(),
        time,
        e.method,
        e.uri.path_and_query().map_or("/", |p| p.as_str()),
        e.version,
        e.status,
        e.bytes_out,
        ref_or_dash(&e.referer),
        ref_or_dash(&e.user_agent),
        e.total_secs,
        e.upstream_secs,
        e.route.as_deref().unwrap_or("-"),
        e.pool.as_deref().unwrap_or("-"),
        e.backend.map_or("-".to_owned(), |b| b.to_string()),
        e.retries,
        e.request_id.to_str().unwrap_or("-"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_are_valid_json_with_escapes() {
        let e = Entry {
            time: SystemTime::UNIX_EPOCH,
            request_id: HeaderValue::from_static("r\"1"),
            client: "127.0.0.1:9".parse().unwrap(),
            method: Method::GET,
            uri: Uri::from_static("/a?b=c"),
            version: Version::HTTP_11,
            user_agent: Some(HeaderValue::from_static("ua\\x")),
            referer: None,
            route: Some("r".into()),
            pool: None,
            backend: Some("127.0.0.1:80".parse().unwrap()),
            status: 200,
            upstream_secs: 0.001,
            total_secs: 0.002,
            bytes_in: 1,
            bytes_out: 2,
            retries: 0,
        };
        let mut line = String::new();
        json_line(&e, &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["request_id"], "r\"1");
        assert_eq!(v["user_agent"], "ua\\x");
        assert_eq!(v["pool"], serde_json::Value::Null);
        assert_eq!(v["time"], "1970-01-01T00:00:00.000Z");
    }
}
