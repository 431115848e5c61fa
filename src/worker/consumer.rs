//! One consumer of the `senders` group: where the next batch of entries comes from.
//!
//! Order of preference: our own pending entries after a restart with the same name, then
//! entries idle at other consumers for `worker.claim_idle_ms` (crashed workers), then new
//! entries, blocking up to `worker.block_ms`. The blocking read has a connection of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::config::Settings;
use crate::store::{self, Entry, Store, StoreError};

pub struct Consumer {
    settings: Arc<Settings>,
    store: Store,
    name: String,
    /// For `XREADGROUP … BLOCK`; dropped after an error and made again on the next call.
    conn: Option<MultiplexedConnection>,
    /// Where the rescan of our own pending entries goes on; `None` once it is done.
    pending_from: Option<String>,
    next_reap: Instant,
}

impl Consumer {
    pub fn new(settings: Arc<Settings>, store: Store, name: String) -> Self {
        Self {
            settings,
            store,
            name,
            conn: None,
            // "0": every entry already delivered to this name and not acked.
            pending_from: Some("0".to_owned()),
            next_reap: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Up to `count` entries to handle now (possibly none, after `worker.block_ms`).
    pub async fn next_batch(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let result = self.try_next_batch(count).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn try_next_batch(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let ws = &self.settings.worker;
        if self.conn.is_none() {
            self.conn = Some(store::blocking_connection(&self.settings.redis, ws.block).await?);
        }
        let Some(conn) = self.conn.as_mut() else {
            unreachable!("set just above")
        };
        if let Some(from) = self.pending_from.take() {
            let entries = self.store.read_from(conn, &self.name, &from, count).await?;
            if let Some(last) = entries.last() {
                tracing::info!(count = entries.len(), "resuming our own pending entries");
                self.pending_from = Some(last.entry_id.clone());
                return Ok(entries);
            }
        }
        if Instant::now() >= self.next_reap {
            let idle = ws.claim_idle;
            self.next_reap = Instant::now() + (idle / 2).max(Duration::from_millis(500));
            let claimed = self.store.claim_idle(&self.name, idle, count).await?;
            if !claimed.is_empty() {
                tracing::warn!(
                    count = claimed.len(),
                    "reclaimed entries idle at other consumers"
                );
                return Ok(claimed);
            }
        }
        self.store.read(conn, &self.name, count, ws.block).await
    }
}
