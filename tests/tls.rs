//! TLS end to end over loopback, certificates made by rcgen: TLS 1.3 and
//! 1.2, SNI, ALPN h2, certificate hot reload (a broken file keeps the old),
//! redirect, HSTS, HTTPS backends (private CA, wrong CA or name, no verify).

mod support;

use rustls::{HandshakeKind, ProtocolVersion};
use support::tls::{self as t, backend_pool, routes, setup, start, status, tls_config, WAIT};
use support::tls::{TestCa, TlsBackend};
use support::{client, eventually, get, TestBackend};

#[tokio::test]
async fn tls13_and_tls12_serve_requests_with_forwarded_proto_https() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, leaf) = setup();
    let p = start(dir, &tls_config(&b, "", "")).await;
    let addr = p.tls_addr.expect("TLS listener");
    for (version, expect) in [
        (&rustls::version::TLS13, ProtocolVersion::TLSv1_3),
        (&rustls::version::TLS12, ProtocolVersion::TLSv1_2),
    ] {
        let cfg = t::client_config(&ca, &[version], &[b"http/1.1"]);
        let tls = t::connect(addr, "default.test", cfg.clone())
            .await
            .expect("handshake");
        assert_eq!(tls.get_ref().1.protocol_version(), Some(expect));
        assert_eq!(t::presented(&tls), leaf.der);
        let a = t::get1(&mut t::h1(tls).await, "default.test", "/x").await;
        assert_eq!(a.status, 200, "{}", a.text());
        let h = b.last_headers();
        assert_eq!(
            h.get("x-forwarded-proto").map(|v| v.to_str().unwrap()),
            Some("https")
        );
        // The ticket from that connection resumes the next one.
        let again = t::connect(addr, "default.test", cfg).await.expect("resume");
        assert_eq!(
            again.get_ref().1.handshake_kind(),
            Some(HandshakeKind::Resumed)
        );
    }
    // The plain listener still says http.
    let a = get(&client(), &p.url("/"), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(b.last_headers().get("x-forwarded-proto").unwrap(), "http");
}

#[tokio::test]
async fn sni_picks_the_certificate_and_chains_are_sent() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, default) = setup();
    let inter = ca.intermediate("switchyard intermediate");
    let api = inter.issue(&["api.test"]);
    api.write(dir.path(), "api", &[&inter]);
    let wild = ca.issue(&["*.wild.test"]);
    wild.write(dir.path(), "wild", &[]);
    let extra = r#"
[[tls.certs]]
hosts = ["api.test"]
cert = "api.crt"
key = "api.key"

[[tls.certs]]
hosts = ["*.wild.test"]
cert = "wild.crt"
key = "wild.key"
"#;
    let p = start(dir, &tls_config(&b, "", extra)).await;
    let addr = p.tls_addr.expect("TLS listener");
    let cfg = t::default_client(&ca);
    for (sni, want) in [
        ("api.test", &api),
        ("API.Test", &api),
        ("x.wild.test", &wild),
        ("other.test", &default),
    ] {
        // The client trusts the root only: api.test verifies because the
        // file carries the intermediate after the leaf.
        let tls = t::connect(addr, sni, cfg.clone())
            .await
            .unwrap_or_else(|e| panic!("{sni}: {e}"));
        assert!(
            t::presented(&tls) == want.der,
            "{sni} got the wrong certificate"
        );
        let a = t::get1(&mut t::h1(tls).await, sni, "/").await;
        assert_eq!(a.status, 200);
    }
}

#[tokio::test]
async fn alpn_negotiates_h2_and_http2_works() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, _) = setup();
    let p = start(dir, &tls_config(&b, "", "")).await;
    let addr = p.tls_addr.expect("TLS listener");
    let cfg = t::client_config(&ca, rustls::ALL_VERSIONS, &[b"h2", b"http/1.1"]);
    let tls = t::connect(addr, "default.test", cfg)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let mut h2 = t::h2(tls).await;
    for _ in 0..3 {
        let a = t::get2(&mut h2, "default.test", "/h2").await;
        assert_eq!(a.status, 200, "{}", a.text());
    }
    let h = b.last_headers();
    assert_eq!(h.get("x-forwarded-proto").unwrap(), "https");
    assert_eq!(h.get("host").unwrap(), "default.test");
    // A client offering only http/1.1 gets it.
    let cfg = t::client_config(&ca, rustls::ALL_VERSIONS, &[b"http/1.1"]);
    let tls = t::connect(addr, "default.test", cfg)
        .await
        .expect("handshake");
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

