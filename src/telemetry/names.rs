//! Metric names, in one place (labels are bounded: route, pool and backend
//! come from the configuration, never from requests).

pub const REQUESTS: &str = "switchyard_requests_total";
pub const REQUEST_DURATION: &str = "switchyard_request_duration_seconds";
pub const UPSTREAM_ERRORS: &str = "switchyard_upstream_errors_total";
pub const RETRIES: &str = "switchyard_retries_total";
pub const EJECTIONS: &str = "switchyard_ejections_total";
pub const BACKEND_HEALTHY: &str = "switchyard_backend_healthy";
pub const BACKEND_INFLIGHT: &str = "switchyard_backend_inflight";
pub const ROUTE_WEIGHT: &str = "switchyard_route_weight";
/// 1 for the route's standby pool (`standby`), else 0.
pub const STANDBY: &str = "switchyard_standby";
/// 1 while the route's standby pool takes its traffic, else 0.
pub const STANDBY_SERVING: &str = "switchyard_standby_serving";
pub const CONFIG_GENERATION: &str = "switchyard_config_generation";
pub const CONFIG_RELOADS: &str = "switchyard_config_reloads_total";
pub const CONNECTIONS_ACTIVE: &str = "switchyard_connections_active";
pub const BUILD_INFO: &str = "switchyard_build_info";
pub const ACCESS_LOG_DROPPED: &str = "switchyard_access_log_dropped_total";
pub const LOG_LINES_DROPPED: &str = "switchyard_log_lines_dropped_total";
/// Repeated warnings by kind (`stats::throttle`): all, and those left out.
pub const LOG_EVENTS: &str = "switchyard_log_events_total";
pub const LOG_SUPPRESSED: &str = "switchyard_log_suppressed_total";
pub const TLS_HANDSHAKE_FAILURES: &str = "switchyard_tls_handshake_failures_total";
pub const ROLLOUT_STEP: &str = "switchyard_rollout_step";
pub const ROLLOUTS: &str = "switchyard_rollouts_total";
pub const NOTIFICATIONS: &str = "switchyard_notifications_total";
// Shadow traffic, by route and mirror pool (`stats::shadow`).
pub const SHADOW_MIRRORED: &str = "switchyard_shadow_mirrored_total";
pub const SHADOW_COMPARED: &str = "switchyard_shadow_compared_total";
pub const SHADOW_MISMATCHES: &str = "switchyard_shadow_mismatches_total";
pub const SHADOW_ERRORS: &str = "switchyard_shadow_errors_total";
pub const SHADOW_DROPPED: &str = "switchyard_shadow_dropped_total";
pub const SHADOW_DURATION: &str = "switchyard_shadow_duration_seconds";
