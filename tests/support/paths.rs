//! The data paths a request feature must work on: HTTP/1.1 on the lean
//! engine and on hyper's (`server.http1`), and HTTP/2 (h2c, on hyper's h2
//! server). A test runs its cases once per path with the `[server]` line
//! and the client each needs.

use super::{client, h2_client, HttpClient};

/// (`[server]` line, client, name for messages), one per data path.
pub fn paths() -> Vec<(&'static str, HttpClient, &'static str)> {
    vec![
        ("http1 = \"lean\"", client(), "HTTP/1.1 (lean)"),
        ("http1 = \"hyper\"", client(), "HTTP/1.1 (hyper)"),
        ("", h2_client(), "HTTP/2"),
    ]
}
