//! `smsq worker`: a pool consuming the send stream as one consumer of the `senders` group.
//!
//! Up to `worker.concurrency` jobs are in flight; reads ask for exactly as many entries as
//! there are free slots, so nothing sits delivered-but-unstarted. An entry is acked only by
//! the script that writes its outcome; a crash in between leaves it pending, and the reaper
//! (ours or another worker's) reclaims it after `worker.claim_idle_ms`.

mod accounts;
mod background;
mod consumer;
mod limiter;
pub mod retry;
mod send;

use background::{beat, heartbeat_text, promote_retries, serve_metrics};
use send::{Ending, Handled};

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

pub(crate) use accounts::Accounts;
pub use consumer::Consumer;
pub use limiter::Limiter;

use crate::config::Settings;
use crate::domain::CodeSealer;
use crate::store::{LayoutError, Queue, StoreError};

/// Everything a job needs, shared by the pool's tasks.
pub(crate) struct Context {
    pub settings: Arc<Settings>,
    pub queue: Queue,
    /// The provider accounts, their routes and circuits.
    pub accounts: Accounts,
    /// Opens each code just before its send.
    pub sealer: CodeSealer,
    /// This worker's consumer name.
    pub consumer: String,
    /// Joined its groups and beating, not yet stopping: what `/readyz` says.
    pub ready: Arc<std::sync::atomic::AtomicBool>,
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
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error("cannot listen on {0} (worker.metrics_listen): {1}")]
    Metrics(std::net::SocketAddr, #[source] std::io::Error),
}

/// `host-pid-random`: unique per process, readable in `XINFO CONSUMERS`.
pub fn default_consumer_name() -> String {
    let host = crate::telemetry::hostname();
    let tag: u16 = rand::random();
    format!("{host}-{}-{tag:04x}", std::process::id())
}

pub struct Worker {
    ctx: Arc<Context>,
    consumer: Consumer,
    concurrency: usize,
    /// Webhooks to the app, when endpoints are configured: beside the pool, on its own tasks.
    dispatcher: Option<crate::webhooks::Dispatcher>,
}

impl Worker {
    pub(crate) fn new(
        settings: Arc<Settings>,
        queue: Queue,
        accounts: Accounts,
        sealer: CodeSealer,
        name: String,
        concurrency: usize,
    ) -> Self {
        let consumer = Consumer::new(settings.clone(), queue.clone(), name.clone());
        Self {
            ctx: Arc::new(Context {
                settings,
                queue,
                accounts,
                sealer,
                consumer: name,
                ready: Arc::default(),
            }),
            consumer,
            concurrency: concurrency.max(1),
            dispatcher: None,
        }
    }

    /// Delivers webhooks too (see [`crate::webhooks`]).
    pub fn with_webhooks(mut self, dispatcher: Option<crate::webhooks::Dispatcher>) -> Self {
        self.dispatcher = dispatcher;
        self
    }

