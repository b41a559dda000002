//! `rate_limit`: a burst passes at once, then the steady rate (within
//! 10 %), over it `429` with `Retry-After`; keys by client address or by a
//! header; per route. On each data path. One keep-alive connection lands
//! on one worker, so its rate is exact (the documented approximation is
//! across workers).

mod support;

use std::time::Duration;

use tokio::time::Instant;

use support::paths::paths;
use support::*;

fn config(b: &TestBackend, server: &str) -> String {
    format!(
        "[server]\n{server}\n[pools.app]\nbackends = [\"{}\"]\n\n\
         [[routes]]\nname = \"api\"\npath_prefix = \"/api\"\nsplit = {{ app = 1 }}\n\
         rate_limit = {{ rate = \"20/s\", burst = 20, key = \"ip\" }}\n\n\
         [[routes]]\nname = \"burst\"\npath_prefix = \"/burst\"\nsplit = {{ app = 1 }}\n\
         rate_limit = {{ rate = \"2/s\", burst = 20, key = \"ip\" }}\n\n\
         [[routes]]\nname = \"keyed\"\npath_prefix = \"/keyed\"\nsplit = {{ app = 1 }}\n\
         rate_limit = {{ rate = \"1/m\", burst = 2, key = \"header:X-API-Key\" }}\n\n\
         [[routes]]\nname = \"free\"\nsplit = {{ app = 1 }}\n",
        b.addr
    )
}

#[tokio::test]
async fn a_burst_then_the_steady_rate_within_ten_percent() {
    let b = TestBackend::start("app").await;
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server)).await;
        // The burst, on a slow rate so that the time the requests take
        // (a debug build on a busy machine) refills at most a token or
        // two: 20 pass at once, then the next is refused.
        let url = proxy.url("/burst/x");
        let t0 = Instant::now();
        let mut passed = 0u32;
        let refused = loop {
            let a = get(&c, &url, &[]).await;
            match a.status {
                200 if passed < 100 => passed += 1,
                _ => break a,
            }
        };
        let refilled = 2.0 * t0.elapsed().as_secs_f64();
        assert_eq!(refused.status, 429, "{via}: after {passed} passed");
        assert!(
            passed >= 20 && f64::from(passed) <= 20.0 + refilled + 1.0,
            "{via}: {passed} passed; the burst is 20, plus {refilled:.1} refilled"
        );
        assert_eq!(
            refused.header("x-switchyard-error"),
            Some("rate-limited"),
            "{via}"
        );
        let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
        assert!(
            (1..=1).contains(&retry),
            "{via}: a token is back within 1 s, said {retry}"
        );
        // another route is not limited by this one
        assert_eq!(get(&c, &proxy.url("/"), &[]).await.status, 200, "{via}");

        // 20/s (slow enough for one connection of a debug build on a busy
        // machine to ask faster): spend the burst, then as fast as one
        // connection goes for 3 s, 20/s pass
        let url = proxy.url("/api/x");
        for _ in 0..1000 {
            if get(&c, &url, &[]).await.status == 429 {
                break;
            }
        }
        let start = Instant::now();
        let (mut ok, mut limited) = (0u32, 0u32);
        while start.elapsed() < Duration::from_secs(3) {
            match get(&c, &url, &[]).await.status {
                200 => ok += 1,
                429 => limited += 1,
                s => panic!("{via}: unexpected {s}"),
            }
        }
        let elapsed = start.elapsed().as_secs_f64();
        let expected = 20.0 * elapsed;
        assert!(limited > 0, "{via}: the client asked faster than the rate");
        assert!(
            (f64::from(ok) - expected).abs() <= expected * 0.10 + 1.0,
            "{via}: {ok} passed in {elapsed:.2} s, expected {expected:.0} ± 10 %"
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn keyed_by_a_header_with_the_address_as_fallback() {
    let b = TestBackend::start("app").await;
    for (server, c, via) in paths() {
        let proxy = TestProxy::start(&config(&b, server)).await;
        let url = proxy.url("/keyed");
        let status = |key: Option<&'static str>| {
            let (c, url) = (c.clone(), url.clone());
            async move {
                let h: Vec<(&str, &str)> = key.map(|k| ("X-API-Key", k)).into_iter().collect();
                get(&c, &url, &h).await.status
            }
        };
        assert_eq!(status(Some("alice")).await, 200, "{via}");
        assert_eq!(status(Some("alice")).await, 200, "{via}");
        assert_eq!(
            status(Some("alice")).await,
            429,
            "{via}: alice's burst is spent"
        );
        assert_eq!(
            status(Some("bob")).await,
            200,
            "{via}: bob has his own bucket"
        );
        // without the header: the client's address is the key
        assert_eq!(status(None).await, 200, "{via}");
        assert_eq!(status(None).await, 200, "{via}");
        let a = get(&c, &url, &[]).await;
        assert_eq!(a.status, 429, "{via}");
        assert_eq!(
            a.header("retry-after"),
            Some("60"),
            "{via}: 1/m with a burst of 2 spent"
        );
        proxy.stop().await;
    }
}
