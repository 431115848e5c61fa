//! One job, from its stream entry to a recorded outcome.

use std::time::{Duration, Instant};

use rand::RngExt;
use tracing::Instrument;

use super::Context;
use super::retry::{self, Next};
use crate::domain::{Code, Job, JobStatus, OpenError, Shard, now_ms};
use crate::metrics;
use crate::provider::{Accepted, Action, SendError, TemplateSms};
use crate::store::{Begin, Entry, Fence, Outcome, ProviderFailure, Settled, StoreError};

/// How handling an entry ended, for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Handled {
    pub shard: Shard,
    pub entry_id: String,
    pub ending: Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ending {
    /// Its outcome is recorded (or it was dead-lettered) and it is acked.
    Done,
    /// A Redis error left it pending with us: try it again soon. `count_delivery` when the
    /// error was not an outage (a script failing on this entry), so a poison pill ends.
    Stuck { count_delivery: bool },
}

/// Handles one entry. Never panics on bad input and never acks before the outcome is written:
/// on a Redis failure the entry stays pending with us and comes back.
pub(super) async fn handle(ctx: &Context, entry: Entry) -> Handled {
    let ending = handle_entry(ctx, &entry).await;
    Handled {
        shard: entry.shard,
        entry_id: entry.entry_id,
        ending,
    }
}

async fn handle_entry(ctx: &Context, entry: &Entry) -> Ending {
    let job = match &entry.job {
        Ok(job) => job.clone(),
        Err(reason) => {
            tracing::warn!(entry = %entry.entry_id, %reason, "poison entry: dead-lettered");
            return match ctx.queue.poison(entry, reason, now_ms()).await {
                Ok(()) => Ending::Done,
                Err(e) => {
                    tracing::error!(entry = %entry.entry_id, error = %e, "cannot dead-letter; entry stays pending");
                    stuck(&e)
                }
            };
        }
    };
    let span = tracing::info_span!(
        "job",
        job_id = %job.id,
        mobile = %job.to,
        attempt = job.attempt + 1,
        request_id = tracing::field::Empty,
    );
    if let Some(request_id) = &job.request_id {
        span.record("request_id", tracing::field::display(request_id));
    }
    match deliver(ctx, entry, &job).instrument(span.clone()).await {
        Ok(()) => Ending::Done,
        Err(e) => {
            span.in_scope(|| tracing::error!(error = %e, "redis error; entry stays pending"));
            stuck(&e)
        }
    }
}

fn stuck(error: &StoreError) -> Ending {
    Ending::Stuck {
        count_delivery: !error.is_unavailable(),
    }
}

/// Waits for a send slot of the fleet's rate. A long wait (a pause, a low rate) keeps the
/// entry's idle time fresh so the `claim_idle` backstop does not hand it to another worker.
async fn wait_for_slot(ctx: &Context, entry: &Entry) {
    let slot = ctx.limiter.acquire();
    tokio::pin!(slot);
    let every = (ctx.settings.worker.claim_idle / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = &mut slot => return,
            () = tokio::time::sleep(every) => {
                if let Err(e) = ctx.queue.touch(&ctx.consumer, entry.shard, &entry.entry_id).await {
                    tracing::warn!(error = %e, "cannot refresh a waiting entry");
                }
            }
        }
    }
}

