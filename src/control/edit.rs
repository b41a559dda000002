//! Edits of the configuration text with `toml_edit`, so that a change made
//! through the admin API lands in the file with every comment, blank line
//! and key order of the untouched parts preserved byte for byte.

use std::net::SocketAddr;

use toml_edit::{DocumentMut, InlineTable, Item, Table, Value};

/// A change to the configuration document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Edit {
    /// Replace a route's split (pools in the order given).
    SetSplit {
        route: String,
        split: Vec<(String, u32)>,
    },
    /// Mark a backend drained (or not).
    SetDrain {
        pool: String,
        addr: SocketAddr,
        drain: bool,
    },
    /// Set a route's `standby` pool, or remove the key (`None`).
    SetStandby { route: String, pool: Option<String> },
    /// `maintenance = true` on the route; `false` removes the key (its
    /// default), so the file shows only routes that are in maintenance.
    SetMaintenance { route: String, on: bool },
    /// Several edits, in order (a flip's split and the standby it keeps).
    Many(Vec<Edit>),
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EditError {
    #[error("the configuration text does not parse as TOML: {0}")]
    Parse(String),
    #[error("route {0:?} is not in the file")]
    NoRoute(String),
    #[error("backend {addr} of pool {pool:?} is not in the file")]
    NoBackend { pool: String, addr: SocketAddr },
}

/// Applies `edit` to `text`, returning the new text.
pub fn apply(text: &str, edit: &Edit) -> Result<String, EditError> {
    let mut doc: DocumentMut = text
        .parse()
        .map_err(|e: toml_edit::TomlError| EditError::Parse(e.to_string()))?;
    edit_doc(&mut doc, edit)?;
    Ok(doc.to_string())
}

fn edit_doc(doc: &mut DocumentMut, edit: &Edit) -> Result<(), EditError> {
    match edit {
        Edit::SetSplit { route, split } => set_split(doc, route, split),
        Edit::SetDrain { pool, addr, drain } => set_drain(doc, pool, *addr, *drain),
        Edit::SetStandby { route, pool } => set_standby(doc, route, pool.as_deref()),
        Edit::SetMaintenance { route, on } => set_maintenance(doc, route, *on),
        Edit::Many(edits) => edits.iter().try_for_each(|e| edit_doc(doc, e)),
    }
}

/// The `[[routes]]` table named `route`.
fn route_table<'d>(doc: &'d mut DocumentMut, route: &str) -> Result<&'d mut Table, EditError> {
    doc.get_mut("routes")
        .and_then(Item::as_array_of_tables_mut)
        .and_then(|routes| {
            routes
                .iter_mut()
                .find(|t| t.get("name").and_then(Item::as_str) == Some(route))
        })
        .ok_or_else(|| EditError::NoRoute(route.to_owned()))
}

/// `standby = "POOL"` on the route: the value replaced in place (its
/// comment kept), else added after the route's other keys; removed with
/// its line for `None`.
fn set_standby(doc: &mut DocumentMut, route: &str, pool: Option<&str>) -> Result<(), EditError> {
    let table = route_table(doc, route)?;
    match (pool, table.get_mut("standby").and_then(Item::as_value_mut)) {
        (Some(p), Some(v)) => replace_keep_decor(v, Value::from(p)),
        (Some(p), None) => {
            table.insert("standby", toml_edit::value(p));
        }
        (None, _) => {
            table.remove("standby");
        }
    }
    Ok(())
}

fn set_maintenance(doc: &mut DocumentMut, route: &str, on: bool) -> Result<(), EditError> {
    let table = route_table(doc, route)?;
    match (
        on,
        table.get_mut("maintenance").and_then(Item::as_value_mut),
    ) {
        (true, Some(v)) => replace_keep_decor(v, Value::from(true)),
        (true, None) => {
            table.insert("maintenance", toml_edit::value(true));
        }
        (false, _) => {
            table.remove("maintenance");
        }
    }
    Ok(())
}

