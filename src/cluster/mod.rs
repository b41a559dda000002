//! `[cluster]`: N replicas acting as one through etcd. This module owns
//! everything this replica keeps in etcd and everything it learns from it;
//! it never touches the routing table itself (the controller applies the
//! documents it publishes, through the same path as a file reload).
//!
//! ```text
//!  replica ──┬─ lease (lease.rs): granted, kept alive, re-granted; the store's health
//!            ├─ members (members.rs): P/members/<instance> under the lease
//!            ├─ election (election.rs): P/leader under the lease → Role, Fence
//!            ├─ watch (watch.rs): seed, then every revision of P/config → Document
//!            ├─ stats (stats.rs): P/stats/<instance> under the lease; the leader sums
//!            ├─ shadow (shadow.rs): follows P/rollouts/state, copies in a shadow step
//!            └─ history (history.rs): P/history/…, the cluster's events
//! ```
//!
//! What is shared and what stays local, and how a replica's file takes in
//! the cluster's version: `control::document` (pure; the controller uses
//! it). The seam into the controller: `bridge` (`control::Shared`). Key
//! layout: `keys`. Writes on the document are compare-and-swaps on the
//! revision they were planned on (`Store::propose`); leadership writes are
//! fenced (`Cluster::fenced`). Serving never waits for etcd: every task
//! retries with backoff, and the last document received stays the one
//! served until a newer one arrives.

mod bridge;
mod connect;
mod drive;
mod election;
mod error;
mod health;
mod history;
mod keys;
mod lease;
mod members;
mod shadow;
mod stats;
mod store;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch as chan, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use connect::{connect, RPC_TIMEOUT};
pub use election::Role;
pub use error::ClusterError;
pub use health::{Health, StoreHealth};
pub use history::{ClusterEvent, History, KEEP as HISTORY_KEEP};
pub use keys::Keys;
pub use members::{stale, Member};
pub use stats::{delta, sum, Baseline, Counts, PoolKey, Publication};
pub use store::{Document, Fence, Seeded, Store, PROPOSE_TIMEOUT};

use crate::config::ClusterConfig;

/// What the replica tells the cluster about itself at start.
#[derive(Debug, Clone, Default)]
pub struct Start {
    /// The shared part of the local file: seeds an empty cluster.
    pub seed: String,
    /// The admin listener's address, shown in the member list.
    pub admin: Option<String>,
}

/// A running cluster membership: the tasks and the channels they publish.
pub struct Cluster {
    store: Store,
    health: Health,
    lease: chan::Receiver<Option<i64>>,
    role: chan::Receiver<Role>,
    docs: chan::Receiver<Option<Document>>,
    seeded: chan::Receiver<Option<Seeded>>,
    applied: Arc<chan::Sender<i64>>,
    step_down: Arc<Notify>,
    history: Arc<History>,
    members: chan::Receiver<Vec<Member>>,
    lease_ttl: Duration,
    started_ms: u64,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
}

