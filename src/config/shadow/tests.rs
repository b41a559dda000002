use std::path::Path;
use std::time::Duration;

use ::http::Method;

use crate::config::tests::expect_invalid;
use crate::config::*;

fn ok(text: &str) -> Config {
    match parse(text, Path::new("t.toml")) {
        Ok(c) => c,
        Err(e) => panic!("expected valid config, got:\n{e}"),
    }
}

const POOLS: &str =
    "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n[pools.green]\nbackends = [\"127.0.0.1:2\"]\n";

fn route(extra: &str) -> String {
    format!("{POOLS}[[routes]]\nname = \"api\"\nsplit = {{ blue = 100 }}\n{extra}\n")
}

#[test]
fn a_mirror_gets_safe_defaults() {
    let c = ok(&route("mirror = { pool = \"green\" }"));
    let m = c.routes[0].mirror.as_ref().unwrap();
    assert_eq!(m.pool, "green");
    assert_eq!(m.percent, 100.0);
    assert_eq!(m.copy, MirrorOptions::default());
    assert_eq!(m.copy.methods, DEFAULT_MIRROR_METHODS);
    assert!(m.copy.mirrors(&Method::GET) && !m.copy.mirrors(&Method::POST));
    assert_eq!(m.copy.compare.body, BodyCompare::None);
    assert!(ok(&route("")).routes[0].mirror.is_none());
}

#[test]
fn every_mirror_key_parses_into_the_model() {
    let c = ok(&route(
        r#"[routes.mirror]
pool = "green"
percent = 12.5
methods = ["GET", "POST", "GET"]
max_body_bytes = "1MiB"
max_in_flight = 8
compare = { body = "json", ignore = ["$.generated_at", "$.items[*].id"], redact = ["$.token"], redact_headers = ["X-Api-Key"], max_body_bytes = 4096 }
"#,
    ));
    let m = c.routes[0].mirror.as_ref().unwrap();
    assert_eq!(m.percent, 12.5);
    assert_eq!(m.copy.methods, [Method::GET, Method::POST]);
    assert_eq!(m.copy.max_body_bytes, 1 << 20);
    assert_eq!(m.copy.max_in_flight, 8);
    let cmp = &m.copy.compare;
    assert_eq!(cmp.body, BodyCompare::Json);
    let ignored: Vec<&str> = cmp.ignore.iter().map(|p| p.as_str()).collect();
    assert_eq!(ignored, ["$.generated_at", "$.items[*].id"]);
    assert_eq!(cmp.redact[0].as_str(), "$.token");
    assert_eq!(cmp.redact_headers[0].as_str(), "x-api-key");
    assert_eq!(cmp.max_body_bytes, 4096);
}

#[test]
fn a_shadow_step_falls_back_to_the_rollout_and_takes_its_own_keys() {
    let rollout = "[routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\nstep_interval = \"30s\"\nmin_requests = 50\nmax_error_rate = 0.05\nmax_latency_ratio = 2.0\n";
    let c = ok(&route(&format!("{rollout}shadow = {{}}\n")));
    let s = c.routes[0]
        .rollout
        .as_ref()
        .unwrap()
        .shadow
        .as_ref()
        .unwrap();
    assert_eq!(s.duration, Duration::from_secs(30));
    assert_eq!(s.percent, 10.0);
    assert_eq!(s.max_mismatch_rate, 0.01);
    assert_eq!(s.max_error_rate, 0.05);
    assert_eq!(s.max_latency_ratio, Some(2.0));
    assert_eq!(s.min_requests, 50);
    assert_eq!(s.copy, MirrorOptions::default());

    let c = ok(&route(&format!(
        "{rollout}shadow = {{ duration = \"5m\", percent = 20, max_mismatch_rate = 0.02, max_error_rate = 0.01, max_latency_ratio = 1.5, min_requests = 500, methods = [\"GET\"], compare = {{ body = \"hash\" }} }}\n"
    )));
    let s = c.routes[0]
        .rollout
        .as_ref()
        .unwrap()
        .shadow
        .as_ref()
        .unwrap();
    assert_eq!(s.duration, Duration::from_secs(300));
    assert_eq!(s.percent, 20.0);
    assert_eq!(s.max_mismatch_rate, 0.02);
    assert_eq!(s.max_error_rate, 0.01);
    assert_eq!(s.max_latency_ratio, Some(1.5));
    assert_eq!(s.min_requests, 500);
    assert_eq!(s.copy.methods, [Method::GET]);
    assert_eq!(s.copy.compare.body, BodyCompare::Hash);
    assert!(ok(&route(rollout)).routes[0]
        .rollout
        .as_ref()
        .unwrap()
        .shadow
        .is_none());
}