fn set_split(doc: &mut DocumentMut, route: &str, split: &[(String, u32)]) -> Result<(), EditError> {
    let table = route_table(doc, route)?;
    match table.get_mut("split") {
        // `[routes.split]` written as a table of its own: keep that form.
        Some(Item::Table(t)) => {
            let keys: Vec<String> = t.iter().map(|(k, _)| k.to_owned()).collect();
            for k in keys {
                if !split.iter().any(|(p, _)| *p == k) {
                    t.remove(&k);
                }
            }
            for (pool, w) in split {
                match t.get_mut(pool).and_then(Item::as_value_mut) {
                    Some(v) => replace_keep_decor(v, Value::from(i64::from(*w))),
                    None => {
                        t.insert(pool, toml_edit::value(i64::from(*w)));
                    }
                }
            }
        }
        Some(item) => {
            let mut inline = InlineTable::new();
            for (pool, w) in split {
                inline.insert(pool, Value::from(i64::from(*w)));
            }
            inline.fmt();
            match item.as_value_mut() {
                Some(v) => replace_keep_decor(v, Value::InlineTable(inline)),
                None => *item = toml_edit::value(Value::InlineTable(inline)),
            }
        }
        None => {
            let mut inline = InlineTable::new();
            for (pool, w) in split {
                inline.insert(pool, Value::from(i64::from(*w)));
            }
            inline.fmt();
            table.insert("split", toml_edit::value(Value::InlineTable(inline)));
        }
    }
    Ok(())
}

