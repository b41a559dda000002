//! Sending a request with retries on other backends of the same pool, and
//! the passive-health report of every try.
//!
//! Safety rules (the request is never sent twice where that could matter):
//! - nothing reached the backend (connect refused or timed out, handshake
//!   failed, connection closed before the request went out): the request
//!   is handed back untouched by `upstream::send` and retried as it is,
//!   whatever its method — its body has not been read;
//! - it failed after going out (reset, closed, per-try timeout) but before
//!   any response byte: retried only when it is idempotent and its body is
//!   empty or was small enough to be kept in memory (`keep_body`);
//! - once response headers arrived, never (a 5xx answer is passed on).
//!
//! Each retry goes to a backend not tried yet, within the overall
//! `upstream_timeout`, and takes a token from the pool's retry budget.
//!
//! When the pool has nothing left to try (retries used up, or no other
//! available backend) and the route has a standby pool, the request gets
//! one more try there, under the same safety rules (issue 14: the way back
//! after a flip serves the requests that were failing while health checks
//! had not yet marked the pool down). That try is outside the retry count
//! and budget: it goes to another, otherwise idle pool, at most once per
//! request, so it cannot multiply the load on the failing pool.

use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use http::{Method, Request, Response};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Instant;

use super::body::UpBody;
use super::error::{ProxyError, Source};
use super::upstream::{self, is_idempotent, PooledConn, Replay, SendError, UpstreamError};
use crate::config::{RetryConfig, MAX_RETRIES};
use crate::stats::{clock, Recorder};
use crate::table::{InFlight, OutlierSettings, RoutingTable, Settings, UpstreamErrorKind};

/// Largest request body read into memory so that an idempotent request can
/// be replayed after a failure mid-way. Larger (or chunked) bodies stream.
pub const KEEP_BODY_MAX: u64 = 64 * 1024;

/// Retries sent (all pools), and retries the budget refused.
pub static RETRIES: AtomicU64 = AtomicU64::new(0);
pub static RETRIES_OVER_BUDGET: AtomicU64 = AtomicU64::new(0);

/// The chosen pool's settings, copied at pick time so the table guard can
/// be dropped before any `.await`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub retry: RetryConfig,
    pub outlier: OutlierSettings,
}

/// The request body to send: a small body of an idempotent request is read
/// into memory when retries are on, so it can be replayed; anything else
/// streams (cut off past `limit` when its length was not declared). Answers whether the body was read (time passed).
pub(super) async fn keep_body(
    method: &Method,
    body: Incoming,
    retries: u32,
    limit: Option<u64>,
) -> Result<(UpBody, bool), ProxyError> {
    let small = body.size_hint().exact().is_some_and(|n| n <= KEEP_BODY_MAX);
    if retries == 0 || !is_idempotent(method) || body.is_end_stream() || !small {
        return Ok((UpBody::client(body, limit), false));
    }
    match body.collect().await {
        Ok(c) => Ok((UpBody::Full(Some(c.to_bytes())), true)),
        Err(source) => Err(UpstreamError::ClientBody { source }.into()),
    }
}

/// Backends tried so far (a fixed array: `retries` is at most MAX_RETRIES).
pub(super) struct Tried {
    ids: [u64; MAX_RETRIES as usize + 1],
    pub(super) len: usize,
}

impl Tried {
    pub(super) fn new(first: u64) -> Self {
        let mut ids = [0; MAX_RETRIES as usize + 1];
        ids[0] = first;
        Self { ids, len: 1 }
    }

    pub(super) fn ids(&self) -> &[u64] {
        &self.ids[..self.len]
    }

    pub(super) fn push(&mut self, id: u64) {
        if let Some(slot) = self.ids.get_mut(self.len) {
            *slot = id;
            self.len += 1;
        }
    }
}

