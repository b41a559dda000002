use std::path::Path;
use std::time::Duration;

use crate::config::template::Var;
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

#[test]
fn every_key_parses_into_the_model() {
    let c = ok(&format!(
        r#"[server]
max_body_bytes = "10m"
proxy_protocol = true
trusted_proxies = ["10.0.0.0/8", "2001:db8::/32", "192.0.2.1"]
{POOLS}
[[routes]]
name = "api"
path_prefix = "/api/"
split = {{ blue = 0, green = 100 }}
standby = "blue"
strip_prefix = true
rewrite = {{ from = "^/v1/(?P<rest>.*)", to = "/v2/${{rest}}" }}
max_body_bytes = 0
request_headers = {{ set = {{ X-Env = "prod", Host = "app.internal" }}, add = {{ X-Client = "$remote_addr via $pool" }}, remove = ["X-Debug"] }}
response_headers = {{ add = {{ X-Request-Id = "$request_id" }}, remove = ["Server"] }}
rate_limit = {{ rate = "100/s", burst = 50, key = "header:X-API-Key" }}
maintenance = true
maintenance_response = {{ body = "<h1>back soon</h1>", content_type = "text/html", retry_after = "2m" }}

[[routes]]
name = "old"
host = "old.example"
redirect = {{ to = "https://new.example$request_uri", status = 301 }}

[[routes]]
name = "robots"
path_prefix = "/robots.txt"
respond = {{ body = "User-agent: *\nDisallow: /\n" }}
rate_limit = {{ rate = "6000/m" }}
"#
    ));
    assert_eq!(c.server.max_body_bytes, Some(10 << 20));
    assert!(c.server.proxy_protocol);
    assert!(c
        .server
        .trusted_proxies
        .contains("10.9.8.7".parse().unwrap()));
    assert!(!c
        .server
        .trusted_proxies
        .contains("11.0.0.1".parse().unwrap()));

    let h = &c.routes[0].http;
    assert!(matches!(h.action, Action::Proxy));
    assert_eq!(h.standby.as_deref(), Some("blue"));
    assert_eq!(h.max_body_bytes, Some(BodyLimit::Unlimited));
    let strip = h.strip_prefix.as_ref().unwrap();
    assert_eq!(&*strip.prefix, "/api/");
    assert_eq!(strip.header, "/api");
    let rw = h.rewrite.as_ref().unwrap();
    assert_eq!(rw.from.as_str(), "^/v1/(?P<rest>.*)");
    let req = h.request_headers.as_ref().unwrap();
    // set names and removed names are dropped first, then values appended
    let dropped: Vec<&str> = req.drop.iter().map(|n| n.as_str()).collect();
    assert_eq!(dropped, ["x-env", "host", "x-debug"]);
    let appended: Vec<(&str, &str)> = req
        .append
        .iter()
        .map(|(n, t)| (n.as_str(), t.source()))
        .collect();
    assert_eq!(
        appended,
        [
            ("x-env", "prod"),
            ("host", "app.internal"),
            ("x-client", "$remote_addr via $pool")
        ]
    );
    assert!(req.drops(b"X-DEBUG"));
    assert!(req.uses(Var::Pool));
    let rl = h.rate_limit.as_ref().unwrap();
    assert_eq!((rl.count, rl.burst), (100, 50));
    assert_eq!(rl.interval(), Duration::from_millis(10));
    assert_eq!(rl.key, RateKey::Header("x-api-key".parse().unwrap()));
    assert!(h.maintenance);
    assert_eq!(h.maintenance_response.status, 503);
    assert_eq!(h.maintenance_response.retry_after.as_ref().unwrap(), "120");
    assert_eq!(h.maintenance_response.content_type, "text/html");
    assert!(!h.is_plain());

    match &c.routes[1].http.action {
        Action::Redirect(r) => {
            assert_eq!(r.status, 301);
            assert_eq!(r.to.source(), "https://new.example$request_uri");
        }
        other => panic!("{other:?}"),
    }
    assert!(c.routes[1].split.is_empty());
    match &c.routes[2].http.action {
        Action::Respond(r) => {
            assert_eq!(r.status, 200);
            assert_eq!(&r.body[..], b"User-agent: *\nDisallow: /\n");
            assert_eq!(r.retry_after, None);
        }
        other => panic!("{other:?}"),
    }
    // the default burst is a second's worth of the rate
    assert_eq!(c.routes[2].http.rate_limit.as_ref().unwrap().burst, 100);
}

