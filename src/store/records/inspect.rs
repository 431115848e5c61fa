//! Reading the queue's state for operators, in a bounded number of round trips whatever the
//! backlog: counts and the oldest pending entries, never a scan of job records.

use std::collections::BTreeMap;

use redis::Value;
use redis::streams::{StreamInfoGroupsReply, StreamPendingCountReply};

use super::Records;
use crate::domain::Shard;
use crate::store::{ConsumerState, GROUP, StoreError};

/// How many of the oldest pending entries are looked at (ages, delivery counts).
pub const PENDING_SAMPLE: usize = 100;

/// The queue as Redis holds it right now, summed over the shards. Times are Redis's clock.
#[derive(Debug, Clone, Default)]
pub struct QueueState {
    pub now_ms: i64,
    pub backlog: u64,
    /// Entries not yet delivered to the group (`None` when Redis cannot tell).
    pub lag: Option<u64>,
    pub pending: u64,
    /// The oldest pending entries of every shard, oldest first: (entry id, consumer, idle
    /// ms, deliveries).
    pub oldest_pending: Vec<(String, String, u64, u64)>,
    /// Each consumer once, its pending entries summed over the shards.
    pub consumers: Vec<ConsumerState>,
    pub retry_waiting: u64,
    pub next_retry_due_ms: Option<i64>,
    pub dead_letters: u64,
    /// Per shard, shard 0 first: (backlog, pending, waiting retries).
    pub shards: Vec<(u64, u64, u64)>,
    /// The limit the workers publish: (rate per second, burst).
    pub limit: Option<(u32, u32)>,
    /// GCRA state: the next send's theoretical time, µs.
    pub rate_tat_us: Option<i64>,
    /// `(until ms, provider code)` while paused.
    pub pause: Option<(i64, String)>,
    /// Outcome counts per minute, newest first: `minutes[0]` is the current minute.
    pub minutes: Vec<BTreeMap<String, u64>>,
    /// Redis's `maxmemory-policy` (`None` when Redis will not say: `CONFIG` renamed or denied).
    pub maxmemory_policy: Option<String>,
    /// Redis's `used_memory` and `maxmemory` (0: no limit), when one server answers.
    pub memory: Option<(u64, u64)>,
    /// About how many job records Redis holds (see [`crate::store::Store::retained_jobs`]).
    pub retained_jobs: Option<u64>,
}

impl Records {
    /// One snapshot of the queue: one round trip for what the fleet shares, then four per
    /// shard at most, the shards in parallel.
    pub async fn inspect(&self, minutes: usize) -> Result<QueueState, StoreError> {
        let k = self.fleet();
        let (time, limit, tat, pause): (
            Vec<i64>,
            BTreeMap<String, u32>,
            Option<String>,
            Option<String>,
        ) = redis::pipe()
            .cmd("TIME")
            .hgetall(k.limiter())
            .get(k.rate())
            .get(k.pause())
            .query_async(&mut self.conn())
            .await?;
        let now_ms =
            time.first().copied().unwrap_or(0) * 1000 + time.get(1).copied().unwrap_or(0) / 1000;
        let shards = self
            .shards
            .all()
            .map(|shard| self.inspect_shard(shard, now_ms, minutes));
        let mut state = QueueState {
            now_ms,
            lag: Some(0),
            limit: limit
                .get("rate_per_sec")
                .zip(limit.get("burst"))
                .map(|(r, b)| (*r, *b)),
            rate_tat_us: tat.and_then(|t| t.parse().ok()),
            pause: pause.and_then(|p| {
                let (until, code) = p.split_once(' ')?;
                Some((until.parse().ok()?, code.to_owned()))
            }),
            minutes: vec![BTreeMap::new(); minutes],
            ..QueueState::default()
        };
        for shard in futures_util::future::join_all(shards).await {
            add(&mut state, shard?);
        }
        state
            .oldest_pending
            .sort_by_key(|(id, ..)| crate::domain::EntryId::parse(id));
        state.oldest_pending.truncate(PENDING_SAMPLE);
        state.maxmemory_policy = self.maxmemory_policy().await;
        state.memory = self.memory().await;
        state.retained_jobs = self.retained_jobs(state.now_ms).await.ok();
        Ok(state)
    }

