//! One mirrored pair, judged: the mirror's answer against the primary's.
//! Status class first, then the exact status, then (as configured) the
//! body: by hash, or as JSON with ignored fields left out. A pair has at
//! most one mismatch, the first that differs in that order (a 500 where
//! the primary said 200 is a `status_class` mismatch, not also a `body`
//! one). Pure: the data path hands in what it saw of both answers.

use std::hash::Hasher;

use crate::config::{BodyCompare, CompareConfig};

use super::json;

/// Differences shown in one sample.
pub const DIFF_LINES: usize = 8;

/// Why a pair mismatched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// 2xx against 5xx, and the like.
    StatusClass,
    /// Same class, different status (200 against 201).
    Status,
    /// Same status, different body.
    Body,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::StatusClass, Kind::Status, Kind::Body];

    /// The label in metrics, the API and samples.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::StatusClass => "status_class",
            Kind::Status => "status",
            Kind::Body => "body",
        }
    }

    /// Position in `ALL` (for counters kept by kind).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a body could not be compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Bigger than `compare.max_body_bytes`.
    TooBig,
    /// Compressed (`Content-Encoding` other than `identity`): the same
    /// document compresses to different bytes, so only status is judged.
    Encoded,
    /// The body ended in an error (reset, timeout) before it was read.
    Broken,
}

/// What the data path saw of one answer's body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// Not looked at (`body = "none"`).
    Ignored,
    /// Length and `BodyHash` of the bytes (`body = "hash"`).
    Hash {
        len: u64,
        hash: u64,
    },
    /// The bytes, whole (`body = "json"`).
    Kept(bytes::Bytes),
    Unusable(Unusable),
}

/// One answer: its status and what was seen of its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    pub body: Body,
}

/// The judgement of one pair.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// `None`: the answers agree (on what was compared).
    pub mismatch: Option<Kind>,
    /// The bodies were meant to be compared but could not be.
    pub body_skipped: bool,
    /// A short human diff (primary → mirror), at most `DIFF_LINES` + 1.
    pub diff: Vec<String>,
}

/// Compares the mirror's answer with the primary's.
pub fn compare(cfg: &CompareConfig, primary: &Answer, mirror: &Answer) -> Outcome {
    let (p, m) = (primary.status, mirror.status);
    if p / 100 != m / 100 {
        return mismatch(Kind::StatusClass, vec![format!("status {p} → {m}")]);
    }
    if p != m {
        return mismatch(Kind::Status, vec![format!("status {p} → {m}")]);
    }
    if cfg.body == BodyCompare::None {
        return Outcome::default();
    }
    match (&primary.body, &mirror.body) {
        (Body::Unusable(_), _)
        | (_, Body::Unusable(_))
        | (Body::Ignored, _)
        | (_, Body::Ignored) => Outcome {
            body_skipped: true,
            ..Outcome::default()
        },
        (Body::Hash { len: a, hash: x }, Body::Hash { len: b, hash: y }) => {
            if (a, x) == (b, y) {
                Outcome::default()
            } else {
                mismatch(Kind::Body, vec![bytes_differ(*a, *b, None)])
            }
        }
        (Body::Kept(a), Body::Kept(b)) => kept(cfg, a, b),
        // One side hashed, the other kept: the data path never does that;
        // say so rather than guess.
        _ => Outcome {
            body_skipped: true,
            ..Outcome::default()
        },
    }
}

fn mismatch(kind: Kind, diff: Vec<String>) -> Outcome {
    Outcome {
        mismatch: Some(kind),
        body_skipped: false,
        diff,
    }
}

fn kept(cfg: &CompareConfig, a: &[u8], b: &[u8]) -> Outcome {
    // Identical bytes are identical documents, whatever is ignored: the
    // common case costs one memcmp and no parse.
    if a == b {
        return Outcome::default();
    }
    if cfg.body == BodyCompare::Hash {
        return mismatch(
            Kind::Body,
            vec![bytes_differ(len(a), len(b), first_difference(a, b))],
        );
    }
    let parse = |s: &[u8]| serde_json::from_slice::<serde_json::Value>(s);
    match (parse(a), parse(b)) {
        (Ok(x), Ok(y)) => {
            let d = json::diff(&x, &y, &cfg.ignore, &cfg.redact, DIFF_LINES);
            if d.is_empty() {
                Outcome::default()
            } else {
                mismatch(Kind::Body, d.lines())
            }
        }
        (Ok(_), Err(e)) => mismatch(Kind::Body, vec![format!("mirror body is not JSON: {e}")]),
        (Err(e), Ok(_)) => mismatch(Kind::Body, vec![format!("primary body is not JSON: {e}")]),
        // Neither is JSON (an HTML page, plain text): byte for byte.
        (Err(_), Err(_)) => mismatch(
            Kind::Body,
            vec![bytes_differ(len(a), len(b), first_difference(a, b))],
        ),
    }
}

fn len(b: &[u8]) -> u64 {
    b.len() as u64
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<usize> {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .or((a.len() != b.len()).then(|| a.len().min(b.len())))
}

fn bytes_differ(a: u64, b: u64, at: Option<usize>) -> String {
    let mut s = match a == b {
        true => format!("body differs ({a} bytes each)"),
        false => format!("body differs: {a} → {b} bytes"),
    };
    if let Some(at) = at {
        s.push_str(&format!(", first at byte {at}"));
    }
    s
}

/// The running hash of a body for `body = "hash"`: SipHash with fixed
/// keys (std's `DefaultHasher::new()`). Both sides are hashed in the same
/// process, so its stability across versions does not matter; the length
/// is compared too.
#[derive(Debug, Default)]
pub struct BodyHash {
    len: u64,
    hasher: std::hash::DefaultHasher,
}

impl BodyHash {
    pub fn update(&mut self, chunk: &[u8]) {
        self.len += chunk.len() as u64;
        self.hasher.write(chunk);
    }

    pub fn finish(&self) -> Body {
        Body::Hash {
            len: self.len,
            hash: self.hasher.finish(),
        }
    }
}

#[cfg(test)]
mod tests;
