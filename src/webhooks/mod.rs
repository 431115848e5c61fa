//! Webhooks to the app: every status change of a code or message the app cares about
//! (`code.sent`, `code.delivered`, `code.verified`, `job.dead`, …) POSTed, signed, to each
//! configured endpoint that wants it. At least once: the fan-out copies each event from the
//! shard's events stream into each endpoint's queue in Redis before it acks the entry, and
//! a delivery leaves its queue only on a 2xx (or, past `webhooks.max_age_secs`, into the
//! dead set for `smsq webhooks replay`). It runs in the workers beside the send pool, on its
//! own tasks, client and connection budget, so a slow or dead endpoint never slows sending.

mod deliver;
mod event;
mod sign;

pub use event::WebhookEvent;
pub use sign::{HEADER, signature, verify};

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{ConfigError, Endpoint, Settings};
use crate::domain::{Secret, now_ms};
use crate::store::{Hooks, StoreError};

/// How often the fan-out looks for new events when there were none (one cheap read per
/// shard), and for those a dead dispatcher left unacked.
const POLL: Duration = Duration::from_millis(100);
const ORPHANS_EVERY: Duration = Duration::from_secs(10);
const ORPHANED_AFTER: Duration = Duration::from_secs(60);

/// An endpoint with what delivering to it needs.
pub(crate) struct Target {
    pub endpoint: Endpoint,
    pub secret: Secret,
}

pub struct Dispatcher {
    hooks: Hooks,
    settings: Arc<Settings>,
    targets: Vec<Arc<Target>>,
    consumer: String,
}

impl Dispatcher {
    /// `None` when no endpoint is configured; an endpoint without its secret is an error
    /// that names the variable.
    pub fn new(
        settings: Arc<Settings>,
        hooks: Hooks,
        consumer: String,
    ) -> Result<Option<Self>, ConfigError> {
        let mut targets = Vec::new();
        for endpoint in &settings.webhooks.endpoints {
            let secret = settings.secrets.webhook_secret(endpoint)?;
            targets.push(Arc::new(Target {
                endpoint: endpoint.clone(),
                secret,
            }));
        }
        if targets.is_empty() {
            return Ok(None);
        }
        Ok(Some(Self {
            hooks,
            settings,
            targets,
            consumer,
        }))
    }

    /// The `webhooks` group on every events stream, from now on.
    pub async fn prepare(&self) -> Result<(), StoreError> {
        self.hooks.ensure_event_groups().await
    }

    /// Fans out and delivers until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let client = match deliver::client(&self.settings.webhooks) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "webhooks off: cannot build their HTTP client");
                return;
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        for target in &self.targets {
            let d = deliver::Deliverer::new(
                self.hooks.clone(),
                target.clone(),
                &self.settings.webhooks,
                client.clone(),
            );
            tasks.spawn(d.run(stop.clone()));
        }
        self.fan_out(stop).await;
        while tasks.join_next().await.is_some() {}
    }

    async fn fan_out(&self, stop: CancellationToken) {
        // `prepare` made the groups; a Redis that restarted empty since needs them again.
        let mut ready = true;
        // Entries delivered to us and not acked are read again (`"0"`) only when there can be
        // some: at start, after a failed round, after claiming orphans. Otherwise only new ones.
        let mut own = true;
        let mut next_orphans = tokio::time::Instant::now();
        while !stop.is_cancelled() {
            let round = async {
                if !ready {
                    self.hooks.ensure_event_groups().await?;
                    ready = true;
                }
                let mut entries = match self.hooks.read_events(&self.consumer, 100, own).await {
                    Err(e) if e.is_missing_group() => {
                        ready = false;
                        return Err(e);
                    }
                    other => other?,
                };
                if own && entries.is_empty() {
                    own = false;
                }
                if tokio::time::Instant::now() >= next_orphans {
                    next_orphans += ORPHANS_EVERY;
                    let orphans = self
                        .hooks
                        .claim_orphaned(&self.consumer, 100, ORPHANED_AFTER);
                    entries.extend(orphans.await?);
                }
                for entry in &entries {
                    self.fan_out_one(entry).await?;
                }
                self.hooks.ack_events(&entries).await?;
                Ok::<_, StoreError>(entries.len())
            };
            let wait = match round.await {
                Ok(0) => POLL,
                Ok(_) => Duration::ZERO,
                Err(e) => {
                    own = true;
                    tracing::warn!(error = %e, "webhooks: cannot read the events");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// Queues one entry's event for every endpoint that wants it (nothing, if it is not
    /// one the app hears of).
    async fn fan_out_one(&self, entry: &crate::store::hooks::EventEntry) -> Result<(), StoreError> {
        let Some(job_id) = &entry.job_id else {
            return Ok(());
        };
        let Some(job) = self.hooks.job_fields(job_id).await? else {
            return Ok(());
        };
        let Some((kind, event)) = WebhookEvent::of(entry, &job) else {
            return Ok(());
        };
        let payload = serde_json::to_string(&event).expect("a plain struct serializes");
        for target in self
            .targets
            .iter()
            .filter(|t| t.endpoint.events.wants(kind))
        {
            let name = &target.endpoint.name;
            self.hooks
                .add_delivery(name, &event.id, &payload, now_ms())
                .await?;
        }
        Ok(())
    }
}
