//! `smsq worker`: a pool consuming the send stream as one consumer of the `senders` group.
//!
//! Up to `worker.concurrency` jobs are in flight; reads ask for exactly as many entries as
//! there are free slots, so nothing sits delivered-but-unstarted. An entry is acked only by
//! the script that writes its outcome; a crash in between leaves it pending, and the reaper
//! (ours or another worker's) reclaims it after `worker.claim_idle_ms`.

mod limiter;
pub mod retry;
mod send;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use limiter::Limiter;

use crate::config::Settings;
use crate::domain::now_ms;
use crate::provider::Client;
use crate::store::{self, Entry, Store, StoreError};

/// Everything a job needs, shared by the pool's tasks.
pub(crate) struct Context {
    pub settings: Arc<Settings>,
    pub store: Store,
    pub client: Client,
    pub limiter: Limiter,
}

/// How the worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Jobs handled to the end (whatever their outcome).
    pub handled: u64,
    /// Jobs still in flight when the grace period ran out: left pending, to be reclaimed.
    pub abandoned: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot set up the consumer group: {0}")]
    Setup(#[source] StoreError),
}

/// `host-pid-random`: unique per process, readable in `XINFO CONSUMERS`.
pub fn default_consumer_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let tag: u16 = rand::random();
    format!("{host}-{}-{tag:04x}", std::process::id())
}

pub struct Worker {
    ctx: Arc<Context>,
    name: String,
    concurrency: usize,
}

impl Worker {
    pub fn new(
        settings: Arc<Settings>,
        store: Store,
        client: Client,
        name: String,
        concurrency: usize,
    ) -> Self {
        let limiter = Limiter::new(settings.worker.rate_per_sec, settings.worker.burst);
        Self {
            ctx: Arc::new(Context {
                settings,
                store,
                client,
                limiter,
            }),
            name,
            concurrency: concurrency.max(1),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until `shutdown`, then drains in-flight sends within `worker.shutdown_grace_ms`.
    pub async fn run(self, shutdown: CancellationToken) -> Result<Report, WorkerError> {
        let store = &self.ctx.store;
        store.ensure_group().await.map_err(WorkerError::Setup)?;
        let ws = &self.ctx.settings.worker;
        tracing::info!(consumer = %self.name, concurrency = self.concurrency, "worker started");

        let promoter = tokio::spawn(promote_retries(store.clone(), shutdown.clone()));
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut handled = 0u64;
        let mut conn = None;
        let mut backoff = Duration::from_millis(100);
        // First our own pending entries (a restart with the same --name), then reclaim.
        let mut pending_from = Some("0".to_owned());
        let mut next_reap = Instant::now();

        while !shutdown.is_cancelled() {
            while tasks.try_join_next().is_some() {
                handled += 1;
            }
            let free = tokio::select! {
                // Wait for at least one free slot, then read as many entries as are free.
                permit = slots.acquire() => {
                    drop(permit);
                    slots.available_permits()
                }
                _ = shutdown.cancelled() => break,
            };
            let entries = match self
                .next_entries(&mut conn, &mut pending_from, &mut next_reap, free)
                .await
            {
                Ok(entries) => {
                    backoff = Duration::from_millis(100);
                    entries
                }
                Err(e) => {
                    if e.is_missing_group() {
                        // Redis restarted without persistence, or the stream was deleted.
                        tracing::warn!("consumer group is gone: creating it again");
                        match store.ensure_group().await {
                            Ok(()) => continue,
                            Err(e) => {
                                tracing::warn!(error = %e, "cannot create the consumer group")
                            }
                        }
                    } else {
                        tracing::warn!(error = %e, retry_in = ?backoff, "cannot read the stream");
                    }
                    conn = None;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            // Entries already delivered to us are handled even if shutdown came meanwhile:
            // they are ours now, and handling beats leaving them for the reaper.
            for entry in entries {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let ctx = self.ctx.clone();
                tasks.spawn(async move {
                    send::handle(&ctx, entry).await;
                    drop(permit);
                });
            }
        }

        let in_flight = tasks.len();
        tracing::info!(in_flight, grace = ?ws.shutdown_grace, "stopping: draining in-flight sends");
        let deadline = tokio::time::sleep(ws.shutdown_grace);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                joined = tasks.join_next() => match joined {
                    Some(_) => handled += 1,
                    None => break,
                },
                _ = &mut deadline => break,
            }
        }
        let abandoned = tasks.len();
        tasks.abort_all();
        promoter.abort();
        if abandoned > 0 {
            tracing::warn!(
                abandoned,
                "grace period over: unfinished jobs stay pending and will be reclaimed"
            );
        }
        tracing::info!(handled, abandoned, "worker stopped");
        Ok(Report { handled, abandoned })
    }

    /// The next batch: our own leftovers first, then entries idle at crashed consumers, then
    /// new entries (blocking up to `worker.block_ms`).
    async fn next_entries(
        &self,
        conn: &mut Option<redis::aio::MultiplexedConnection>,
        pending_from: &mut Option<String>,
        next_reap: &mut Instant,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let settings = &self.ctx.settings;
        let store = &self.ctx.store;
        if conn.is_none() {
            *conn = Some(store::blocking_connection(&settings.redis, settings.worker.block).await?);
        }
        let conn = conn.as_mut().expect("just set");
        if let Some(from) = pending_from.clone() {
            let entries = store.read_from(conn, &self.name, &from, count).await?;
            *pending_from = entries.last().map(|e| e.entry_id.clone());
            if !entries.is_empty() {
                tracing::info!(count = entries.len(), "resuming our own pending entries");
                return Ok(entries);
            }
        }
        if Instant::now() >= *next_reap {
            let idle = settings.worker.claim_idle;
            *next_reap = Instant::now() + (idle / 2).max(Duration::from_millis(500));
            let claimed = store.claim_idle(&self.name, idle, count).await?;
            if !claimed.is_empty() {
                tracing::warn!(
                    count = claimed.len(),
                    "reclaimed entries idle at other consumers"
                );
                return Ok(claimed);
            }
        }
        store
            .read(conn, &self.name, count, settings.worker.block)
            .await
    }
}

/// Moves due retries back onto the stream, a few times a second.
async fn promote_retries(store: Store, shutdown: CancellationToken) {
    const BATCH: usize = 256;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        loop {
            match store.promote_due(now_ms(), BATCH).await {
                Ok(moved) if moved == BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot promote due retries");
                    break;
                }
            }
        }
    }
}
