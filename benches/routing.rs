//! The per-request routing decision (route match, pool pick, backend pick)
//! against tables of 1, 10 and 100 routes. Target: under 100 ns for the
//! common case.

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion};
use switchyard::config;
use switchyard::table::{Registry, RoutingTable};

fn table(routes: usize, sticky: bool) -> RoutingTable {
    let mut text = String::from(
        "[pools.blue]\nbackends = [\"127.0.0.1:8001\", \"127.0.0.1:8002\", \"127.0.0.1:8003\"]\n\
         [pools.canary]\nbackends = [\"127.0.0.1:8021\"]\n",
    );
    for i in 0..routes {
        // half host routes, half path routes; the one the bench hits is last
        let matcher = if i % 2 == 0 {
            format!("host = \"svc{i}.example.com\"")
        } else {
            format!("path_prefix = \"/svc{i}/\"")
        };
        text.push_str(&format!(
            "[[routes]]\nname = \"r{i}\"\n{matcher}\nsplit = {{ blue = 90, canary = 10 }}\n{}",
            if sticky {
                "sticky = { header = \"X-User-ID\" }\n"
            } else {
                ""
            }
        ));
    }
    let cfg = config::parse(&text, Path::new("bench.toml")).expect("valid bench config");
    let mut reg = Registry::default();
    reg.reconcile(&cfg);
    RoutingTable::build(&cfg, &reg, &mut Default::default(), 1)
}

fn decide(t: &RoutingTable, host: &str, path: &str, key: Option<&[u8]>) -> usize {
    let route = t.route(Some(host), path).expect("route");
    let pick = route.pick_pool(key).expect("pool");
    let backend = pick.pool.pick().expect("backend");
    backend.addr.port() as usize
}

fn bench(c: &mut Criterion) {
    for n in [1usize, 10, 100] {
        let t = table(n, false);
        // the last host route: worst case for a scan, a hash hit for us
        let last_host = format!("svc{}.example.com", (n - 1) / 2 * 2);
        c.bench_function(&format!("decide/{n}-routes/host"), |b| {
            b.iter(|| {
                decide(
                    black_box(&t),
                    black_box(&last_host),
                    black_box("/api/users"),
                    None,
                )
            })
        });
        if n > 1 {
            let last_path = format!("/svc{}/items", if (n - 1) % 2 == 1 { n - 1 } else { n - 2 });
            c.bench_function(&format!("decide/{n}-routes/path"), |b| {
                b.iter(|| {
                    decide(
                        black_box(&t),
                        black_box("unknown.example.com"),
                        black_box(&last_path),
                        None,
                    )
                })
            });
        }
        let st = table(n, true);
        c.bench_function(&format!("decide/{n}-routes/host+sticky"), |b| {
            b.iter(|| {
                decide(
                    black_box(&st),
                    black_box(&last_host),
                    black_box("/"),
                    Some(black_box(b"user-12345")),
                )
            })
        });
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
