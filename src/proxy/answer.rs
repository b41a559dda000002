//! The answers a route makes by itself, without a pool: `respond`, the
//! maintenance answer and `redirect`. Built as an `http::Response` that
//! either data path writes like any other answer; the route's
//! `response_headers` apply to them too (like nginx's `add_header ...
//! always`).

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ProxyBody;
use super::header_rules;
use super::headers::{X_REQUEST_ID, X_SWITCHYARD_ERROR};
use crate::config::template::Vars;
use crate::config::{Action, RouteHttp, StaticResponse};

/// What a route answers by itself, if it does, before any pool is chosen.
pub fn route_answer(http: &RouteHttp, vars: &Vars<'_>) -> Option<Response<ProxyBody>> {
    let mut resp = if http.maintenance {
        fixed(&http.maintenance_response)
    } else {
        match &http.action {
            Action::Proxy => return None,
            Action::Respond(r) => fixed(r),
            Action::Redirect(r) => {
                let value = |v: &_| vars.get(v);
                // Variables hold header-safe bytes, so this is Some; a
                // failure answers the redirect without a target rather
                // than panicking.
                let location = r.to.header_value(&value);
                redirect(r.status, location)
            }
        }
    };
    let h = resp.headers_mut();
    if let Ok(id) = HeaderValue::from_bytes(vars.request_id) {
        h.insert(&X_REQUEST_ID, id);
    }
    if let Some(rules) = &http.response_headers {
        header_rules::apply(rules, h, vars);
    }
    Some(resp)
}

/// A fixed answer: status, body, `Content-Type`, `Retry-After`.
pub fn fixed(r: &StaticResponse) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::full(r.body.clone()));
    *resp.status_mut() = r.status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, r.content_type.clone());
    if let Some(ra) = &r.retry_after {
        h.insert(header::RETRY_AFTER, ra.clone());
    }
    if let Some(reason) = r.reason {
        h.insert(&X_SWITCHYARD_ERROR, HeaderValue::from_static(reason));
    }
    resp
}

fn redirect(status: StatusCode, location: Option<HeaderValue>) -> Response<ProxyBody> {
    let mut resp = Response::new(ProxyBody::empty());
    *resp.status_mut() = status;
    if let Some(l) = location {
        resp.headers_mut().insert(header::LOCATION, l);
    }
    resp
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config;

    fn route(keys: &str) -> RouteHttp {
        let text =
            format!("[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\n{keys}\n");
        let c = config::parse(&text, Path::new("t.toml")).unwrap_or_else(|e| panic!("{e}"));
        c.routes[0].http.clone()
    }

    fn vars() -> Vars<'static> {
        Vars {
            request_id: b"rid-1",
            host: b"old.example",
            request_uri: b"/a/b?c=1",
            uri: b"/b",
            query: b"?c=1",
            ..Vars::default()
        }
    }

    #[test]
    fn a_proxying_route_answers_nothing_by_itself() {
        assert!(route_answer(&route("split = { a = 1 }"), &vars()).is_none());
    }

    #[test]
    fn maintenance_overrides_forwarding() {
        let r = route("split = { a = 1 }\nmaintenance = true\nresponse_headers = { set = { Cache-Control = \"no-store\" } }");
        let resp = route_answer(&r, &vars()).unwrap();
        assert_eq!(resp.status(), 503);
        let h = resp.headers();
        assert_eq!(h[header::RETRY_AFTER], "60");
        assert_eq!(h[&X_SWITCHYARD_ERROR], "maintenance");
        assert_eq!(h[&X_REQUEST_ID], "rid-1");
        assert_eq!(h[header::CACHE_CONTROL], "no-store");
    }

    #[test]
    fn respond_and_redirect() {
        let r =
            route("respond = { status = 200, body = \"ok\\n\", content_type = \"text/plain\" }");
        let resp = route_answer(&r, &vars()).unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/plain");
        assert!(!resp.headers().contains_key(&X_SWITCHYARD_ERROR));

        let r = route("redirect = { to = \"https://new.example$request_uri\", status = 301 }");
        let resp = route_answer(&r, &vars()).unwrap();
        assert_eq!(resp.status(), 301);
        assert_eq!(
            resp.headers()[header::LOCATION],
            "https://new.example/a/b?c=1"
        );
        let r = route(
            "path_prefix = \"/a\"\nstrip_prefix = true\nredirect = { to = \"/docs$uri$query\" }",
        );
        let resp = route_answer(&r, &vars()).unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()[header::LOCATION], "/docs/b?c=1");
    }
}