fn set_drain(
    doc: &mut DocumentMut,
    pool: &str,
    addr: SocketAddr,
    drain: bool,
) -> Result<(), EditError> {
    let not_found = || EditError::NoBackend {
        pool: pool.to_owned(),
        addr,
    };
    let backends = doc
        .get_mut("pools")
        .and_then(|p| p.get_mut(pool))
        .and_then(|p| p.get_mut("backends"))
        .and_then(Item::as_array_mut)
        .ok_or_else(not_found)?;
    let same = |s: Option<&str>| s.and_then(|s| s.parse::<SocketAddr>().ok()) == Some(addr);
    let value = backends
        .iter_mut()
        .find(|v| match v {
            Value::String(s) => same(Some(s.value())),
            Value::InlineTable(t) => same(t.get("addr").and_then(Value::as_str)),
            _ => false,
        })
        .ok_or_else(not_found)?;
    match (&mut *value, drain) {
        (Value::String(s), true) => {
            let mut t = InlineTable::new();
            t.insert("addr", Value::from(s.value().as_str()));
            t.insert("drain", Value::from(true));
            t.fmt();
            replace_keep_decor(value, Value::InlineTable(t));
        }
        (Value::InlineTable(t), true) => {
            t.insert("drain", Value::from(true));
        }
        (Value::InlineTable(t), false) => {
            t.remove("drain");
            // Back to the plain form when nothing else is left.
            if t.len() == 1 {
                if let Some(a) = t.get("addr").and_then(Value::as_str).map(str::to_owned) {
                    replace_keep_decor(value, Value::from(a.as_str()));
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Replaces a value but keeps the whitespace and comments around it.
fn replace_keep_decor(slot: &mut Value, mut new: Value) {
    *new.decor_mut() = slot.decor().clone();
    *slot = new;
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# top comment
[pools.blue]
backends = ["127.0.0.1:8001", "127.0.0.1:8002"]   # blue fleet

[pools.canary]
backends = [
    "127.0.0.1:8021",  # the canary box
]

[[routes]]
name = "api"
split = { blue = 90, canary = 10 }   # edit this line
sticky = { header = "X-User-ID" }

[[routes]]
name = "admin"
[routes.split]
blue = 1 # only blue
"#;

    #[test]
    fn split_edit_keeps_everything_else() {
        let out = apply(
            TEXT,
            &Edit::SetSplit {
                route: "api".into(),
                split: vec![("blue".into(), 75), ("canary".into(), 25)],
            },
        )
        .unwrap();
        assert_eq!(
            out,
            TEXT.replace("{ blue = 90, canary = 10 }", "{ blue = 75, canary = 25 }")
        );
    }

    #[test]
    fn split_edit_in_table_form() {
        let out = apply(
            TEXT,
            &Edit::SetSplit {
                route: "admin".into(),
                split: vec![("blue".into(), 0), ("canary".into(), 100)],
            },
        )
        .unwrap();
        assert!(
            out.contains("blue = 0 # only blue\ncanary = 100\n"),
            "{out}"
        );
        assert!(out.starts_with(&TEXT[..TEXT.find("[[routes]]\nname = \"admin\"").unwrap()]));
    }

    #[test]
    fn drain_round_trip_restores_the_original() {
        let addr: SocketAddr = "127.0.0.1:8002".parse().unwrap();
        let drained = apply(
            TEXT,
            &Edit::SetDrain {
                pool: "blue".into(),
                addr,
                drain: true,
            },
        )
        .unwrap();
        assert!(
            drained.contains(
                r#"["127.0.0.1:8001", { addr = "127.0.0.1:8002", drain = true }]   # blue fleet"#
            ),
            "{drained}"
        );
        let back = apply(
            &drained,
            &Edit::SetDrain {
                pool: "blue".into(),
                addr,
                drain: false,
            },
        )
        .unwrap();
        assert_eq!(back, TEXT);
        let addr: SocketAddr = "127.0.0.1:8021".parse().unwrap();
        let drained = apply(
            TEXT,
            &Edit::SetDrain {
                pool: "canary".into(),
                addr,
                drain: true,
            },
        )
        .unwrap();
        assert!(
            drained.contains("{ addr = \"127.0.0.1:8021\", drain = true },  # the canary box"),
            "{drained}"
        );
    }

    #[test]
    fn standby_is_added_replaced_and_removed_keeping_the_rest() {
        let standby = |text: &str, route: &str, pool: Option<&str>| {
            apply(
                text,
                &Edit::SetStandby {
                    route: route.into(),
                    pool: pool.map(str::to_owned),
                },
            )
            .unwrap()
        };
        let set = standby(TEXT, "api", Some("blue"));
        assert_eq!(
            set,
            TEXT.replace(
                "sticky = { header = \"X-User-ID\" }\n",
                "sticky = { header = \"X-User-ID\" }\nstandby = \"blue\"\n"
            )
        );
        let commented = set.replace("standby = \"blue\"", "standby = \"blue\"   # way back");
        assert_eq!(
            standby(&commented, "api", Some("canary")),
            commented.replace("\"blue\"   # way back", "\"canary\"   # way back")
        );
        assert_eq!(standby(&set, "api", None), TEXT);
        assert_eq!(standby(TEXT, "api", None), TEXT);
        // the key goes to the route's own table, before its sub-tables
        let admin = standby(TEXT, "admin", Some("canary"));
        assert!(
            admin.contains("name = \"admin\"\nstandby = \"canary\"\n[routes.split]"),
            "{admin}"
        );
        let both = apply(
            TEXT,
            &Edit::Many(vec![
                Edit::SetSplit {
                    route: "api".into(),
                    split: vec![("blue".into(), 0), ("canary".into(), 100)],
                },
                Edit::SetStandby {
                    route: "api".into(),
                    pool: Some("blue".into()),
                },
            ]),
        )
        .unwrap();
        assert!(
            both.contains("split = { blue = 0, canary = 100 }   # edit this line\nsticky = { header = \"X-User-ID\" }\nstandby = \"blue\"\n"),
            "{both}"
        );
    }

    #[test]
    fn unknown_targets_are_errors() {
        let e = apply(
            TEXT,
            &Edit::SetSplit {
                route: "nope".into(),
                split: vec![],
            },
        )
        .unwrap_err();
        assert_eq!(e, EditError::NoRoute("nope".into()));
        let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(matches!(
            apply(
                TEXT,
                &Edit::SetDrain {
                    pool: "blue".into(),
                    addr,
                    drain: true
                }
            ),
            Err(EditError::NoBackend { .. })
        ));
    }
}
