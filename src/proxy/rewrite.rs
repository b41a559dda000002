//! The path a route forwards: `strip_prefix` (nginx's `proxy_pass
//! http://app/;` under `location /api/`), then `rewrite = { from, to }`.
//! Pure functions over the request's path; the query string is never
//! touched. Both data paths call [`forward_path`]; a route with neither
//! key is not looked at.

use std::borrow::Cow;

use crate::config::{PathRewrite, RouteHttp, StripPrefix};

/// The path without the route's prefix: `/api/users` → `/users`, `/api`
/// → `/` (prefix `/api` or `/api/`). `None` when the prefix does not end
/// at a segment boundary (`/apix` under `/api`): such a path is forwarded
/// as it is, without `X-Forwarded-Prefix`, rather than as a made-up `/x`.
pub fn strip<'p>(strip: &StripPrefix, path: &'p str) -> Option<&'p str> {
    let prefix = &*strip.prefix;
    let rest = path.strip_prefix(prefix)?;
    if prefix.ends_with('/') {
        // Keep the prefix's own slash as the new path's first byte.
        return Some(&path[prefix.len() - 1..]);
    }
    match rest.as_bytes().first() {
        None => Some("/"),
        Some(b'/') => Some(rest),
        Some(_) => None,
    }
}

/// The path with the part `from` matches (from the start) replaced by
/// `to`; `None` when `from` does not match.
pub fn rewrite(rw: &PathRewrite, path: &str) -> Option<String> {
    let caps = rw.from.captures(path)?;
    let whole = caps.get(0)?;
    let value = |c: &crate::config::template::Capture| -> &[u8] {
        caps.get(c.0).map_or(&b""[..], |m| m.as_str().as_bytes())
    };
    let mut out = Vec::with_capacity(rw.to.len_with(&value) + path.len() - whole.end());
    rw.to.render_into(&value, &mut out);
    out.extend_from_slice(&path.as_bytes()[whole.end()..]);
    // Captures are slices of a valid path and `to`'s text was checked at
    // load, so this is UTF-8; a failure only means "not rewritten".
    String::from_utf8(out).ok()
}

/// What a route does to a request's path.
#[derive(Debug, PartialEq, Eq)]
pub struct Forward<'p> {
    pub path: Cow<'p, str>,
    /// The prefix was stripped: send `X-Forwarded-Prefix`.
    pub stripped: bool,
}

/// The path to forward for `path` on a route (`None`: unchanged).
pub fn forward_path<'p>(http: &RouteHttp, path: &'p str) -> Option<Forward<'p>> {
    if http.strip_prefix.is_none() && http.rewrite.is_none() {
        return None;
    }
    let stripped = http.strip_prefix.as_ref().and_then(|s| strip(s, path));
    let base = stripped.unwrap_or(path);
    let path = match http.rewrite.as_ref().and_then(|rw| rewrite(rw, base)) {
        Some(p) => Cow::Owned(p),
        None if stripped.is_some() => Cow::Borrowed(base),
        None => return None,
    };
    Some(Forward {
        path,
        stripped: stripped.is_some(),
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;
    use proptest::prelude::*;

    fn route(keys: &str) -> RouteHttp {
        let text = format!(
            "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = {{ a = 1 }}\n{keys}\n"
        );
        let c = config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        c.routes[0].http.clone()
    }

    fn fwd(http: &RouteHttp, path: &str) -> Option<(String, bool)> {
        forward_path(http, path).map(|f| (f.path.into_owned(), f.stripped))
    }

    #[test]
    fn strip_prefix_like_proxy_pass_with_a_slash() {
        let h = route("path_prefix = \"/api\"\nstrip_prefix = true");
        assert_eq!(fwd(&h, "/api/users"), Some(("/users".into(), true)));
        assert_eq!(fwd(&h, "/api"), Some(("/".into(), true)));
        assert_eq!(fwd(&h, "/api/"), Some(("/".into(), true)));
        // not a segment boundary: forwarded as it is
        assert_eq!(fwd(&h, "/apix"), None);
        let h = route("path_prefix = \"/api/\"\nstrip_prefix = true");
        assert_eq!(fwd(&h, "/api/users/7"), Some(("/users/7".into(), true)));
        assert_eq!(fwd(&h, "/api/"), Some(("/".into(), true)));
    }

    #[test]
    fn rewrite_replaces_what_matches() {
        let h = route("rewrite = { from = \"^/old/(.*)\", to = \"/new/$1\" }");
        assert_eq!(fwd(&h, "/old/a/b"), Some(("/new/a/b".into(), false)));
        assert_eq!(fwd(&h, "/other"), None);
        let h = route("rewrite = { from = \"^/v1/(?P<id>[0-9]+)\", to = \"/items/${id}/v1\" }");
        assert_eq!(
            fwd(&h, "/v1/42/tags"),
            Some(("/items/42/v1/tags".into(), false))
        );
        // an optional group that did not take part is empty
        let h = route("rewrite = { from = \"^/x(/y)?\", to = \"/z$1\" }");
        assert_eq!(fwd(&h, "/x"), Some(("/z".into(), false)));
    }

    #[test]
    fn strip_then_rewrite() {
        let h = route(
            "path_prefix = \"/api\"\nstrip_prefix = true\nrewrite = { from = \"^/v1/\", to = \"/\" }",
        );
        assert_eq!(fwd(&h, "/api/v1/users"), Some(("/users".into(), true)));
        assert_eq!(fwd(&h, "/api/users"), Some(("/users".into(), true)));
    }

    proptest! {
        /// The stripped path always starts with `/`, and the prefix plus
        /// what was stripped is the original path again.
        #[test]
        fn strip_keeps_the_rest(rest in "(/[a-z0-9._~-]{0,8}){0,4}") {
            let h = route("path_prefix = \"/api\"\nstrip_prefix = true");
            let path = format!("/api{rest}");
            let (p, stripped) = fwd(&h, &path).expect("a segment boundary");
            prop_assert!(stripped);
            prop_assert!(p.starts_with('/'));
            if rest.is_empty() {
                prop_assert_eq!(p, "/");
            } else {
                prop_assert_eq!(format!("/api{p}"), path);
            }
        }
    }
}