#[test]
fn defaults_are_a_plain_route_and_a_ten_mib_limit() {
    let c = ok(&format!(
        "{POOLS}[[routes]]\nname = \"a\"\nsplit = {{ blue = 1 }}\n"
    ));
    assert_eq!(c.server.max_body_bytes, Some(DEFAULT_MAX_BODY_BYTES));
    assert_eq!(DEFAULT_MAX_BODY_BYTES, 10 * 1024 * 1024);
    assert!(!c.server.proxy_protocol);
    assert!(c.server.trusted_proxies.is_empty());
    assert!(c.routes[0].http.is_plain());
    assert_eq!(c.routes[0].http, RouteHttp::default());
    let m = &c.routes[0].http.maintenance_response;
    assert_eq!(
        (
            m.status.as_u16(),
            m.retry_after.as_ref().unwrap().to_str().unwrap()
        ),
        (503, "60")
    );
    // [server] max_body_bytes = 0 turns the limit off
    let c = ok(&format!(
        "[server]\nmax_body_bytes = 0\n{POOLS}[[routes]]\nname = \"a\"\nsplit = {{ blue = 1 }}\n"
    ));
    assert_eq!(c.server.max_body_bytes, None);
}

#[test]
fn a_redirect_may_use_the_stripped_path() {
    let c = ok(&format!(
        "{POOLS}[[routes]]\nname = \"docs\"\npath_prefix = \"/old-docs\"\nstrip_prefix = true\n\
         redirect = {{ to = \"https://api.example.com/docs$uri$query\", status = 308 }}\n"
    ));
    let h = &c.routes[0].http;
    assert!(h.strip_prefix.is_some());
    match &h.action {
        Action::Redirect(r) => {
            assert_eq!(r.status, 308);
            let refs: Vec<Var> = r.to.refs().copied().collect();
            assert_eq!(refs, [Var::Uri, Var::Query]);
        }
        other => panic!("{other:?}"),
    }
}