    /// Runs until `shutdown`, then drains in-flight sends within `worker.shutdown_grace_ms`.
    pub async fn run(mut self, shutdown: CancellationToken) -> Result<Report, WorkerError> {
        let stop_background = CancellationToken::new();
        let mut background = self.start(&stop_background).await?;
        if let Some(dispatcher) = self.dispatcher.take() {
            // Its group exists before this worker sends anything: no event of ours is missed.
            dispatcher.prepare().await.map_err(WorkerError::Setup)?;
            background.push(tokio::spawn(dispatcher.run(stop_background.clone())));
        }
        let slots = Arc::new(Semaphore::new(self.concurrency));
        let mut tasks = JoinSet::new();
        let mut handled = 0u64;
        let mut backoff = Backoff::default();

        while !shutdown.is_cancelled() {
            while let Some(joined) = tasks.try_join_next() {
                handled += 1;
                self.note(joined);
            }
            crate::metrics::in_flight(tasks.len());
            let free = tokio::select! {
                // Wait for at least one free slot, then read as many entries as are free.
                permit = slots.acquire() => {
                    drop(permit);
                    slots.available_permits()
                }
                _ = shutdown.cancelled() => break,
            };
            let entries = match self.consumer.next_batch(free).await {
                Ok(entries) => {
                    backoff = Backoff::default();
                    entries
                }
                Err(e) if recover(&self.ctx.queue, &e, &mut backoff, &shutdown).await => continue,
                Err(_) => break,
            };
            // Entries already delivered to us are handled even if shutdown came meanwhile:
            // they are ours now, and handling beats leaving them for the reaper.
            for entry in entries {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    break;
                };
                let ctx = self.ctx.clone();
                tasks.spawn(async move {
                    let handled = send::handle(&ctx, entry).await;
                    drop(permit);
                    handled
                });
            }
        }
        // Stopping: no longer ready (a load balancer or orchestrator stops counting on us).
        self.ctx
            .ready
            .store(false, std::sync::atomic::Ordering::Relaxed);
        let report = drain(tasks, handled, self.ctx.settings.worker.shutdown_grace).await;
        stop_background.cancel();
        for task in background {
            let _ = task.await;
        }
        self.leave().await;
        Ok(report)
    }

    /// The metrics listener (its `/readyz` says 503 until the rest is done), the shard
    /// layout check, the groups, the first heartbeat (alive before the first read, so no
    /// reaper takes us for dead), the published limit, and the tasks that run beside the pool.
    async fn start(&self, stop: &CancellationToken) -> Result<Vec<JoinHandle<()>>, WorkerError> {
        let (queue, ws) = (&self.ctx.queue, &self.ctx.settings.worker);
        let mut background = Vec::new();
        if let Some(addr) = ws.metrics_listen {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| WorkerError::Metrics(addr, e))?;
            tracing::info!(%addr, "serving /metrics, /livez and /readyz");
            let ctx = self.ctx.clone();
            background.push(tokio::spawn(serve_metrics(listener, ctx, stop.clone())));
        }
        queue.check_layout().await?;
        queue.warn_if_evicting().await;
        queue.ensure_group().await.map_err(WorkerError::Setup)?;
        let name = self.consumer.name().to_owned();
        let about = heartbeat_text(self.concurrency);
        queue
            .heartbeat(&name, &about, ws.heartbeat * 3)
            .await
            .map_err(WorkerError::Setup)?;
        let primary = self.ctx.settings.providers.primary();
        let published = queue.publish_limit(primary.rate_per_sec.get(), primary.burst.get());
        if let Err(e) = published.await {
            tracing::warn!(error = %e, "cannot publish the rate limit");
        }
        self.ctx
            .ready
            .store(true, std::sync::atomic::Ordering::Relaxed);
        background.push(tokio::spawn(promote_retries(queue.clone(), stop.clone())));
        background.push(tokio::spawn(watch_circuits(self.ctx.clone(), stop.clone())));
        let beating = beat(
            queue.clone(),
            name.clone(),
            about,
            ws.heartbeat,
            stop.clone(),
        );
        background.push(tokio::spawn(beating));
        tracing::info!(consumer = %name, concurrency = self.concurrency, "worker started");
        Ok(background)
    }

    /// Gone at once: what is still pending here is reclaimed by the others right away; with
    /// nothing pending, we leave the group so `smsq status` does not list us as dead.
    async fn leave(&self) {
        let (queue, name) = (&self.ctx.queue, self.consumer.name());
        if let Err(e) = queue.drop_heartbeat(name).await {
            tracing::warn!(error = %e, "cannot remove the heartbeat; it expires by itself");
        }
        if let Err(e) = queue.leave_groups(name).await {
            tracing::warn!(error = %e, "cannot leave the consumer group");
        }
    }

    fn note(&mut self, joined: Result<Handled, tokio::task::JoinError>) {
        match joined {
            Ok(handled) => {
                self.consumer.finished(handled.shard, &handled.entry_id);
                if let Ending::Stuck { count_delivery } = handled.ending {
                    self.consumer
                        .redeliver(handled.shard, handled.entry_id, count_delivery);
                }
            }
            // A panic in a send task: the entry stays pending and is reclaimed as a poison
            // candidate (its delivery count grows each time).
            Err(e) => tracing::error!(error = %e, "a send task failed"),
        }
    }
}

/// Keeps this worker's view of every account's circuit fresh (see `accounts`).
async fn watch_circuits(ctx: Arc<Context>, stop: CancellationToken) {
    loop {
        ctx.accounts.refresh(&ctx.queue).await;
        tokio::select! {
            () = tokio::time::sleep(accounts::REFRESH) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// Doubling pause between failed reads, 100 ms up to 5 s.
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Self(Duration::from_millis(100))
    }
}

/// After a failed read: recreate a lost consumer group at once, otherwise wait (doubling).
/// Returns false if shutdown came while waiting.
async fn recover(
    queue: &Queue,
    error: &StoreError,
    backoff: &mut Backoff,
    shutdown: &CancellationToken,
) -> bool {
    if error.is_missing_group() {
        // Redis restarted without persistence, or the stream was deleted.
        tracing::warn!("consumer group is gone: creating it again");
        match queue.ensure_group().await {
            Ok(()) => return true,
            Err(e) => tracing::warn!(error = %e, "cannot create the consumer group"),
        }
    } else {
        tracing::warn!(error = %error, retry_in = ?backoff.0, "cannot read the stream");
    }
    let wait = backoff.0;
    backoff.0 = (backoff.0 * 2).min(Duration::from_secs(5));
    tokio::select! {
        _ = tokio::time::sleep(wait) => true,
        _ = shutdown.cancelled() => false,
    }
}

/// Lets in-flight sends finish within `grace`; what is left stays pending for a reclaim.
async fn drain(mut tasks: JoinSet<Handled>, mut handled: u64, grace: Duration) -> Report {
    tracing::info!(
        in_flight = tasks.len(),
        ?grace,
        "stopping: draining in-flight sends"
    );
    let deadline = tokio::time::sleep(grace);
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
    if abandoned > 0 {
        tracing::warn!(
            abandoned,
            "grace period over: unfinished jobs stay pending and will be reclaimed"
        );
    }
    tracing::info!(handled, abandoned, "worker stopped");
    Report { handled, abandoned }
}
