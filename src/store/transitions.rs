//! A job's scripted status transitions on the worker's side. Each one writes the job record
//! and an event, and acks the stream entry only in the same script that records the outcome.

use redis::{Script, ScriptInvocation};

use super::Keys;
use super::scripts::SCRIPTS;
use super::{Entry, GROUP, Store, StoreError, field};
use crate::domain::{Job, JobKind, JobStatus, SealedCode, Shard};

/// What `begin` decided.
#[derive(Debug)]
pub enum Begin {
    /// Marked `sending`. For code jobs, the sealed code, read just now from its `otp` key.
    Send(Option<SealedCode>),
    /// Ended now without a send (`superseded`, `expired`); acked.
    Skipped(JobStatus),
    /// Already in this terminal status (a reclaimed or replayed entry); only acked.
    Finished(JobStatus),
    /// Delivered this many times without an outcome: dead-lettered (a poison pill).
    Poisoned(u32),
}

/// One attempt at a job: the consumer that began it, and a token of this attempt alone.
/// `begin` records the token on the job as its owner. `settle` writes an outcome only for
/// the attempt the job names, except that a `sent` from any attempt is always written (the
/// provider did accept it). It acks the entry only while the entry is still pending with
/// this consumer. So a worker that was frozen mid-send, taken for dead and overtaken by
/// another cannot write over what happened to the job, nor ack an entry that is now the
/// other worker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    consumer: String,
    token: String,
}

impl Fence {
    /// A fresh attempt by `consumer`.
    pub fn new(consumer: &str) -> Self {
        let token: [u8; 8] = rand::random();
        Self {
            consumer: consumer.to_owned(),
            token: crate::domain::hex_lower(&token),
        }
    }
}

/// What `settle` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The job's status now: the outcome's, or an earlier terminal one that stands.
    Status(JobStatus),
    /// Another attempt owns the job now (this one's worker was taken for dead): this
    /// attempt's failure was not written.
    Stale,
}

/// Why a provider call did not end in `sent`, as recorded on the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    /// Human-readable: the provider's code, our reading of it and its message.
    pub error: String,
    /// The provider's status code (`172001` for network errors, as the SDKs report them).
    pub provider_status: String,
}

/// How attempt `n` of a job settled: exactly one of these is recorded, with the ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the message (`000000`, or `160054` for a reqId it already had).
    Sent {
        provider_status: String,
        message_id: String,
    },
    /// A permanent provider error: no retry can succeed.
    Failed(ProviderFailure),
    /// A transient failure: the next attempt is due at this time (Unix ms).
    RetryAt(i64, ProviderFailure),
    /// `retry.max_attempts` calls failed; the job is copied to the dead letters.
    Dead(ProviderFailure),
    /// The next attempt would come after the code's expiry.
    Expired(ProviderFailure),
}

impl Outcome {
    pub fn status(&self) -> JobStatus {
        match self {
            Outcome::Sent { .. } => JobStatus::Sent,
            Outcome::Failed(_) => JobStatus::Failed,
            Outcome::RetryAt(..) => JobStatus::Retrying,
            Outcome::Dead(_) => JobStatus::Dead,
            Outcome::Expired(_) => JobStatus::Expired,
        }
    }
}

