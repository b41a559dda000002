//! `request_headers` / `response_headers` on a `HeaderMap` (the HTTP/2
//! path, and answers the proxy makes itself). The rules were compiled at
//! load (`config::HeaderRules`: names to drop, then templates to append),
//! so applying them is removals and appends; a value with variables costs
//! one allocation of its own length, a constant one a reference count.
//! The lean HTTP/1 path uses the same rules while it copies the head
//! (`HeaderRules::drops`, `Template::render_into`).
//!
//! Rules run after the proxy's own headers are in place on a request, and
//! cannot name the headers the proxy owns (validation refuses them), so
//! they cannot break `X-Forwarded-*`, `X-Request-Id` or the framing.

use http::HeaderMap;

use crate::config::template::Vars;
use crate::config::HeaderRules;

/// Applies `rules` to `headers`.
pub fn apply(rules: &HeaderRules, headers: &mut HeaderMap, vars: &Vars<'_>) {
    for name in rules.drop.iter() {
        headers.remove(name);
    }
    let value = |v: &_| vars.get(v);
    for (name, template) in rules.append.iter() {
        // A supplied value cannot hold a control byte (they come from
        // header values, addresses and names), so this is always Some.
        if let Some(v) = template.header_value(&value) {
            headers.append(name, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use http::HeaderValue;

    use super::*;
    use crate::config;

    fn rules(table: &str) -> HeaderRules {
        let text = format!(
            "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = {{ a = 1 }}\nrequest_headers = {table}\n"
        );
        let c = config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        c.routes[0].http.request_headers.clone().unwrap()
    }

    #[test]
    fn set_add_remove_with_variables() {
        let r = rules(
            "{ set = { X-Env = \"prod\", Host = \"app.internal\" }, add = { X-Via = \"$remote_addr/$pool/$request_id\" }, remove = [\"X-Debug\"] }",
        );
        let mut h = HeaderMap::new();
        h.append("x-env", HeaderValue::from_static("dev"));
        h.append("x-env", HeaderValue::from_static("dev2"));
        h.insert("host", HeaderValue::from_static("api.example.com"));
        h.insert("x-debug", HeaderValue::from_static("1"));
        h.insert("x-via", HeaderValue::from_static("earlier"));
        let vars = Vars {
            remote_addr: b"203.0.113.7",
            pool: b"blue",
            request_id: b"r1",
            ..Vars::default()
        };
        apply(&r, &mut h, &vars);
        let all =
            |n: &str| -> Vec<&str> { h.get_all(n).iter().map(|v| v.to_str().unwrap()).collect() };
        assert_eq!(all("x-env"), ["prod"]);
        assert_eq!(all("host"), ["app.internal"]);
        assert!(all("x-debug").is_empty());
        assert_eq!(all("x-via"), ["earlier", "203.0.113.7/blue/r1"]);
    }
}