impl Cluster {
    /// Connects and starts the tasks; returns at once (nothing here waits
    /// for etcd to answer, except authentication with `user`). The tasks
    /// stop with `shutdown` or `stop`.
    pub async fn start(
        cfg: &ClusterConfig,
        start: Start,
        shutdown: &CancellationToken,
    ) -> Result<Cluster, ClusterError> {
        let client = connect(cfg).await?;
        let store = Store::new(client.clone(), Keys::new(&cfg.prefix), cfg.instance.clone());
        let shutdown = shutdown.child_token();
        let health = Health::new();
        let ttl = cfg.lease_ttl;
        let started_ms = store::unix_ms();
        let (lease_tx, lease) = chan::channel(None);
        let (role_tx, role) = chan::channel(Role::Follower { leader: None });
        let (docs_tx, docs) = chan::channel(None);
        let (seeded_tx, seeded) = chan::channel(None);
        let (applied, applied_rx) = chan::channel(0);
        let (members_tx, members) = chan::channel(Vec::new());
        let step_down = Arc::new(Notify::new());
        let mut tasks = JoinSet::new();
        tasks.spawn(lease::run(
            client,
            ttl,
            lease_tx,
            health.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(election::run(
            store.clone(),
            lease.clone(),
            role_tx,
            step_down.clone(),
            ttl,
            shutdown.clone(),
        ));
        tasks.spawn(members::run(
            store.clone(),
            lease.clone(),
            applied_rx,
            started_ms,
            start.admin,
            ttl,
            shutdown.clone(),
        ));
        tasks.spawn(members::follow(
            store.clone(),
            members_tx,
            health.clone(),
            shutdown.clone(),
        ));
        tasks.spawn(seed_then_watch(
            store.clone(),
            start.seed,
            seeded_tx,
            docs_tx,
            health.clone(),
            ttl,
            shutdown.clone(),
        ));
        Ok(Cluster {
            history: Arc::new(History::new(store.clone())),
            members,
            store,
            health,
            lease,
            role,
            docs,
            seeded,
            applied: Arc::new(applied),
            step_down,
            lease_ttl: ttl,
            started_ms,
            shutdown,
            tasks,
        })
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn instance(&self) -> &str {
        self.store.instance()
    }

    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    /// When this replica started counting (its statistics epoch).
    pub fn started_ms(&self) -> u64 {
        self.started_ms
    }

    /// The newest document revision received (the seed's, then the watch's).
    pub fn documents(&self) -> chan::Receiver<Option<Document>> {
        self.docs.clone()
    }

    /// What seeding found, once it happened.
    pub fn seeded(&self) -> chan::Receiver<Option<Seeded>> {
        self.seeded.clone()
    }

    pub fn role(&self) -> chan::Receiver<Role> {
        self.role.clone()
    }

    pub fn health(&self) -> chan::Receiver<StoreHealth> {
        self.health.subscribe()
    }

    pub fn lease(&self) -> Option<i64> {
        *self.lease.borrow()
    }

    pub fn history(&self) -> &History {
        &self.history
    }

    /// Tells the cluster which revision this replica now serves.
    pub fn set_applied(&self, revision: i64) {
        self.applied.send_if_modified(|r| {
            let changed = *r != revision;
            *r = revision;
            changed
        });
    }

    /// A compare-and-swap of the document on `planned`; answered once etcd
    /// stored the new revision.
    pub async fn propose(
        &self,
        planned: i64,
        text: &str,
        source: &str,
    ) -> Result<Document, ClusterError> {
        let r = self.store.propose(planned, text, source).await;
        self.note(&r);
        r
    }

    /// A leadership write: `ops` only if this replica is still the leader
    /// it became. A refusal makes it step down at once.
    pub async fn fenced(&self, ops: Vec<etcd_client::TxnOp>) -> Result<i64, ClusterError> {
        let Some(fence) = self.role.borrow().fence() else {
            return Err(ClusterError::NotLeader);
        };
        let r = self.store.fenced(fence, ops).await;
        if matches!(r, Err(ClusterError::NotLeader)) {
            self.step_down.notify_one();
        }
        self.note(&r);
        r
    }

    fn note<T>(&self, r: &Result<T, ClusterError>) {
        bridge::note(&self.health, r);
    }

    /// From now on the controller's changes are stored in the cluster and
    /// the cluster's revisions applied by it (`bridge`).
    pub fn attach(&mut self, control: crate::control::ControlHandle) {
        let bridge = Arc::new(bridge::Bridge {
            store: self.store.clone(),
            health: self.health.clone(),
            role: self.role.clone(),
            step_down: self.step_down.clone(),
            history: self.history.clone(),
        });
        let feed = bridge::Feed {
            docs: self.docs.clone(),
            applied: self.applied.clone(),
            health: self.health.subscribe(),
            role: self.role.clone(),
        };
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            control.attach(bridge).await;
            bridge::sync(control, feed, shutdown).await;
        });
    }

    /// From now on `rollouts` run only while this replica leads, judge
    /// every replica's traffic and keep their progress in the cluster;
    /// this replica's own traffic is published for the leader (`drive`),
    /// and it copies during the leader's shadow steps (`shadow`).
    pub fn drive(
        &mut self,
        control: crate::control::ControlHandle,
        rollouts: Arc<crate::rollout::Rollouts>,
    ) {
        let (saved, saved_rx) = chan::channel(None);
        rollouts.coordinate(Arc::new(drive::Drive {
            store: self.store.clone(),
            role: self.role.clone(),
            saved,
        }));
        let (state, state_rx) = chan::channel(None);
        self.tasks.spawn(shadow::watch_state(
            self.store.clone(),
            state,
            self.lease_ttl,
            self.shutdown.clone(),
        ));
        self.tasks.spawn(shadow::follow(
            state_rx,
            self.role.clone(),
            control.clone(),
            self.shutdown.clone(),
        ));
        self.tasks.spawn(drive::publish(
            self.store.clone(),
            control.clone(),
            self.lease.clone(),
            self.shutdown.clone(),
        ));
        self.tasks.spawn(drive::persist(
            self.store.clone(),
            self.role.clone(),
            saved_rx,
            self.shutdown.clone(),
        ));
        self.tasks.spawn(drive::lead(
            self.store.clone(),
            self.role.clone(),
            rollouts,
            control,
            self.shutdown.clone(),
        ));
    }

    /// What the admin API shows and reads (cheap handles).
    pub fn view(&self) -> View {
        View {
            store: self.store.clone(),
            role: self.role.clone(),
            health: self.health.subscribe(),
            docs: self.docs.clone(),
            seeded: self.seeded.clone(),
            members: self.members.clone(),
            history: self.history.clone(),
            lease_ttl: self.lease_ttl,
        }
    }

    /// Every member's record.
    pub async fn members(&self) -> Result<Vec<Member>, ClusterError> {
        members::list(&self.store).await
    }

    /// Publishes this replica's statistics under its lease.
    pub async fn publish_stats(&self, p: &Publication) -> Result<(), ClusterError> {
        let Some(lease) = self.lease() else {
            return Err(ClusterError::NoLease);
        };
        let r = stats::publish(&self.store, p, lease).await;
        self.note(&r);
        r
    }

    /// Every replica's statistics with `buckets` histogram buckets.
    pub async fn collect_stats(&self, buckets: usize) -> Result<Vec<Publication>, ClusterError> {
        stats::collect(&self.store, buckets).await
    }

    /// Stops the tasks and revokes the lease (this replica's keys go now,
    /// not after the TTL).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while let Some(r) = self.tasks.join_next().await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "a cluster task failed");
            }
        }
    }
}

