//! The shared routing document in etcd (`P/config`) and the writes on it.
//!
//! The document is the shared part of the configuration as TOML text
//! (pools, routes, health, outlier, retry, notify; see `document`), stored
//! in a small JSON envelope that also says who wrote it, from where and
//! when. Its *revision* is the key's `mod_revision`: etcd's own counter,
//! so "the revision a change was planned on" needs no counter of ours.
//!
//! - `seed`: create-if-absent in one transaction; a cluster that already
//!   has a document returns it instead (it wins over the local file).
//! - `propose`: compare-and-swap on the planned revision; a conflict
//!   returns the revision found.
//! - `fenced`: a transaction that also compares the leader key's
//!   `create_revision` with the one this replica's campaign created, so a
//!   write by a replica that lost its leadership (paused, partitioned)
//!   never lands.

use etcd_client::{
    Client, Compare, CompareOp, GetOptions, KeyValue, PutOptions, Txn, TxnOp, TxnOpResponse,
};
use serde::{Deserialize, Serialize};

use super::connect::{rpc, RPC_TIMEOUT};
use super::error::ClusterError;
use super::keys::Keys;

/// Longest a proposal is tried (each attempt under `RPC_TIMEOUT`): a
/// mutation is answered 503 after this when etcd does not answer.
pub const PROPOSE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Version of the envelope; a replica refuses documents of a later one.
const FORMAT: u32 = 1;

/// One revision of the shared routing document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    /// The key's `mod_revision`.
    pub revision: i64,
    /// The shared part of the configuration, TOML.
    pub text: String,
    /// The instance that wrote it.
    pub by: String,
    /// What made the change (`seed`, `api`, `file`, `rollout`, ...).
    pub source: String,
    /// When it was written, Unix milliseconds (the writer's clock).
    pub at_ms: u64,
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    format: u32,
    text: String,
    by: String,
    source: String,
    at_ms: u64,
}

impl Document {
    /// Decodes the value of `P/config`.
    pub fn decode(kv: &KeyValue) -> Result<Document, ClusterError> {
        let bad = |reason: String| ClusterError::BadValue {
            key: String::from_utf8_lossy(kv.key()).into_owned(),
            reason,
        };
        let env: Envelope =
            serde_json::from_slice(kv.value()).map_err(|e| bad(format!("not a document: {e}")))?;
        if env.format > FORMAT {
            return Err(bad(format!(
                "document format {} is newer than this switchyard's ({FORMAT}): upgrade it",
                env.format
            )));
        }
        Ok(Document {
            revision: kv.mod_revision(),
            text: env.text,
            by: env.by,
            source: env.source,
            at_ms: env.at_ms,
        })
    }
}

/// What `seed` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seeded {
    /// The cluster was empty; this replica's document is now its state.
    Created(Document),
    /// The cluster already had a document: it wins over the local file.
    Existing(Document),
}

impl Seeded {
    pub fn document(&self) -> &Document {
        match self {
            Seeded::Created(d) | Seeded::Existing(d) => d,
        }
    }
}

/// The fencing token of a leadership: the leader key's `create_revision`
/// as created by this replica's campaign.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence {
    pub create_revision: i64,
    /// The lease the leader key is bound to.
    pub lease: i64,
}

/// Reads and writes of one cluster's keys.
#[derive(Clone)]
pub struct Store {
    client: Client,
    keys: Keys,
    instance: String,
}

pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Store {
    pub fn new(client: Client, keys: Keys, instance: impl Into<String>) -> Self {
        Store {
            client,
            keys,
            instance: instance.into(),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// A handle on the client (cheap: channels inside).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn envelope(&self, text: &str, source: &str) -> Result<Vec<u8>, ClusterError> {
        serde_json::to_vec(&Envelope {
            format: FORMAT,
            text: text.to_owned(),
            by: self.instance.clone(),
            source: source.to_owned(),
            at_ms: unix_ms(),
        })
        .map_err(|e| ClusterError::Config(format!("cannot encode the document: {e}")))
    }

    /// The current document, and the store's revision at the read (the
    /// revision to watch from).
    pub async fn get(&self) -> Result<(Option<Document>, i64), ClusterError> {
        let mut c = self.client.clone();
        let resp = rpc(c.get(self.keys.config(), None)).await?;
        let at = resp.header().map_or(0, |h| h.revision());
        let doc = resp.kvs().first().map(Document::decode).transpose()?;
        Ok((doc, at))
    }

    /// Stores `text` as the first document if the cluster has none, in one
    /// transaction; otherwise answers the existing one.
    pub async fn seed(&self, text: &str) -> Result<Seeded, ClusterError> {
        let key = self.keys.config();
        let value = self.envelope(text, "seed")?;
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), value, None)])
            .or_else([TxnOp::get(key.clone(), None)]);
        let mut c = self.client.clone();
        let resp = rpc(c.txn(txn)).await?;
        if resp.succeeded() {
            let revision = resp.header().map_or(0, |h| h.revision());
            return Ok(Seeded::Created(Document {
                revision,
                text: text.to_owned(),
                by: self.instance.clone(),
                source: "seed".into(),
                at_ms: unix_ms(),
            }));
        }
        match first_kv(&resp.op_responses()) {
            Some(kv) => Ok(Seeded::Existing(Document::decode(&kv)?)),
            // Deleted between the compare and the get of the same
            // transaction cannot happen (a txn is atomic); an empty answer
            // means a server that misbehaves.
            None => Err(ClusterError::BadValue {
                key,
                reason: "exists but could not be read".into(),
            }),
        }
    }

    /// Replaces the document if it is still at revision `planned`; answers
    /// the new document (with its revision) once etcd stored it.
    ///
    /// A request that got no answer (the etcd member lost its raft leader
    /// mid-request, a connection died) may or may not have been applied:
    /// it is sent again until `PROPOSE_TIMEOUT`. The compare makes that
    /// safe — at most one of the attempts can succeed — and a conflict
    /// after a retry whose current document is this replica's text is the
    /// earlier attempt having landed, so it is answered as success.
    pub async fn propose(
        &self,
        planned: i64,
        text: &str,
        source: &str,
    ) -> Result<Document, ClusterError> {
        self.propose_as(planned, text, source, None).await
    }

    /// `propose`, and with `fence` a leadership write: stored only while
    /// this replica still holds the leader key it created (`NotLeader`
    /// otherwise; nothing is written).
    pub async fn propose_as(
        &self,
        planned: i64,
        text: &str,
        source: &str,
        fence: Option<Fence>,
    ) -> Result<Document, ClusterError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_TIMEOUT;
        let mut retried = false;
        loop {
            match self.propose_once(planned, text, source, fence).await {
                Err(ClusterError::Unavailable(why)) => {
                    let pause = std::time::Duration::from_millis(100);
                    if tokio::time::Instant::now() + RPC_TIMEOUT + pause > deadline {
                        return Err(ClusterError::Unavailable(why));
                    }
                    tracing::debug!(error = %why, "proposal not answered; sending it again");
                    retried = true;
                    tokio::time::sleep(pause).await;
                }
                Err(ClusterError::Conflict { planned, current }) if retried => {
                    return match self.get().await? {
                        (Some(d), _) if d.by == self.instance && d.text == text => Ok(d),
                        _ => Err(ClusterError::Conflict { planned, current }),
                    };
                }
                other => return other,
            }
        }
    }

    async fn propose_once(
        &self,
        planned: i64,
        text: &str,
        source: &str,
        fence: Option<Fence>,
    ) -> Result<Document, ClusterError> {
        let key = self.keys.config();
        let value = self.envelope(text, source)?;
        let mut when = vec![Compare::mod_revision(
            key.clone(),
            CompareOp::Equal,
            planned,
        )];
        let mut or_else = vec![TxnOp::get(key.clone(), None)];
        if let Some(f) = fence {
            when.push(Compare::create_revision(
                self.keys.leader(),
                CompareOp::Equal,
                f.create_revision,
            ));
            or_else.push(TxnOp::get(self.keys.leader(), None));
        }
        let txn = Txn::new()
            .when(when)
            .and_then([TxnOp::put(key.clone(), value, None)])
            .or_else(or_else);
        let mut c = self.client.clone();
        let resp = rpc(c.txn(txn)).await?;
        if resp.succeeded() {
            return Ok(Document {
                revision: resp.header().map_or(0, |h| h.revision()),
                text: text.to_owned(),
                by: self.instance.clone(),
                source: source.to_owned(),
                at_ms: unix_ms(),
            });
        }
        let ops = resp.op_responses();
        if let Some(f) = fence {
            let leader = self.keys.leader();
            let holder = ops.iter().find_map(|op| match op {
                TxnOpResponse::Get(g) => g
                    .kvs()
                    .first()
                    .filter(|kv| kv.key() == leader.as_bytes())
                    .cloned(),
                _ => None,
            });
            if holder.is_none_or(|kv| kv.create_revision() != f.create_revision) {
                return Err(ClusterError::NotLeader);
            }
        }
        let current = first_kv(&ops).map_or(0, |kv| kv.mod_revision());
        Err(ClusterError::Conflict { planned, current })
    }

    /// Runs `ops` only while this replica still holds the leader key it
    /// created (`fence`); `NotLeader` otherwise, and nothing is written.
    pub async fn fenced(&self, fence: Fence, ops: Vec<TxnOp>) -> Result<i64, ClusterError> {
        let txn = Txn::new()
            .when([Compare::create_revision(
                self.keys.leader(),
                CompareOp::Equal,
                fence.create_revision,
            )])
            .and_then(ops);
        let mut c = self.client.clone();
        let resp = rpc(c.txn(txn)).await?;
        if resp.succeeded() {
            Ok(resp.header().map_or(0, |h| h.revision()))
        } else {
            Err(ClusterError::NotLeader)
        }
    }

    /// A put of `value` at `key` (optionally under `lease`), for `fenced`.
    pub fn put_op(key: String, value: Vec<u8>, lease: Option<i64>) -> TxnOp {
        TxnOp::put(key, value, lease.map(|l| PutOptions::new().with_lease(l)))
    }

    /// Every key-value under `dir`, sorted by key.
    pub async fn list(&self, dir: &str) -> Result<Vec<KeyValue>, ClusterError> {
        let mut c = self.client.clone();
        let resp = rpc(c.get(dir, Some(GetOptions::new().with_prefix()))).await?;
        let mut kvs = resp.kvs().to_vec();
        kvs.sort_by(|a, b| a.key().cmp(b.key()));
        Ok(kvs)
    }

    /// The value at `key`, if any.
    pub async fn get_key(&self, key: &str) -> Result<Option<KeyValue>, ClusterError> {
        let mut c = self.client.clone();
        let resp = rpc(c.get(key, None)).await?;
        Ok(resp.kvs().first().cloned())
    }

    /// The value at `key`, if any, and the store's revision at the read
    /// (a watch from the next one misses nothing).
    pub async fn get_key_at(&self, key: &str) -> Result<(Option<KeyValue>, i64), ClusterError> {
        let mut c = self.client.clone();
        let resp = rpc(c.get(key, None)).await?;
        let at = resp.header().map_or(0, |h| h.revision());
        Ok((resp.kvs().first().cloned(), at))
    }
}

fn first_kv(ops: &[TxnOpResponse]) -> Option<KeyValue> {
    // The first get of the transaction (the document's).
    ops.iter()
        .find_map(|op| match op {
            TxnOpResponse::Get(g) => Some(g.kvs().first().cloned()),
            _ => None,
        })
        .flatten()
}
