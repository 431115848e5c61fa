//! What the worker processes share besides the stream: heartbeats, the reaper's claims, the
//! global send-rate lease and the provider's pause. Keys in `keys.rs`, scripts in `lua/`.

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::{StreamClaimReply, StreamInfoConsumersReply};

use super::scripts::SCRIPTS;
use super::stream::parse_entry;
use super::{Entry, GROUP, Store, StoreError};
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

/// The answer to a request for send slots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Redis's clock when it answered, µs since the epoch.
    pub now_us: i64,
    pub grant: Grant,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    /// Slots, each this far after `now_us`.
    Slots(Vec<Duration>),
    /// Nothing within the horizon (rate, or a pause): ask again after this.
    Wait(Duration),
}

/// The GCRA parameters in the script's units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RatePolicy {
    /// µs between two sends at the sustained rate.
    pub interval_us: f64,
    /// How far ahead of the schedule a send may go, µs: (effective burst − 1) × interval.
    pub tolerance_us: f64,
    /// Slots are handed out at most this far ahead, µs.
    pub horizon_us: u64,
}

impl Store {
    /// Says "alive" for `ttl` on every shard, with a short description operators can read.
    pub async fn heartbeat(
        &self,
        name: &str,
        about: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let beats = self.shards.all().map(|shard| async move {
            let key = self.keys(shard).heartbeat(name);
            self.conn()
                .pset_ex::<_, _, ()>(key, about, ttl.as_millis() as u64)
                .await
        });
        for beat in futures_util::future::join_all(beats).await {
            beat?;
        }
        Ok(())
    }

    /// A clean stop: the heartbeat goes at once, so what is still pending is reclaimed at once.
    pub async fn drop_heartbeat(&self, name: &str) -> Result<(), StoreError> {
        for shard in self.shards.all() {
            let _: () = self.conn().del(self.keys(shard).heartbeat(name)).await?;
        }
        Ok(())
    }

    /// A clean stop: leaves the group of every shard where nothing is pending here (what is
    /// pending stays, for the others to reclaim). True if it left them all.
    pub async fn leave_groups(&self, name: &str) -> Result<bool, StoreError> {
        let mut left = true;
        for shard in self.shards.all() {
            left &= self.leave_group(shard, name).await?;
        }
        Ok(left)
    }

    async fn leave_group(&self, shard: Shard, name: &str) -> Result<bool, StoreError> {
        let mut conn = self.conn();
        let jobs = self.keys(shard).jobs();
        let mine: redis::streams::StreamPendingCountReply = redis::cmd("XPENDING")
            .arg(&jobs)
            .arg(GROUP)
            .arg("-")
            .arg("+")
            .arg(1)
            .arg(name)
            .query_async(&mut conn)
            .await?;
        if !mine.ids.is_empty() {
            return Ok(false);
        }
        let _: i64 = redis::cmd("XGROUP")
            .arg("DELCONSUMER")
            .arg(&jobs)
            .arg(GROUP)
            .arg(name)
            .query_async(&mut conn)
            .await?;
        Ok(true)
    }

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

    /// Claims up to `count` entries of `dead` on `shard` for `me` if its heartbeat is still
    /// absent; removes `dead` from that group once it holds nothing there.
    pub async fn reap(
        &self,
        shard: Shard,
        dead: &str,
        me: &str,
        count: usize,
        min_idle: Duration,
    ) -> Result<Vec<Entry>, StoreError> {
        let keys = self.keys(shard);
        let reply: StreamClaimReply = SCRIPTS
            .reap
            .key(keys.jobs())
            .key(keys.heartbeat(dead))
            .arg(GROUP)
            .arg(dead)
            .arg(me)
            .arg(count)
            .arg(min_idle.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|id| parse_entry(shard, id))
            .collect())
    }

    /// Resets the idle time of an entry `me` still owns (waiting for a send slot), so the
    /// `claim_idle` backstop leaves it alone. Returns false if it is no longer ours.
    pub async fn touch(&self, me: &str, shard: Shard, entry_id: &str) -> Result<bool, StoreError> {
        let touched: i64 = SCRIPTS
            .touch
            .key(self.keys(shard).jobs())
            .arg(GROUP)
            .arg(me)
            .arg(entry_id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(touched == 1)
    }

    /// Takes our own entries again (after a failed attempt at them), those still ours: one
    /// another worker reclaimed meanwhile stays theirs. `count_delivery` makes the claim
    /// count as a delivery, which the poison-pill limit reads; a retry after a Redis outage
    /// should not count.
    pub async fn claim_own(
        &self,
        me: &str,
        shard: Shard,
        entry_ids: &[String],
        count_delivery: bool,
    ) -> Result<Vec<Entry>, StoreError> {
        if entry_ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.conn();
        let jobs = self.keys(shard).jobs();
        let mut claim = SCRIPTS.claim_own.prepare_invoke();
        claim
            .key(&jobs)
            .arg(GROUP)
            .arg(me)
            .arg(if count_delivery { "0" } else { "1" })
            .arg(entry_ids);
        if count_delivery {
            let reply: StreamClaimReply = claim.invoke_async(&mut conn).await?;
            let entries = reply.ids.into_iter().map(|id| parse_entry(shard, id));
            return Ok(entries.collect());
        }
        let ids: Vec<String> = claim.invoke_async(&mut conn).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // JUSTID returns no payloads: read them in one pipelined round trip.
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.xrange_count(&jobs, id, id, 1);
        }
        let found: Vec<redis::streams::StreamRangeReply> = pipe.query_async(&mut conn).await?;
        Ok(found
            .into_iter()
            .flat_map(|r| r.ids)
            .map(|id| parse_entry(shard, id))
            .collect())
    }

    /// Up to `want` send slots of the fleet's rate, or how long to wait for one.
    pub async fn lease(&self, policy: &RatePolicy, want: usize) -> Result<Lease, StoreError> {
        let reply: Vec<i64> = SCRIPTS
            .rate
            .key(self.fleet().rate())
            .key(self.fleet().pause())
            .arg(policy.interval_us)
            .arg(policy.tolerance_us)
            .arg(want.max(1))
            .arg(policy.horizon_us)
            .invoke_async(&mut self.conn())
            .await?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        let grant = match reply.as_slice() {
            [0, _, wait] => Grant::Wait(us(*wait)),
            [n, _, offsets @ ..] if *n > 0 && *n as usize == offsets.len() => {
                Grant::Slots(offsets.iter().copied().map(us).collect())
            }
            other => return Err(StoreError::Reply(format!("rate: {other:?}"))),
        };
        Ok(Lease {
            now_us: reply[1],
            grant,
        })
    }

    /// Pauses every worker's sends until `until_ms` (never shortens a pause in force).
    /// Returns the pause's end now in force.
    pub async fn pause(&self, until_ms: i64, now_ms: i64, reason: &str) -> Result<i64, StoreError> {
        Ok(SCRIPTS
            .pause
            .key(self.fleet().pause())
            .arg(until_ms)
            .arg(now_ms)
            .arg(reason)
            .invoke_async(&mut self.conn())
            .await?)
    }

    /// Publishes the limit this worker enforces, for `smsq status` and `redis-cli`.
    pub async fn publish_limit(&self, rate_per_sec: u32, burst: u32) -> Result<(), StoreError> {
        let _: () = self
            .conn()
            .hset_multiple(
                self.fleet().limiter(),
                &[("rate_per_sec", rate_per_sec), ("burst", burst)],
            )
            .await?;
        Ok(())
    }
}
