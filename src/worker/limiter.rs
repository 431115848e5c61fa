//! The fleet's send rate: `worker.rate_per_sec` and `worker.burst` hold for every worker process
//! on every host together, because the provider account has one rate.
//!
//! **How.** One GCRA lives in Redis (`{smsq:0}:rate`, `lua/rate.lua`), on Redis's clock, so
//! hosts with skewed clocks share one schedule. A worker does not ask once per send: it asks
//! for as many *slots* as it has sends waiting, and the script hands out the next slots of the
//! schedule that fall within a short horizon (50 ms), as offsets from its clock. The worker
//! keeps them in a queue and each send sleeps until its slot. At high rates one round trip
//! serves many sends (at 2,000/s fleet-wide, up to 100 per call); at low rates a call serves
//! one or two, which costs nothing there. A slot is never given back: one a process does not
//! use (it died, or the job turned out to need no send) is capacity lost, never capacity
//! doubled, so a process that dies holding slots cannot push the fleet over the limit.
//!
//! **Why exact.** The schedule itself obeys GCRA: in any window of length `w` it holds at most
//! `w·rate + b` slots, `b` being its burst. A send may go later than its slot (the task wakes
//! late, Redis's answer took a while), never earlier; so a send is used only if it starts
//! within a lateness budget of its slot, otherwise the slot is dropped and another taken.
//! Then the sends of any 1-second window come from slots of a window `1 s + budget` long: at
//! most `rate·(1 s + budget) + b`. The script's burst is therefore `b = burst − ⌊rate·budget⌋`
//! (at least 1), which makes the worst case `rate + burst` sends in any 1-second window, the
//! promise of the configuration (and `⌈rate·t⌉ + burst` in any window `t`; unit-tested).
//! The budget is 50 ms, shortened when `rate × 50 ms` would eat the whole burst; a slot may
//! be used up to 80 % of it late. The other 20 % is kept for the
//! reply's travel: a slot is placed on the local clock when the reply arrives, which can only
//! make a send later than Redis meant, by one Redis round trip (well under a millisecond on a
//! LAN). Integer arithmetic throughout, so the bound is not off by a rounding.
//!
//! **Pauses.** An account-level "too fast" answer (`111111`, `160016`) sets `{smsq:0}:pause`;
//! the script hands out no slot while it is there, so every worker stops at its next request,
//! within the 50 ms horizon. The worker that got the answer also drops its own slots at once.
//!
//! **Why no per-process limiter as well** (`governor`): the slots already pace each process (a
//! send waits for its own slot), and a local limiter knows one process only, so it could
//! only add a way to disagree with the fleet's rate.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::store::{Grant, Queue, RatePolicy, StoreError};

/// The lateness budget (slot lateness plus the reply's travel), at most.
const MAX_BUDGET: Duration = Duration::from_millis(50);
/// Slots are handed out at most this far ahead: also how long a pause takes to reach everyone.
const HORIZON: Duration = Duration::from_millis(50);
/// Slots asked for in one call, at most.
const MAX_BATCH: usize = 512;

/// The limit's parameters, derived once from the configuration. Pure, for tests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    pub rate_per_sec: u32,
    pub burst: u32,
    /// The GCRA burst of the shared schedule, lowered by what lateness may add.
    pub schedule_burst: u32,
    /// How much later than its slot a send may start: slot lateness plus travel time.
    pub budget: Duration,
    /// A slot not used by this much after its time is dropped (80 % of the budget; the rest
    /// is kept for the reply's travel time).
    pub lateness: Duration,
}

impl Policy {
    pub fn new(rate_per_sec: u32, burst: u32) -> Self {
        let rate = u64::from(rate_per_sec.max(1));
        let burst = burst.max(1);
        // rate × budget must stay below the burst, so the schedule keeps a burst of ≥ 1.
        let budget_us = (MAX_BUDGET.as_micros() as u64).min(900_000 * u64::from(burst) / rate);
        let lost = (rate * budget_us / 1_000_000) as u32;
        Self {
            rate_per_sec: rate as u32,
            burst,
            schedule_burst: burst.saturating_sub(lost).max(1),
            budget: Duration::from_micros(budget_us),
            // Below a millisecond the timer's own granularity would drop most slots: at such
            // rates (over burst / 1 ms) the guarantee holds only as tightly as the timer does.
            lateness: Duration::from_micros(budget_us * 4 / 5).max(Duration::from_millis(1)),
        }
    }

