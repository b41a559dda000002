//! switchyard: a traffic-splitting reverse proxy for blue-green, canary and
//! rolling deployments.
//!
//! Layers (see `docs/architecture.md`): `event` (the one event vocabulary:
//! actions, outcomes, sources, history events), `config` (TOML → validated model), `shadow` (comparing a
//! mirrored answer with the primary's: JSON diff, mismatch samples),
//! `table` (immutable routing snapshot and long-lived backend state),
//! `proxy` (the data plane), `server` (listeners, workers, lifecycle),
//! `control` (the single writer of the table), `tls` (certificates,
//! handshakes, TLS to backends), `health` (active probes,
//! readiness), `rollout` (windowed statistics and the canary engine), `admin` (the admin listener), `notify` (webhooks of deployment events) and `demo` (built-in demo
//! backends).

pub mod admin;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod event;
pub mod health;
pub mod notify;
pub mod proxy;
pub mod rollout;
pub mod server;
pub mod shadow;
pub mod stats;
pub mod table;
pub mod telemetry;
pub mod tls;
pub mod watch;
