//! What the worker processes share besides the stream and the rate: heartbeats, leaving the
//! group cleanly, and taking entries over (the reaper's claims, our own entries back).

use std::time::Duration;

use redis::AsyncCommands;
use redis::streams::StreamClaimReply;

use super::stream::parse_entry;
use super::{Entry, Queue};
use crate::domain::Shard;
use crate::store::script::script;
use crate::store::{GROUP, StoreError};

script! {
    /// Claims a dead consumer's entries while its heartbeat stays absent.
    struct ReapCall<'a> = include_str!("reap.lua");
    keys { stream, heartbeat }
    argv { group: &'a str, dead: &'a str, me: &'a str, count: usize, min_idle: u64 }
}

script! {
    /// Resets the idle time of an entry we still own.
    struct TouchCall<'a> = include_str!("touch.lua");
    keys { stream }
    argv { group: &'a str, me: &'a str, entry_id: &'a str }
}

script! {
    /// Takes back those of our entries still pending with us.
    struct ClaimOwnCall<'a> = include_str!("claim_own.lua");
    keys { stream }
    argv { group: &'a str, me: &'a str, justid: &'a str }
    rest { entry_ids: &'a [String] }
}

impl Queue {
    /// Says "alive" for `ttl` on every shard, with a short description operators can read.
    pub async fn heartbeat(
        &self,
        name: &str,
        about: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let beats = self.shards().all().map(|shard| async move {
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
        for shard in self.shards().all() {
            let _: () = self.conn().del(self.keys(shard).heartbeat(name)).await?;
        }
        Ok(())
    }

    /// A clean stop: leaves the group of every shard where nothing is pending here (what is
    /// pending stays, for the others to reclaim). True if it left them all.
    pub async fn leave_groups(&self, name: &str) -> Result<bool, StoreError> {
        let mut left = true;
        for shard in self.shards().all() {
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
        let reply: StreamClaimReply = ReapCall {
            stream: keys.jobs(),
            heartbeat: keys.heartbeat(dead),
            group: GROUP,
            dead,
            me,
            count,
            min_idle: min_idle.as_millis() as u64,
        }
        .call(&mut self.conn())
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
        let touched: i64 = TouchCall {
            stream: self.keys(shard).jobs(),
            group: GROUP,
            me,
            entry_id,
        }
        .call(&mut self.conn())
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
        let claim = ClaimOwnCall {
            stream: jobs.clone(),
            group: GROUP,
            me,
            justid: if count_delivery { "0" } else { "1" },
            entry_ids,
        };
        if count_delivery {
            let reply: StreamClaimReply = claim.call(&mut conn).await?;
            let entries = reply.ids.into_iter().map(|id| parse_entry(shard, id));
            return Ok(entries.collect());
        }
        let ids: Vec<String> = claim.call(&mut conn).await?;
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
}