#[test]
fn invalid_mirrors_name_line_key_and_fix() {
    // The route's table starts on line 5 (after the two pools).
    for (what, extra, at, fragment) in [
        (
            "no pool",
            "mirror = { percent = 5 }",
            "8:10: routes[0].mirror.pool",
            "no pool",
        ),
        (
            "unknown pool",
            "mirror = { pool = \"gren\" }",
            "8:19: routes[0].mirror.pool",
            "unknown pool \"gren\"",
        ),
        (
            "percent",
            "mirror = { pool = \"green\", percent = 150 }",
            "8:38: routes[0].mirror.percent",
            "not a percentage",
        ),
        (
            "method case",
            "mirror = { pool = \"green\", methods = [\"get\"] }",
            "8:39: routes[0].mirror.methods",
            "case-sensitive",
        ),
        (
            "connect",
            "mirror = { pool = \"green\", methods = [\"CONNECT\"] }",
            "8:39: routes[0].mirror.methods",
            "tunnel",
        ),
        (
            "empty methods",
            "mirror = { pool = \"green\", methods = [] }",
            "8:38: routes[0].mirror.methods",
            "mirrors nothing",
        ),
        (
            "bad method",
            "mirror = { pool = \"green\", methods = [\"GE T\"] }",
            "8:39: routes[0].mirror.methods",
            "invalid method",
        ),
        (
            "size",
            "mirror = { pool = \"green\", max_body_bytes = \"10MB\" }",
            "8:45: routes[0].mirror.max_body_bytes",
            "ambiguous",
        ),
        (
            "huge",
            "mirror = { pool = \"green\", max_body_bytes = \"1GiB\" }",
            "8:45: routes[0].mirror.max_body_bytes",
            "above 64MiB",
        ),
        (
            "in flight",
            "mirror = { pool = \"green\", max_in_flight = 0 }",
            "8:44: routes[0].mirror.max_in_flight",
            "out of range",
        ),
        (
            "body kind",
            "mirror = { pool = \"green\", compare = { body = \"xml\" } }",
            "8:47: routes[0].mirror.compare.body",
            "unknown body comparison \"xml\"",
        ),
        (
            "ignore without json",
            "mirror = { pool = \"green\", compare = { ignore = [\"$.a\"] } }",
            "8:49: routes[0].mirror.compare.ignore",
            "not compared as JSON",
        ),
        (
            "bad path",
            "mirror = { pool = \"green\", compare = { body = \"json\", ignore = [\"$..id\"] } }",
            "8:65: routes[0].mirror.compare.ignore",
            "recursive descent",
        ),
        (
            "root path",
            "mirror = { pool = \"green\", compare = { body = \"json\", redact = [\"$\"] } }",
            "8:65: routes[0].mirror.compare.redact",
            "whole body",
        ),
        (
            "header",
            "mirror = { pool = \"green\", compare = { redact_headers = [\"X Bad\"] } }",
            "8:58: routes[0].mirror.compare.redact_headers",
            "invalid header name",
        ),
        (
            "json keeps nothing",
            "mirror = { pool = \"green\", compare = { body = \"json\", max_body_bytes = 0 } }",
            "8:72: routes[0].mirror.compare.max_body_bytes",
            "none may be kept",
        ),
        (
            "unknown key",
            "mirror = { pool = \"green\", procent = 5 }",
            "8:28: routes[0].mirror.procent",
            "unknown field",
        ),
    ] {
        expect_invalid(what, &route(extra), at, fragment);
    }
}

#[test]
fn the_hints_say_what_to_write() {
    let d = expect_invalid(
        "method case",
        &route("mirror = { pool = \"green\", methods = [\"post\"] }"),
        "8:39: routes[0].mirror.methods",
        "case-sensitive",
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean \"POST\"?"));
    let d = expect_invalid(
        "typo",
        &route("mirror = { pool = \"gren\" }"),
        "8:19: routes[0].mirror.pool",
        "unknown pool",
    );
    assert!(d.hint.unwrap().contains("did you mean \"green\"?"));
    let d = expect_invalid(
        "path",
        &route("mirror = { pool = \"green\", compare = { body = \"json\", ignore = [\"$.a[?(@.b)]\"] } }"),
        "8:65: routes[0].mirror.compare.ignore",
        "filters",
    );
    assert!(d.hint.unwrap().contains("$.a[*].b"));
}

#[test]
fn a_route_that_answers_by_itself_cannot_mirror() {
    let text = format!(
        "{POOLS}[[routes]]\nname = \"robots\"\nrespond = {{ body = \"x\" }}\nmirror = {{ pool = \"green\" }}\n"
    );
    expect_invalid(
        "respond",
        &text,
        "8:10: routes[0].mirror",
        "answers by itself",
    );
}

#[test]
fn invalid_shadow_steps_name_line_key_and_fix() {
    let rollout = "[routes.rollout]\ncanary = \"green\"\nstable = \"blue\"\n";
    for (what, shadow, at, fragment) in [
        (
            "duration",
            "shadow = { duration = \"5 fortnights\" }",
            "11:23: routes[0].rollout.shadow.duration",
            "cannot parse duration",
        ),
        (
            "zero percent",
            "shadow = { percent = 0 }",
            "11:22: routes[0].rollout.shadow.percent",
            "can never pass",
        ),
        (
            "mismatch rate",
            "shadow = { max_mismatch_rate = 2.0 }",
            "11:32: routes[0].rollout.shadow.max_mismatch_rate",
            "between 0 and 1",
        ),
        (
            "error rate",
            "shadow = { max_error_rate = -0.1 }",
            "11:29: routes[0].rollout.shadow.max_error_rate",
            "between 0 and 1",
        ),
        (
            "min requests",
            "shadow = { min_requests = -1 }",
            "11:27: routes[0].rollout.shadow.min_requests",
            "out of range",
        ),
        (
            "compare",
            "shadow = { compare = { body = \"yaml\" } }",
            "11:31: routes[0].rollout.shadow.compare.body",
            "unknown body comparison",
        ),
        (
            "unknown key",
            "shadow = { duraton = \"1m\" }",
            "11:12: routes[0].rollout.shadow.duraton",
            "unknown field",
        ),
    ] {
        expect_invalid(what, &route(&format!("{rollout}{shadow}")), at, fragment);
    }
}