#[tokio::test]
async fn replaced_certificates_serve_new_handshakes_and_broken_ones_keep_the_old() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, first) = setup();
    let path = dir.path().to_owned();
    let p = start(dir, &tls_config(&b, "", "")).await;
    let addr = p.tls_addr.expect("TLS listener");
    let cfg = t::default_client(&ca);

    // A connection opened before the renewal.
    let old = t::connect(addr, "default.test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(t::presented(&old), first.der);
    let mut old = t::h1(old).await;
    assert_eq!(t::get1(&mut old, "default.test", "/").await.status, 200);

    // Renewal written certificate first: the new certificate with the old
    // key does not load; the old one stays, and the mismatch is reported.
    let second = ca.issue(&["default.test", "other.test"]);
    t::write_atomic(&path.join("default.crt"), &second.cert_pem);
    eventually(WAIT, "the key mismatch is reported", || async {
        let s = status(&p).await;
        s["tls"]["certificates"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("does not belong"))
    })
    .await;
    let tls = t::connect(addr, "default.test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(
        t::presented(&tls),
        first.der,
        "a half-written renewal keeps the old certificate"
    );

    // Then the key: new handshakes get the new certificate.
    t::write_atomic(&path.join("default.key"), &second.key_pem);
    eventually(
        WAIT,
        "new handshakes present the new certificate",
        || async {
            let tls = t::connect(addr, "default.test", cfg.clone())
                .await
                .expect("handshake");
            t::presented(&tls) == second.der
        },
    )
    .await;
    let s = status(&p).await;
    assert_eq!(s["tls"]["certificates"][0]["reloads"], 1);
    assert!(s["tls"]["certificates"][0]["error"].is_null(), "{s}");
    // The connection opened before the renewal keeps working.
    assert_eq!(t::get1(&mut old, "default.test", "/").await.status, 200);

    // A broken file: the second certificate stays, and it is reported
    // with the file's name.
    std::fs::write(path.join("default.crt"), "not a certificate\n").expect("write");
    eventually(WAIT, "the broken file is reported", || async {
        let s = status(&p).await;
        s["tls"]["certificates"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("default.crt") && e.contains("no certificate"))
    })
    .await;
    let tls = t::connect(addr, "default.test", cfg.clone())
        .await
        .expect("handshake");
    assert_eq!(t::presented(&tls), second.der);
    assert_eq!(
        t::get1(&mut t::h1(tls).await, "default.test", "/")
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn plain_listener_redirects_to_https_except_acme_challenges() {
    let b = TestBackend::start("blue").await;
    let (_ca, dir, _) = setup();
    let p = start(
        dir,
        &tls_config(&b, "redirect_http = true\nacme_passthrough = true", ""),
    )
    .await;
    let tls_port = p.tls_addr.expect("TLS listener").port();
    let a = get(
        &client(),
        &p.url("/a/b?x=1&y=2"),
        &[("host", "shop.example:8080")],
    )
    .await;
    assert_eq!(a.status, 308);
    let want = format!("https://shop.example:{tls_port}/a/b?x=1&y=2");
    assert_eq!(a.header("location"), Some(want.as_str()));
    assert_eq!(b.requests(), 0, "a redirect never reaches the backend");
    let a = get(&client(), &p.url("/.well-known/acme-challenge/tok"), &[]).await;
    assert_eq!(a.status, 200, "ACME challenges are routed: {}", a.text());
    assert_eq!(b.requests(), 1);
}

#[tokio::test]
async fn hsts_is_sent_over_tls_only() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, _) = setup();
    let p = start(
        dir,
        &tls_config(&b, "hsts = \"max-age=31536000; includeSubDomains\"", ""),
    )
    .await;
    let a = t::get_tls(
        p.tls_addr.expect("TLS"),
        "default.test",
        "/",
        t::default_client(&ca),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("strict-transport-security"),
        Some("max-age=31536000; includeSubDomains")
    );
    let a = get(&client(), &p.url("/"), &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.header("strict-transport-security"), None);
}

#[tokio::test]
async fn plain_http_to_the_tls_port_is_counted_as_not_tls() {
    let b = TestBackend::start("blue").await;
    let (_ca, dir, _) = setup();
    let p = start(dir, &tls_config(&b, "", "")).await;
    let count = || {
        switchyard::tls::handshake_failures()
            .into_iter()
            .find(|(r, _)| *r == "not_tls")
            .map_or(0, |(_, n)| n)
    };
    let before = count();
    let mut plain = tokio::net::TcpStream::connect(p.tls_addr.expect("TLS"))
        .await
        .expect("connect");
    let get = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut plain, get)
        .await
        .expect("write");
    eventually(WAIT, "the failure is counted", || async {
        count() > before
    })
    .await;
}

