//! The fleet's one send rate (GCRA in Redis, leased in slots), the provider's pause and the
//! limit the workers publish for operators.

use std::time::Duration;

use redis::AsyncCommands;

use super::Queue;
use crate::store::StoreError;
use crate::store::script::script;

script! {
    /// Up to `want` slots of the fleet's rate within the horizon, or how long to wait.
    struct RateCall = include_str!("rate.lua");
    keys { rate_key, pause_key, halt_key }
    argv { interval: f64, tolerance: f64, want: usize, horizon: u64 }
}

script! {
    /// Pauses every worker's sends until a time (never shortens a pause in force).
    struct PauseCall<'a> = include_str!("pause.lua");
    keys { pause_key, audit }
    argv { until_ms: i64, now_ms: i64, reason: &'a str }
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

impl Queue {
    /// Up to `want` send slots of an account's fleet-wide rate, or how long to wait for one.
    /// `account` is `None` for the unnamed account of `[provider]`.
    pub async fn lease(
        &self,
        account: Option<&str>,
        policy: &RatePolicy,
        want: usize,
    ) -> Result<Lease, StoreError> {
        let fleet = self.fleet();
        let reply: Vec<i64> = RateCall {
            rate_key: fleet.rate_of(account),
            pause_key: fleet.pause_of(account),
            halt_key: fleet.halt(),
            interval: policy.interval_us,
            tolerance: policy.tolerance_us,
            want: want.max(1),
            horizon: policy.horizon_us,
        }
        .call(&mut self.conn())
        .await?;
        let us = |v: i64| Duration::from_micros(v.max(0) as u64);
        let (now_us, grant) = match reply.as_slice() {
            [0, now, wait] => (*now, Grant::Wait(us(*wait))),
            [n, now, offsets @ ..] if *n > 0 && *n as usize == offsets.len() => (
                *now,
                Grant::Slots(offsets.iter().copied().map(us).collect()),
            ),
            other => return Err(StoreError::Reply(format!("rate: {other:?}"))),
        };
        Ok(Lease { now_us, grant })
    }

    /// Pauses every worker's sends through an account until `until_ms` (never shortens a
    /// pause in force). Returns the pause's end now in force.
    pub async fn pause(
        &self,
        account: Option<&str>,
        until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<i64, StoreError> {
        PauseCall {
            pause_key: self.fleet().pause_of(account),
            audit: self.fleet().audit(),
            until_ms,
            now_ms,
            reason,
        }
        .call(&mut self.conn())
        .await
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
