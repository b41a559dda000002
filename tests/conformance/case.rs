//! What a conformance case is and how its outcome is judged.

use super::backend::{Log, Reply};
use super::client::{Seen, Step};

/// A check on what the backend received and the client saw.
pub type Check = fn(&Log, &Seen) -> Result<(), String>;

/// What a case expects.
#[derive(Clone, Copy)]
pub enum Want {
    /// Refused by the proxy before anything went upstream: one answer with
    /// one of these statuses, the connection closed, no request at the
    /// backend.
    Refused(&'static [u16]),
    /// Served: these final statuses in order; `alive`: the connection stays
    /// usable and in step (`Some(true)`), is closed (`Some(false)`), either
    /// (`None`).
    Served(&'static [u16], Option<bool>),
    /// Broken part-way (the body's framing is bad after the head went on):
    /// no 2xx answer, the connection closed, no complete request at the
    /// backend.
    Broken,
    /// Only the case's own check decides.
    Checked,
}

/// One case of the suite.
pub struct Case {
    pub name: &'static str,
    /// Where the rule comes from.
    pub why: &'static str,
    pub steps: &'static [Step],
    /// The requests are HEAD (answers carry no body).
    pub head: bool,
    pub replies: &'static [Reply],
    pub want: Want,
    pub check: Option<Check>,
    /// Known to be wrong on the hyper path today (and why): the case must
    /// fail there, so that a fix is noticed and the mark removed.
    pub hyper_differs: Option<&'static str>,
    /// Where nginx (as `peers` runs it) is known to judge the case
    /// otherwise, and why; checked the same way.
    pub nginx_differs: Option<&'static str>,
    /// The same for HAProxy.
    pub haproxy_differs: Option<&'static str>,
}

/// A case with defaults: one send, finals as many as `want` names, no
/// script, no check, parity between engines.
pub const fn case(
    name: &'static str,
    why: &'static str,
    steps: &'static [Step],
    want: Want,
) -> Case {
    Case {
        name,
        why,
        steps,
        head: false,
        replies: &[],
        want,
        check: None,
        hyper_differs: None,
        nginx_differs: None,
        haproxy_differs: None,
    }
}

impl Case {
    pub const fn replies(mut self, r: &'static [Reply]) -> Self {
        self.replies = r;
        self
    }
    pub const fn check(mut self, c: Check) -> Self {
        self.check = Some(c);
        self
    }
    pub const fn head(mut self) -> Self {
        self.head = true;
        self
    }
    pub const fn hyper_differs(mut self, why: &'static str) -> Self {
        self.hyper_differs = Some(why);
        self
    }
    pub const fn nginx_differs(mut self, why: &'static str) -> Self {
        self.nginx_differs = Some(why);
        self
    }
    pub const fn haproxy_differs(mut self, why: &'static str) -> Self {
        self.haproxy_differs = Some(why);
        self
    }
}

/// At most 200 bytes of `b`, for messages.
pub fn short(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(200)]);
    format!("{s:?}{}", if b.len() > 200 { "..." } else { "" })
}

/// Judges one outcome; `Err` says what was wrong.
pub fn judge(case: &Case, log: &Log, seen: &Seen) -> Result<(), String> {
    if seen.hung {
        return Err(format!("timed out; saw {:?}", statuses(seen)));
    }
    let got = statuses(seen);
    match case.want {
        Want::Refused(allowed) => {
            if got.len() != 1 || !allowed.contains(&got[0]) {
                return Err(format!("want one of {allowed:?}, got {got:?}"));
            }
            if seen.alive {
                return Err("connection stayed open after a refusal".into());
            }
            if !log.requests.is_empty() || log.starts > 0 {
                return Err(format!("backend received {}", short(&log.raw)));
            }
        }
        Want::Served(want, alive) => {
            if got != want {
                return Err(format!("want statuses {want:?}, got {got:?}"));
            }
            if let Some(a) = alive {
                if a != seen.alive {
                    return Err(format!("want alive={a}, got alive={}", seen.alive));
                }
            }
            if !seen.garbage.is_empty() {
                return Err(format!(
                    "unframed bytes after the answers: {}",
                    short(&seen.garbage)
                ));
            }
        }
        Want::Broken => {
            if got.iter().any(|s| (200..300).contains(s)) {
                return Err(format!("a broken request was answered {got:?}"));
            }
            if seen.alive {
                return Err("connection stayed open after a broken request".into());
            }
            if !log.requests.is_empty() {
                return Err(format!("backend framed {:?}", log.requests));
            }
        }
        Want::Checked => {}
    }
    match case.check {
        Some(c) => c(log, seen),
        None => Ok(()),
    }
}

pub fn statuses(seen: &Seen) -> Vec<u16> {
    seen.finals.iter().map(|r| r.status).collect()
}

/// The backend got exactly one request; it is handed to `f`.
pub fn only(log: &Log) -> Result<&super::backend::Got, String> {
    match log.requests.as_slice() {
        [g] => Ok(g),
        other => Err(format!("backend got {} requests: {other:?}", other.len())),
    }
}

/// `Err(msg)` unless `cond`.
pub fn ensure(cond: bool, msg: impl FnOnce() -> String) -> Result<(), String> {
    if cond {
        Ok(())
    } else {
        Err(msg())
    }
}
