use std::path::Path;

use super::*;

fn ok(text: &str) -> Config {
    match parse(text, Path::new("t.toml")) {
        Ok(c) => c,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

const MINIMAL: &str = r#"
[pools.blue]
backends = ["127.0.0.1:8001"]

[[routes]]
name = "api"
split = { blue = 100 }
"#;

#[test]
fn minimal_config_gets_defaults() {
    let c = ok(MINIMAL);
    assert_eq!(c.server, ServerConfig::default());
    assert_eq!(c.pools[0].balance, Balance::LeastRequest);
    assert_eq!(c.routes[0].path_prefix, "/");
    assert_eq!(c.routes[0].split, vec![("blue".to_owned(), 100)]);
}

#[test]
fn full_design_config_parses() {
    let c = ok(r#"
[server]
listen = "0.0.0.0:8080"
shutdown_grace = "30s"
connect_timeout = "250ms"
upstream_timeout = "1m"

[admin]
listen = "127.0.0.1:9901"
token_env = "SWITCHYARD_ADMIN_TOKEN"

[health]
enabled = true
path = "/health"
interval = "5s"
timeout = "2s"
healthy_threshold = 2
unhealthy_threshold = 3
expect_status = "200,204"

[pools.blue]
backends = ["127.0.0.1:8001", { addr = "127.0.0.1:8002", weight = 3 }]
balance = "round_robin"

[pools.canary]
backends = ["[::1]:8021"]
health = { path = "/ready" }

[[routes]]
name = "api"
host = "*.Example.com"
path_prefix = "/api"
split = { canary = 10, blue = 90 }
sticky = { header = "X-User-ID", cookie = "switchyard_id" }
force_header = "X-Switchyard-Pool"
"#);
    assert_eq!(c.server.connect_timeout.as_millis(), 250);
    assert_eq!(c.pools[0].backends[1].weight, 3);
    assert_eq!(c.pools[0].balance, Balance::RoundRobin);
    assert_eq!(c.pools[1].health.path, "/ready");
    assert_eq!(c.pools[1].health.unhealthy_threshold, 3);
    assert!(c.health.expect_status.contains(204));
    assert!(!c.health.expect_status.contains(201));
    let r = &c.routes[0];
    assert_eq!(r.host, Some(HostMatch::Suffix(".example.com".into())));
    // split keeps the order it was written in
    assert_eq!(r.split[0].0, "canary");
    assert_eq!(
        r.sticky.as_ref().and_then(|s| s.cookie.clone()).as_deref(),
        Some("switchyard_id")
    );
}

/// Each invalid config, with the line:column and key its first error must
/// name, and a fragment of the message.
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "unknown top-level key",
        "[server]\nlisten = \"127.0.0.1:80\"\nlisne = 1\n",
        "3:1: server.lisne",
        "unknown field",
    ),
    (
        "unknown key in a route",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\nsplitt = 3\n",
        "6:1: routes[0].splitt",
        "unknown field",
    ),
    (
        "split names an unknown pool",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 90, gren = 10 }\n",
        "5:22: routes[0].split.gren",
        "unknown pool \"gren\"",
    ),
    (
        "all weights zero",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 0 }\n",
        "5:9: routes[0].split",
        "all weights are zero",
    ),
    (
        "negative weight",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = -5 }\n",
        "5:18: routes[0].split.blue",
        "weight -5 is out of range",
    ),
    (
        "duplicate backend",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\", \"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:28: pools.blue.backends[1]",
        "listed twice",
    ),
    (
        "unparsable backend address",
        "[pools.blue]\nbackends = [\"127.0.0.1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:13: pools.blue.backends[0]",
        "cannot parse backend address",
    ),
    (
        "unparsable duration",
        "[server]\nconnect_timeout = \"2 parsecs\"\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:19: server.connect_timeout",
        "cannot parse duration",
    ),
    (
        "duration given as a number",
        "[server]\nupstream_timeout = 60\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:20: server.upstream_timeout",
        "invalid type",
    ),
    (
        "duplicate route names",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "7:8: routes[1].name",
        "duplicate route name",
    ),
    (
        "pool with no backends carrying weight",
        "[pools.blue]\nbackends = []\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "5:18: routes[0].split.blue",
        "has no backends but carries weight",
    ),
    (
        "unparsable listen address",
        "[server]\nlisten = \"localhost\"\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:10: server.listen",
        "cannot parse address",
    ),
    (
        "public admin without token",
        "[admin]\nlisten = \"0.0.0.0:9901\"\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:10: admin.listen",
        "no token is configured",
    ),
    (
        "unknown balance",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\nbalance = \"random\"\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "3:11: pools.blue.balance",
        "unknown balance",
    ),
    (
        "bad expect_status",
        "[health]\nexpect_status = \"2xx\"\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:17: health.expect_status",
        "cannot parse status set",
    ),
    (
        "path prefix without slash",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\npath_prefix = \"api\"\nsplit = { blue = 1 }\n",
        "5:15: routes[0].path_prefix",
        "must start with '/'",
    ),
    (
        "sticky with neither header nor cookie",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\nsticky = {}\n",
        "6:10: routes[0].sticky",
        "needs a header, a cookie",
    ),
    (
        "no routes",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n",
        "1:1: routes",
        "no routes",
    ),
    (
        "webhook url without a scheme",
        "[[notify]]\nurl = \"hooks.example.com/x\"\n[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n",
        "2:7: notify[0].url",
        "must start with http:// or https://",
    ),
    (
        "webhook without a url",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nretries = 1\n",
        "6:1: notify[0].url",
        "has no url",
    ),
    (
        "unknown key in a webhook",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nretry = 1\n",
        "8:1: notify[0].retry",
        "unknown field",
    ),
    (
        "invalid webhook header name",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nheaders = { \"X Token\" = \"1\" }\n",
        "8:13: notify[0].headers.X Token",
        "invalid header name",
    ),
    (
        "invalid webhook header value",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nheaders = { Authorization = \"Bearer a\\nb\" }\n",
        "8:29: notify[0].headers.Authorization",
        "invalid value for header authorization",
    ),
    (
        "webhook header set by switchyard",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nheaders = { Content-Type = \"text/plain\" }\n",
        "8:13: notify[0].headers.Content-Type",
        "is set by switchyard",
    ),
    (
        "bad webhook event glob",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nevents = [\"flip\", \"roll*out\"]\n",
        "8:19: notify[0].events[1]",
        "invalid event pattern \"roll*out\"",
    ),
    (
        "webhook event matching nothing",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nevents = [\"rollout_promoted\"]\n",
        "8:11: notify[0].events[0]",
        "matches no event",
    ),
    (
        "webhook ca_file with an http url",
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1 }\n[[notify]]\nurl = \"http://x/\"\nca_file = \"ca.pem\"\n",
        "8:11: notify[0].ca_file",
        "needs an https:// url",
    ),
    (
        "TOML syntax error",
        "[pools.blue\nbackends = []\n",
        "1:12: pools.blue",
        "",
    ),
];

#[test]
fn invalid_configs_name_line_column_and_key() {
    for (what, text, at, fragment) in INVALID {
        expect_invalid(what, text, at, fragment);
    }
}

/// `text` is refused, and its first error is at `at` ("line:column: key")
/// with a message containing `fragment`; returns that error.
pub(crate) fn expect_invalid(what: &str, text: &str, at: &str, fragment: &str) -> Diagnostic {
    let err = match parse(text, Path::new("bad.toml")) {
        Ok(_) => panic!("{what}: expected an error"),
        Err(e) => e,
    };
    let first = err.diagnostics()[0].clone();
    let got = format!("{}:{}: {}", first.line, first.column, first.key);
    assert_eq!(got, at, "{what}: wrong position/key; full error:\n{err}");
    assert!(
        first.message.contains(fragment),
        "{what}: message {:?} lacks {:?}",
        first.message,
        fragment
    );
    let rendered = err.to_string();
    assert!(
        rendered.starts_with(&format!("bad.toml:{at}")),
        "{what}: {rendered}"
    );
    first
}

#[test]
fn typo_gets_a_did_you_mean_hint() {
    let err = parse("[server]\nlisen = \"127.0.0.1:1\"\n", Path::new("x.toml")).unwrap_err();
    assert_eq!(
        err.diagnostics()[0].hint.as_deref(),
        Some("did you mean `listen`?")
    );
}

#[test]
fn every_semantic_error_is_reported_at_once() {
    let text = "[server]\nconnect_timeout = \"soon\"\n[pools.blue]\nbackends = [\"nope\"]\n[[routes]]\nname = \"a\"\nsplit = { blue = 1, red = 1 }\n";
    let err = parse(text, Path::new("x.toml")).unwrap_err();
    let keys: Vec<&str> = err.diagnostics().iter().map(|d| d.key.as_str()).collect();
    assert!(keys.contains(&"server.connect_timeout"), "{keys:?}");
    assert!(keys.contains(&"pools.blue.backends[0]"), "{keys:?}");
    assert!(keys.contains(&"routes[0].split.red"), "{keys:?}");
}

#[test]
fn rollout_section_defaults_and_errors() {
    let base = "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.canary]\nbackends = [\"127.0.0.1:2\"]\n\
        [[routes]]\nname = \"a\"\nsplit = { blue = 100, canary = 0 }\n[routes.rollout]\n";
    let c = ok(&format!(
        "{base}canary = \"canary\"\nstable = \"blue\"\nmax_error_rate = 0.05\n"
    ));
    let r = c.routes[0].rollout.as_ref().unwrap();
    assert_eq!(r.steps, vec![5, 10, 25, 50, 100]);
    assert_eq!(r.step_interval, std::time::Duration::from_secs(60));
    assert_eq!(r.max_wait, std::time::Duration::from_secs(300));
    assert_eq!((r.min_requests, r.failure_threshold), (100, 1));
    assert_eq!(r.max_error_rate, 0.05);
    assert_eq!(r.on_insufficient_traffic, InsufficientTraffic::Rollback);
    assert!(ok(MINIMAL).routes[0].rollout.is_none());
    for (body, expect) in [
        (
            "canary = \"blue\"\nstable = \"blue\"\n",
            "must be different pools",
        ),
        (
            "canary = \"green\"\nstable = \"blue\"\n",
            "unknown pool \"green\"",
        ),
        (
            "canary = \"canary\"\nstable = \"blue\"\nsteps = [50, 10]\n",
            "rising percentages",
        ),
        (
            "canary = \"canary\"\nstable = \"blue\"\nmax_error_rate = 1.5\n",
            "between 0 and 1",
        ),
        (
            "canary = \"canary\"\nstable = \"blue\"\non_insufficient_traffic = \"wait\"\n",
            "\"rollback\" or \"hold\"",
        ),
        (
            "canary = \"canary\"\nstable = \"blue\"\nmax_errors = 1\n",
            "max_errors",
        ),
    ] {
        let err = parse(&format!("{base}{body}"), Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains(expect), "{body}: {err}");
    }
}

#[test]
fn notify_defaults_and_hints() {
    let c = ok(&format!(
        "{MINIMAL}[[notify]]\nurl = \"https://hooks.example.com/T/B/key\"\n\
         [[notify]]\nurl = \"http://10.0.0.5:8080\"\nevents = [\"*\"]\ntimeout = \"2s\"\n\
         retries = 0\nbackoff = \"100ms\"\nheaders = {{ Authorization = \"Bearer x\" }}\n"
    ));
    let (a, b) = (&c.notify[0], &c.notify[1]);
    assert_eq!(
        (a.url.authority.as_str(), a.url.port),
        ("hooks.example.com", 443)
    );
    assert_eq!(a.timeout, std::time::Duration::from_secs(5));
    assert_eq!(
        (a.retries, a.backoff),
        (3, std::time::Duration::from_secs(1))
    );
    use crate::event::Action;
    for (action, wanted) in [
        (Action::RolloutStep, true),
        (Action::RolloutPromote, true),
        (Action::Flip, true),
        (Action::FlipVerified, true),
        (Action::Rollback, true),
        (Action::Split, false),
        (Action::Reload, false),
    ] {
        assert_eq!(a.wants(action), wanted, "{action}");
    }
    assert!(b.wants(Action::Reload) && b.wants(Action::Drain));
    assert_eq!((b.retries, b.url.path.as_str()), (0, "/"));
    assert_eq!(b.headers.0[0].0.as_str(), "authorization");
    let err = parse(
        &format!("{MINIMAL}[[notify]]\nurl = \"http://x/\"\nevents = [\"rollout_promoted\"]\n"),
        Path::new("x.toml"),
    )
    .unwrap_err();
    let hint = err.diagnostics()[0].hint.clone().unwrap_or_default();
    assert!(
        hint.starts_with("did you mean \"rollout_promote\"?"),
        "{hint}"
    );
    // A header value is never repeated in an error: it is likely a token.
    let err = parse(
        &format!("{MINIMAL}[[notify]]\nurl = \"http://x/\"\nheaders = {{ Authorization = \"s3cret\\n\" }}\n"),
        Path::new("x.toml"),
    )
    .unwrap_err();
    assert!(!err.to_string().contains("s3cret"), "{err}");
}

/// serde stops at the first unknown key; a user fixing a file wants all
/// of them at once, each named once, and the validator's errors as well.
#[test]
fn every_unknown_key_is_reported_in_one_run() {
    let text = "[server]\nlisten = \"127.0.0.1:80\"\nbogus = 1\n\
                [pools.blue]\nbackends = [\"127.0.0.1:1\"]\nwat = [1,\n 2]\n\
                [[routes]]\nname = \"a\"\nsplit = { blue = 1, gren = 2 }\n\
                sticky = { nope = 1, header = \"X-User-ID\" }\n";
    let e = parse(text, Path::new("t.toml")).unwrap_err();
    let got: Vec<(usize, usize, &str)> = e
        .diagnostics()
        .iter()
        .map(|d| (d.line, d.column, d.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (3, 1, "server.bogus"),
            (6, 1, "pools.blue.wat"),
            (11, 12, "routes[0].sticky.nope"),
            (10, 21, "routes[0].split.gren"),
        ],
        "{e}"
    );
    for d in &e.diagnostics()[..3] {
        // The known keys are in the hint only, not in the message too.
        assert!(!d.message.contains("expected"), "{d:?}");
        assert!(d.hint.is_some(), "{d:?}");
        assert!(!d.key.contains(".."), "{d:?}");
    }
    let shown = e.to_string();
    assert_eq!(shown.matches("upstream_idle_timeout").count(), 1, "{shown}");
}

#[test]
fn unknown_keys_of_one_table_list_its_keys_once() {
    let text = "[server]\nbogus = 1\nother = 2\n";
    let e = parse(text, Path::new("t.toml")).unwrap_err();
    let keys: Vec<&str> = e.diagnostics().iter().map(|d| d.key.as_str()).collect();
    assert_eq!(keys[..2], ["server.bogus", "server.other"], "{e}");
    let shown = e.to_string();
    assert_eq!(shown.matches("upstream_idle_timeout").count(), 1, "{shown}");
    assert!(shown.contains("as listed above"), "{shown}");
}