/// A replica's view of its cluster, for the admin API: cheap to clone,
/// read without waiting (except `history`, one etcd read).
#[derive(Clone)]
pub struct View {
    store: Store,
    role: chan::Receiver<Role>,
    health: chan::Receiver<StoreHealth>,
    docs: chan::Receiver<Option<Document>>,
    seeded: chan::Receiver<Option<Seeded>>,
    members: chan::Receiver<Vec<Member>>,
    history: Arc<History>,
    lease_ttl: Duration,
}

impl View {
    pub fn instance(&self) -> &str {
        self.store.instance()
    }

    pub fn lease_ttl(&self) -> Duration {
        self.lease_ttl
    }

    pub fn role(&self) -> Role {
        self.role.borrow().clone()
    }

    /// The leader's instance name, if there is one now.
    pub fn leader(&self) -> Option<String> {
        match self.role() {
            Role::Leader(_) => Some(self.instance().to_owned()),
            Role::Follower { leader } => leader,
        }
    }

    pub fn health(&self) -> StoreHealth {
        self.health.borrow().clone()
    }

    /// The newest revision received from the store.
    pub fn latest(&self) -> Option<Document> {
        self.docs.borrow().clone()
    }

    /// Whether this replica seeded the cluster (`Some(true)`) or found a
    /// configuration that won over its file (`Some(false)`).
    pub fn seeded_here(&self) -> Option<bool> {
        self.seeded
            .borrow()
            .as_ref()
            .map(|s| matches!(s, Seeded::Created(_)))
    }

    /// The member records, as last read (every second).
    pub fn members(&self) -> Vec<Member> {
        self.members.borrow().clone()
    }

    /// The cluster's newest `limit` events, oldest first.
    pub async fn history(&self, limit: usize) -> Result<Vec<ClusterEvent>, ClusterError> {
        self.history.recent(limit).await
    }
}

/// Seeds (retrying until etcd answers), then follows the document.
async fn seed_then_watch(
    store: Store,
    seed: String,
    seeded: chan::Sender<Option<Seeded>>,
    docs: chan::Sender<Option<Document>>,
    health: Health,
    ttl: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = lease::Backoff::new(ttl);
    let found = loop {
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            a = store.seed(&seed) => a,
        };
        match attempt {
            Ok(s) => break s,
            Err(e) => {
                health.down(&e.to_string());
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(backoff.next()) => {}
                }
            }
        }
    };
    health.up();
    let doc = found.document().clone();
    match &found {
        Seeded::Created(d) => tracing::info!(
            revision = d.revision,
            "seeded the empty cluster from the local file"
        ),
        Seeded::Existing(d) => tracing::info!(
            revision = d.revision,
            by = %d.by,
            "the cluster's configuration wins over the local file"
        ),
    }
    let from = doc.revision;
    docs.send_replace(Some(doc));
    seeded.send_replace(Some(found));
    watch::run(store, from, docs, health, ttl, shutdown).await;
}
