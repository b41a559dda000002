//! Which part of a configuration file the cluster shares, and how a
//! replica's own file takes in the cluster's version of it — pure text
//! functions (`toml_edit`), no etcd.
//!
//! Shared (one state for every replica): `pools`, `routes` (with their
//! rollouts), `health`, `outlier`, `retry`, `notify`. Local (per
//! replica): `server`, `admin`, `tls`, `cluster`. Every top-level table of
//! the file is in exactly one list (a unit test checks this against the
//! parser's own list of keys, so a new section cannot be forgotten).
//!
//! `shared` cuts the local tables out of a file (comments of the shared
//! ones travel with them). `merge` rewrites a replica's file so that its
//! shared part says what the cluster's does, keeping the file's local
//! tables untouched and, for every shared table or value whose *content*
//! did not change, its own layout and comments byte for byte: only what
//! differs is replaced (taking the proposing replica's formatting).

use toml_edit::{DocumentMut, Item, Table};

/// Top-level tables every replica shares through the cluster.
pub const SHARED: &[&str] = &["health", "outlier", "retry", "pools", "routes", "notify"];
/// Top-level tables that stay local to each replica.
pub const LOCAL: &[&str] = &["server", "admin", "tls", "cluster"];

/// The text is not TOML.
#[derive(Debug, thiserror::Error)]
#[error("not TOML: {0}")]
pub struct DocumentError(String);

fn parse(text: &str) -> Result<DocumentMut, DocumentError> {
    text.parse::<DocumentMut>()
        .map_err(|e| DocumentError(e.to_string()))
}

/// The shared part of `file`: the file without its local tables.
pub fn shared(file: &str) -> Result<String, DocumentError> {
    let mut doc = parse(file)?;
    for key in LOCAL {
        doc.remove(key);
    }
    Ok(doc.to_string())
}

/// `file` with its shared part replaced by `shared_text`'s, changing only
/// what differs.
pub fn merge(file: &str, shared_text: &str) -> Result<String, DocumentError> {
    let mut doc = parse(file)?;
    let theirs = parse(shared_text)?;
    for key in SHARED {
        match (doc.get_mut(key), theirs.get(key)) {
            (Some(mine), Some(new)) => merge_item(mine, new),
            (None, Some(new)) => {
                doc.insert(key, new.clone());
            }
            (Some(_), None) => {
                doc.remove(key);
            }
            (None, None) => {}
        }
    }
    Ok(doc.to_string())
}

/// Whether two files say the same about the shared part (formatting and
/// comments aside).
pub fn same_shared(a: &str, b: &str) -> Result<bool, DocumentError> {
    let (a, b) = (parse(a)?, parse(b)?);
    Ok(SHARED.iter().all(|k| match (a.get(k), b.get(k)) {
        (Some(x), Some(y)) => same(x, y),
        (None, None) => true,
        _ => false,
    }))
}

fn merge_item(mine: &mut Item, new: &Item) {
    if same(mine, new) {
        return;
    }
    match (mine, new) {
        (Item::Table(m), Item::Table(n)) => merge_table(m, n),
        (Item::ArrayOfTables(m), Item::ArrayOfTables(n)) if m.len() == n.len() => {
            for (mt, nt) in m.iter_mut().zip(n.iter()) {
                if !same_table(mt, nt) {
                    merge_table(mt, nt);
                }
            }
        }
        (mine, new) => *mine = new.clone(),
    }
}

fn merge_table(mine: &mut Table, new: &Table) {
    let gone: Vec<String> = mine
        .iter()
        .map(|(k, _)| k.to_owned())
        .filter(|k| !new.contains_key(k))
        .collect();
    for k in gone {
        mine.remove(&k);
    }
    for (k, v) in new.iter() {
        match mine.get_mut(k) {
            Some(m) => merge_item(m, v),
            None => {
                mine.insert(k, v.clone());
            }
        }
    }
}

/// Same content: both items as plain TOML values.
fn same(a: &Item, b: &Item) -> bool {
    value(a).is_some_and(|va| value(b).is_some_and(|vb| va == vb))
}

fn same_table(a: &Table, b: &Table) -> bool {
    same(&Item::Table(a.clone()), &Item::Table(b.clone()))
}

/// An item as a `toml::Value`, through a one-key document.
fn value(item: &Item) -> Option<toml::Value> {
    let mut doc = DocumentMut::new();
    doc.insert("x", item.clone());
    let t: toml::Table = toml::from_str(&doc.to_string()).ok()?;
    t.get("x").cloned()
}

#[cfg(test)]
mod tests;
