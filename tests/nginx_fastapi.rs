//! `strip_prefix` with a real FastAPI app that knows its prefix
//! (`uvicorn --root-path /api`, FastAPI's "Behind a Proxy" set-up): through
//! switchyard its OpenAPI docs page points at the right schema URL, the
//! schema names the right server, and the redirects it builds itself come
//! out under the prefix — on each data path (HTTP/1.1 on both engines,
//! HTTP/2).

mod support;

use std::path::Path;

use support::paths::paths;
use support::uvicorn::Uvicorn;
use support::*;

fn config(app: &Uvicorn, server: &str) -> String {
    format!(
        // No probes: what is tested is the path, and a probe timing out on
        // a busy machine would answer 503 instead.
        "[server]\n{server}\n[health]\nenabled = false\n\
         [pools.app]\nbackends = [\"{}\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nstrip_prefix = true\nsplit = {{ app = 1 }}\n",
        app.addr()
    )
}

async fn check(c: &HttpClient, proxy: &TestProxy, via: &str) {
    let host = proxy.addr.to_string();
    let docs = get(c, &proxy.url("/api/docs"), &[]).await;
    assert_eq!(docs.status, 200, "{via}: {}", docs.text());
    assert!(
        docs.text().contains("url: '/api/openapi.json'"),
        "{via}: the docs page loads the schema from under the prefix:\n{}",
        docs.text()
    );
    let schema = get(c, &proxy.url("/api/openapi.json"), &[]).await;
    assert_eq!(schema.status, 200, "{via}");
    assert_eq!(schema.json()["servers"][0]["url"], "/api", "{via}");

    // Starlette's trailing-slash redirect, built from the app's root_path
    let r = get(c, &proxy.url("/api/items"), &[]).await;
    assert_eq!(r.status, 307, "{via}: {}", r.text());
    assert_eq!(
        r.header("location"),
        Some(format!("http://{host}/api/items/").as_str()),
        "{via}"
    );
    // a redirect the app makes with url_for
    let r = get(c, &proxy.url("/api/login"), &[]).await;
    assert_eq!(r.status, 303, "{via}");
    assert_eq!(
        r.header("location"),
        Some(format!("http://{host}/api/items/").as_str()),
        "{via}"
    );
    // what the app saw: the stripped path, its root_path, and the prefix header
    let r = get(c, &proxy.url("/api/items/"), &[]).await;
    assert_eq!(r.status, 200, "{via}");
    let j = r.json();
    assert_eq!(j["root_path"], "/api", "{via}");
    assert_eq!(j["forwarded_prefix"], "/api", "{via}");
    assert_eq!(j["url"], format!("http://{host}/api/items/"), "{via}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fastapi_root_path_behind_strip_prefix() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fastapi"));
    let app = Uvicorn::start_app(dir, "prefixed:app", 0, &["--root-path", "/api"], &[]);
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&app, server)).await;
        check(&c, &proxy, via).await;
        proxy.stop().await;
    }
}
