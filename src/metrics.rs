//! Prometheus metrics, served at `/metrics` by the API and by each worker
//! (`worker.metrics_listen`). Counters and histograms are recorded where things happen;
//! gauges come from the same [`Snapshot`] as `smsq status`, read when Prometheus scrapes.
//!
//! Names follow Prometheus conventions (`smsq_…_total`, base units, `_seconds`). Labels are
//! small closed sets (status, reason, provider code): never a mobile number or a job id.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::snapshot::Snapshot;

/// Buckets of every `_seconds` histogram: 1 ms to 1 min.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often recorded histogram samples are folded into their buckets when nobody scrapes.
pub const UPKEEP_EVERY: Duration = Duration::from_secs(1);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the process's recorder on first use. `None` if another recorder was installed
/// first (then nothing is recorded here, and `/metrics` says so).
///
/// The recorder keeps every histogram sample in a queue until it is folded into the
/// buckets, which only `render` or `run_upkeep` do. A worker nobody scrapes (the default:
/// no `worker.metrics_listen`) would keep every sample it ever took, so a thread of its
/// own runs the upkeep: samples live at most [`UPKEEP_EVERY`], whoever scrapes or not. A
/// thread, not a task, because the recorder outlives any runtime and the upkeep is a few
/// microseconds of locking, never I/O.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            let upkeep = handle.clone();
            let spawned = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            if let Err(e) = spawned {
                // Scrapes still drain the samples; say why an unscraped process grows.
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .as_ref()
}

/// The exposition text, with the gauges set from `snapshot` when there is one.
pub fn render(snapshot: Option<&Snapshot>) -> String {
    // Installed first: gauges set before there is a recorder would go nowhere.
    let Some(handle) = install() else {
        return "# metrics recorder unavailable in this process\n".to_owned();
    };
    if let Some(s) = snapshot {
        set_gauges(s);
    }
    handle.render()
}

fn set_gauges(s: &Snapshot) {
    gauge!("smsq_backlog").set(s.stream.backlog as f64);
    for v in &s.stream.shards {
        let shard = v.shard.to_string();
        gauge!("smsq_shard_backlog", "shard" => shard.clone()).set(v.backlog as f64);
        gauge!("smsq_shard_pending", "shard" => shard).set(v.pending as f64);
    }
    gauge!("smsq_pending").set(s.stream.pending as f64);
    gauge!("smsq_oldest_pending_seconds")
        .set(s.stream.oldest_pending_age_ms.unwrap_or(0) as f64 / 1000.0);
    gauge!("smsq_retry_waiting").set(s.retries.waiting as f64);
    gauge!("smsq_dead_letters").set(s.dead_letters as f64);
    gauge!("smsq_halted").set(if s.halt.is_some() { 1.0 } else { 0.0 });
    for h in &s.webhooks {
        gauge!("smsq_webhook_backlog", "endpoint" => h.endpoint.clone()).set(h.backlog as f64);
        gauge!("smsq_webhook_dead", "endpoint" => h.endpoint.clone()).set(h.dead as f64);
    }
    if let Some(used) = s.redis.used_memory {
        gauge!("smsq_redis_used_memory_bytes").set(used as f64);
    }
    if let Some(max) = s.redis.maxmemory {
        gauge!("smsq_redis_maxmemory_bytes").set(max as f64);
    }
    gauge!("smsq_guard_blocked_prefixes").set(s.guard.blocked.len() as f64);
    for a in &s.providers {
        let state = match a.circuit.as_str() {
            "open" => 2.0,
            "half-open" => 1.0,
            _ => 0.0,
        };
        gauge!("smsq_provider_circuit", "account" => a.name.clone()).set(state);
        gauge!("smsq_provider_disabled", "account" => a.name.clone()).set(if a.disabled {
            1.0
        } else {
            0.0
        });
        gauge!("smsq_provider_rate_limit", "account" => a.name.clone())
            .set(f64::from(a.rate_per_sec));
        gauge!("smsq_provider_recent_errors", "account" => a.name.clone())
            .set(f64::from(a.recent_errors));
    }
    for b in &s.guard.budgets {
        // Purposes here are the configured ones: a closed set.
        let purpose = b.purpose.clone().unwrap_or_else(|| "all".to_owned());
        gauge!("smsq_budget_used", "window" => b.window, "purpose" => purpose.clone())
            .set(b.used as f64);
        if let Some(limit) = b.limit {
            gauge!("smsq_budget_limit", "window" => b.window, "purpose" => purpose)
                .set(f64::from(limit));
        }
    }
    let live = s.live_consumers();
    gauge!("smsq_workers", "state" => "live").set(live as f64);
    gauge!("smsq_workers", "state" => "dead").set((s.consumers.len() - live) as f64);
    gauge!("smsq_limiter_wait_seconds").set(s.limiter.wait_ms as f64 / 1000.0);
    gauge!("smsq_paused").set(if s.limiter.paused_until_ms.is_some() {
        1.0
    } else {
        0.0
    });
    for v in crate::snapshot::Health::ALL {
        let now = if s.verdict.status == v { 1.0 } else { 0.0 };
        gauge!("smsq_verdict", "status" => v.as_str()).set(now);
    }
}