/// Sends `req` on `inflight`'s backend, retrying on others of its pool as
/// the rules above allow (each retry noted on `rec`). Answers the response
/// with the connection and the in-flight guard of the backend that
/// answered.
pub(super) async fn send(
    table: &ArcSwap<RoutingTable>,
    mut inflight: InFlight,
    mut req: Request<UpBody>,
    plan: Plan,
    settings: &Settings,
    started: Instant,
    rec: &mut Recorder,
) -> Result<(Response<Incoming>, PooledConn, InFlight), ProxyError> {
    let replay = (plan.retry.retries > 0).then(|| Replay::of(&req)).flatten();
    let deadline = started + settings.upstream_timeout;
    let mut tried = Tried::new(inflight.backend().id);
    loop {
        let try_deadline = match plan.retry.per_try_timeout {
            Some(t) => deadline.min(Instant::now() + t),
            None => deadline,
        };
        let sent = tokio::time::timeout_at(
            try_deadline,
            upstream::send(inflight.backend(), req, replay.as_ref(), settings),
        )
        .await;
        let backend = inflight.backend();
        let (error, unsent) = match sent {
            Ok(Ok((resp, conn))) => {
                if resp.status().is_server_error() {
                    backend.report_failure(&plan.outlier, clock::now_ms());
                } else {
                    backend.report_success();
                }
                return Ok((resp, conn, inflight));
            }
            Ok(Err(SendError { error, unsent })) => {
                let error = ProxyError::from(error);
                // The client's side failed (its body broke off): not the
                // backend's fault, and nothing another backend could fix.
                if error.source_side() == Source::Downstream {
                    return Err(error);
                }
                (error, unsent)
            }
            Err(_) if try_deadline < deadline => {
                let per_try = plan
                    .retry
                    .per_try_timeout
                    .unwrap_or(settings.upstream_timeout);
                (ProxyError::Timeout(per_try), None)
            }
            Err(_) => {
                backend.stats.count_error(UpstreamErrorKind::Timeout);
                backend.report_failure(&plan.outlier, clock::now_ms());
                return Err(ProxyError::Timeout(settings.upstream_timeout));
            }
        };
        backend.stats.count_error(error_kind(&error));
        backend.report_failure(&plan.outlier, clock::now_ms());
        // The request as it is when nothing was sent; else a replay copy,
        // which exists only for idempotent requests with a kept body.
        if Instant::now() >= deadline || (unsent.is_none() && replay.is_none()) {
            return Err(error);
        }
        let next = match tried.len > plan.retry.retries as usize {
            true => None,
            false => retry_target(table, &inflight, &tried, &plan, rec),
        };
        let Some(next) = next.or_else(|| standby_target(table, &inflight, rec)) else {
            return Err(error);
        };
        req = match (unsent, &replay) {
            (Some(r), _) => r,
            (None, Some(r)) => r.request(),
            (None, None) => return Err(error),
        };
        tracing::debug!(pool = %backend.pool, from = %backend.addr, to = %next.backend().addr,
            error = %error, "retrying on another backend");
        tried.push(next.backend().id);
        inflight = next;
    }
}

/// Another available backend of the failed one's pool (in the table in
/// force now), if one is left and the pool's retry budget allows it; the
/// retry is noted on `rec`.
pub(super) fn retry_target(
    table: &ArcSwap<RoutingTable>,
    failed: &InFlight,
    tried: &Tried,
    plan: &Plan,
    rec: &mut Recorder,
) -> Option<InFlight> {
    let table = table.load();
    let pool = table.pool(failed.backend().pool.as_bytes())?;
    let backend = pool.pick_other(tried.ids())?;
    let second = clock::secs(Instant::now());
    if !pool
        .shared
        .budget
        .try_retry(second, plan.retry.budget_percent)
    {
        // Relaxed: statistics only.
        RETRIES_OVER_BUDGET.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(pool = %pool.name, "retry budget exhausted; not retrying");
        return None;
    }
    RETRIES.fetch_add(1, Ordering::Relaxed);
    // A backend that joined the pool after the request was routed is
    // counted with this table's handles of the same route and pool.
    rec.retried_on(backend.id, |route, _| {
        let route = table.routes().iter().find(|r| &*r.name == route)?;
        route.handles(pool).cloned()
    });
    Some(backend.start_request())
}

/// The route's standby, when the failed backend's pool has nothing left
/// to try (module doc): an available backend of it, the retry noted on
/// `rec` (which records into the standby's handles from now on). `None`
/// when the route has no standby, the standby is the pool that failed, or
/// it has no available backend.
pub(super) fn standby_target(
    table: &ArcSwap<RoutingTable>,
    failed: &InFlight,
    rec: &mut Recorder,
) -> Option<InFlight> {
    let table = table.load();
    let name = rec.route_name()?;
    let route = table.routes().iter().find(|r| r.name == *name)?;
    let (pool, _) = route.standby()?;
    if pool.name == failed.backend().pool {
        return None;
    }
    let backend = pool.pick_other(&[])?;
    let handles = route.handles(pool)?.clone();
    // Relaxed: statistics only.
    RETRIES.fetch_add(1, Ordering::Relaxed);
    rec.retried_in(handles, backend.id);
    Some(backend.start_request())
}

/// The `switchyard_upstream_errors_total` kind of a failed try.
pub(super) fn error_kind(e: &ProxyError) -> UpstreamErrorKind {
    match e {
        ProxyError::Upstream(u) => u.kind(),
        _ => UpstreamErrorKind::Timeout,
    }
}