async fn deliver(ctx: &Context, entry: &Entry, job: &Job) -> Result<(), StoreError> {
    // A test number's code takes no send slot: it never reaches the provider.
    if !job.test {
        wait_for_slot(ctx, entry).await;
    }
    let fence = Fence::new(&ctx.consumer);
    let sealed = match ctx.queue.begin(entry, job, &fence, now_ms()).await? {
        Begin::Skipped(status) => {
            transition(job, status, "", "not sent");
            return Ok(());
        }
        Begin::Finished(status) => {
            tracing::info!(%status, "already finished; acked");
            return Ok(());
        }
        Begin::Poisoned(deliveries) => {
            let why = format!("delivered {deliveries} times without finishing: dead-lettered");
            transition(job, JobStatus::Dead, "", &why);
            return Ok(());
        }
        Begin::Send(sealed) => sealed,
    };
    let code = match sealed
        .map(|s| ctx.sealer.open(job.id.as_str(), &s))
        .transpose()
    {
        Ok(code) => code,
        Err(e) => return unopenable(ctx, entry, job, &fence, e).await,
    };
    if let Some(arrived) = crate::domain::EntryId::parse(&entry.entry_id).map(|e| e.ms as i64) {
        metrics::queue_wait(ms_since(arrived));
    }
    transition(job, JobStatus::Sending, "", "");
    let (outcome, attempts) = if job.test {
        // SMSQ_TEST_NUMBERS: the job ends sent, marked, and the provider never hears of it.
        let sent = Outcome::Sent {
            provider_status: "test".to_owned(),
            message_id: String::new(),
        };
        (sent, job.attempt + 1)
    } else {
        let result = call_provider(ctx, job, code).await;
        // The SMS may be out: from here on, writing the outcome is worth waiting for.
        outcome_of(ctx, job, result).await
    };
    let settle = || {
        ctx.queue
            .settle(entry, job, &fence, attempts, &outcome, now_ms())
    };
    let status = match persist(settle).await? {
        Settled::Status(status) => status,
        Settled::Stale => {
            // We were taken for dead and another worker took the job over: its attempt's
            // outcome is the one that counts.
            tracing::warn!(ours = %outcome.status(), "another worker owns the job now; our outcome is not recorded");
            return Ok(());
        }
    };
    if status != outcome.status() {
        // Another delivery of this entry finished it first; nothing changed here.
        tracing::info!(%status, "already finished");
        return Ok(());
    }
    if matches!(outcome, Outcome::Sent { .. }) {
        metrics::enqueue_to_accepted(ms_since(job.created_ms));
    }
    let (provider_status, error) = match &outcome {
        Outcome::Sent {
            provider_status, ..
        } => (provider_status.as_str(), ""),
        Outcome::Failed(f) | Outcome::RetryAt(_, f) | Outcome::Dead(f) | Outcome::Expired(f) => {
            (f.provider_status.as_str(), f.error.as_str())
        }
    };
    transition(job, status, provider_status, error);
    Ok(())
}

/// A code this worker cannot open (another `SMSQ_SECRET` than the API's, or a changed
/// value) cannot be sent by any retry of ours: the job fails, truly, without a provider call
/// and without using an attempt.
async fn unopenable(
    ctx: &Context,
    entry: &Entry,
    job: &Job,
    fence: &Fence,
    error: OpenError,
) -> Result<(), StoreError> {
    let failure = ProviderFailure {
        error: format!("not sent: {error}"),
        provider_status: "unopenable".to_owned(),
    };
    let outcome = Outcome::Failed(failure);
    let settle = || {
        ctx.queue
            .settle(entry, job, fence, job.attempt, &outcome, now_ms())
    };
    if let Settled::Status(status) = persist(settle).await? {
        transition(job, status, "unopenable", &format!("not sent: {error}"));
    }
    Ok(())
}

/// The TemplateSMS call: a code job sends `[code, …datas]`, a message its `datas`; the job
/// id is the `reqId`, the same on every attempt.
async fn call_provider(
    ctx: &Context,
    job: &Job,
    code: Option<Code>,
) -> Result<Accepted, SendError> {
    let datas: Vec<String> = code
        .iter()
        .map(|c| c.expose().to_owned())
        .chain(job.datas.iter().cloned())
        .collect();
    let sms = TemplateSms {
        to: job.to.as_str(),
        template_id: job.template_id.as_str(),
        datas: &datas,
        req_id: Some(job.id.as_str()),
    };
    let called = Instant::now();
    let result = ctx.client.send(&sms).await;
    metrics::provider_call(called.elapsed());
    if let Err(e) = &result {
        metrics::provider_error(&e.status_code());
    }
    result
}

