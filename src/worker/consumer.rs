//! One consumer of the `senders` group: where the next batch of entries comes from.
//!
//! Order of preference:
//! 1. our own entries that a Redis error left with us, once their short delay is over;
//! 2. our own pending entries after a restart with the same name;
//! 3. entries of consumers whose heartbeat lapsed (crashed workers), claimed at once; and,
//!    every `worker.claim_idle_ms / 2`, entries idle that long anywhere (a live worker that
//!    hangs: the backstop);
//! 4. new entries, blocking up to `worker.block_ms` (at most one heartbeat interval, so the
//!    reaper above runs on time).
//!
//! The blocking read has a connection of its own (a blocked read would hold up every command
//! behind it on the shared socket).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;

use crate::config::Settings;
use crate::store::{self, Entry, Store, StoreError};

/// How long an entry that hit a Redis error waits before we try it again.
const REDELIVERY_DELAY: Duration = Duration::from_millis(300);

pub struct Consumer {
    settings: Arc<Settings>,
    store: Store,
    name: String,
    /// For `XREADGROUP … BLOCK`; dropped after an error and made again on the next call.
    conn: Option<MultiplexedConnection>,
    /// Where the rescan of our own pending entries goes on; `None` once it is done.
    pending_from: Option<String>,
    /// Our entries to take again: (due, entry id, whether it counts as a delivery).
    redeliveries: VecDeque<(Instant, String, bool)>,
    next_reap: Instant,
    next_backstop: Instant,
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
            redeliveries: VecDeque::new(),
            next_reap: Instant::now(),
            next_backstop: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An entry of ours that a Redis error interrupted: it comes back in a later batch.
    pub fn redeliver(&mut self, entry_id: String, count_delivery: bool) {
        let due = Instant::now() + REDELIVERY_DELAY;
        self.redeliveries.push_back((due, entry_id, count_delivery));
    }

    /// Up to `count` entries to handle now (possibly none, after the blocking read's timeout).
    pub async fn next_batch(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let result = self.try_next_batch(count.max(1)).await;
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    async fn try_next_batch(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let redelivered = self.due_redeliveries(count).await?;
        if !redelivered.is_empty() {
            return Ok(redelivered);
        }
        // Our own leftovers first. The cursor moves only on success: an error retries it.
        if let Some(from) = self.pending_from.clone() {
            let conn = blocking(&mut self.conn, &self.settings).await?;
            let entries = self.store.read_from(conn, &self.name, &from, count).await?;
            self.pending_from = entries.last().map(|last| last.entry_id.clone());
            if !entries.is_empty() {
                tracing::info!(count = entries.len(), "resuming our own pending entries");
                return Ok(entries);
            }
        }
        let reaped = self.reap(count).await?;
        if !reaped.is_empty() {
            return Ok(reaped);
        }
        let ws = &self.settings.worker;
        let block = ws.block.min(ws.heartbeat);
        let conn = blocking(&mut self.conn, &self.settings).await?;
        self.store.read(conn, &self.name, count, block).await
    }

    /// Our interrupted entries whose delay is over. They leave the queue only once claimed:
    /// a Redis error keeps them for the next batch.
    async fn due_redeliveries(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let now = Instant::now();
        let due = self
            .redeliveries
            .iter()
            .take_while(|(at, ..)| *at <= now)
            .take(count)
            .count();
        if due == 0 {
            return Ok(Vec::new());
        }
        let (counted, uncounted): (Vec<_>, Vec<_>) = self
            .redeliveries
            .iter()
            .take(due)
            .partition(|(.., counts)| *counts);
        let ids = |v: Vec<&(Instant, String, bool)>| {
            v.into_iter()
                .map(|(_, id, _)| id.clone())
                .collect::<Vec<_>>()
        };
        let (counted, uncounted) = (ids(counted), ids(uncounted));
        let mut entries = self.store.claim_own(&self.name, &counted, true).await?;
        entries.extend(self.store.claim_own(&self.name, &uncounted, false).await?);
        self.redeliveries.drain(..due);
        crate::metrics::reclaimed("redelivery", entries.len());
        Ok(entries)
    }

    /// Entries of dead consumers (heartbeat lapsed) at once, then the idle backstop.
    async fn reap(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let settings = self.settings.clone();
        let ws = &settings.worker;
        let now = Instant::now();
        let mut claimed = Vec::new();
        if now >= self.next_reap {
            self.next_reap = now + ws.heartbeat / 2;
            for consumer in self.store.consumers().await? {
                if consumer.alive || consumer.name == self.name {
                    continue;
                }
                let room = count - claimed.len();
                let entries = self
                    .store
                    .reap(&consumer.name, &self.name, room, ws.heartbeat)
                    .await?;
                if !entries.is_empty() {
                    crate::metrics::reclaimed("dead_worker", entries.len());
                    tracing::warn!(
                        count = entries.len(),
                        dead = %consumer.name,
                        "reclaimed entries of a worker whose heartbeat stopped"
                    );
                }
                claimed.extend(entries);
                if claimed.len() >= count {
                    break;
                }
            }
        }
        if claimed.is_empty() && now >= self.next_backstop {
            let idle = ws.claim_idle;
            self.next_backstop = now + (idle / 2).max(Duration::from_millis(500));
            claimed = self.store.claim_idle(&self.name, idle, count).await?;
            if !claimed.is_empty() {
                crate::metrics::reclaimed("idle", claimed.len());
                tracing::warn!(
                    count = claimed.len(),
                    idle_ms = idle.as_millis() as u64,
                    "reclaimed entries idle at other consumers"
                );
            }
        }
        Ok(claimed)
    }
}

/// The blocking-read connection, made on first use (and again after an error dropped it).
async fn blocking<'c>(
    slot: &'c mut Option<MultiplexedConnection>,
    settings: &Settings,
) -> Result<&'c mut MultiplexedConnection, StoreError> {
    let conn = match slot.take() {
        Some(conn) => conn,
        None => store::blocking_connection(&settings.redis, settings.worker.block).await?,
    };
    Ok(slot.insert(conn))
}
