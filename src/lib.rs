//! switchyard: a traffic-splitting reverse proxy for blue-green, canary and
//! rolling deployments.
//!
//! Modules, lowest layer first (a module imports only modules before it;
//! the order and its check, `scripts/check-layers`, are in
//! `docs/architecture.md`): `event` (the one event vocabulary), `config`
//! (TOML → validated model, PEM files), `shadow` (shadow traffic's pure
//! comparison), `watch` (noticing file edits), `tls` (certificates,
//! handshakes, TLS to backends), `stats` (request statistics across
//! tables), `table` (immutable routing snapshot and long-lived backend
//! state), `telemetry` (metrics, access log), `health` (active probes,
//! readiness), `notify` (webhooks of deployment events), `proxy` (the data
//! plane), `control` (the single writer of the table), `rollout` (the
//! canary engine and verified flips), `cluster` (etcd), `admin` (the admin
//! listener), `server` (listeners, workers, lifecycle); `demo` (built-in
//! demo backends) stands alone.

pub mod admin;
pub mod api;
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
