//! Who is in a shard's consumer group, and whether each one's heartbeat is there: read by
//! the worker's reaper (whose entries to take over) and by operators (`smsq status`).

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::StreamInfoConsumersReply;

use super::{GROUP, Store, StoreError};
use crate::domain::Shard;

/// A consumer of the group and whether its heartbeat is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerState {
    pub name: String,
    pub pending: usize,
    /// Since the consumer last read or claimed, as Redis counts it.
    pub idle: Duration,
    pub alive: bool,
}

impl Store {
    /// Every consumer of one shard's group, with its heartbeat there: two round trips
    /// however many.
    pub async fn consumers(&self, shard: Shard) -> Result<Vec<ConsumerState>, StoreError> {
        let mut conn = self.conn();
        let keys = self.keys(shard);
        let info: StreamInfoConsumersReply = conn.xinfo_consumers(keys.jobs(), GROUP).await?;
        let mut pipe = redis::pipe();
        for c in &info.consumers {
            pipe.exists(keys.heartbeat(&c.name));
        }
        let alive: Vec<bool> = if info.consumers.is_empty() {
            Vec::new()
        } else {
            pipe.query_async(&mut conn).await?
        };
        Ok(info
            .consumers
            .into_iter()
            .zip(alive)
            .map(|(c, alive)| ConsumerState {
                name: c.name,
                pending: c.pending,
                idle: Duration::from_millis(c.idle as u64),
                alive,
            })
            .collect())
    }
}
