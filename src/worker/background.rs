//! What runs beside a worker's pool: the heartbeat, the retry promoter and the optional
//! `/metrics` endpoint. Each stops with the token it is given.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Context;
use crate::domain::now_ms;
use crate::store::{Queue, Store};

pub(super) fn heartbeat_text(concurrency: usize) -> String {
    serde_json::json!({
        "pid": std::process::id(),
        "started_ms": now_ms(),
        "concurrency": concurrency,
        "version": env!("CARGO_PKG_VERSION"),
    })
    .to_string()
}

/// Refreshes the heartbeat every `interval` (the key lives 3 × that).
pub(super) async fn beat(
    queue: Queue,
    name: String,
    about: String,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        if let Err(e) = queue.heartbeat(&name, &about, interval * 3).await {
            tracing::warn!(error = %e, "cannot refresh the heartbeat");
        }
    }
}

/// `GET /metrics` of a worker (its own counters plus the queue's gauges: the API's page, the
/// same cache, the same token), `/livez` and `/readyz` (Redis answers, the groups joined).
pub(super) async fn serve_metrics(
    listener: tokio::net::TcpListener,
    ctx: Arc<Context>,
    stop: CancellationToken,
) {
    // The queue's gauges are an operators' read: the same `Records` view the API's page uses.
    let records = crate::store::Records::new(Store::clone(&ctx.queue));
    let cache = Arc::new(crate::snapshot::SnapshotCache::new(
        records,
        ctx.settings.clone(),
    ));
    let token = ctx.settings.secrets.metrics_token.clone();
    let app = crate::api::side_listener(cache, token, Store::clone(&ctx.queue), ctx.ready.clone());
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
    {
        tracing::warn!(error = %e, "the metrics endpoint stopped");
    }
}

/// Moves due retries back onto their shard's stream, a few times a second.
pub(super) async fn promote_retries(queue: Queue, shutdown: CancellationToken) {
    const BATCH: usize = 256;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        for shard in queue.shards().all() {
            loop {
                match queue.promote_due(shard, now_ms(), BATCH).await {
                    Ok(moved) if moved == BATCH => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, %shard, "cannot promote due retries");
                        break;
                    }
                }
            }
        }
    }
}
