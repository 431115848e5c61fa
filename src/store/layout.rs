//! What every process checks when it starts: Redis's eviction policy, and the shard count a
//! queue was laid out in, recorded on shard 0 by the first process that starts. A process configured with another count checks that changing it strands nothing:
//! growing never does (every old shard is still read); shrinking does if the shards that would
//! no longer be read still hold queued, retrying or dead jobs, and is then refused.

use redis::AsyncCommands;

use super::{Store, StoreError};
use crate::domain::{Shard, Shards};

#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "redis.shards = {configured}, but this queue is laid out in {recorded} shards and \
         shards {configured}..{recorded} still hold {jobs} jobs that nothing would read any more. \
         Drain them first (stop the API, keep workers running with redis.shards = {recorded} \
         until `smsq status` shows no backlog, retries or dead letters), or keep \
         redis.shards = {recorded}"
    )]
    Stranded {
        configured: usize,
        recorded: usize,
        jobs: u64,
    },
}

/// What the start-up check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// As configured (recorded now if it was the first start).
    Same,
    /// Changed from this many shards, with nothing stranded.
    Changed(usize),
}

impl Store {
    /// Checks the configured shard count against the recorded one, and records it.
    pub async fn check_layout(&self) -> Result<Layout, LayoutError> {
        let key = self.fleet().layout();
        let configured = self.shards.count();
        let mut conn = self.conn();
        // First start under this prefix (or the record was lost: then the old layout is
        // unknown and only the configured shards can be checked): record it, unless another
        // process just did, whose record is then checked like any other.
        let first: bool = redis::cmd("SET")
            .arg(&key)
            .arg(configured)
            .arg("NX")
            .query_async::<Option<String>>(&mut conn)
            .await
            .map_err(StoreError::from)?
            .is_some();
        if first {
            return Ok(Layout::Same);
        }
        let recorded: Option<String> = conn.get(&key).await.map_err(StoreError::from)?;
        let recorded = match recorded.and_then(|r| r.parse::<usize>().ok()) {
            Some(n) if n != configured => n,
            _ => return Ok(Layout::Same),
        };
        if recorded > configured {
            let old = Shards::new(recorded as u64).unwrap_or(Shards::ONE);
            let gone: Vec<Shard> = old.all().skip(configured).collect();
            let jobs = self.jobs_in(&gone).await?;
            if jobs > 0 {
                return Err(LayoutError::Stranded {
                    configured,
                    recorded,
                    jobs,
                });
            }
        }
        let _: () = conn.set(&key, configured).await.map_err(StoreError::from)?;
        tracing::warn!(
            from = recorded,
            to = configured,
            "redis.shards changed; numbers that moved shard lose their outstanding code and \
             resend window, and job records of removed shards are no longer found by id"
        );
        Ok(Layout::Changed(recorded))
    }

    /// Queued, retrying and dead jobs on these shards (which may lie past the configured
    /// count, so their keys are made here).
    async fn jobs_in(&self, shards: &[Shard]) -> Result<u64, StoreError> {
        let mut total = 0;
        for &shard in shards {
            let k = self.keys(shard);
            let (queued, retrying, dead): (u64, u64, u64) = redis::pipe()
                .xlen(k.jobs())
                .zcard(k.retry())
                .xlen(k.dead())
                .query_async(&mut self.conn())
                .await?;
            total += queued + retrying + dead;
        }
        Ok(total)
    }

    /// Redis's `maxmemory-policy`, or `None` when Redis will not say (managed services often
    /// rename or deny `CONFIG`). Anything but `noeviction` lets Redis drop smsq's keys under
    /// memory pressure: abuse counters reset, codes and idempotency records vanish.
    pub async fn maxmemory_policy(&self) -> Option<String> {
        let reply: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg("maxmemory-policy")
            .query_async(&mut self.conn())
            .await
            .ok()?;
        reply.get(1).cloned()
    }

    /// Redis's `used_memory` and `maxmemory` (0: no limit) from `INFO memory`, or `None` when
    /// the answer is not one server's (a cluster answers per node) or cannot be read.
    pub async fn memory(&self) -> Option<(u64, u64)> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn())
            .await
            .ok()?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|v| v.trim().parse::<u64>().ok())
        };
        Some((field("used_memory")?, field("maxmemory")?))
    }

    /// About how many job records Redis holds: the jobs made in the hours of the retention
    /// (`made` on each shard), the oldest hour counted for the part of it still retained.
    pub async fn retained_jobs(&self, now_ms: i64) -> Result<u64, StoreError> {
        let ttl_ms = self.retention.status_ttl_secs as i64 * 1000;
        let from = now_ms - ttl_ms;
        let mut total = 0.0;
        for shard in self.shards.all() {
            let made: std::collections::HashMap<i64, u64> =
                self.conn().hgetall(self.keys(shard).made()).await?;
            for (hour, n) in made {
                let (start, end) = (hour * 3_600_000, (hour + 1) * 3_600_000);
                let kept = (end - start.max(from)).clamp(0, 3_600_000) as f64 / 3_600_000.0;
                total += n as f64 * kept;
            }
        }
        Ok(total.round() as u64)
    }

    /// Logs loudly at start when Redis may evict smsq's keys (`smsq status` says it too).
    pub async fn warn_if_evicting(&self) {
        if let Some(policy) = self.maxmemory_policy().await.filter(|p| p != "noeviction") {
            tracing::warn!(
                policy,
                "Redis maxmemory-policy is not noeviction: under memory pressure Redis will evict \
                 smsq's keys (abuse counters, codes, idempotency records); set \
                 maxmemory-policy noeviction"
            );
        }
    }
}
