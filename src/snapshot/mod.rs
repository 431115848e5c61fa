//! One snapshot of the queue, several views: `smsq status` (text and `--json`), the
//! dashboard and the Prometheus gauges all render this value. Field names are the documented
//! JSON contract. Below the API, the worker, the metrics and the on-call CLI, which all read it.

mod cache;
mod guard;
mod providers;

pub use cache::{SCRAPE_FRESH_FOR, SnapshotCache};
pub use guard::{BudgetLine, GuardView};
pub use providers::{AccountView, accounts, policy};

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::Settings;
use crate::store::{QueueState, Records, StoreError};

/// Minutes of outcome counters read: the current one and the 59 before it.
const HOUR: usize = 60;

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Snapshot {
    /// Unix ms, Redis's clock.
    pub taken_at_ms: i64,
    pub verdict: Verdict,
    pub stream: StreamView,
    pub consumers: Vec<ConsumerView>,
    pub retries: RetryView,
    pub dead_letters: u64,
    pub limiter: LimiterView,
    pub throughput: Throughput,
    pub redis: RedisView,
    /// Each configured webhook endpoint's queue.
    pub webhooks: Vec<crate::store::EndpointState>,
    /// Sending paused by an operator (`smsq pause`), if it is.
    pub halt: Option<crate::store::records::Halt>,
    /// Who paused and resumed, and the provider's pauses: the newest 10, newest first.
    pub audit: Vec<crate::store::records::AuditEntry>,
    /// The fleet guards: budgets used this hour and day, prefixes held.
    pub guard: GuardView,
    /// Each provider account and its circuit.
    pub providers: Vec<AccountView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RedisView {
    /// `maxmemory-policy`; `null` when Redis will not say (`CONFIG` renamed or denied).
    pub maxmemory_policy: Option<String>,
    /// `used_memory`, bytes; `null` when not one server's answer (a cluster) or unreadable.
    pub used_memory: Option<u64>,
    /// `maxmemory`, bytes; `null` when unknown, `0` for no limit.
    pub maxmemory: Option<u64>,
    /// About how many job records Redis holds (those of the last `status.ttl_secs`, counted
    /// per hour as they were made); `null` when it could not be read.
    pub retained_jobs: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct Verdict {
    pub status: Health,
    pub reasons: Vec<String>,
}

/// The verdict's word: `ok`, `degraded` (working, with something to look at) or `down` (jobs
/// wait and nothing sends them).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Ok,
    Degraded,
    Down,
}

impl Health {
    pub const ALL: [Health; 3] = [Health::Ok, Health::Degraded, Health::Down];

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Ok => "ok",
            Health::Degraded => "degraded",
            Health::Down => "down",
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StreamView {
    /// Entries on the send stream: not yet sent (acked entries are deleted).
    pub backlog: u64,
    /// Entries not yet delivered to any worker.
    pub lag: Option<u64>,
    /// Delivered to a worker, not yet finished.
    pub pending: u64,
    /// Age of the oldest pending entry, from its id.
    pub oldest_pending_age_ms: Option<u64>,
    /// The same per shard (`redis.shards`), shard 0 first; one entry with one shard.
    pub shards: Vec<ShardView>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ShardView {
    pub shard: usize,
    pub backlog: u64,
    pub pending: u64,
    pub retry_waiting: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct ConsumerView {
    pub name: String,
    /// Its heartbeat key exists.
    pub alive: bool,
    pub pending: u64,
    /// Since it last read or claimed.
    pub idle_ms: u64,
    /// Highest delivery count among its entries within the 100 oldest pending ones.
    pub max_deliveries: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct RetryView {
    pub waiting: u64,
    /// Negative when overdue (no worker promoting them).
    pub next_due_in_ms: Option<i64>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct LimiterView {
    /// As the workers published it; `None` before a worker ran.
    pub rate_per_sec: Option<u32>,
    pub burst: Option<u32>,
    /// How long a send asked for now would wait for its slot.
    pub wait_ms: u64,
    pub paused_until_ms: Option<i64>,
    pub pause_reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct Throughput {
    /// Jobs that reached `sent` per second over the last minute.
    pub sent_per_sec_1m: f64,
    /// … over the last hour.
    pub sent_per_sec_1h: f64,
    /// Outcomes over the last hour (the current minute and the 59 before): `sent`, `failed`,
    /// `dead`, `expired`, `superseded`, `delivered`, `undelivered`, and `retrying` (failed
    /// attempts that will retry).
    pub last_hour: BTreeMap<String, u64>,
    /// Share of the last hour's delivery reports that say "delivered"; `None` without reports.
    pub delivery_rate_1h: Option<f64>,
}

impl Snapshot {
    pub async fn take(store: &Records, settings: &Settings) -> Result<Self, StoreError> {
        Self::from_state(store.inspect(HOUR).await?, settings)
            .with_operators(store, settings)
            .await
    }

    /// What operators did (a pause, the trail) and the webhook endpoints' queues read in, and
    /// the verdict made again with them.
    pub async fn with_operators(
        mut self,
        store: &Records,
        settings: &Settings,
    ) -> Result<Self, StoreError> {
        self.halt = store.halted().await?;
        self.audit = store.audit_trail(10).await?;
        self.guard = GuardView::new(
            &settings.guard,
            &store.budget_use(self.taken_at_ms).await?,
            store.blocked_prefixes(self.taken_at_ms).await?,
        );
        self.providers = accounts(store, settings, self.taken_at_ms).await?;
        self.verdict = verdict(&self, settings);
        let names: Vec<&str> = settings
            .webhooks
            .endpoints
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        if names.is_empty() {
            return Ok(self);
        }
        self.webhooks = store.endpoint_states(&names).await?;
        self.verdict = verdict(&self, settings);
        Ok(self)
    }

    pub fn from_state(s: QueueState, settings: &Settings) -> Self {
        let now = s.now_ms;
        let mut consumers: Vec<ConsumerView> = s
            .consumers
            .iter()
            .map(|c| ConsumerView {
                name: c.name.clone(),
                alive: c.alive,
                pending: c.pending as u64,
                idle_ms: c.idle.as_millis() as u64,
                max_deliveries: s
                    .oldest_pending
                    .iter()
                    .filter(|(_, owner, ..)| *owner == c.name)
                    .map(|(.., n)| *n)
                    .max()
                    .unwrap_or(0),
            })
            .collect();
        consumers.sort_by(|a, b| (!a.alive, &a.name).cmp(&(!b.alive, &b.name)));
        let oldest_pending_age_ms = s
            .oldest_pending
            .first()
            .and_then(|(id, ..)| crate::domain::EntryId::parse(id))
            .map(|id| (now - id.ms as i64).max(0) as u64);
        let paused = s.pause.clone().filter(|(until, _)| *until > now);
        let snapshot = Snapshot {
            taken_at_ms: now,
            verdict: Verdict {
                status: Health::Ok,
                reasons: Vec::new(),
            },
            stream: StreamView {
                backlog: s.backlog,
                lag: s.lag,
                pending: s.pending,
                oldest_pending_age_ms,
                shards: s
                    .shards
                    .iter()
                    .enumerate()
                    .map(|(shard, &(backlog, pending, retry_waiting))| ShardView {
                        shard,
                        backlog,
                        pending,
                        retry_waiting,
                    })
                    .collect(),
            },
            consumers,
            retries: RetryView {
                waiting: s.retry_waiting,
                next_due_in_ms: s.next_retry_due_ms.map(|due| due - now),
            },
            dead_letters: s.dead_letters,
            limiter: LimiterView {
                rate_per_sec: s.limit.map(|l| l.0),
                burst: s.limit.map(|l| l.1),
                wait_ms: limiter_wait_ms(&s),
                paused_until_ms: paused.as_ref().map(|p| p.0),
                pause_reason: paused.map(|p| p.1),
            },
            throughput: throughput(&s.minutes, now),
            redis: RedisView {
                maxmemory_policy: s.maxmemory_policy.clone(),
                used_memory: s.memory.map(|m| m.0),
                maxmemory: s.memory.map(|m| m.1),
                retained_jobs: s.retained_jobs,
            },
            webhooks: Vec::new(),
            halt: None,
            audit: Vec::new(),
            guard: GuardView::default(),
            providers: Vec::new(),
        };
        let verdict = verdict(&snapshot, settings);
        Snapshot {
            verdict,
            ..snapshot
        }
    }

    pub fn live_consumers(&self) -> usize {
        self.consumers.iter().filter(|c| c.alive).count()
    }
}

/// The GCRA state says when the schedule's next slot is; the burst lets a send go earlier.
fn limiter_wait_ms(s: &QueueState) -> u64 {
    let (Some(tat), Some((rate, burst))) = (s.rate_tat_us, s.limit) else {
        return 0;
    };
    let tolerance_us = i64::from(burst.saturating_sub(1)) * 1_000_000 / i64::from(rate.max(1));
    ((tat - tolerance_us - s.now_ms * 1000).max(0) / 1000) as u64
}

fn throughput(minutes: &[BTreeMap<String, u64>], now_ms: i64) -> Throughput {
    let mut last_hour = BTreeMap::new();
    for minute in minutes {
        for (status, n) in minute {
            *last_hour.entry(status.clone()).or_insert(0) += n;
        }
    }
    let sent =
        |m: Option<&BTreeMap<String, u64>>| m.and_then(|m| m.get("sent")).copied().unwrap_or(0);
    // The current minute is partial: the last minute is it plus the one before, over the
    // seconds they span.
    let into_minute = (now_ms % 60_000) as f64 / 1000.0;
    let recent = sent(minutes.first()) + sent(minutes.get(1));
    let hour: u64 = minutes.iter().map(|m| sent(Some(m))).sum();
    let hour_span = 60.0 * (minutes.len().max(1) - 1) as f64 + into_minute;
    let count = |k: &str| last_hour.get(k).copied().unwrap_or(0);
    let reports = count("delivered") + count("undelivered");
    Throughput {
        sent_per_sec_1m: round2(recent as f64 / (60.0 + into_minute)),
        sent_per_sec_1h: round2(hour as f64 / hour_span.max(1.0)),
        delivery_rate_1h: (reports > 0).then(|| round2(count("delivered") as f64 / reports as f64)),
        last_hour,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// `down`: work is waiting and no worker is alive. `degraded`: something needs a look.
fn verdict(s: &Snapshot, settings: &Settings) -> Verdict {
    let live = s.live_consumers();
    let waiting = s.stream.backlog + s.retries.waiting;
    // Down says why first, and keeps the rest: a guard or a pause still needs a look.
    let down = live == 0 && waiting > 0;
    let mut reasons = Vec::new();
    if down {
        reasons.push(format!("no live worker and {waiting} job(s) waiting"));
    }
    if let Some(h) = &s.halt {
        reasons.push(format!("sending paused by {}: {}", h.by, h.reason));
    }
    let orphaned: u64 = s
        .consumers
        .iter()
        .filter(|c| !c.alive)
        .map(|c| c.pending)
        .sum();
    if orphaned > 0 {
        reasons.push(format!("{orphaned} job(s) pending at dead workers"));
    }
    let idle_limit = settings.worker.claim_idle.as_millis() as u64;
    if let Some(age) = s.stream.oldest_pending_age_ms.filter(|a| *a > idle_limit) {
        reasons.push(format!("a job has been pending {} s", age / 1000));
    }
    if let (Some(until), Some(code)) = (s.limiter.paused_until_ms, &s.limiter.pause_reason) {
        let left = (until - s.taken_at_ms).max(0) / 1000;
        reasons.push(format!(
            "sends paused by the provider ({code}) for {left} s more"
        ));
    }
    let dead = s.throughput.last_hour.get("dead").copied().unwrap_or(0);
    if dead > 0 {
        reasons.push(format!("{dead} job(s) dead-lettered in the last hour"));
    }
    if let Some(due) = s.retries.next_due_in_ms.filter(|d| *d < -5_000) {
        reasons.push(format!("retries overdue by {} s", -due / 1000));
    }
    let rate = f64::from(
        s.limiter
            .rate_per_sec
            .unwrap_or(settings.worker.rate_per_sec.get()),
    );
    let drain_secs = s.stream.backlog as f64 / rate;
    if drain_secs > 60.0 {
        reasons.push(format!(
            "backlog of {} needs {:.0} s at the rate limit",
            s.stream.backlog, drain_secs
        ));
    }
    if let Some(policy) = s
        .redis
        .maxmemory_policy
        .as_deref()
        .filter(|p| *p != "noeviction")
    {
        reasons.push(format!(
            "Redis maxmemory-policy is {policy}: Redis may evict smsq's keys (abuse counters, \
             codes, idempotency records); set noeviction"
        ));
    }
    if let (Some(used), Some(max)) = (s.redis.used_memory, s.redis.maxmemory.filter(|m| *m > 0))
        && used * 100 >= max * u64::from(settings.status.memory_alert_percent)
    {
        reasons.push(format!(
            "Redis uses {} MB of its {} MB maxmemory ({}%): past it Redis refuses smsq's writes",
            used >> 20,
            max >> 20,
            used * 100 / max
        ));
    }
    reasons.extend(s.guard.reasons(&settings.guard));
    for a in &s.providers {
        if a.disabled {
            reasons.push(format!(
                "provider account {} is disabled (`smsq provider enable {}`)",
                a.name, a.name
            ));
        } else if let Some(until) = a.open_until_ms {
            let left = (until - s.taken_at_ms).max(0) / 1000;
            reasons.push(format!(
                "provider account {} circuit open ({}): probes in {left} s",
                a.name, a.reason
            ));
        } else if a.circuit == "half-open" {
            reasons.push(format!(
                "provider account {} is being probed ({})",
                a.name, a.reason
            ));
        }
    }
    for h in s.webhooks.iter().filter(|h| h.dead > 0) {
        reasons.push(format!(
            "webhook endpoint {} has {} dead deliveries (`smsq webhooks replay {}`)",
            h.endpoint, h.dead, h.endpoint
        ));
    }
    Verdict {
        status: if down {
            Health::Down
        } else if reasons.is_empty() {
            Health::Ok
        } else {
            Health::Degraded
        },
        reasons,
    }
}