    /// The most sends the fleet can make in any window of `window` (the guarantee).
    pub fn worst_case(&self, window: Duration) -> u64 {
        let span_us = (window + self.budget).as_micros() as u64;
        u64::from(self.rate_per_sec) * span_us / 1_000_000 + u64::from(self.schedule_burst)
    }

    pub fn script(&self) -> RatePolicy {
        let interval_us = 1e6 / f64::from(self.rate_per_sec);
        RatePolicy {
            interval_us,
            tolerance_us: f64::from(self.schedule_burst - 1) * interval_us,
            horizon_us: HORIZON.as_micros() as u64,
        }
    }
}

/// Slots this process holds, in time order, and when to ask Redis again. Pure, for tests.
#[derive(Debug, Default)]
pub struct Slots {
    queue: VecDeque<Instant>,
    ask_after: Option<Instant>,
}

/// What an acquirer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Use this slot: sleep until it, then check it is still fresh.
    Use(Instant),
    /// No slot held and Redis said to wait (rate or pause): sleep until then.
    WaitUntil(Instant),
    /// Ask Redis for slots.
    Ask,
}

impl Slots {
    pub fn next(&mut self, now: Instant, lateness: Duration) -> Next {
        while let Some(&slot) = self.queue.front() {
            self.queue.pop_front();
            if slot + lateness >= now {
                return Next::Use(slot);
            }
        }
        match self.ask_after {
            Some(at) if at > now => Next::WaitUntil(at),
            _ => Next::Ask,
        }
    }

    /// Slots Redis granted, placed on the local clock at `received`.
    pub fn fill(&mut self, received: Instant, offsets: &[Duration]) {
        self.queue.extend(offsets.iter().map(|o| received + *o));
        self.ask_after = None;
    }

    pub fn wait_until(&mut self, at: Instant) {
        self.ask_after = Some(at);
    }

    /// The provider asked us to stop: drop what we hold, ask again only after `until`.
    pub fn pause(&mut self, until: Instant) {
        self.queue.clear();
        self.ask_after = Some(until);
    }

    #[cfg(test)]
    pub fn held(&self) -> usize {
        self.queue.len()
    }
}

/// Shared by a worker's tasks. Cheap to clone.
#[derive(Clone)]
pub struct Limiter(Arc<Inner>);

struct Inner {
    queue: Queue,
    /// The account whose rate this is (`None`: the unnamed account of `[provider]`).
    account: Option<String>,
    policy: Policy,
    slots: Mutex<Slots>,
    /// Tasks inside `acquire`: how many slots to ask for.
    waiting: AtomicUsize,
}

impl Limiter {
    pub fn new(queue: Queue, account: Option<String>, rate_per_sec: u32, burst: u32) -> Self {
        Self(Arc::new(Inner {
            queue,
            account,
            policy: Policy::new(rate_per_sec, burst),
            slots: Mutex::new(Slots::default()),
            waiting: AtomicUsize::new(0),
        }))
    }

    pub fn policy(&self) -> Policy {
        self.0.policy
    }

