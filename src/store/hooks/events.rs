//! The events streams as the dispatcher reads them: new entries through the `webhooks`
//! group, ours again after a restart, and those a dead dispatcher left behind.

use std::collections::HashMap;
use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};

use super::{EVENTS_GROUP, Hooks};
use crate::domain::{JobId, Shard};
use crate::store::StoreError;
use crate::store::records::{Stored, as_text};

/// One entry of a shard's events stream: a job's status change (or a verification).
#[derive(Debug, Clone)]
pub struct EventEntry {
    pub shard: Shard,
    pub entry_id: String,
    /// `None` for entries that are not a job's (a user's reply).
    pub job_id: Option<JobId>,
    pub status: String,
    pub attempt: u32,
    pub ts_ms: i64,
}

fn parse(shard: Shard, id: StreamId) -> EventEntry {
    let text = |k: &str| id.get::<String>(k).unwrap_or_default();
    EventEntry {
        shard,
        job_id: JobId::parse(&text("id")),
        status: text("status"),
        attempt: text("attempt").parse().unwrap_or(0),
        ts_ms: text("ts").parse().unwrap_or(0),
        entry_id: id.id,
    }
}

impl Hooks {
    /// The `webhooks` group on every shard's events stream, from now on (events before the
    /// first dispatcher started are not delivered).
    pub async fn ensure_event_groups(&self) -> Result<(), StoreError> {
        for shard in self.shards().all() {
            let created: Result<(), redis::RedisError> = self
                .conn()
                .xgroup_create_mkstream(self.keys(shard).events(), EVENTS_GROUP, "$")
                .await;
            match created {
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// Entries another dispatcher took and left unacked for `idle` (it died), now ours.
    pub async fn claim_orphaned(
        &self,
        consumer: &str,
        count: usize,
        idle: Duration,
    ) -> Result<Vec<EventEntry>, StoreError> {
        let mut out = Vec::new();
        for shard in self.shards().all() {
            let claimed: redis::streams::StreamAutoClaimReply = self
                .conn()
                .xautoclaim_options(
                    self.keys(shard).events(),
                    EVENTS_GROUP,
                    consumer,
                    idle.as_millis() as u64,
                    "0-0",
                    StreamAutoClaimOptions::default().count(count),
                )
                .await?;
            out.extend(claimed.claimed.into_iter().map(|id| parse(shard, id)));
        }
        Ok(out)
    }

    /// Up to `count` entries per shard for `consumer`: with `own`, those already delivered to
    /// it and not acked (`"0"`: after a restart with the same name, a fan-out that failed
    /// half way, or orphans it claimed); else new ones (`">"`).
    pub async fn read_events(
        &self,
        consumer: &str,
        count: usize,
        own: bool,
    ) -> Result<Vec<EventEntry>, StoreError> {
        let start = if own { "0" } else { ">" };
        let options = StreamReadOptions::default()
            .group(EVENTS_GROUP, consumer)
            .count(count);
        let mut out = Vec::new();
        for shard in self.shards().all() {
            let key = self.keys(shard).events();
            let reply: Option<StreamReadReply> = self
                .conn()
                .xread_options(&[&key], &[start], &options)
                .await?;
            out.extend(
                reply
                    .into_iter()
                    .flat_map(|r| r.keys)
                    .flat_map(|k| k.ids)
                    .map(|id| parse(shard, id)),
            );
        }
        Ok(out)
    }

    /// Acks `entries`: one `XACK` per shard.
    pub async fn ack_events(&self, entries: &[EventEntry]) -> Result<(), StoreError> {
        for shard in self.shards().all() {
            let ids: Vec<&str> = entries
                .iter()
                .filter(|e| e.shard == shard)
                .map(|e| e.entry_id.as_str())
                .collect();
            if ids.is_empty() {
                continue;
            }
            let _: i64 = self
                .conn()
                .xack(self.keys(shard).events(), EVENTS_GROUP, &ids)
                .await?;
        }
        Ok(())
    }

    /// What a webhook says about a job besides its new status, from its record: kind,
    /// purpose, masked mobile, request id. `None` once the record has expired.
    pub async fn job_fields(
        &self,
        id: &JobId,
    ) -> Result<Option<HashMap<String, String>>, StoreError> {
        let key = self.keys(self.shards().of_job(id)).job(id.as_str());
        let h = as_text(self.conn().hgetall(key).await?);
        let stored = Stored(&h);
        if !stored.exists() {
            return Ok(None);
        }
        let mut fields = HashMap::from([
            ("kind".to_owned(), stored.kind().to_owned()),
            ("mobile".to_owned(), stored.mobile()),
        ]);
        fields.extend(stored.purpose().map(|p| ("purpose".to_owned(), p)));
        fields.extend(stored.request_id().map(|r| ("request_id".to_owned(), r)));
        Ok(Some(fields))
    }
}
