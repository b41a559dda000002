//! The process log's writer: every formatted `tracing` event is handed,
//! without waiting, to one thread that writes it to the destination
//! (stderr). Logging therefore never blocks serving and never fails it:
//!
//! - a slow reader (a full pipe) stalls only the writer thread; once its
//!   bounded queue is full, new lines are dropped and counted;
//! - a reader that went away (EPIPE, a closed container log driver) makes
//!   each write fail at once; the line is dropped and counted.
//!
//! Both counts are [`dropped`], exported as
//! `switchyard_log_lines_dropped_total`. Without this, `tracing-subscriber`
//! wrote to stderr from the logging thread itself and reported a failed
//! write with `eprintln!`, which panics when stderr is gone: every task
//! that logged — request handlers, the signal handler — died, so the proxy
//! stopped answering and ignored SIGTERM (issue 18, item 1).

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::Duration;

/// Log lines dropped since start: queue full or write failed.
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// Log lines dropped since start (queue full, or the destination failed).
pub fn dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

fn count_drop() {
    // Relaxed: a statistic, read by the metrics exporter only.
    DROPPED.fetch_add(1, Ordering::Relaxed);
}

enum Msg {
    Line(Vec<u8>),
    /// Answer once every line queued before this one was written.
    Flush(SyncSender<()>),
}

/// A `tracing_subscriber` writer that queues each event for the writer
/// thread. Cloning shares the queue.
#[derive(Clone)]
pub struct LogWriter {
    tx: SyncSender<Msg>,
}

impl LogWriter {
    /// Starts the writer thread on stderr with room for `queue` lines.
    pub fn stderr(queue: usize) -> io::Result<Self> {
        Self::spawn(queue, io::stderr())
    }

    /// Starts the writer thread on `out` (tests use a pipe).
    pub fn spawn<W: Write + Send + 'static>(queue: usize, out: W) -> io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(queue.max(1));
        std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(move || write_all(rx, out))?;
        Ok(Self { tx })
    }

    /// Waits (at most `within`) until the lines queued so far are written;
    /// called before the process exits so its last lines are not lost.
    pub fn flush(&self, within: Duration) {
        let (ack, done) = mpsc::sync_channel(1);
        if self.tx.send(Msg::Flush(ack)).is_ok() {
            // Timing out is fine: a stuck reader must not hold the exit.
            let _ = done.recv_timeout(within);
        }
    }

    fn queue(&self, line: Vec<u8>) {
        match self.tx.try_send(Msg::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => count_drop(),
        }
    }
}

fn write_all<W: Write>(rx: Receiver<Msg>, mut out: W) {
    for msg in rx {
        match msg {
            Msg::Line(line) => {
                // A failed write (EPIPE: the reader is gone) drops this line
                // only; the next one is tried again, for a reader that
                // comes back (a reopened FIFO) or a transient error.
                if out.write_all(&line).and_then(|()| out.flush()).is_err() {
                    count_drop();
                }
            }
            Msg::Flush(ack) => {
                // The flusher may have given up waiting.
                let _ = ack.send(());
            }
        }
    }
}

/// One event's bytes, queued when the formatter drops the writer.
pub struct LineWriter<'a> {
    log: &'a LogWriter,
    buf: Vec<u8>,
}

impl Write for LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter<'_> {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            self.log.queue(std::mem::take(&mut self.buf));
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LineWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            log: self,
            buf: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A destination that fails every write, like a pipe whose reader left.
    struct Gone;
    impl Write for Gone {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    /// A destination that never returns (a reader that stopped reading).
    struct Stuck(std::sync::Arc<std::sync::Barrier>);
    impl Write for Stuck {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            self.0.wait();
            std::thread::park();
            Ok(0)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn line(w: &LogWriter, text: &str) {
        use tracing_subscriber::fmt::MakeWriter;
        let mut lw = w.make_writer();
        lw.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn failed_writes_are_counted_not_raised() {
        let w = LogWriter::spawn(8, Gone).unwrap();
        let before = dropped();
        for _ in 0..3 {
            line(&w, "x\n");
        }
        w.flush(Duration::from_secs(5));
        assert!(dropped() >= before + 3);
    }

    #[test]
    fn a_stuck_reader_never_blocks_the_caller() {
        let started = std::sync::Arc::new(std::sync::Barrier::new(2));
        let w = LogWriter::spawn(4, Stuck(started.clone())).unwrap();
        line(&w, "first\n");
        // The writer thread is now stuck inside the first write.
        started.wait();
        let before = dropped();
        for _ in 0..100 {
            line(&w, "more\n");
        }
        // 4 fit in the queue; the rest were dropped without waiting.
        assert!(dropped() >= before + 96);
    }
}