/// One webhook delivery attempt's outcome: `delivered`, `failed` (retried) or `dead`.
pub fn webhook(endpoint: &str, outcome: &'static str) {
    counter!("smsq_webhook_deliveries_total", "endpoint" => endpoint.to_owned(), "outcome" => outcome)
        .increment(1);
}

pub fn code_issued() {
    counter!("smsq_codes_issued_total").increment(1);
}

/// `reason` is the API's error code (`resend_too_soon`, `daily_limit`, …).
pub fn code_refused(reason: &'static str) {
    counter!("smsq_code_requests_refused_total", "reason" => reason).increment(1);
}

/// A fleet guard's decision: `guard` = `budget` | `prefix`; `action` = `alert` (soft
/// threshold), `trip` (a prefix tripped), `refuse` or `captcha` (a request held).
pub fn guard_decision(guard: &'static str, action: &'static str) {
    counter!("smsq_guard_decisions_total", "guard" => guard, "action" => action).increment(1);
}

/// A captcha checked with `provider`: `pass`, `fail`, or the vendor unavailable and the
/// request `unavailable_refused` (fail closed) or `unavailable_allowed` (`captcha.fail_open`).
pub fn captcha_check(provider: &'static str, outcome: &'static str) {
    counter!("smsq_captcha_checks_total", "provider" => provider, "outcome" => outcome)
        .increment(1);
}

pub fn message_queued() {
    counter!("smsq_messages_queued_total").increment(1);
}

/// `result`: `valid`, `mismatch`, `too_many_attempts`, `expired`.
pub fn verification(result: &'static str) {
    counter!("smsq_verifications_total", "result" => result).increment(1);
}

/// A job reached `status` (`sent`, `failed`, `dead`, `expired`, `superseded`, `retrying`).
pub fn job_status(status: &'static str) {
    counter!("smsq_jobs_total", "status" => status).increment(1);
}

/// A provider call that did not succeed, by the provider's code (`172001` for the network).
pub fn provider_error(account: &str, code: &str) {
    // The label set stays small: codes come from the vendors' fixed tables (Ronglian's six
    // digits, Tencent's and Aliyun's dotted names), anything else is `other`.
    let known = code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_');
    let code = if known { code } else { "other" };
    counter!("smsq_provider_errors_total", "account" => account.to_owned(), "code" => code.to_owned())
        .increment(1);
}

/// An attempt moved from one account to another (a fault or throttling at `from`).
pub fn failover(from: &str, to: &str) {
    counter!("smsq_provider_failovers_total", "from" => from.to_owned(), "to" => to.to_owned())
        .increment(1);
}

/// An account's circuit as this process last saw it: 0 closed, 1 half open, 2 open; and
/// whether an operator disabled it.
pub fn circuit(account: &str, c: &crate::store::Circuit) {
    let state = match c.state {
        crate::store::CircuitState::Closed => 0.0,
        crate::store::CircuitState::HalfOpen => 1.0,
        crate::store::CircuitState::Open { .. } => 2.0,
    };
    gauge!("smsq_provider_circuit", "account" => account.to_owned()).set(state);
    gauge!("smsq_provider_disabled", "account" => account.to_owned()).set(if c.disabled {
        1.0
    } else {
        0.0
    });
}

/// `how`: `dead_worker` (heartbeat lapsed), `idle` (the backstop), `redelivery`.
pub fn reclaimed(how: &'static str, count: usize) {
    counter!("smsq_reclaimed_total", "how" => how).increment(count as u64);
}

/// A push from the platform: `delivered`, `undelivered`, `duplicate`, `unmatched` (no job
/// for it), `inbound` (a user's reply), `malformed`.
pub fn delivery_report(result: &'static str) {
    counter!("smsq_delivery_reports_total", "result" => result).increment(1);
}

pub fn provider_call(account: &str, took: Duration) {
    histogram!("smsq_provider_call_seconds", "account" => account.to_owned())
        .record(took.as_secs_f64());
}

/// From the API's accepting the job to the provider's accepting the SMS.
pub fn enqueue_to_accepted(took: Duration) {
    histogram!("smsq_enqueue_to_accepted_seconds").record(took.as_secs_f64());
}

/// From an entry's arrival on the stream (enqueue or retry) to its send starting.
pub fn queue_wait(took: Duration) {
    histogram!("smsq_queue_wait_seconds").record(took.as_secs_f64());
}

/// Sends in flight in this worker process.
pub fn in_flight(n: usize) {
    gauge!("smsq_in_flight").set(n as f64);
}
