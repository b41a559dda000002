//! The JSON paths of `compare.ignore` and `compare.redact`: a small,
//! strict subset of JSONPath, parsed once at validation into segments the
//! structural diff matches against the path it is walking.
//!
//! Supported: the root `$`, then any sequence of `.name` (letters, digits,
//! `_`, `-`), `['name']` or `["name"]` (any other key), `.*` (any key of an
//! object), `[N]` (element N of an array) and `[*]` (any element). Not
//! supported, and refused with a hint: recursive descent (`..`), filters
//! (`[?(...)]`), slices (`[1:3]`), unions (`[0,1]`) and the bare `$` (that
//! would ignore the whole body; use `body = "hash"` or `"none"`).

use std::fmt;

/// One step of a path pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    /// `.name` or `['name']`: this key of an object.
    Key(Box<str>),
    /// `.*`: any key of an object.
    AnyKey,
    /// `[N]`: element N of an array.
    Index(usize),
    /// `[*]`: any element of an array.
    AnyIndex,
}

/// One step of a concrete position in a document, as the diff walks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// A parsed path pattern, e.g. `$.items[*].id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    text: Box<str>,
    segments: Box<[Segment]>,
}

impl JsonPath {
    /// Parses a pattern, or says what is wrong with it.
    pub fn parse(text: &str) -> Result<JsonPath, PathError> {
        let segments = parse_segments(text)?;
        Ok(JsonPath {
            text: text.into(),
            segments: segments.into(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Does the pattern name exactly this position (the subtree below it
    /// then belongs to the pattern too)?
    pub fn matches(&self, at: &[Step<'_>]) -> bool {
        self.segments.len() == at.len()
            && self.segments.iter().zip(at).all(|(s, a)| match (s, a) {
                (Segment::Key(k), Step::Key(a)) => **k == **a,
                (Segment::AnyKey, Step::Key(_)) => true,
                (Segment::Index(i), Step::Index(a)) => i == a,
                (Segment::AnyIndex, Step::Index(_)) => true,
                _ => false,
            })
    }
}

impl fmt::Display for JsonPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a path pattern was refused: the message, and a hint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathError {
    pub message: String,
    pub hint: &'static str,
}

const HINT: &str = "supported: $.a.b, $.a[*].b, $.a[0], $.*.id, $['odd key']";

fn err(message: impl Into<String>) -> PathError {
    PathError {
        message: message.into(),
        hint: HINT,
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn parse_segments(text: &str) -> Result<Vec<Segment>, PathError> {
    let Some(rest) = text.strip_prefix('$') else {
        return Err(err(format!("path {text:?} must start with '$'")));
    };
    let b = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'.' if b.get(i + 1) == Some(&b'.') => {
                return Err(err("recursive descent ('..') is not supported"));
            }
            b'.' if b.get(i + 1) == Some(&b'*') => {
                out.push(Segment::AnyKey);
                i += 2;
            }
            b'.' => {
                let len = b[i + 1..].iter().take_while(|&&c| is_name_byte(c)).count();
                if len == 0 {
                    return Err(err(format!(
                        "expected a key name after '.' at {:?}",
                        &rest[i..]
                    )));
                }
                out.push(Segment::Key(rest[i + 1..i + 1 + len].into()));
                i += 1 + len;
            }
            b'[' => {
                let (seg, used) = bracket(&rest[i..])?;
                out.push(seg);
                i += used;
            }
            _ => return Err(err(format!("unexpected {:?} in path {text:?}", &rest[i..]))),
        }
    }
    if out.is_empty() {
        return Err(PathError {
            message: "\"$\" is the whole body".into(),
            hint: "to ignore bodies altogether use body = \"none\"",
        });
    }
    Ok(out)
}

/// `[*]`, `[N]`, `['key']` or `["key"]` at the start of `s`: the segment
/// and the bytes it took.
fn bracket(s: &str) -> Result<(Segment, usize), PathError> {
    let Some(close) = s.find(']') else {
        return Err(err(format!("unclosed '[' at {s:?}")));
    };
    let inner = &s[1..close];
    let quoted = |q: char| inner.len() >= 2 && inner.starts_with(q) && inner.ends_with(q);
    let seg = if inner == "*" {
        Segment::AnyIndex
    } else if quoted('\'') || quoted('"') {
        let key = &inner[1..inner.len() - 1];
        if key.contains(['\'', '"', '\\']) {
            return Err(err(format!(
                "quotes and escapes in keys are not supported: {inner}"
            )));
        }
        Segment::Key(key.into())
    } else if !inner.is_empty() && inner.bytes().all(|c| c.is_ascii_digit()) {
        let n = inner
            .parse()
            .map_err(|_| err(format!("index {inner} is too large")))?;
        Segment::Index(n)
    } else if inner.starts_with('?') {
        return Err(err("filters ('[?(...)]') are not supported"));
    } else if inner.contains(':') {
        return Err(err("slices ('[a:b]') are not supported"));
    } else if inner.contains(',') {
        return Err(err("unions ('[a,b]') are not supported"));
    } else {
        return Err(err(format!("cannot read [{inner}]")));
    };
    Ok((seg, close + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segs(text: &str) -> Vec<Segment> {
        JsonPath::parse(text)
            .unwrap_or_else(|e| panic!("{text}: {e:?}"))
            .segments()
            .to_vec()
    }

    #[test]
    fn supported_forms_parse() {
        use Segment::*;
        assert_eq!(segs("$.generated_at"), [Key("generated_at".into())]);
        assert_eq!(
            segs("$.items[*].id"),
            [Key("items".into()), AnyIndex, Key("id".into())]
        );
        assert_eq!(segs("$.a[2]"), [Key("a".into()), Index(2)]);
        assert_eq!(segs("$.*.id"), [AnyKey, Key("id".into())]);
        assert_eq!(
            segs("$['odd key'][\"x.y\"]"),
            [Key("odd key".into()), Key("x.y".into())]
        );
        assert_eq!(segs("$[0][*]"), [Index(0), AnyIndex]);
    }

    #[test]
    fn unsupported_forms_are_refused_with_the_reason() {
        for (text, why) in [
            ("generated_at", "must start with '$'"),
            ("$", "whole body"),
            ("$..id", "recursive descent"),
            ("$.items[?(@.id)]", "filters"),
            ("$.items[1:3]", "slices"),
            ("$.items[0,1]", "unions"),
            ("$.items[", "unclosed"),
            ("$.", "expected a key name"),
            ("$.a b", "unexpected"),
            ("$[x]", "cannot read"),
        ] {
            let e = JsonPath::parse(text).expect_err(text);
            assert!(e.message.contains(why), "{text}: {}", e.message);
        }
    }

    #[test]
    fn a_pattern_matches_exactly_its_positions() {
        let p = JsonPath::parse("$.items[*].id").unwrap();
        let at = |s: &[Step<'_>]| p.matches(s);
        assert!(at(&[Step::Key("items"), Step::Index(7), Step::Key("id")]));
        assert!(!at(&[Step::Key("items"), Step::Index(7)]));
        assert!(!at(&[Step::Key("items"), Step::Key("7"), Step::Key("id")]));
        assert!(!at(&[
            Step::Key("items"),
            Step::Index(7),
            Step::Key("id"),
            Step::Key("x")
        ]));
        let any = JsonPath::parse("$.*").unwrap();
        assert!(any.matches(&[Step::Key("whatever")]));
        assert!(!any.matches(&[Step::Index(0)]));
    }
}
