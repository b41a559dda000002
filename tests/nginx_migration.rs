//! The migration guide's worked FastAPI example (`docs/migrating-from-nginx.md`,
//! the TOML block after `<!-- nginx-migration-toml -->`) is a configuration
//! that loads, and says what the guide says it does.

use std::path::Path;

use switchyard::config::{self, Action, RateKey};

/// The TOML block the guide marks as this test's.
fn guide_toml() -> String {
    let guide = include_str!("../docs/migrating-from-nginx.md");
    let marker = "<!-- nginx-migration-toml -->\n```toml\n";
    let start = guide.find(marker).expect("the guide marks its TOML block") + marker.len();
    let len = guide[start..].find("```").expect("the block ends");
    guide[start..start + len].to_owned()
}

#[test]
fn the_guides_fastapi_config_loads_and_means_what_it_says() {
    let text = guide_toml();
    let c = config::parse(&text, Path::new("guide.toml")).unwrap_or_else(|e| panic!("{e}"));

    assert!(c.server.proxy_protocol);
    assert!(c
        .server
        .trusted_proxies
        .contains("10.1.2.3".parse().unwrap()));
    assert_eq!(c.server.max_body_bytes, Some(1 << 20));
    assert_eq!(c.outlier.consecutive_failures, 3);

    let api = &c.routes[0];
    assert_eq!(api.name, "api");
    assert_eq!(api.http.standby.as_deref(), Some("previous"));
    assert_eq!(
        api.http.max_body_bytes,
        Some(config::BodyLimit::Bytes(10 << 20))
    );
    assert_eq!(
        api.http.strip_prefix.as_ref().map(|s| s.header.clone()),
        Some(http::HeaderValue::from_static("/api"))
    );
    let rl = api.http.rate_limit.as_ref().expect("rate limit");
    assert_eq!((rl.count, rl.burst, &rl.key), (100, 51, &RateKey::Ip));
    assert!(!api.http.maintenance);
    assert_eq!(
        api.http.maintenance_response.retry_after.as_ref().unwrap(),
        "600"
    );

    let kinds: Vec<(&str, &str)> = c
        .routes
        .iter()
        .map(|r| {
            let kind = match &r.http.action {
                Action::Proxy => "proxy",
                Action::Respond(_) => "respond",
                Action::Redirect(_) => "redirect",
            };
            (r.name.as_str(), kind)
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("api", "proxy"),
            ("old-docs", "redirect"),
            ("robots", "respond"),
            ("old-api", "redirect")
        ]
    );
}
