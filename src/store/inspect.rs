//! Reading the queue's state for operators, in a bounded number of round trips whatever the
//! backlog: counts and the oldest pending entries, never a scan of job records.

use std::collections::BTreeMap;

use redis::Value;
use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply};

use super::{ConsumerState, GROUP, Store, StoreError};

/// How many of the oldest pending entries are looked at (ages, delivery counts).
pub const PENDING_SAMPLE: usize = 100;

/// The queue as Redis holds it right now. Times are Redis's clock.
#[derive(Debug, Clone, Default)]
pub struct QueueState {
    pub now_ms: i64,
    pub backlog: u64,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    pub pending: u64,
    /// The oldest pending entries: (entry id, consumer, idle ms, deliveries).
    pub oldest_pending: Vec<(String, String, u64, u64)>,
    pub consumers: Vec<ConsumerState>,
    pub retry_waiting: u64,
    pub next_retry_due_ms: Option<i64>,
    pub dead_letters: u64,
    /// The limit the workers publish: (rate per second, burst).
    pub limit: Option<(u32, u32)>,
    /// GCRA state: the next send's theoretical time, µs.
    pub rate_tat_us: Option<i64>,
    /// `(until ms, provider code)` while paused.
    pub pause: Option<(i64, String)>,
    /// Outcome counts per minute, newest first: `minutes[0]` is the current minute.
    pub minutes: Vec<BTreeMap<String, u64>>,
}

impl Store {
    /// One snapshot of the queue: four round trips at most.
    pub async fn inspect(&self, minutes: usize) -> Result<QueueState, StoreError> {
        let k = &self.keys;
        let mut conn = self.conn();
        let (time, backlog, has_group): (Vec<i64>, u64, bool) = redis::pipe()
            .cmd("TIME")
            .xlen(k.jobs())
            .exists(k.jobs())
            .query_async(&mut conn)
            .await?;
        let now_ms =
            time.first().copied().unwrap_or(0) * 1000 + time.get(1).copied().unwrap_or(0) / 1000;
        let mut pipe = redis::pipe();
        pipe.zcard(k.retry())
            .zrange_withscores(k.retry(), 0, 0)
            .xlen(k.dead())
            .hgetall(k.limiter())
            .get(k.rate())
            .get(k.pause());
        for m in 0..minutes as i64 {
            pipe.hgetall(k.stats(now_ms / 60_000 - m));
        }
        let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
        let mut state = QueueState {
            now_ms,
            backlog,
            ..QueueState::default()
        };
        read_counts(&mut state, replies)?;
        if has_group {
            self.inspect_group(&mut state).await?;
        }
        Ok(state)
    }

    async fn inspect_group(&self, state: &mut QueueState) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(self.keys.jobs())
            .query_async(&mut conn)
            .await?;
        let Some(group) = groups.groups.into_iter().find(|g| g.name == GROUP) else {
            return Ok(());
        };
        state.lag = group.lag.map(|l| l as u64);
        state.pending = group.pending as u64;
        let oldest: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(self.keys.jobs())
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(PENDING_SAMPLE)
            .query_async(&mut conn)
            .await?;
        state.oldest_pending = oldest
            .ids
            .into_iter()
            .map(|p| {
                let (idle, times) = (p.last_delivered_ms as u64, p.times_delivered as u64);
                (p.id, p.consumer, idle, times)
            })
            .collect();
        state.consumers = self.consumers().await?;
        Ok(())
    }
}

fn parse<T: redis::FromRedisValue>(value: Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(|e| StoreError::Reply(e.to_string()))
}

fn read_counts(state: &mut QueueState, replies: Vec<Value>) -> Result<(), StoreError> {
    let mut it = replies.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| StoreError::Reply("short pipeline".into()))
    };
    state.retry_waiting = parse(next()?)?;
    let first: Vec<(String, f64)> = parse(next()?)?;
    state.next_retry_due_ms = first.first().map(|(_, due)| *due as i64);
    state.dead_letters = parse(next()?)?;
    let limit: BTreeMap<String, u32> = parse(next()?)?;
    state.limit = limit
        .get("rate_per_sec")
        .zip(limit.get("burst"))
        .map(|(r, b)| (*r, *b));
    let tat: Option<String> = parse(next()?)?;
    state.rate_tat_us = tat.and_then(|t| t.parse().ok());
    let pause: Option<String> = parse(next()?)?;
    state.pause = pause.and_then(|p| {
        let (until, code) = p.split_once(' ')?;
        Some((until.parse().ok()?, code.to_owned()))
    });
    for reply in it {
        state.minutes.push(parse(reply)?);
    }
    Ok(())
}
