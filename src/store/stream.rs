//! The send stream from the worker's side: the consumer group, reads of new and pending
//! entries, and reclaiming what other consumers left.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};

use super::{GROUP, Store, StoreError};
use crate::domain::Job;

/// One stream entry, parsed as far as it goes.
#[derive(Debug)]
pub struct Entry {
    pub entry_id: String,
    /// The raw `job` field, kept for the dead-letter record of a poison entry.
    pub raw: String,
    pub job: Result<Job, String>,
    /// Read as new (`>`): delivered once, so `begin` need not count its deliveries.
    pub first_delivery: bool,
}

/// An entry delivered again (reclaimed, resumed, redelivered).
pub(super) fn parse_entry(id: StreamId) -> Entry {
    let raw: Option<String> = id.get("job");
    match raw {
        Some(raw) => Entry {
            job: Job::from_json(&raw),
            raw,
            entry_id: id.id,
            first_delivery: false,
        },
        None => Entry {
            job: Err("stream entry has no `job` field".to_owned()),
            raw: format!("{:?}", id.map.keys().collect::<Vec<_>>()),
            entry_id: id.id,
            first_delivery: false,
        },
    }
}

impl Store {
    /// Creates the consumer group (reading from the start of the stream) unless it exists.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let created: Result<(), redis::RedisError> = self
            .conn()
            .xgroup_create_mkstream(self.keys.jobs(), GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// New entries for `consumer`, blocking up to `block` when there are none.
    pub async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, StoreError> {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count)
            .block(block.as_millis() as usize);
        self.read_with(conn, ">", &options).await
    }

    /// Entries already delivered to `consumer` and not acked, after id `from` (`"0"` = all).
    pub async fn read_from(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count);
        self.read_with(conn, from, &options).await
    }

    async fn read_with(
        &self,
        conn: &mut MultiplexedConnection,
        start: &str,
        options: &StreamReadOptions,
    ) -> Result<Vec<Entry>, StoreError> {
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[self.keys.jobs()], &[start], options)
            .await?;
        let first_delivery = start == ">";
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(|id| Entry {
                first_delivery,
                ..parse_entry(id)
            })
            .collect())
    }

    /// Takes over entries that other consumers left pending for `min_idle` (crashed workers).
    pub async fn claim_idle(
        &self,
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
                    self.keys.jobs(),
                    GROUP,
                    consumer,
                    min_idle.as_millis() as u64,
                    &start,
                    StreamAutoClaimOptions::default().count(count),
                )
                .await?;
            claimed.extend(reply.claimed.into_iter().map(parse_entry));
            if reply.next_stream_id == "0-0" || claimed.len() >= count {
                return Ok(claimed);
            }
            start = reply.next_stream_id;
        }
    }
}