/// (what, route lines, position, key, message fragment). The file is
/// `POOLS` (4 lines), `[[routes]]` (line 5), `name = "a"` (line 6), then
/// the route lines from line 7.
const INVALID: &[(&str, &str, &str, &str)] = &[
    (
        "negative body size",
        "split = { blue = 1 }\nmax_body_bytes = -1",
        "8:18: routes[0].max_body_bytes",
        "invalid body size: a size cannot be negative",
    ),
    (
        "ambiguous body unit",
        "split = { blue = 1 }\nmax_body_bytes = \"10MB\"",
        "8:18: routes[0].max_body_bytes",
        "ambiguous",
    ),
    (
        "strip_prefix without a prefix",
        "split = { blue = 1 }\nstrip_prefix = true",
        "8:16: routes[0].strip_prefix",
        "strips nothing",
    ),
    (
        "unanchored rewrite",
        "split = { blue = 1 }\nrewrite = { from = \"/old/(.*)\", to = \"/new/$1\" }",
        "8:20: routes[0].rewrite.from",
        "is not anchored",
    ),
    (
        "invalid rewrite regex",
        "split = { blue = 1 }\nrewrite = { from = \"^/old/(.*\", to = \"/new/$1\" }",
        "8:20: routes[0].rewrite.from",
        "invalid regex: error: unclosed group",
    ),
    (
        "rewrite to a missing group",
        "split = { blue = 1 }\nrewrite = { from = \"^/old/(.*)\", to = \"/new/$2\" }",
        "8:39: routes[0].rewrite.to",
        "unknown variable `$2`",
    ),
    (
        "rewrite to a query",
        "split = { blue = 1 }\nrewrite = { from = \"^/old/(.*)\", to = \"/new?x=$1\" }",
        "8:39: routes[0].rewrite.to",
        "is not a path",
    ),
    (
        "rewrite without to",
        "split = { blue = 1 }\nrewrite = { from = \"^/old\" }",
        "8:11: routes[0].rewrite",
        "needs from and to",
    ),
    (
        "header rule on X-Forwarded-For",
        "split = { blue = 1 }\nrequest_headers = { set = { X-Forwarded-For = \"$remote_addr\" } }",
        "8:29: routes[0].request_headers.set.X-Forwarded-For",
        "cannot be changed by a rule",
    ),
    (
        "header rule removing X-Request-Id",
        "split = { blue = 1 }\nrequest_headers = { remove = [\"X-Request-Id\"] }",
        "8:31: routes[0].request_headers.remove[0]",
        "cannot be changed by a rule",
    ),
    (
        "adding a second Host",
        "split = { blue = 1 }\nrequest_headers = { add = { Host = \"x\" } }",
        "8:29: routes[0].request_headers.add.Host",
        "cannot be changed by a rule",
    ),
    (
        "response rule on Transfer-Encoding",
        "split = { blue = 1 }\nresponse_headers = { remove = [\"Transfer-Encoding\"] }",
        "8:32: routes[0].response_headers.remove[0]",
        "cannot be changed by a rule",
    ),
    (
        "two rules for one header",
        "split = { blue = 1 }\nresponse_headers = { set = { Server = \"x\" }, remove = [\"server\"] }",
        "8:56: routes[0].response_headers.remove[0]",
        "already has a rule (set)",
    ),
    (
        "unknown variable",
        "split = { blue = 1 }\nrequest_headers = { set = { X-Ip = \"$remote_ip\" } }",
        "8:36: routes[0].request_headers.set.X-Ip",
        "unknown variable `$remote_ip`",
    ),
    (
        "lone dollar",
        "split = { blue = 1 }\nrequest_headers = { set = { X-Price = \"5 $\" } }",
        "8:39: routes[0].request_headers.set.X-Price",
        "starts no reference",
    ),
    (
        "invalid header name in a rule",
        "split = { blue = 1 }\nrequest_headers = { set = { \"X Env\" = \"1\" } }",
        "8:29: routes[0].request_headers.set.X Env",
        "invalid header name",
    ),
    (
        "empty header rules",
        "split = { blue = 1 }\nresponse_headers = {}",
        "8:20: routes[0].response_headers",
        "no header rules",
    ),
    (
        "unknown key in header rules",
        "split = { blue = 1 }\nresponse_headers = { hide = [\"Server\"] }",
        "8:22: routes[0].response_headers.hide",
        "unknown field",
    ),
    (
        "rate without a unit",
        "split = { blue = 1 }\nrate_limit = { rate = \"100\" }",
        "8:23: routes[0].rate_limit.rate",
        "invalid rate \"100\"",
    ),
    (
        "rate limit without a rate",
        "split = { blue = 1 }\nrate_limit = { burst = 5 }",
        "8:14: routes[0].rate_limit",
        "needs a rate",
    ),
    (
        "zero burst",
        "split = { blue = 1 }\nrate_limit = { rate = \"1/s\", burst = 0 }",
        "8:38: routes[0].rate_limit.burst",
        "0 is out of range",
    ),
    (
        "unknown rate key",
        "split = { blue = 1 }\nrate_limit = { rate = \"1/s\", key = \"cookie:id\" }",
        "8:36: routes[0].rate_limit.key",
        "unknown rate limit key",
    ),
    (
        "rate key naming a bad header",
        "split = { blue = 1 }\nrate_limit = { rate = \"1/s\", key = \"header:X Key\" }",
        "8:36: routes[0].rate_limit.key",
        "invalid header name",
    ),
    (
        "respond with a redirect status",
        "respond = { status = 301 }",
        "7:22: routes[0].respond.status",
        "cannot be a fixed answer",
    ),
    (
        "respond with a split",
        "respond = { status = 503 }\nsplit = { blue = 1 }",
        "8:9: routes[0].split",
        "has no effect on a route that answers by itself (respond)",
    ),
    (
        "bad retry_after",
        "respond = { status = 503, retry_after = \"soon\" }",
        "7:41: routes[0].respond.retry_after",
        "cannot parse duration",
    ),
    (
        "maintenance_response with a bad content type",
        "split = { blue = 1 }\nmaintenance_response = { content_type = \"text/html\\n\" }",
        "8:41: routes[0].maintenance_response.content_type",
        "invalid content type",
    ),
    (
        "maintenance not a bool",
        "split = { blue = 1 }\nmaintenance = \"on\"",
        "8:15: routes[0].maintenance",
        "invalid type",
    ),
    (
        "redirect to a relative target",
        "redirect = { to = \"new.example\" }",
        "7:19: routes[0].redirect.to",
        "neither a URL nor a path",
    ),
    (
        "redirect with a 200",
        "redirect = { to = \"/x\", status = 200 }",
        "7:34: routes[0].redirect.status",
        "200 is not a redirect status",
    ),
    (
        "redirect using $pool",
        "redirect = { to = \"/$pool\" }",
        "7:19: routes[0].redirect.to",
        "$pool is empty on a redirect route",
    ),
    (
        "redirect and respond",
        "redirect = { to = \"/x\" }\nrespond = { status = 503 }",
        "7:12: routes[0].redirect",
        "either respond or redirect",
    ),
    (
        "respond with strip_prefix",
        "path_prefix = \"/x\"\nrespond = { status = 503 }\nstrip_prefix = true",
        "9:16: routes[0].strip_prefix",
        "has no effect on a route that answers by itself (respond)",
    ),
    (
        "standby naming an unknown pool",
        "split = { green = 1 }\nstandby = \"bleu\"",
        "8:11: routes[0].standby",
        "standby names unknown pool \"bleu\"",
    ),
    (
        "standby carrying weight",
        "split = { green = 1, blue = 1 }\nstandby = \"blue\"",
        "8:11: routes[0].standby",
        "already carries weight in the split",
    ),
];

