//! Every unknown key of a file in one run. serde stops at the first
//! unknown field, so `parse` reports it, blanks that `key = value` out of
//! a copy of the text and parses again. Blanking keeps every byte offset
//! and every line break, so the positions of later errors (and the
//! validator's spans) still point into the user's file.

use std::ops::Range;

use toml_edit::{Item, Key, Table, Value};

/// How many unknown keys one run reports before it stops looking.
pub(super) const MAX_UNKNOWN: usize = 50;

/// The text with the entry whose key starts at `offset` blanked out, or
/// `None` when no `key = value` starts there (an unknown `[table]` is
/// reported alone: blanking a section is not worth guessing at).
pub(super) fn without_entry_at(text: &str, offset: usize) -> Option<String> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let range = in_item(doc.as_item(), offset)?;
    let range = with_comma(text, range);
    let mut bytes = text.as_bytes().to_vec();
    for b in bytes.get_mut(range)? {
        if *b != b'\n' && *b != b'\r' {
            *b = b' ';
        }
    }
    // Spans start and end on character boundaries and every byte between
    // became a space, so the text is still UTF-8; `ok()` is for safety.
    String::from_utf8(bytes).ok()
}

fn in_item(item: &Item, offset: usize) -> Option<Range<usize>> {
    match item {
        Item::Table(t) => in_table(t, offset),
        Item::ArrayOfTables(a) => a.iter().find_map(|t| in_table(t, offset)),
        Item::Value(v) => in_value(v, offset),
        Item::None => None,
    }
}

fn in_table(t: &Table, offset: usize) -> Option<Range<usize>> {
    in_values(t.get_values(), offset).or_else(|| {
        t.iter()
            .filter(|(_, i)| !i.is_value())
            .find_map(|(_, i)| in_item(i, offset))
    })
}

fn in_values(values: Vec<(Vec<&Key>, &Value)>, offset: usize) -> Option<Range<usize>> {
    values.into_iter().find_map(|(keys, v)| {
        let start = keys.first()?.span()?.start;
        if keys
            .iter()
            .any(|k| k.span().is_some_and(|s| s.start == offset))
        {
            return Some(start..v.span()?.end);
        }
        in_value(v, offset)
    })
}

fn in_value(v: &Value, offset: usize) -> Option<Range<usize>> {
    match v {
        Value::InlineTable(t) => in_values(t.get_values(), offset),
        Value::Array(a) => a.iter().find_map(|v| in_value(v, offset)),
        _ => None,
    }
}

/// Extends an entry of an inline table or array over the comma after it,
/// so that what is left still parses (`{ a = 1, bogus = 2 }` keeps a
/// trailing comma, which TOML 1.1 allows; `{ bogus = 2, a = 1 }` none).
fn with_comma(text: &str, range: Range<usize>) -> Range<usize> {
    let rest = text.get(range.end..).unwrap_or("");
    let skipped = rest.len() - rest.trim_start_matches([' ', '\t']).len();
    match rest.as_bytes().get(skipped) {
        Some(b',') => range.start..range.end + skipped + 1,
        _ => range,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blanks_one_entry_and_keeps_positions() {
        let text = "[a]\nx = 1\nbogus = [1,\n  2]\ny = 2\n";
        let at = text.find("bogus").unwrap();
        let out = without_entry_at(text, at).unwrap();
        assert_eq!(out.len(), text.len());
        assert_eq!(out.lines().count(), text.lines().count());
        assert_eq!(out.find("y = 2"), text.find("y = 2"));
        assert!(!out.contains("bogus"), "{out}");
        assert!(toml_edit::Document::parse(out.as_str()).is_ok(), "{out}");
    }

    #[test]
    fn inline_tables_stay_valid_either_way() {
        for text in [
            "s = { header = \"X\", nope = 1 }\n",
            "s = { nope = 1, header = \"X\" }\n",
            "b = [{ addr = \"a\", nope = { deep = 1 } }]\n",
        ] {
            let at = text.find("nope").unwrap();
            let out = without_entry_at(text, at).unwrap();
            assert!(!out.contains("nope"), "{out}");
            assert!(toml_edit::Document::parse(out.as_str()).is_ok(), "{out}");
        }
    }

    #[test]
    fn nothing_to_blank_is_none() {
        assert_eq!(without_entry_at("[a]\nx = 1\n", 1), None);
        assert_eq!(without_entry_at("not toml [", 0), None);
    }
}
