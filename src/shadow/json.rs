//! The structural diff of two JSON documents: walks both at once and
//! reports every position where they differ, except under an `ignore`
//! pattern, with the values at `redact` patterns (and under them) shown as
//! `[redacted]`. Pure; the caller parses.
//!
//! Rules: objects compare key by key (order does not matter; a key present
//! on one side only is `added` or `removed`); arrays compare element by
//! element, extra elements being `added` or `removed` one by one; numbers
//! compare by value (`1` equals `1.0`, integers exactly); everything else
//! by equality. An ignored position is left out whatever it holds on
//! either side, including its absence.

use std::fmt;

use serde_json::{Map, Value};

use crate::config::{JsonPath, Step};

/// Longest rendering of one value in a diff line.
const VALUE_CHARS: usize = 48;

/// What differs at one position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Present on both sides with different values (primary → mirror).
    Changed { from: String, to: String },
    /// Only the mirror has it.
    Added(String),
    /// Only the primary has it.
    Removed(String),
}

/// One difference: the position (e.g. `$.items[2].price`) and the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub path: String,
    pub change: Change,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.change {
            Change::Changed { from, to } => write!(f, "{}: {from} → {to}", self.path),
            Change::Added(v) => write!(f, "{}: added {v}", self.path),
            Change::Removed(v) => write!(f, "{}: removed (was {v})", self.path),
        }
    }
}

/// Every difference found (`total`), the first `limit` of them in
/// document order (`shown`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Diff {
    pub total: usize,
    pub shown: Vec<Difference>,
}

impl Diff {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// One line per shown difference, and one for the rest.
    pub fn lines(&self) -> Vec<String> {
        let mut out: Vec<String> = self.shown.iter().map(|d| d.to_string()).collect();
        if self.total > self.shown.len() {
            out.push(format!("… and {} more", self.total - self.shown.len()));
        }
        out
    }
}

/// Differences between `primary` and `mirror`.
pub fn diff(
    primary: &Value,
    mirror: &Value,
    ignore: &[JsonPath],
    redact: &[JsonPath],
    limit: usize,
) -> Diff {
    let mut walk = Walk {
        ignore,
        redact,
        limit,
        path: Vec::new(),
        out: Diff::default(),
    };
    walk.value(primary, mirror);
    walk.out
}

struct Walk<'p, 'v> {
    ignore: &'p [JsonPath],
    redact: &'p [JsonPath],
    limit: usize,
    /// The position being compared.
    path: Vec<Step<'v>>,
    out: Diff,
}

impl<'v> Walk<'_, 'v> {
    fn ignored(&self) -> bool {
        self.ignore.iter().any(|p| p.matches(&self.path))
    }

    fn value(&mut self, a: &'v Value, b: &'v Value) {
        match (a, b) {
            (Value::Object(a), Value::Object(b)) => self.object(a, b),
            (Value::Array(a), Value::Array(b)) => self.array(a, b),
            (Value::Number(x), Value::Number(y)) if same_number(x, y) => {}
            _ if a == b => {}
            _ => {
                let (from, to) = (self.show(a), self.show(b));
                self.report(Change::Changed { from, to });
            }
        }
    }

    fn object(&mut self, a: &'v Map<String, Value>, b: &'v Map<String, Value>) {
        for (k, va) in a {
            self.path.push(Step::Key(k));
            if !self.ignored() {
                match b.get(k) {
                    Some(vb) => self.value(va, vb),
                    None => {
                        let v = self.show(va);
                        self.report(Change::Removed(v));
                    }
                }
            }
            self.path.pop();
        }
        for (k, vb) in b {
            if a.contains_key(k) {
                continue;
            }
            self.path.push(Step::Key(k));
            if !self.ignored() {
                let v = self.show(vb);
                self.report(Change::Added(v));
            }
            self.path.pop();
        }
    }

    fn array(&mut self, a: &'v [Value], b: &'v [Value]) {
        for i in 0..a.len().max(b.len()) {
            self.path.push(Step::Index(i));
            if !self.ignored() {
                match (a.get(i), b.get(i)) {
                    (Some(va), Some(vb)) => self.value(va, vb),
                    (Some(va), None) => {
                        let v = self.show(va);
                        self.report(Change::Removed(v));
                    }
                    (None, Some(vb)) => {
                        let v = self.show(vb);
                        self.report(Change::Added(v));
                    }
                    (None, None) => {}
                }
            }
            self.path.pop();
        }
    }

    fn report(&mut self, change: Change) {
        self.out.total += 1;
        if self.out.shown.len() < self.limit {
            self.out.shown.push(Difference {
                path: render_path(&self.path),
                change,
            });
        }
    }

    /// A short rendering of `v` at the current position (only rendered
    /// while there is room in `shown`).
    fn show(&self, v: &Value) -> String {
        if self.out.shown.len() >= self.limit {
            return String::new();
        }
        let len = self.path.len();
        let secret = self.redact.iter().any(|p| {
            let n = p.segments().len();
            n <= len && p.matches(&self.path[..n])
        });
        if secret {
            return "[redacted]".into();
        }
        short(&v.to_string())
    }
}

fn same_number(x: &serde_json::Number, y: &serde_json::Number) -> bool {
    if let (Some(a), Some(b)) = (x.as_i64(), y.as_i64()) {
        return a == b;
    }
    if let (Some(a), Some(b)) = (x.as_u64(), y.as_u64()) {
        return a == b;
    }
    match (x.as_f64(), y.as_f64()) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `s` cut to `VALUE_CHARS` characters, with an ellipsis when cut.
pub fn short(s: &str) -> String {
    super::cut(s, VALUE_CHARS)
}

/// `$.items[2].price`; keys that are not plain names as `["a key"]`.
pub fn render_path(path: &[Step<'_>]) -> String {
    let mut out = String::from("$");
    for step in path {
        match step {
            Step::Index(i) => out.push_str(&format!("[{i}]")),
            Step::Key(k)
                if !k.is_empty()
                    && k.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
            {
                out.push('.');
                out.push_str(k);
            }
            Step::Key(k) => {
                out.push('[');
                out.push_str(&Value::from(*k).to_string());
                out.push(']');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
