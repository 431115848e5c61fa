//! One job, from its stream entry to a recorded outcome.

use std::time::Duration;

use rand::RngExt;
use tracing::Instrument;

use super::Context;
use super::retry::{self, Next};
use crate::domain::{Job, JobStatus, now_ms};
use crate::provider::{Action, TemplateSms};
use crate::store::{Begin, Entry, Failure, StoreError};

/// Handles one entry. Never panics on bad input and never acks before the outcome is written:
/// on a Redis failure the entry stays pending and is reclaimed later.
pub(super) async fn handle(ctx: &Context, entry: Entry) {
    let job = match &entry.job {
        Ok(job) => job.clone(),
        Err(reason) => {
            tracing::warn!(entry = %entry.entry_id, %reason, "poison entry: dead-lettered");
            if let Err(e) = ctx.store.poison(&entry, reason, now_ms()).await {
                tracing::error!(entry = %entry.entry_id, error = %e, "cannot dead-letter; entry stays pending");
            }
            return;
        }
    };
    let span =
        tracing::info_span!("job", job_id = %job.id, mobile = %job.to, attempt = job.attempt + 1);
    if let Err(e) = deliver(ctx, &entry.entry_id, &job)
        .instrument(span.clone())
        .await
    {
        span.in_scope(
            || tracing::error!(error = %e, "redis error; entry left pending for a retry"),
        );
    }
}

async fn deliver(ctx: &Context, entry_id: &str, job: &Job) -> Result<(), StoreError> {
    ctx.limiter.until_ready().await;
    let code = match ctx.store.begin(entry_id, job, now_ms()).await? {
        Begin::Skipped(status) => {
            tracing::info!(%status, "not sent");
            return Ok(());
        }
        Begin::Send(code) => code,
    };
    let attempt = job.attempt + 1;
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
    let result = ctx.client.send(&sms).await;

    // The SMS may be out: from here on, writing the outcome is worth waiting for.
    match result {
        Ok(accepted) => {
            tracing::info!(message_id = %accepted.message_id, "sent");
            persist(|| {
                ctx.store.finish(
                    entry_id,
                    job,
                    JobStatus::Sent,
                    attempt,
                    "",
                    "000000",
                    &accepted.message_id,
                    now_ms(),
                )
            })
            .await
        }
        Err(error) => {
            let verdict = error.verdict();
            let status_code = error.status_code();
            let message = format!("{status_code} {}: {error}", verdict.reason);
            let (status, last_error) = match verdict.action {
                Action::AlreadyAccepted => {
                    tracing::info!("provider already accepted this reqId: sent");
                    (JobStatus::Sent, "")
                }
                Action::GiveUp => {
                    tracing::warn!(error = %message, "failed permanently");
                    (JobStatus::Failed, message.as_str())
                }
                Action::Retry => {
                    return reschedule(ctx, entry_id, job, attempt, &message, &status_code, None)
                        .await;
                }
                Action::Backoff { after } => {
                    let after = Some(after);
                    return reschedule(ctx, entry_id, job, attempt, &message, &status_code, after)
                        .await;
                }
            };
            persist(|| {
                let now = now_ms();
                ctx.store.finish(
                    entry_id,
                    job,
                    status,
                    attempt,
                    last_error,
                    &status_code,
                    "",
                    now,
                )
            })
            .await
        }
    }
}

async fn reschedule(
    ctx: &Context,
    entry_id: &str,
    job: &Job,
    attempt: u32,
    message: &str,
    status_code: &str,
    at_least: Option<Duration>,
) -> Result<(), StoreError> {
    let now = now_ms();
    let jitter = rand::rng().random::<f64>();
    let mut next_job = job.clone();
    next_job.attempt = attempt;
    let (next, end) = match retry::next(&ctx.settings.retry, attempt, at_least, jitter) {
        Next::Exhausted => (None, JobStatus::Dead),
        Next::RetryAfter(delay) => {
            let due = now + delay.as_millis() as i64;
            // Never retry past the code's expiry: the user has moved on by then.
            match job.expires_ms {
                Some(expires) if due >= expires => (None, JobStatus::Expired),
                _ => (Some((&next_job, due)), JobStatus::Retrying),
            }
        }
    };
    match &next {
        Some((_, due)) => tracing::warn!(error = %message, retry_in_ms = due - now, "will retry"),
        None => tracing::warn!(error = %message, status = %end, "giving up"),
    }
    let failure = Failure {
        attempt,
        error: message,
        provider_status: status_code,
        next,
        end,
    };
    persist(|| ctx.store.reschedule(entry_id, job, &failure, now_ms())).await
}

/// Retries a status write through a short Redis outage (a restart, a failover) so a sent SMS
/// is recorded as sent. If Redis stays away, the entry stays pending and a later reclaim
/// resends with the same `reqId`, which the provider answers with 160054.
async fn persist<F, Fut>(mut write: F) -> Result<(), StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), StoreError>>,
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
