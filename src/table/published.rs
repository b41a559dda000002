//! The table in force and news of the next one. The controller stores
//! every new table through `Published::store`, which swaps it in and then
//! publishes its generation on a `tokio::sync::watch`; the consumers that
//! follow the table (health supervisor, rollout engine, verified flips)
//! hold a `TableWatch` and await `changed` instead of loading the table on
//! a timer to see whether it moved. The data plane never awaits: it loads
//! the `ArcSwap` once per request, as before.

use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use tokio::sync::watch;

use super::RoutingTable;

/// The writer's side: the one place a table is stored and announced.
pub struct Published {
    table: Arc<ArcSwap<RoutingTable>>,
    generation: watch::Sender<u64>,
}

impl Published {
    pub fn new(first: RoutingTable) -> Self {
        let (generation, _) = watch::channel(first.generation);
        Published {
            table: Arc::new(ArcSwap::from_pointee(first)),
            generation,
        }
    }

    /// The table in force.
    pub fn load(&self) -> Guard<Arc<RoutingTable>> {
        self.table.load()
    }

    /// Swaps `table` in, then tells every `TableWatch`. Stored first, so
    /// a consumer woken by the news loads this table (or a newer one).
    pub fn store(&self, table: RoutingTable) {
        let generation = table.generation;
        self.table.store(Arc::new(table));
        self.generation.send_replace(generation);
    }

    /// A watch that reports the tables stored after this call.
    pub fn subscribe(&self) -> TableWatch {
        TableWatch {
            table: self.table.clone(),
            generation: self.generation.subscribe(),
        }
    }
}

/// A consumer's side: the live table and a way to wait for the next one.
#[derive(Clone)]
pub struct TableWatch {
    table: Arc<ArcSwap<RoutingTable>>,
    generation: watch::Receiver<u64>,
}

impl TableWatch {
    /// The table in force (one `ArcSwap` load).
    pub fn load(&self) -> Guard<Arc<RoutingTable>> {
        self.table.load()
    }

    pub fn load_full(&self) -> Arc<RoutingTable> {
        self.table.load_full()
    }

    /// The shared cell itself, for the data plane and the admin API.
    pub fn shared(&self) -> &Arc<ArcSwap<RoutingTable>> {
        &self.table
    }

    /// A copy that reports only tables stored from now on (a clone
    /// inherits what this one has seen; a new consumer wants neither a
    /// spurious wake-up nor a missed table, so it subscribes, then loads).
    pub fn subscribe(&self) -> TableWatch {
        let mut w = self.clone();
        w.generation.mark_unchanged();
        w
    }

    /// Waits until a table newer than the last one reported is stored;
    /// cancel-safe (fit for `select!`). Once the controller has stopped no
    /// table can come, and this never returns: a consumer's other timers
    /// and its shutdown still run, without a wake-up loop.
    pub async fn changed(&mut self) {
        if self.generation.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::*;
    use crate::table::Registry;

    fn table(generation: u64) -> RoutingTable {
        let text = "[pools.a]\nbackends = [\"127.0.0.1:1\"]\n[[routes]]\nname = \"r\"\nsplit = { a = 100 }\n";
        let c = crate::config::parse(text, std::path::Path::new("t.toml"))
            .unwrap_or_else(|e| panic!("{e}"));
        let mut registry = Registry::default();
        registry.reconcile(&c);
        RoutingTable::build(&c, &registry, &mut Default::default(), generation)
    }

    /// Whether `changed` is ready now (polled once, nothing awaited).
    fn ready_now(w: &mut TableWatch) -> bool {
        let fut = std::pin::pin!(w.changed());
        fut.poll(&mut Context::from_waker(Waker::noop())).is_ready()
    }

    #[tokio::test]
    async fn a_stored_table_wakes_each_watch_once_and_is_loaded() {
        let published = Published::new(table(1));
        let mut a = published.subscribe();
        let mut b = a.subscribe();
        assert!(!ready_now(&mut a));
        let waiting = tokio::spawn(async move {
            b.changed().await;
            b.load().generation
        });
        published.store(table(2));
        let seen = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the new table")
            .expect("task");
        assert_eq!(seen, 2);
        assert!(ready_now(&mut a));
        assert_eq!(a.load().generation, 2);
        // Reported once; a watch made now reports only later tables.
        assert!(!ready_now(&mut a));
        assert!(!ready_now(&mut a.subscribe()));
    }

    #[tokio::test]
    async fn a_stopped_publisher_never_wakes_anyone() {
        let published = Published::new(table(1));
        let mut w = published.subscribe();
        drop(published);
        assert!(
            !ready_now(&mut w),
            "no table can come: changed must not return"
        );
        assert_eq!(w.load().generation, 1);
    }
}
