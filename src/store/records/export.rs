//! What `smsq export` reads: the events stream of a shard after a cursor, whether events
//! after it were trimmed before they were read, and the follower's cursor in Redis.

use redis::AsyncCommands;

use super::Records;
use crate::domain::{EntryId, Shard};
use crate::store::StoreError;

/// What `XINFO STREAM` says of the events stream.
#[derive(Debug, Clone, Copy)]
pub struct StreamCounts {
    /// Entries ever added (Redis 7's `entries-added`).
    pub added: u64,
    pub length: u64,
    pub first: Option<EntryId>,
    pub last: Option<EntryId>,
}

/// One entry of the events stream.
#[derive(Debug, Clone)]
pub struct Event {
    pub entry: EntryId,
    /// `None` for an entry that is no job's (a user's reply).
    pub job_id: Option<String>,
    pub status: String,
    pub ts: i64,
}

impl Records {
    /// Up to `count` events of `shard` after `after` (`None`: from the oldest kept).
    pub async fn events_after(
        &self,
        shard: Shard,
        after: Option<EntryId>,
        count: usize,
    ) -> Result<Vec<Event>, StoreError> {
        let start = after.map_or_else(|| "-".to_owned(), |a| format!("({a}"));
        let reply: redis::streams::StreamRangeReply = self
            .conn()
            .xrange_count(self.keys(shard).events(), start, "+", count)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .filter_map(|e| {
                let text = |name: &str| e.get::<String>(name);
                Some(Event {
                    entry: EntryId::parse(&e.id)?,
                    job_id: text("id").filter(|id| id != "inbound"),
                    status: text("status").unwrap_or_default(),
                    ts: text("ts").and_then(|t| t.parse().ok()).unwrap_or(0),
                })
            })
            .collect())
    }

    /// The newest event of `shard` (where a follower that starts "from now" begins).
    pub async fn newest_event(&self, shard: Shard) -> Result<Option<EntryId>, StoreError> {
        let reply: redis::streams::StreamRangeReply = self
            .conn()
            .xrevrange_count(self.keys(shard).events(), "+", "-", 1)
            .await?;
        Ok(reply.ids.first().and_then(|e| EntryId::parse(&e.id)))
    }

    /// The events stream's counts (`XINFO STREAM`): how many entries were ever added, how
    /// many it holds, its oldest and newest. `None` before the first event.
    pub async fn event_counts(&self, shard: Shard) -> Result<Option<StreamCounts>, StoreError> {
        let key = self.keys(shard).events();
        if !self.conn().exists::<_, bool>(&key).await? {
            return Ok(None);
        }
        let info: redis::Value = redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&key)
            .query_async(&mut self.conn())
            .await?;
        let pairs: Vec<(String, redis::Value)> = match info {
            redis::Value::Map(m) => m
                .into_iter()
                .filter_map(|(k, v)| Some((redis::from_redis_value(k).ok()?, v)))
                .collect(),
            redis::Value::Array(a) => a
                .chunks_exact(2)
                .filter_map(|kv| {
                    Some((redis::from_redis_value(kv[0].clone()).ok()?, kv[1].clone()))
                })
                .collect(),
            _ => Vec::new(),
        };
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let number = |name: &str| get(name).and_then(|v| redis::from_redis_value::<u64>(v).ok());
        let id = |name: &str| {
            get(name)
                .and_then(|v| redis::from_redis_value::<String>(v).ok())
                .and_then(|id| EntryId::parse(&id))
        };
        let first = match get("first-entry") {
            Some(redis::Value::Array(entry)) => entry
                .first()
                .cloned()
                .and_then(|v| redis::from_redis_value::<String>(v).ok())
                .and_then(|id| EntryId::parse(&id)),
            _ => None,
        };
        Ok(Some(StreamCounts {
            added: number("entries-added").unwrap_or(0),
            length: number("length").unwrap_or(0),
            first,
            last: id("last-generated-id"),
        }))
    }

    /// The cursor a follower named `name` saved for `shard`: the last event it is done with
    /// and, when it was the newest then, how many events had been added up to it.
    pub async fn export_cursor(
        &self,
        shard: Shard,
        name: &str,
    ) -> Result<Option<(EntryId, Option<u64>)>, StoreError> {
        let saved: Option<String> = self.conn().get(self.keys(shard).export(name)).await?;
        Ok(saved.and_then(|s| {
            let (id, added) = s.split_once(' ').unwrap_or((s.as_str(), ""));
            Some((EntryId::parse(id)?, added.parse().ok()))
        }))
    }

    /// Saves it, kept as long as job records (a follower stopped longer starts afresh).
    pub async fn save_export_cursor(
        &self,
        shard: Shard,
        name: &str,
        at: EntryId,
        added: Option<u64>,
    ) -> Result<(), StoreError> {
        let ttl = self.retention.status_ttl_secs;
        let value = match added {
            Some(n) => format!("{at} {n}"),
            None => at.to_string(),
        };
        let _: () = self
            .conn()
            .set_ex(self.keys(shard).export(name), value, ttl)
            .await?;
        Ok(())
    }
}