/// One log line and one count per status change. The span carries the job id, the attempt
/// and the masked mobile; nothing here holds a code or a credential.
fn transition(job: &Job, status: JobStatus, provider_status: &str, error: &str) {
    let latency_ms = now_ms() - job.created_ms;
    if status != JobStatus::Sending {
        metrics::job_status(status.as_str());
    }
    match status {
        JobStatus::Failed | JobStatus::Dead | JobStatus::Expired | JobStatus::Retrying => {
            tracing::warn!(%status, provider_status, latency_ms, error, "job transition")
        }
        _ => tracing::info!(%status, provider_status, latency_ms, error, "job transition"),
    }
}

fn ms_since(then_ms: i64) -> Duration {
    Duration::from_millis((now_ms() - then_ms).max(0) as u64)
}

/// What the provider's answer means for this job, and the provider attempts it has used:
/// the classification of `provider::classify`, the retry policy and the code's expiry.
async fn outcome_of(
    ctx: &Context,
    job: &Job,
    result: Result<Accepted, SendError>,
) -> (Outcome, u32) {
    let attempt = job.attempt + 1;
    let error = match result {
        Ok(accepted) => {
            let sent = Outcome::Sent {
                provider_status: "000000".to_owned(),
                message_id: accepted.message_id,
            };
            return (sent, attempt);
        }
        Err(error) => error,
    };
    let verdict = error.verdict();
    let provider_status = error.status_code();
    let failure = ProviderFailure {
        error: format!("{provider_status} {}: {error}", verdict.reason),
        provider_status,
    };
    let at_least = match verdict.action {
        Action::AlreadyAccepted => {
            let sent = Outcome::Sent {
                provider_status: failure.provider_status,
                message_id: String::new(),
            };
            return (sent, attempt);
        }
        Action::GiveUp => return (Outcome::Failed(failure), attempt),
        Action::PauseAll => return (pause_all(ctx, job, failure).await, job.attempt),
        Action::Retry => None,
        Action::Backoff { after } => Some(after),
    };
    let jitter = rand::rng().random::<f64>();
    let outcome = match retry::next(&ctx.settings.retry, attempt, at_least, jitter) {
        Next::Exhausted => Outcome::Dead(failure),
        Next::RetryAfter(delay) => retry_at(job, now_ms() + delay.as_millis() as i64, failure),
    };
    (outcome, attempt)
}

/// Never retry past the code's expiry: the user has moved on by then.
fn retry_at(job: &Job, due: i64, failure: ProviderFailure) -> Outcome {
    match job.expires_ms {
        Some(expires) if due >= expires => Outcome::Expired(failure),
        _ => Outcome::RetryAt(due, failure),
    }
}

/// The account is too fast: every worker pauses, and this job waits for the pause's end
/// without using up an attempt (the provider did not consider it).
async fn pause_all(ctx: &Context, job: &Job, failure: ProviderFailure) -> Outcome {
    let now = now_ms();
    let until = now + ctx.settings.worker.pause.as_millis() as i64;
    tracing::warn!(code = %failure.provider_status, pause_ms = until - now, "provider says the account is too fast: pausing every worker");
    if let Err(e) = ctx
        .limiter
        .pause_all(until, now, &failure.provider_status)
        .await
    {
        tracing::warn!(error = %e, "cannot share the pause; pausing this worker only");
    }
    retry_at(job, until, failure)
}

/// Retries a status write through a short Redis outage (a restart, a failover) so a sent SMS
/// is recorded as sent. If Redis stays away, the entry stays pending and a later reclaim
/// resends with the same `reqId`, which the provider answers with 160054.
async fn persist<T, F, Fut>(mut write: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    let mut tries = 0;
    loop {
        match write().await {
            Err(e) if e.is_unavailable() && tries < 8 => {
                tries += 1;
                tracing::warn!(error = %e, "status write failed; retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}