impl Store {
    /// The keys and arguments every job transition starts with: KEYS job record, events,
    /// stream, otp, this minute's stats; ARGV job id, entry id, group, now, status ttl,
    /// events maxlen. All on the entry's shard (where its job was enqueued).
    fn job_script<'s>(
        &self,
        script: &'s Script,
        entry: &Entry,
        job: &Job,
        now_ms: i64,
    ) -> ScriptInvocation<'s> {
        let (k, id) = (self.keys(entry.shard), job.id.as_str());
        let mut call = script.prepare_invoke();
        call.key(k.job(id))
            .key(k.events())
            .key(k.jobs())
            .key(k.otp(id))
            .key(k.stats(now_ms / 60_000))
            .arg(id)
            .arg(&entry.entry_id)
            .arg(GROUP)
            .arg(now_ms)
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.events_maxlen);
        call
    }

    /// Marks the job of `entry` as sending, unless it should not be sent. An entry read as
    /// new (`first_delivery`) skips counting its deliveries (the poison-pill check).
    pub async fn begin(
        &self,
        entry: &Entry,
        job: &Job,
        fence: &Fence,
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        let k = self.keys(entry.shard);
        let reply: Vec<String> = self
            .job_script(&SCRIPTS.begin, entry, job, now_ms)
            .key(code_key(k, job))
            .key(k.dead())
            .arg(job.attempt + 1)
            .arg(job.kind.as_str())
            .arg(job.expires_ms.map(|e| e.to_string()).unwrap_or_default())
            .arg(if entry.first_delivery {
                0
            } else {
                self.retention.max_deliveries
            })
            .arg(job.to_json())
            .arg(self.retention.dead_maxlen)
            .arg(&fence.token)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match field(&reply, 0)? {
            "send" => Begin::Send(match job.kind {
                JobKind::Code => Some(SealedCode::from_stored(field(&reply, 1)?)),
                JobKind::Message => None,
            }),
            "superseded" => Begin::Skipped(JobStatus::Superseded),
            "expired" => Begin::Skipped(JobStatus::Expired),
            "terminal" => Begin::Finished(parse_status(field(&reply, 1)?)?),
            "poison" => Begin::Poisoned(field(&reply, 1)?.parse().unwrap_or(0)),
            other => return Err(StoreError::Reply(format!("begin: {other:?}"))),
        })
    }

    /// Records how the attempt `fence` of `job` ended and acks its entry, in one script
    /// (see [`Fence`] for whose outcome is written). An earlier terminal status wins.
    pub async fn settle(
        &self,
        entry: &Entry,
        job: &Job,
        fence: &Fence,
        attempt: u32,
        outcome: &Outcome,
        now_ms: i64,
    ) -> Result<Settled, StoreError> {
        let none = String::new();
        let (failure, message_id, next) = match outcome {
            Outcome::Sent {
                provider_status,
                message_id,
            } => (
                ProviderFailure {
                    error: none.clone(),
                    provider_status: provider_status.clone(),
                },
                message_id.as_str(),
                None,
            ),
            Outcome::RetryAt(due, f) => (f.clone(), "", Some(*due)),
            Outcome::Failed(f) | Outcome::Dead(f) | Outcome::Expired(f) => (f.clone(), "", None),
        };
        let (next_job, due) = match next {
            Some(due) => {
                let mut next_job = job.clone();
                next_job.attempt = attempt;
                (next_job.to_json(), due.to_string())
            }
            None => (none.clone(), none),
        };
        let k = self.keys(entry.shard);
        let status: String = self
            .job_script(&SCRIPTS.settle, entry, job, now_ms)
            .key(k.retry())
            .key(k.dead())
            .key(k.sid(message_id, job.to.as_str()))
            .key(k.early_report(message_id, job.to.as_str()))
            .arg(outcome.status().as_str())
            .arg(attempt)
            .arg(&failure.error)
            .arg(&failure.provider_status)
            .arg(message_id)
            .arg(next_job)
            .arg(due)
            .arg(job.to_json())
            .arg(self.retention.dead_maxlen)
            .arg(&fence.token)
            .arg(&fence.consumer)
            .invoke_async(&mut self.conn())
            .await?;
        match status.as_str() {
            "stale" => Ok(Settled::Stale),
            other => parse_status(other).map(Settled::Status),
        }
    }

    /// Dead-letters an entry that cannot be parsed, with the reason, and acks it.
    pub async fn poison(&self, entry: &Entry, error: &str, now_ms: i64) -> Result<(), StoreError> {
        let k = self.keys(entry.shard);
        let _: i64 = SCRIPTS
            .poison
            .key(k.jobs())
            .key(k.dead())
            .key(k.stats(now_ms / 60_000))
            .arg(&entry.entry_id)
            .arg(GROUP)
            .arg(&entry.raw)
            .arg(error)
            .arg(now_ms)
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.dead_maxlen)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Moves due retries of `shard` back onto its stream; returns how many moved.
    pub async fn promote_due(
        &self,
        shard: Shard,
        now_ms: i64,
        batch: usize,
    ) -> Result<usize, StoreError> {
        let k = self.keys(shard);
        let moved: usize = SCRIPTS
            .promote
            .key(k.retry())
            .key(k.jobs())
            .arg(now_ms)
            .arg(batch)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(moved)
    }
}

/// What `begin` and `replay` check a job against: the code record of a code job (is it still
/// this job's code?); a message job has none, so its own record stands in.
pub(super) fn code_key(k: &Keys, job: &Job) -> String {
    match (&job.kind, &job.purpose) {
        (JobKind::Code, Some(p)) => k.code(p.as_str(), job.to.as_str()),
        _ => k.job(job.id.as_str()),
    }
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus, StoreError> {
    s.parse().map_err(StoreError::Reply)
}
