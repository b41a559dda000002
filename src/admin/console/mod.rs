//! The web console: a small framework-free page (HTML, CSS, one script)
//! embedded in the binary and served on the admin listener at `/`, and
//! the one read-only endpoint it needs beyond the status
//! (`GET /api/v1/traffic`, in `traffic`).
//!
//! The page holds no data: it is served without the token, and every
//! figure comes from same-origin API calls that carry
//! `Authorization: Bearer` (kept in `sessionStorage` by its login form).
//! Responses carry a strict `Content-Security-Policy` (scripts and styles
//! from this origin only, no inline code, no framing, no other
//! connections), `X-Frame-Options: DENY` and `nosniff`. Assets are
//! revalidated on every load (`Cache-Control: no-cache` with an `ETag` of
//! their content), so a new binary's console is never mixed with a
//! cached old script.

pub mod traffic;

use std::sync::OnceLock;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;

/// An embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

const JS: &str = "text/javascript; charset=utf-8";

/// `Asset` for `/console/NAME` from `assets/NAME`.
macro_rules! file {
    ($name:literal, $type:expr) => {
        Asset {
            path: concat!("/console/", $name),
            content_type: $type,
            body: include_bytes!(concat!("assets/", $name)),
        }
    };
}

/// Every file of the console; `/` is `index.html`. The script is a set of
/// ES modules (`app.js` imports the others).
const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("assets/index.html"),
    },
    file!("app.js", JS),
    file!("api.js", JS),
    file!("dom.js", JS),
    file!("routes.js", JS),
    file!("releases.js", JS),
    file!("pools.js", JS),
    file!("actions.js", JS),
    file!("extensions.js", JS),
    file!("shadow.js", JS),
    file!("app.css", "text/css; charset=utf-8"),
    file!("icon.svg", "image/svg+xml"),
];

/// Scripts, styles and images from this origin only; API calls to this
/// origin only; no plugins, forms posting elsewhere, framing or `<base>`.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; form-action 'none'; \
    frame-ancestors 'none'; base-uri 'none'";

/// Is `path` one of the console's files?
pub fn is_asset(path: &str) -> bool {
    ASSETS.iter().any(|a| a.path == path)
}

/// Serves a console file: `GET` or `HEAD`, `304` when `If-None-Match`
/// names the current content.
pub fn serve(method: &Method, path: &str, headers: &HeaderMap) -> Response<Full<Bytes>> {
    let Some((i, asset)) = ASSETS.iter().enumerate().find(|(_, a)| a.path == path) else {
        return plain(StatusCode::NOT_FOUND, "not found\n");
    };
    if method != Method::GET && method != Method::HEAD {
        let mut r = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let etag = &etags()[i];
    let fresh = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if fresh {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if method == Method::HEAD {
        Response::new(Full::new(Bytes::new()))
    } else {
        Response::new(Full::new(Bytes::from_static(asset.body)))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if method == Method::HEAD && !fresh {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(asset.body.len()));
    }
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    security_headers(h);
    r
}

/// The headers every console answer carries.
pub fn security_headers(h: &mut HeaderMap) {
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// `"<fnv1a64 of the content>"` per asset, computed once.
fn etags() -> &'static [String] {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|a| format!("\"{:016x}\"", crate::table::sticky::fnv1a64(a.body)))
            .collect()
    })
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_served_with_its_type_and_the_security_headers() {
        for a in ASSETS {
            let r = serve(&Method::GET, a.path, &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK, "{}", a.path);
            let h = r.headers();
            assert_eq!(h[header::CONTENT_TYPE], a.content_type);
            assert_eq!(h[header::CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(h[header::X_FRAME_OPTIONS], "DENY");
            assert_eq!(h[header::CACHE_CONTROL], "no-cache");
            // Revalidation answers 304 with no body.
            let mut cond = HeaderMap::new();
            cond.insert(header::IF_NONE_MATCH, h[header::ETAG].clone());
            let again = serve(&Method::GET, a.path, &cond);
            assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        }
        assert_eq!(
            serve(&Method::POST, "/", &HeaderMap::new()).status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        assert!(!is_asset("/console/missing.js"));
    }

    #[test]
    fn every_module_a_script_imports_is_served() {
        for a in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(a.body).unwrap();
            for import in text.split("from './").skip(1) {
                let name = import.split('\'').next().unwrap();
                assert!(
                    is_asset(&format!("/console/{name}")),
                    "{} imports {name}",
                    a.path
                );
            }
        }
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_has_no_inline_code() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap();
        assert!(!html.contains("<script>"), "inline script");
        assert!(!html.contains("style="), "inline style");
        let handler = html.split(" on").skip(1).any(|rest| {
            let name: String = rest.chars().take_while(char::is_ascii_lowercase).collect();
            !name.is_empty() && rest[name.len()..].starts_with('=')
        });
        assert!(!handler, "inline event handler");
        for a in ASSETS {
            // The SVG namespace is a name, not a place anything is loaded from.
            let text = String::from_utf8_lossy(a.body).replace("http://www.w3.org/2000/svg", "");
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "{} names another origin",
                a.path
            );
        }
    }
}