#[tokio::test]
async fn https_backends_verify_against_a_private_ca() {
    let backend_ca = TestCa::new("backend CA");
    let dir = tempfile::tempdir().expect("tempdir");
    backend_ca.write(dir.path(), "backend-ca.pem");
    let named = TlsBackend::start("named", &backend_ca.issue(&["backend.test"])).await;
    let by_ip = TlsBackend::start("by-ip", &backend_ca.issue(&["127.0.0.1"])).await;
    let probed = TlsBackend::start("probed", &backend_ca.issue(&["127.0.0.1"])).await;
    let mut config = String::new();
    config += &backend_pool(
        "named",
        &format!("https://{}", named.addr),
        "ca_file = \"backend-ca.pem\"\ntls_server_name = \"backend.test\"",
    );
    config += &backend_pool(
        "byip",
        &by_ip.addr.to_string(),
        "tls = true\nca_file = \"backend-ca.pem\"",
    );
    config += &format!(
        "[pools.probed]\nbackends = [\"https://{}\"]\nca_file = \"backend-ca.pem\"\nhealth = {{ interval = \"1s\", timeout = \"800ms\" }}\n\n",
        probed.addr
    );
    config += &routes(&["named", "byip", "probed"]);
    let p = start(dir, &config).await;
    for (path, b) in [("/named", &named), ("/byip", &by_ip)] {
        let a = get(&client(), &p.url(path), &[]).await;
        assert_eq!(a.status, 200, "{path}: {}", a.text());
        assert_eq!(b.requests(), 1);
        assert_eq!(b.last_headers().get("x-forwarded-proto").unwrap(), "http");
    }
    // Health probes speak TLS too, and find the backend healthy.
    eventually(WAIT, "a TLS probe passed", || async {
        probed.probes() >= 2
    })
    .await;
    let s = status(&p).await;
    let probed_health = s["pools"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == "probed"))
        .map(|p| p["backends"][0]["health"].clone());
    assert_eq!(probed_health, Some(serde_json::json!("healthy")), "{s}");
    let a = get(&client(), &p.url("/probed"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
}

#[tokio::test]
async fn backends_with_a_wrong_certificate_fail_with_502_and_the_reason() {
    let backend_ca = TestCa::new("backend CA");
    let stranger_ca = TestCa::new("someone else's CA");
    let dir = tempfile::tempdir().expect("tempdir");
    backend_ca.write(dir.path(), "backend-ca.pem");
    let foreign = TlsBackend::start("foreign", &stranger_ca.issue(&["backend.test"])).await;
    let misnamed = TlsBackend::start("misnamed", &backend_ca.issue(&["backend.test"])).await;
    let mut config = String::new();
    config += &backend_pool(
        "foreign",
        &format!("https://{}", foreign.addr),
        "ca_file = \"backend-ca.pem\"\ntls_server_name = \"backend.test\"",
    );
    config += &backend_pool(
        "misnamed",
        &format!("https://{}", misnamed.addr),
        "ca_file = \"backend-ca.pem\"\ntls_server_name = \"other.test\"",
    );
    config += &backend_pool(
        "insecure",
        &format!("https://{}", foreign.addr),
        "tls_insecure_skip_verify = true",
    );
    config += &routes(&["foreign", "misnamed", "insecure"]);
    let p = start(dir, &config).await;
    for (path, reason) in [
        ("/foreign", "UnknownIssuer"),
        ("/misnamed", "not valid for name"),
    ] {
        let a = get(&client(), &p.url(path), &[]).await;
        assert_eq!(a.status, 502, "{path}: {}", a.text());
        assert_eq!(a.header("x-switchyard-error"), Some("upstream-tls"));
        assert!(
            a.text().contains("TLS handshake with") && a.text().contains(reason),
            "{path}: {}",
            a.text()
        );
    }
    assert_eq!(foreign.requests() + misnamed.requests(), 0);
    // Verification off (loudly): the same backend answers.
    let a = get(&client(), &p.url("/insecure"), &[]).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(foreign.requests(), 1);
}

#[tokio::test]
async fn shutdown_closes_idle_tls_connections_and_pending_handshakes() {
    let b = TestBackend::start("blue").await;
    let (ca, dir, _) = setup();
    let p = start(dir, &tls_config(&b, "", "")).await;
    let addr = p.tls_addr.expect("TLS listener");
    let tls = t::connect(addr, "default.test", t::default_client(&ca))
        .await
        .expect("handshake");
    let mut idle = t::h1(tls).await;
    assert_eq!(t::get1(&mut idle, "default.test", "/").await.status, 200);
    // A client that connects and never says hello.
    let _silent = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The default grace is 30 s: neither connection may hold shutdown up.
    tokio::time::timeout(WAIT, p.stop())
        .await
        .expect("shutdown finished promptly");
}

#[tokio::test]
async fn a_reload_that_changes_a_pools_tls_settings_replaces_its_backends() {
    let backend_ca = TestCa::new("backend CA");
    let dir = tempfile::tempdir().expect("tempdir");
    backend_ca.write(dir.path(), "backend-ca.pem");
    let b = TlsBackend::start("b", &backend_ca.issue(&["backend.test"])).await;
    let pool = |name: &str| {
        let keys = format!("ca_file = \"backend-ca.pem\"\ntls_server_name = \"{name}\"");
        backend_pool("p", &format!("https://{}", b.addr), &keys) + &routes(&["p"])
    };
    let p = start(dir, &pool("wrong.test")).await;
    assert_eq!(get(&client(), &p.url("/p"), &[]).await.status, 502);
    p.reload(&pool("backend.test")).await;
    let a = get(&client(), &p.url("/p"), &[]).await;
    assert_eq!(a.status, 200, "the new name is verified: {}", a.text());
}