    /// Waits for a send slot of the fleet's rate. Rides out a Redis outage (the send could not
    /// be recorded anyway) with a warning every few attempts.
    pub async fn acquire(&self) {
        let inner = &self.0;
        inner.waiting.fetch_add(1, Ordering::Relaxed);
        let mut failures = 0u32;
        loop {
            let mut slots = inner.slots.lock().await;
            match slots.next(Instant::now(), inner.policy.lateness) {
                Next::Use(slot) => {
                    drop(slots);
                    // A timer rounds up to the next millisecond: only sleep for a future slot.
                    if slot > Instant::now() {
                        tokio::time::sleep_until(slot).await;
                    }
                    // Woken too late (a busy runtime): the slot is gone, take another.
                    if Instant::now() <= slot + inner.policy.lateness {
                        break;
                    }
                }
                Next::WaitUntil(at) => {
                    drop(slots);
                    tokio::time::sleep_until(at).await;
                }
                Next::Ask => {
                    // Asked while holding the lock: the other waiters find the slots after.
                    let want = inner.waiting.load(Ordering::Relaxed).clamp(1, MAX_BATCH);
                    match inner
                        .queue
                        .lease(inner.account.as_deref(), &inner.policy.script(), want)
                        .await
                    {
                        Ok(lease) => {
                            failures = 0;
                            let now = Instant::now();
                            match lease.grant {
                                Grant::Slots(offsets) => slots.fill(now, &offsets),
                                Grant::Wait(wait) => {
                                    slots.wait_until(now + wait.max(Duration::from_millis(1)))
                                }
                            }
                        }
                        Err(e) => {
                            failures += 1;
                            if failures % 10 == 1 {
                                tracing::warn!(error = %e, "cannot reach the rate limiter in redis");
                            }
                            slots.wait_until(Instant::now() + Duration::from_millis(200));
                        }
                    }
                }
            }
        }
        inner.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    /// The provider said the account is too fast: every worker stops until `until_ms`.
    pub async fn pause_all(
        &self,
        until_ms: i64,
        now_ms: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        let until =
            Instant::now() + Duration::from_millis(until_ms.saturating_sub(now_ms).max(0) as u64);
        self.0.slots.lock().await.pause(until);
        let account = self.0.account.as_deref();
        self.0
            .queue
            .pause(account, until_ms, now_ms, reason)
            .await
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_any_window_the_fleet_sends_at_most_rate_times_t_plus_burst() {
        for (rate, burst) in [(40, 5), (100, 20), (7, 3), (1000, 20)] {
            let p = Policy::new(rate, burst);
            for ms in [10, 100, 250, 1000, 2500, 60_000] {
                let t = Duration::from_millis(ms);
                let bound = (f64::from(rate) * t.as_secs_f64()).ceil() as u64 + u64::from(burst);
                assert!(p.worst_case(t) <= bound, "{rate}/{burst} over {t:?}: {p:?}");
            }
        }
    }

    #[test]
    fn the_worst_one_second_window_is_rate_plus_burst() {
        for (rate, burst) in [
            (40, 5),
            (100, 20),
            (200, 20),
            (1000, 20),
            (10_000, 200),
            (7, 3),
            (5, 1),
            (1, 1),
        ] {
            let p = Policy::new(rate, burst);
            assert!(p.schedule_burst >= 1, "{rate}/{burst}");
            assert!(
                p.worst_case(Duration::from_secs(1)) <= u64::from(rate + burst),
                "{rate}/{burst}: {p:?} allows {}",
                p.worst_case(Duration::from_secs(1))
            );
        }
    }

    #[test]
    fn the_schedule_gives_up_only_what_lateness_may_add() {
        let p = Policy::new(40, 5);
        assert_eq!(p.lateness, Duration::from_millis(40));
        assert_eq!(p.schedule_burst, 3);
        let s = p.script();
        assert_eq!(s.interval_us, 25_000.0);
        assert_eq!(s.tolerance_us, 50_000.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slot_woken_too_late_is_dropped_and_a_pause_drops_every_slot() {
        let lateness = Duration::from_millis(40);
        let mut slots = Slots::default();
        let t0 = Instant::now();
        slots.fill(
            t0,
            &[
                Duration::ZERO,
                Duration::from_millis(25),
                Duration::from_millis(50),
            ],
        );
        tokio::time::advance(Duration::from_millis(70)).await;
        // The first slot is 70 ms old: gone. The second is 45 ms old: gone. The third is fine.
        assert_eq!(
            slots.next(Instant::now(), lateness),
            Next::Use(t0 + Duration::from_millis(50))
        );
        assert_eq!(slots.next(Instant::now(), lateness), Next::Ask);

        slots.fill(Instant::now(), &[Duration::from_millis(10)]);
        let until = Instant::now() + Duration::from_secs(5);
        slots.pause(until);
        assert_eq!(slots.held(), 0);
        assert_eq!(slots.next(Instant::now(), lateness), Next::WaitUntil(until));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(slots.next(Instant::now(), lateness), Next::Ask);
    }
}
