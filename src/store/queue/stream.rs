//! The send stream from the worker's side: the consumer group, reads of new and pending
//! entries, and reclaiming what other consumers left.

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};

use super::Queue;
use crate::domain::{Job, Shard};
use crate::store::{Conn, GROUP, StoreError};

/// One stream entry, parsed as far as it goes.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The shard whose stream it is on: every transition of its job runs there.
    pub shard: Shard,
    pub entry_id: String,
    /// The raw `job` field, kept for the dead-letter record of a poison entry.
    pub raw: String,
    pub job: Result<Job, String>,
    /// Read as new (`>`): delivered once, so `begin` need not count its deliveries.
    pub first_delivery: bool,
}

/// An entry delivered again (reclaimed, resumed, redelivered).
pub(super) fn parse_entry(shard: Shard, id: StreamId) -> Entry {
    let raw: Option<String> = id.get("job");
    let (job, raw) = match raw {
        Some(raw) => (Job::from_json(&raw), raw),
        None => (
            Err("stream entry has no `job` field".to_owned()),
            format!("{:?}", id.map.keys().collect::<Vec<_>>()),
        ),
    };
    Entry {
        shard,
        entry_id: id.id,
        raw,
        job,
        first_delivery: false,
    }
}

impl Queue {
    /// Creates the consumer group of every shard (reading from the start of the stream)
    /// unless it exists.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        for shard in self.shards().all() {
            let created: Result<(), redis::RedisError> = self
                .conn()
                .xgroup_create_mkstream(self.keys(shard).jobs(), GROUP, "0")
                .await;
            match created {
                Err(e) if e.code() == Some("BUSYGROUP") => {}
                other => other?,
            }
        }
        Ok(())
    }

    /// New entries of `shard` for `consumer`, blocking up to `block` when there are none
    /// (`None`: do not block).
    pub async fn read(
        &self,
        conn: &mut Conn,
        shard: Shard,
        consumer: &str,
        count: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        self.read_with(conn, shard, ">", &options).await
    }

    /// New entries of several shards in one read (one Redis only: Redis Cluster refuses a
    /// read across slots), up to `count_each` from each, blocking up to `block` when every
    /// one of them is empty. The entries come shard by shard, in the order of `shards`.
    pub async fn read_shards(
        &self,
        conn: &mut Conn,
        shards: &[Shard],
        consumer: &str,
        count_each: usize,
        block: Option<Duration>,
    ) -> Result<Vec<Entry>, StoreError> {
        let keys: Vec<String> = shards.iter().map(|&s| self.keys(s).jobs()).collect();
        let starts = vec![">"; keys.len()];
        let mut options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count_each);
        if let Some(block) = block {
            options = options.block(block.as_millis() as usize);
        }
        let reply: Option<StreamReadReply> = conn.xread_options(&keys, &starts, &options).await?;
        let mut by_shard: Vec<(usize, Vec<Entry>)> = Vec::new();
        for stream in reply.into_iter().flat_map(|r| r.keys) {
            let Some(at) = keys.iter().position(|k| *k == stream.key) else {
                return Err(StoreError::Reply(format!(
                    "a read of the send streams answered for {:?}",
                    stream.key
                )));
            };
            let entries = stream.ids.into_iter().map(|id| Entry {
                first_delivery: true,
                ..parse_entry(shards[at], id)
            });
            by_shard.push((at, entries.collect()));
        }
        by_shard.sort_by_key(|(at, _)| *at);
        Ok(by_shard.into_iter().flat_map(|(_, e)| e).collect())
    }

    /// Entries already delivered to `consumer` and not acked, after id `from` (`"0"` = all).
    pub async fn read_from(
        &self,
        conn: &mut Conn,
        shard: Shard,
        consumer: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count);
        self.read_with(conn, shard, from, &options).await
    }

    async fn read_with(
        &self,
        conn: &mut Conn,
        shard: Shard,
        start: &str,
        options: &StreamReadOptions,
    ) -> Result<Vec<Entry>, StoreError> {
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[self.keys(shard).jobs()], &[start], options)
            .await?;
        let first_delivery = start == ">";
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|id| Entry {
                first_delivery,
                ..parse_entry(shard, id)
            })
            .collect())
    }

    /// Takes over entries that other consumers left pending for `min_idle` (crashed workers).
    pub async fn claim_idle(
        &self,
        shard: Shard,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut start = "0-0".to_owned();
        let mut claimed = Vec::new();
        loop {
            let reply: redis::streams::StreamAutoClaimReply = self
                .conn()
                .xautoclaim_options(
                    self.keys(shard).jobs(),
                    GROUP,
                    consumer,
                    min_idle.as_millis() as u64,
                    &start,
                    StreamAutoClaimOptions::default().count(count),
                )
                .await?;
            claimed.extend(reply.claimed.into_iter().map(|id| parse_entry(shard, id)));
            if reply.next_stream_id == "0-0" || claimed.len() >= count {
                return Ok(claimed);
            }
            start = reply.next_stream_id;
        }
    }
}
