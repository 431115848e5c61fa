//! What the fleet guards did, for operators (`smsq guard list|lift`, `smsq status`, the
//! dashboard, `/metrics`): the prefixes tripped, the budgets used, and lifting a prefix.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use redis::AsyncCommands;
use serde::Serialize;

use super::Records;
use crate::domain::NumberPrefix;
use crate::store::StoreError;
use crate::store::intake::{TripReason, buckets, windows};

/// A prefix the guard holds, over every shard that tripped it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BlockedPrefix {
    #[schema(value_type = String, example = "1380013")]
    pub prefix: String,
    /// `block` (429 prefix_blocked) or `captcha` (403 captcha_required without one).
    pub action: String,
    /// `share` or `conversion`.
    pub reason: String,
    /// The codes to the prefix, and the fleet's, that decided it (summed over the shards).
    pub prefix_codes: u64,
    pub fleet_codes: u64,
    pub until_ms: i64,
    /// Shards that tripped it (each shard decides on its own share of the traffic).
    pub shards: usize,
}

/// Codes issued this Beijing hour and day, by `*` (all) and by purpose.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BudgetUse {
    pub hourly: BTreeMap<String, u64>,
    pub daily: BTreeMap<String, u64>,
}

/// One stored block: `<until ms> <action> <why> <prefix codes> <fleet codes>`.
fn parse_block(prefix: &str, entry: &str) -> Result<BlockedPrefix, StoreError> {
    let bad = || StoreError::Reply(format!("bad guard block {prefix}: {entry:?}"));
    let p: Vec<&str> = entry.split(' ').collect();
    let [until, action, why, n, of] = p[..] else {
        return Err(bad());
    };
    if !matches!(action, "block" | "captcha") {
        return Err(bad());
    }
    Ok(BlockedPrefix {
        prefix: NumberPrefix::parse(prefix).map_err(|_| bad())?.to_string(),
        action: action.to_owned(),
        reason: TripReason::parse(why).ok_or_else(bad)?.as_str().to_owned(),
        prefix_codes: n.parse().map_err(|_| bad())?,
        fleet_codes: of.parse().map_err(|_| bad())?,
        until_ms: until.parse().map_err(|_| bad())?,
        shards: 1,
    })
}

impl Records {
    /// The prefixes held now, merged over the shards, by prefix.
    pub async fn blocked_prefixes(&self, now_ms: i64) -> Result<Vec<BlockedPrefix>, StoreError> {
        let mut merged: BTreeMap<String, BlockedPrefix> = BTreeMap::new();
        for shard in self.shards().all() {
            let all: HashMap<String, String> = self
                .conn()
                .hgetall(self.keys(shard).guard_blocked())
                .await?;
            for (prefix, entry) in all {
                let b = parse_block(&prefix, &entry)?;
                if b.until_ms <= now_ms {
                    continue;
                }
                merged
                    .entry(prefix)
                    .and_modify(|m| {
                        m.prefix_codes += b.prefix_codes;
                        m.fleet_codes += b.fleet_codes;
                        m.until_ms = m.until_ms.max(b.until_ms);
                        m.shards += 1;
                    })
                    .or_insert(b);
            }
        }
        Ok(merged.into_values().collect())
    }

    /// Codes counted against the budgets this hour and day, summed over the shards.
    pub async fn budget_use(&self, now_ms: i64) -> Result<BudgetUse, StoreError> {
        let w = windows(now_ms);
        let mut used = BudgetUse::default();
        for shard in self.shards().all() {
            let k = self.keys(shard);
            for (when, into) in [(&w.hour, &mut used.hourly), (&w.day, &mut used.daily)] {
                let counts: HashMap<String, u64> = self.conn().hgetall(k.budget(when)).await?;
                for (scope, n) in counts {
                    *into.entry(scope).or_default() += n;
                }
            }
        }
        Ok(used)
    }

    /// Ends the hold on a prefix on every shard and forgets its recent counts (so it is not
    /// tripped again by the same codes), and says so in the audit trail. True if it was held.
    pub async fn lift_prefix(
        &self,
        prefix: &NumberPrefix,
        window: Duration,
        by: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let (now, prev) = buckets(now_ms, window);
        let (issued, verified) = (format!("i:{prefix}"), format!("v:{prefix}"));
        let mut held = false;
        for shard in self.shards().all() {
            let k = self.keys(shard);
            let mut pipe = redis::pipe();
            pipe.atomic().hdel(k.guard_blocked(), prefix.as_str());
            for bucket in [now, prev] {
                pipe.hdel(k.guard_counts(bucket), &[&issued, &verified])
                    .ignore();
            }
            let (removed,): (i64,) = pipe.query_async(&mut self.conn()).await?;
            held |= removed > 0;
        }
        let _: String = self
            .conn()
            .xadd_maxlen(
                self.fleet().audit(),
                redis::streams::StreamMaxlen::Approx(1000),
                "*",
                &[
                    ("action", "guard_lift"),
                    ("by", by),
                    ("reason", &format!("prefix {prefix}")),
                    ("until_ms", "0"),
                    ("ts", &now_ms.to_string()),
                ],
            )
            .await?;
        Ok(held)
    }
}
