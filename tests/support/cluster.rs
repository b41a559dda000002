//! Helpers for the cluster tests: a `[cluster]` section validated like a
//! user's (through `config::parse`), replicas started in this process on a
//! real etcd, and waits on what they publish.

use std::path::Path;
use std::time::Duration;

use switchyard::cluster::{Cluster, Role, Start};
use switchyard::config::ClusterConfig;
use tokio_util::sync::CancellationToken;

use super::etcd::Etcd;

/// A unique key prefix per test (tests share no keys even on one etcd).
pub fn prefix(test: &str) -> String {
    format!("/switchyard-test/{test}-{}", fastrand::u32(..))
}

/// `[cluster]` for `endpoints`, as a user would write it.
pub fn cluster_config(
    endpoints: &[String],
    prefix: &str,
    instance: &str,
    ttl_s: u64,
) -> ClusterConfig {
    let list: Vec<String> = endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    let text = format!(
        "[pools.blue]\nbackends = [\"127.0.0.1:1\"]\n\n[[routes]]\nname = \"r\"\nsplit = {{ blue = 100 }}\n\n\
         [cluster]\netcd = [{}]\nprefix = \"{prefix}\"\ninstance = \"{instance}\"\nlease_ttl = \"{ttl_s}s\"\n",
        list.join(", ")
    );
    switchyard::config::parse(&text, Path::new("cluster-test.toml"))
        .unwrap_or_else(|e| panic!("test [cluster] invalid:\n{e}"))
        .cluster
        .expect("[cluster] present")
}

/// A replica (the cluster side only) with its own shutdown token.
pub struct Replica {
    pub cluster: Option<Cluster>,
    pub shutdown: CancellationToken,
}

impl Replica {
    pub async fn start(etcd: &Etcd, prefix: &str, instance: &str, seed: &str) -> Replica {
        Self::start_on(&etcd.endpoints(), prefix, instance, seed, 2).await
    }

    pub async fn start_on(
        endpoints: &[String],
        prefix: &str,
        instance: &str,
        seed: &str,
        ttl_s: u64,
    ) -> Replica {
        let cfg = cluster_config(endpoints, prefix, instance, ttl_s);
        let shutdown = CancellationToken::new();
        let start = Start {
            seed: seed.to_owned(),
            admin: None,
        };
        let cluster = Cluster::start(&cfg, start, &shutdown)
            .await
            .expect("cluster start");
        Replica {
            cluster: Some(cluster),
            shutdown,
        }
    }

    pub fn c(&self) -> &Cluster {
        self.cluster.as_ref().expect("running")
    }

    pub fn is_leader(&self) -> bool {
        matches!(*self.c().role().borrow(), Role::Leader(_))
    }

    /// The newest revision this replica received.
    pub fn revision(&self) -> i64 {
        self.c()
            .documents()
            .borrow()
            .as_ref()
            .map_or(0, |d| d.revision)
    }

    pub fn text(&self) -> String {
        self.c()
            .documents()
            .borrow()
            .as_ref()
            .map(|d| d.text.clone())
            .unwrap_or_default()
    }

    /// Waits until this replica has a document (it seeded the cluster, or
    /// found one). Replicas started together race to seed: tests that care
    /// whose file seeds start the others after this.
    pub async fn seeded(&self) {
        super::eventually(Duration::from_secs(10), "seeded", || async {
            self.revision() > 0
        })
        .await;
    }

    /// Stops the replica's tasks (revoking its lease).
    pub async fn stop(&mut self) {
        if let Some(c) = self.cluster.take() {
            c.stop().await;
        }
    }
}

/// Waits until exactly one of `replicas` leads; answers its index.
pub async fn one_leader(replicas: &[&Replica], deadline: Duration) -> usize {
    let mut found = None;
    super::eventually(deadline, "exactly one leader", || {
        let leaders: Vec<usize> = replicas
            .iter()
            .enumerate()
            .filter(|(_, r)| r.cluster.is_some() && r.is_leader())
            .map(|(i, _)| i)
            .collect();
        found = (leaders.len() == 1).then(|| leaders[0]);
        async move { leaders.len() == 1 }
    })
    .await;
    found.expect("checked")
}
