//! `/api/v1`: the endpoint table and its dispatch. Every endpoint is one
//! row of [`endpoints`] — method, path pattern (`api::paths`), auth,
//! handler — and routing, 404 and 405 (with `Allow`) are all derived from
//! it. The controller's plain mutations come from `api::Mutation::ENDPOINTS`
//! (one generic handler: parse, `ControlHandle::change`, answer `Applied`)
//! and the rollout commands from `api::RolloutCommand::ALL`, so adding
//! either touches nothing here. Requests and answers are the `api` types;
//! mutations take `If-Match: <generation>` and answer the new generation
//! (also as `ETag`).

mod handlers;
mod reply;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Method, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use super::Admin;
use crate::api::{paths, ErrorBody, ErrorCode, Mutation, MutationEndpoint, Params, RolloutCommand};
pub use reply::json_response;
use reply::ApiError;

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Anyone who can reach the listener.
    Open,
    /// `Authorization: Bearer <token>` when a token is configured.
    Token,
}

/// What a request to an endpoint gets from its handler.
pub(super) struct Call<'a> {
    pub params: Params<'a>,
    pub query: Option<&'a str>,
    /// `If-Match`, read for every request (a malformed one is a 400).
    pub if_match: Option<u64>,
    pub body: Incoming,
}

type Answer<'a> =
    Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, ApiError>> + Send + 'a>>;

/// A handler of its own (not a mutation or a rollout command).
type HandlerFn = for<'a> fn(&'a Admin, Call<'a>) -> Answer<'a>;

/// How an endpoint is answered.
#[derive(Clone, Copy)]
enum Handler {
    Own(HandlerFn),
    /// A controller mutation: parse, change, answer `Applied`.
    Mutation(&'static MutationEndpoint),
    /// A command to a route's canary engine.
    Rollout(RolloutCommand),
}

/// One row of the table.
#[derive(Clone)]
pub struct Endpoint {
    pub method: Method,
    /// Under `/api/v1`; `{name}` matches one segment.
    pub pattern: &'static str,
    pub auth: Auth,
    handler: Handler,
}

/// The endpoints with handlers of their own.
const OWN: &[(Method, &str, HandlerFn)] = &[
    (Method::GET, paths::STATUS, |a, c| {
        Box::pin(handlers::status(a, c))
    }),
    (Method::GET, paths::HISTORY, |a, c| {
        Box::pin(handlers::history(a, c))
    }),
    (Method::POST, paths::FLIP, |a, c| {
        Box::pin(handlers::flip(a, c))
    }),
    (Method::GET, paths::FLIP, |a, c| {
        Box::pin(handlers::flip_status(a, c))
    }),
    (Method::POST, paths::PROBE, |a, c| {
        Box::pin(handlers::probe(a, c))
    }),
    (Method::GET, paths::ROLLOUT, |a, c| {
        Box::pin(handlers::rollout_status(a, c))
    }),
    (Method::GET, paths::TRAFFIC, |a, c| {
        Box::pin(handlers::traffic(a, c))
    }),
    (Method::GET, paths::SHADOW, |a, c| {
        Box::pin(handlers::shadow(a, c))
    }),
];

/// Every endpoint of `/api/v1`.
pub fn endpoints() -> impl Iterator<Item = Endpoint> {
    let own = OWN.iter().map(|(method, pattern, f)| Endpoint {
        method: method.clone(),
        pattern,
        auth: Auth::Token,
        handler: Handler::Own(*f),
    });
    let mutations = Mutation::ENDPOINTS.iter().map(|m| Endpoint {
        method: m.method.clone(),
        pattern: m.pattern,
        auth: Auth::Token,
        handler: Handler::Mutation(m),
    });
    let rollout = RolloutCommand::ALL.iter().map(|&c| Endpoint {
        method: Method::POST,
        pattern: c.pattern(),
        auth: Auth::Token,
        handler: Handler::Rollout(c),
    });
    own.chain(mutations).chain(rollout)
}

/// Whether a request for `path` needs the token: every `/api/v1` path
/// does unless its endpoint is `Auth::Open` (an unknown one does too, so
/// that a caller without the token cannot map the API).
pub fn needs_token(method: &Method, path: &str) -> bool {
    let Some(rest) = path.strip_prefix(crate::api::PREFIX) else {
        return true;
    };
    !endpoints().any(|e| {
        e.auth == Auth::Open && e.method == method && Params::matching(e.pattern, rest).is_some()
    })
}

/// Dispatches `/api/v1/...` (auth already checked).
pub async fn handle(
    admin: &Admin,
    method: &Method,
    path: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: Incoming,
) -> Response<Full<Bytes>> {
    let if_match = match reply::if_match(headers) {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let rest = path.strip_prefix(crate::api::PREFIX).unwrap_or(path);
    let mut allow: Vec<Method> = Vec::new();
    for e in endpoints() {
        let Some(params) = Params::matching(e.pattern, rest) else {
            continue;
        };
        if e.method != method {
            allow.push(e.method);
            continue;
        }
        let call = Call {
            params,
            query,
            if_match,
            body,
        };
        let answer = match e.handler {
            Handler::Own(f) => f(admin, call).await,
            Handler::Mutation(m) => handlers::mutation(admin, m, call).await,
            Handler::Rollout(c) => handlers::rollout_command(admin, c, call).await,
        };
        return answer.unwrap_or_else(ApiError::into_response);
    }
    if allow.is_empty() {
        return ApiError(ErrorBody::not_found(format!("no admin endpoint {path}"))).into_response();
    }
    let mut r = ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on {path}"),
    )
    .into_response();
    let allow: Vec<&str> = allow.iter().map(Method::as_str).collect();
    if let Ok(v) = HeaderValue::from_str(&allow.join(", ")) {
        r.headers_mut().insert(header::ALLOW, v);
    }
    r
}

#[cfg(test)]
mod tests;
