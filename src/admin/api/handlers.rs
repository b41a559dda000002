//! The handlers of the endpoint table: each reads its `api` request, asks
//! the controller or the rollout engine, and answers an `api` type.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::reply::{decode, json_response, read_json, tagged, ApiError};
use super::Call;
use crate::admin::Admin;
use crate::api::{
    ErrorBody, FlipAnswer, FlipRequest, HistoryAnswer, HistoryQuery, HistoryScope, Insufficient,
    Mutation, MutationEndpoint, RolloutAccepted, RolloutCommand, ShadowQuery, VerifyRequest,
};
use crate::control::ChangeSource;
use crate::rollout::{Command, VerifySpec};

type Result = std::result::Result<Response<Full<Bytes>>, ApiError>;

pub async fn status(admin: &Admin, _: Call<'_>) -> Result {
    let status = crate::admin::status::status(admin);
    Ok(tagged(&status, status.generation))
}

pub async fn history(admin: &Admin, call: Call<'_>) -> Result {
    let query = HistoryQuery::parse(call.query)?;
    // With [cluster]: the cluster's history, every replica's events.
    let answer = match crate::admin::cluster::history(admin.cluster.as_ref(), query.limit).await {
        Some(Ok(events)) => HistoryAnswer {
            events,
            scope: Some(HistoryScope::Cluster),
            cluster_error: None,
        },
        Some(Err(e)) => HistoryAnswer {
            events: admin.control.history(query.limit).await,
            scope: Some(HistoryScope::Replica),
            cluster_error: Some(e),
        },
        None => HistoryAnswer {
            events: admin.control.history(query.limit).await,
            scope: None,
            cluster_error: None,
        },
    };
    Ok(json_response(StatusCode::OK, &answer))
}

/// Every `api::Mutation`: read it, ask the controller, answer `Applied`.
pub async fn mutation(admin: &Admin, endpoint: &MutationEndpoint, call: Call<'_>) -> Result {
    let body = match endpoint.body {
        true => Some(read_json(call.body).await?),
        false => None,
    };
    let m = (endpoint.parse)(&call.params, body)?;
    let drained = match &m {
        Mutation::Drain { pool, .. } => Some(pool.clone()),
        _ => None,
    };
    let mut applied = admin
        .control
        .change(ChangeSource::Api, call.if_match, m.into())
        .await?;
    // Issue 14: draining a pool's last available backend says who takes
    // over, read from the table the drain just stored.
    if let Some(pool) = drained {
        let table = admin.control.table().load();
        applied.last_backend = crate::admin::status::last_backend(&table, &pool);
    }
    Ok(tagged(&applied, applied.generation))
}

pub async fn flip(admin: &Admin, call: Call<'_>) -> Result {
    let route = call.params.get("route");
    let req: FlipRequest = decode(read_json(call.body).await?, FlipRequest::EXAMPLE)?;
    let verify = req.verify.map(|v| verify_spec(admin, route, v));
    let (applied, verification) = admin
        .rollouts
        .flip(route, &req.to, call.if_match, verify)
        .await?;
    let generation = applied.generation;
    let answer = FlipAnswer {
        applied,
        verification,
    };
    Ok(tagged(&answer, generation))
}

/// A verification request over the route's defaults (`VerifySpec::defaults`).
fn verify_spec(admin: &Admin, route: &str, v: VerifyRequest) -> VerifySpec {
    let table = admin.control.table().load();
    let mut spec = VerifySpec::defaults(&table, route, v.window.0);
    if let Some(n) = v.min_requests {
        spec.min_requests = n;
    }
    if let Some(r) = v.max_error_rate {
        spec.max_error_rate = r;
    }
    if let Some(d) = v.max_p99_latency {
        spec.max_p99_latency = d.0;
    }
    if let Some(i) = v.on_insufficient_traffic {
        spec.revert_if_insufficient = i == Insufficient::Revert;
    }
    spec
}

pub async fn flip_status(admin: &Admin, call: Call<'_>) -> Result {
    let route = call.params.get("route");
    let status = admin.rollouts.flip_status(route).ok_or_else(|| {
        ErrorBody::not_found(format!("no verified flip of route {route:?} has run"))
    })?;
    Ok(json_response(StatusCode::OK, &status))
}

pub async fn probe(admin: &Admin, call: Call<'_>) -> Result {
    let (pool, addr) = (call.params.get("pool"), call.params.get("addr"));
    let not_found = || ErrorBody::not_found(format!("backend {addr} in pool {pool:?}"));
    let addr: SocketAddr = addr.parse().map_err(|_| not_found())?;
    // Cloned out of the table: the probe awaits, and a table must not be
    // held across an await.
    let (pool, backend) = {
        let table = admin.control.table().load();
        let p = table
            .pool(pool.as_bytes())
            .ok_or_else(|| ErrorBody::not_found(format!("pool {pool:?}")))?;
        let b = p.backends.iter().find(|b| b.addr == addr);
        (p.clone(), b.cloned().ok_or_else(not_found)?)
    };
    let answer = crate::admin::probe::probe(&pool, &backend).await;
    Ok(json_response(StatusCode::OK, &answer))
}

pub async fn rollout_status(admin: &Admin, call: Call<'_>) -> Result {
    let route = call.params.get("route");
    let status = admin
        .rollouts
        .status(route)
        .ok_or_else(|| ErrorBody::not_found(format!("no rollout of route {route:?} has run")))?;
    Ok(json_response(StatusCode::OK, &status))
}

pub async fn rollout_command(admin: &Admin, command: RolloutCommand, call: Call<'_>) -> Result {
    let route = call.params.get("route");
    let engine = match command {
        RolloutCommand::Start => None,
        RolloutCommand::Pause => Some(Command::Pause),
        RolloutCommand::Resume => Some(Command::Resume),
        RolloutCommand::Promote => Some(Command::Promote),
        RolloutCommand::Abort => Some(Command::Abort),
    };
    let rollout = match engine {
        None => admin
            .rollouts
            .start(route)
            .map(|_| admin.rollouts.status(route)),
        // Answered once the engine acted: `abort` shows the rollback.
        Some(c) => admin.rollouts.command_acted(route, c).await,
    }?;
    let answer = RolloutAccepted {
        accepted: command,
        rollout,
    };
    Ok(json_response(StatusCode::ACCEPTED, &answer))
}

/// The console's figures (`admin::console::traffic`).
pub async fn traffic(admin: &Admin, call: Call<'_>) -> Result {
    use crate::admin::console::traffic;
    let seconds = traffic::series_seconds(call.query).map_err(ErrorBody::bad_request)?;
    let table = admin.control.table().load();
    let answer = traffic::traffic(&table, traffic::now(), seconds);
    Ok(json_response(StatusCode::OK, &answer))
}

/// A route's shadow windows and mismatch samples (`admin::shadow`).
pub async fn shadow(admin: &Admin, call: Call<'_>) -> Result {
    let route = call.params.get("route");
    let query = ShadowQuery::parse(call.query).map_err(ErrorBody::bad_request)?;
    let table = admin.control.table().load();
    let r = table
        .routes()
        .iter()
        .find(|r| *r.name == *route)
        .ok_or_else(|| ErrorBody::not_found(format!("route {route:?}")))?;
    let now = crate::stats::clock::secs(tokio::time::Instant::now());
    let answer = crate::admin::shadow::answer(&table, r, now, query);
    Ok(json_response(StatusCode::OK, &answer))
}
