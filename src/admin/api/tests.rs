//! The endpoint table: one row per method and path, every row documented
//! in the README's admin API table, nothing documented that is not served.

use std::collections::HashSet;

use super::*;

/// `GET /api/v1/status` and the like, from the README's admin API table.
fn documented() -> HashSet<String> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("## Admin API")
        .expect("README has an Admin API section");
    let section = &readme[start..];
    let section = &section[..section.find("### ").unwrap_or(section.len())];
    let mut out = HashSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split(" | ").next().unwrap_or("");
        for code in first.split('`').skip(1).step_by(2) {
            if code.contains(" /api/v1/") {
                // `GET /api/v1/history?limit=N`: the path without its query.
                out.insert(code.split('?').next().unwrap_or(code).to_owned());
            }
        }
    }
    out
}

#[test]
fn every_endpoint_is_one_row_and_documented() {
    let mut seen = HashSet::new();
    for e in endpoints() {
        assert!(
            seen.insert(format!("{} {}", e.method, e.pattern)),
            "{} {} twice",
            e.method,
            e.pattern
        );
    }
    let docs = documented();
    let served: HashSet<String> = seen
        .iter()
        .map(|e| e.replacen(' ', " /api/v1", 1))
        .collect();
    let missing: Vec<_> = served.difference(&docs).collect();
    let stale: Vec<_> = docs.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "not in the README's admin API table: {missing:?}"
    );
    assert!(stale.is_empty(), "documented but not served: {stale:?}");
}

#[test]
fn every_api_path_needs_the_token() {
    for e in endpoints() {
        assert_eq!(e.auth, Auth::Token, "{} {}", e.method, e.pattern);
        let path = crate::api::path(e.pattern, &["a", "127.0.0.1:1"]);
        assert!(needs_token(&e.method, &path), "{path}");
    }
    assert!(needs_token(&Method::GET, "/api/v1/nothing"));
    assert!(needs_token(&Method::GET, "/elsewhere"));
}
