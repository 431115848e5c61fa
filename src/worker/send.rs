//! One job, from its stream entry to a recorded outcome.

use std::time::Duration;

use rand::RngExt;
use tracing::Instrument;

use super::Context;
use super::retry::{self, Next};
use crate::domain::{Job, now_ms};
use crate::provider::{Accepted, Action, SendError, TemplateSms};
use crate::store::{Begin, Entry, Outcome, ProviderFailure, StoreError};

/// How handling an entry ended, for the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Handled {
    /// Its outcome is recorded (or it was dead-lettered) and it is acked.
    Done,
    /// A Redis error left it pending with us: try it again soon. `count_delivery` when the
    /// error was not an outage (a script failing on this entry), so a poison pill ends.
    Stuck {
        entry_id: String,
        count_delivery: bool,
    },
}

/// Handles one entry. Never panics on bad input and never acks before the outcome is written:
/// on a Redis failure the entry stays pending with us and comes back.
pub(super) async fn handle(ctx: &Context, entry: Entry) -> Handled {
    let job = match &entry.job {
        Ok(job) => job.clone(),
        Err(reason) => {
            tracing::warn!(entry = %entry.entry_id, %reason, "poison entry: dead-lettered");
            return match ctx.store.poison(&entry, reason, now_ms()).await {
                Ok(()) => Handled::Done,
                Err(e) => {
                    tracing::error!(entry = %entry.entry_id, error = %e, "cannot dead-letter; entry stays pending");
                    stuck(entry.entry_id, &e)
                }
            };
        }
    };
    let span =
        tracing::info_span!("job", job_id = %job.id, mobile = %job.to, attempt = job.attempt + 1);
    match deliver(ctx, &entry.entry_id, &job)
        .instrument(span.clone())
        .await
    {
        Ok(()) => Handled::Done,
        Err(e) => {
            span.in_scope(|| tracing::error!(error = %e, "redis error; entry stays pending"));
            stuck(entry.entry_id, &e)
        }
    }
}

fn stuck(entry_id: String, error: &StoreError) -> Handled {
    Handled::Stuck {
        entry_id,
        count_delivery: !error.is_unavailable(),
    }
}

/// Waits for a send slot of the fleet's rate. A long wait (a pause, a low rate) keeps the
/// entry's idle time fresh so the `claim_idle` backstop does not hand it to another worker.
async fn wait_for_slot(ctx: &Context, entry_id: &str) {
    let slot = ctx.limiter.acquire();
    tokio::pin!(slot);
    let every = (ctx.settings.worker.claim_idle / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            () = &mut slot => return,
            () = tokio::time::sleep(every) => {
                if let Err(e) = ctx.store.touch(&ctx.consumer, entry_id).await {
                    tracing::warn!(error = %e, "cannot refresh a waiting entry");
                }
            }
        }
    }
}

async fn deliver(ctx: &Context, entry_id: &str, job: &Job) -> Result<(), StoreError> {
    wait_for_slot(ctx, entry_id).await;
    let code = match ctx.store.begin(entry_id, job, now_ms()).await? {
        Begin::Skipped(status) => {
            tracing::info!(%status, "not sent");
            return Ok(());
        }
        Begin::Poisoned(deliveries) => {
            tracing::error!(
                deliveries,
                "delivered too often without finishing: dead-lettered"
            );
            return Ok(());
        }
        Begin::Send(code) => code,
    };
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
    let (outcome, attempts) = outcome_of(ctx, job, result).await;
    log(&outcome);
    persist(|| {
        ctx.store
            .settle(entry_id, job, attempts, &outcome, now_ms())
    })
    .await
    .map(drop)
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