    async fn inspect_shard(
        &self,
        shard: Shard,
        now_ms: i64,
        minutes: usize,
    ) -> Result<QueueState, StoreError> {
        let k = self.keys(shard);
        let mut pipe = redis::pipe();
        pipe.xlen(k.jobs())
            .exists(k.jobs())
            .zcard(k.retry())
            .zrange_withscores(k.retry(), 0, 0)
            .xlen(k.dead());
        for m in 0..minutes as i64 {
            pipe.hgetall(k.stats(now_ms / 60_000 - m));
        }
        let replies: Vec<Value> = pipe.query_async(&mut self.conn()).await?;
        let mut state = read_counts(replies)?;
        if state.lag.is_some() {
            self.inspect_group(shard, &mut state).await?;
        }
        Ok(state)
    }

    async fn inspect_group(&self, shard: Shard, state: &mut QueueState) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let jobs = self.keys(shard).jobs();
        let groups: StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg(&jobs)
            .query_async(&mut conn)
            .await?;
        let Some(group) = groups.groups.into_iter().find(|g| g.name == GROUP) else {
            state.lag = Some(state.backlog);
            return Ok(());
        };
        state.lag = group.lag.map(|l| l as u64);
        state.pending = group.pending as u64;
        let oldest: StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&jobs)
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
        state.consumers = self.consumers(shard).await?;
        Ok(())
    }
}

/// Adds one shard's counts (a `QueueState` with the fleet's fields left empty) to the total.
fn add(total: &mut QueueState, shard: QueueState) {
    total.backlog += shard.backlog;
    total.lag = total.lag.zip(shard.lag).map(|(a, b)| a + b);
    total.pending += shard.pending;
    total.oldest_pending.extend(shard.oldest_pending);
    for c in shard.consumers {
        match total.consumers.iter_mut().find(|t| t.name == c.name) {
            Some(t) => {
                t.pending += c.pending;
                t.idle = t.idle.min(c.idle);
                // Its heartbeat is written to every shard at once: present on one is alive.
                t.alive |= c.alive;
            }
            None => total.consumers.push(c),
        }
    }
    total.retry_waiting += shard.retry_waiting;
    total.next_retry_due_ms = match (total.next_retry_due_ms, shard.next_retry_due_ms) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    total.dead_letters += shard.dead_letters;
    total
        .shards
        .push((shard.backlog, shard.pending, shard.retry_waiting));
    for (sum, minute) in total.minutes.iter_mut().zip(shard.minutes) {
        for (outcome, n) in minute {
            *sum.entry(outcome).or_default() += n;
        }
    }
}

fn parse<T: redis::FromRedisValue>(value: Value) -> Result<T, StoreError> {
    redis::from_redis_value(value).map_err(|e| StoreError::Reply(e.to_string()))
}

/// The shard's counts pipeline; `lag` is `Some` (to be filled in) when the stream exists.
fn read_counts(replies: Vec<Value>) -> Result<QueueState, StoreError> {
    let mut it = replies.into_iter();
    let mut next = || {
        it.next()
            .ok_or_else(|| StoreError::Reply("short pipeline".into()))
    };
    let mut state = QueueState {
        backlog: parse(next()?)?,
        ..QueueState::default()
    };
    let exists: bool = parse(next()?)?;
    state.lag = exists.then_some(0);
    state.retry_waiting = parse(next()?)?;
    let first: Vec<(String, f64)> = parse(next()?)?;
    state.next_retry_due_ms = first.first().map(|(_, due)| *due as i64);
    state.dead_letters = parse(next()?)?;
    for reply in it {
        state.minutes.push(parse(reply)?);
    }
    Ok(state)
}
