//! One job, from its stream entry to a recorded outcome.

use std::time::Duration;

use rand::RngExt;
use tracing::Instrument;

use super::Context;
use super::retry::{self, Next};
use crate::domain::{Job, now_ms};
use crate::provider::{Accepted, Action, SendError, TemplateSms};
use crate::store::{Begin, Entry, Outcome, ProviderFailure, StoreError};

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
    let outcome = outcome_of(ctx, job, attempt, result);
    log(&outcome);
    persist(|| ctx.store.settle(entry_id, job, attempt, &outcome, now_ms()))
        .await
        .map(drop)
}

/// What the provider's answer means for this job: the classification of `provider::classify`
/// plus the retry policy and the code's expiry.
fn outcome_of(
    ctx: &Context,
    job: &Job,
    attempt: u32,
    result: Result<Accepted, SendError>,
) -> Outcome {
    let error = match result {
        Ok(accepted) => {
            return Outcome::Sent {
                provider_status: "000000".to_owned(),
                message_id: accepted.message_id,
            };
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
            return Outcome::Sent {
                provider_status: failure.provider_status,
                message_id: String::new(),
            };
        }
        Action::GiveUp => return Outcome::Failed(failure),
        Action::Retry => None,
        Action::Backoff { after } => Some(after),
    };
    let jitter = rand::rng().random::<f64>();
    match retry::next(&ctx.settings.retry, attempt, at_least, jitter) {
        Next::Exhausted => Outcome::Dead(failure),
        Next::RetryAfter(delay) => {
            let due = now_ms() + delay.as_millis() as i64;
            // Never retry past the code's expiry: the user has moved on by then.
            match job.expires_ms {
                Some(expires) if due >= expires => Outcome::Expired(failure),
                _ => Outcome::RetryAt(due, failure),
            }
        }
    }
}

fn log(outcome: &Outcome) {
    match outcome {
        Outcome::Sent {
            provider_status,
            message_id,
        } => tracing::info!(%provider_status, %message_id, "sent"),
        Outcome::Failed(f) => tracing::warn!(error = %f.error, "failed permanently"),
        Outcome::RetryAt(due, f) => {
            tracing::warn!(error = %f.error, retry_in_ms = due - now_ms(), "will retry")
        }
        Outcome::Dead(f) | Outcome::Expired(f) => {
            tracing::warn!(error = %f.error, status = %outcome.status(), "giving up")
        }
    }
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
