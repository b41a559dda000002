//! The proxy's view of its backends' health, for the health, failover and
//! retry tests: fast probe settings, a backend's live state in the routing
//! table, and a wait for it to become healthy or unhealthy.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use switchyard::table::{Backend, Health};

use super::{eventually, TestBackend, TestProxy};

/// Probes every 100 ms; two in a row flip a backend either way.
pub const FAST_HEALTH: &str = "[health]\ninterval = \"100ms\"\ntimeout = \"80ms\"\n\
    healthy_threshold = 2\nunhealthy_threshold = 2\n";

/// The proxy's state of the backend at `addr` (kept across table
/// generations, so it can be watched).
pub fn backend_state(proxy: &TestProxy, addr: SocketAddr) -> Arc<Backend> {
    proxy
        .table()
        .pools()
        .iter()
        .flat_map(|p| p.backends.iter())
        .find(|b| b.addr == addr)
        .cloned()
        .unwrap_or_else(|| panic!("{addr} is not in the table"))
}

/// Waits until the proxy holds `b` as `want`, `within` at most.
pub async fn wait_health(proxy: &TestProxy, b: &TestBackend, want: Health, within: Duration) {
    let state = backend_state(proxy, b.addr);
    eventually(within, &format!("{} becomes {want:?}", b.name), || {
        let state = state.clone();
        async move { state.health() == want }
    })
    .await;
}
