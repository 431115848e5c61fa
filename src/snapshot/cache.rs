//! The snapshot behind `/metrics`, shared by every scrape within a second.

use super::Snapshot;
use crate::config::Settings;
use crate::store::Records;

/// How old a snapshot `/metrics` may serve.
pub const SCRAPE_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// The snapshot behind `/metrics`, taken at most once per [`SCRAPE_FRESH_FOR`] whoever
/// scrapes and however often: a scrape within that time gets the same one, and scrapes that
/// arrive together wait for one snapshot rather than each taking their own. `/metrics` needs
/// no token by default, so this is what keeps a flood of scrapes from costing Redis more
/// than one snapshot (a few dozen commands per shard) a second.
pub struct SnapshotCache {
    store: Records,
    settings: std::sync::Arc<Settings>,
    last: tokio::sync::Mutex<Option<(std::time::Instant, Option<Snapshot>)>>,
}

impl SnapshotCache {
    pub fn new(store: Records, settings: std::sync::Arc<Settings>) -> Self {
        Self {
            store,
            settings,
            last: tokio::sync::Mutex::new(None),
        }
    }

    /// A snapshot at most [`SCRAPE_FRESH_FOR`] old; `None` when Redis did not answer then.
    pub async fn get(&self) -> Option<Snapshot> {
        let mut last = self.last.lock().await;
        if let Some((at, snapshot)) = last.as_ref()
            && at.elapsed() < SCRAPE_FRESH_FOR
        {
            return snapshot.clone();
        }
        let taken = Snapshot::take(&self.store, &self.settings).await;
        if let Err(e) = &taken {
            tracing::warn!(error = %e, "metrics without queue gauges: redis unreachable");
        }
        let snapshot = taken.ok();
        *last = Some((std::time::Instant::now(), snapshot.clone()));
        snapshot
    }
}
