//! The routing decision of one request, shared by both HTTP/1 engines and
//! HTTP/2: against one table snapshot, without awaiting, the route, the
//! pool (force header | sticky bucket | weighted pick, with failover) and
//! the backend. The request is seen through `RequestView`, so the hyper
//! path (a `HeaderMap`) and the lean path (an index over the head's bytes)
//! decide the same way; the request rules (`rules`) a view has not applied
//! yet are checked first, on the same snapshot. The route's own answers, its rate limit and the
//! body limit by `Content-Length` are decided here too
//! (`route_http::before_pick`), before a pool is asked.

use std::sync::atomic::Ordering;

use arc_swap::ArcSwap;
use http::header::{HeaderName, HeaderValue};
use tokio::time::Instant;

use super::headers::new_request_id;
use super::mirror::{self, BodySize};
use super::route_http::{self, Early, Facts, Rules};
use super::rules::Refusal;
use super::{retry, unservable, ProxyError, FORCE_UNKNOWN};
use crate::stats::{clock, Recorder};
use crate::table::{InFlight, RoutingTable, Settings, Unservable};

/// What routing needs to read from a request.
pub(crate) trait RequestView {
    /// The shared request rules (`rules`: framing, Host, HTTP/2 values)
    /// an engine has not applied yet. The lean path applies them as it
    /// parses a head (it needs the framing to read on), so its view
    /// answers `Ok`; hyper's HTTP/1 and HTTP/2 heads are checked here.
    fn check(&self) -> Result<(), Refusal> {
        Ok(())
    }
    /// The target's authority (absolute form, `:authority`), else Host.
    fn host(&self) -> Option<&str>;
    fn path(&self) -> &str;
    /// The first value of a header.
    fn header(&self, name: &HeaderName) -> Option<&[u8]>;
    /// The value of cookie `name` in the Cookie header(s).
    fn cookie(&self, name: &str) -> Option<&[u8]>;
    /// The method and body of a request that may be mirrored; `None` for
    /// one that never is (an upgrade).
    fn mirror_facts(&self) -> Option<(&[u8], BodySize)>;
}

/// The outcome: the chosen backend's in-flight guard and what the
/// forwarding needs from the snapshot (copied, so the guard is dropped).
pub(crate) struct Decision {
    pub inflight: InFlight,
    /// `X-Switchyard-Pool` of the chosen pool.
    pub pool_header: HeaderValue,
    /// `X-Switchyard-Bucket`, for sticky requests.
    pub bucket: Option<u16>,
    pub settings: Settings,
    pub plan: retry::Plan,
    /// A sticky cookie minted for a client that had none.
    pub set_cookie: Option<HeaderValue>,
    /// The request body limit (`max_body_bytes`) a streamed body is held to.
    pub body_limit: Option<u64>,
    /// The route's path and header rules, when it has any.
    pub rules: Option<Rules>,
    /// A copy of the request is due to the route's mirror.
    pub mirror: Option<mirror::Due>,
}

/// Routes `req` on the table in force. `rec` becomes the recorder of
/// where it went (also when it is answered with an error: no route, no
/// backend), so the request counts into the handles of the table it was
/// routed by, whatever table is in force when it ends. `facts` is what
/// the route's own features read (client address, request id, length).
pub(crate) fn decide(
    table: &ArcSwap<RoutingTable>,
    req: &impl RequestView,
    facts: &Facts<'_>,
    now: Instant,
    rec: &mut Recorder,
) -> Result<Decision, Early> {
    let table = table.load();
    if let Err(r) = req.check() {
        // Counted with the answers that matched no route.
        *rec = table.no_route();
        return Err(ProxyError::Refused(r).into());
    }
    let Some(route) = table.route(req.host(), req.path()) else {
        *rec = table.no_route();
        return Err(ProxyError::NoRoute.into());
    };
    if let Some(early) = route_http::before_pick(&table, route, facts, |n| req.header(n), now) {
        *rec = route.no_pool_recorder();
        return Err(early);
    }
    let forced = route
        .force_header
        .as_ref()
        .and_then(|h| req.header(h))
        .and_then(|v| {
            let pool = table.pool(v);
            if pool.is_none() {
                // Relaxed: a statistic.
                FORCE_UNKNOWN.fetch_add(1, Ordering::Relaxed);
            }
            pool
        });
    let mut set_cookie = None;
    let (pool, backend, bucket) = match forced {
        Some(pool) => {
            let Some(i) = pool.pick_index() else {
                *rec = route.recorder(pool, None);
                return Err(ProxyError::NoBackend {
                    pool: pool.name.clone(),
                }
                .into());
            };
            *rec = route.recorder(pool, Some(i));
            (pool, &pool.backends[i], None)
        }
        None => {
            let key = route.sticky.as_ref().and_then(|s| {
                s.header
                    .as_ref()
                    .and_then(|h| req.header(h))
                    .filter(|v| !v.is_empty())
                    .or_else(|| s.cookie.as_deref().and_then(|c| req.cookie(c)))
            });
            let new_id;
            let key = match (key, route.sticky.as_ref().and_then(|s| s.cookie.as_deref())) {
                (None, Some(name)) => {
                    // No key yet: mint one and hand it out as a cookie,
                    // so this client sticks from its next request on.
                    new_id = new_request_id();
                    set_cookie = Some(super::sticky_cookie(name, &new_id));
                    Some(new_id.as_bytes())
                }
                (key, _) => key,
            };
            let pick = route.pick(key).map_err(|u| {
                *rec = match &u {
                    Unservable::Pool(p) | Unservable::AllPools(p) => route.recorder(p, None),
                    Unservable::NoPool => route.no_pool_recorder(),
                };
                unservable(route, u)
            })?;
            *rec = pick.recorder;
            (pick.pool, pick.backend, pick.bucket)
        }
    };
    pool.shared.budget.record_request(clock::secs(now));
    let mirror = match (&route.mirror, req.mirror_facts()) {
        (Some(_), Some((method, body))) => mirror::due(route, pool, method, body, now),
        _ => None,
    };
    Ok(Decision {
        inflight: backend.start_request(),
        pool_header: pool.header.clone(),
        bucket,
        settings: table.settings,
        plan: retry::Plan {
            retry: pool.retry,
            outlier: pool.outlier,
        },
        set_cookie,
        body_limit: route_http::body_limit(route, &table.settings),
        rules: route_http::Rules::of(route),
        mirror,
    })
}