#[test]
fn invalid_keys_name_line_column_and_key() {
    for (what, lines, at, fragment) in INVALID {
        let text = format!("{POOLS}[[routes]]\nname = \"a\"\n{lines}\n");
        expect_invalid(what, &text, at, fragment);
    }
}

#[test]
fn invalid_server_keys() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "proxy_protocol without trusted peers",
            "proxy_protocol = true",
            "2:18: server.proxy_protocol",
            "needs trusted_proxies",
        ),
        (
            "bad CIDR",
            "trusted_proxies = [\"10.0.0.0/8\", \"10.1.0.0/8\"]",
            "2:34: server.trusted_proxies[1]",
            "host bits are set",
        ),
        (
            "not an address",
            "trusted_proxies = [\"lb.internal\"]",
            "2:20: server.trusted_proxies[0]",
            "not an IP address",
        ),
        (
            "unknown unit",
            "max_body_bytes = \"10 parsecs\"",
            "2:18: server.max_body_bytes",
            "unknown unit",
        ),
    ];
    for (what, line, at, fragment) in cases {
        let text =
            format!("[server]\n{line}\n{POOLS}[[routes]]\nname = \"a\"\nsplit = {{ blue = 1 }}\n");
        let d = expect_invalid(what, &text, at, fragment);
        assert!(d.hint.is_some(), "{what} has a hint");
    }
}
