//! A job's scripted status transitions on the worker's side. Each one writes the job record
//! and an event, and acks the stream entry only in the same script that records the outcome.

use redis::AsyncCommands;

use super::{Begin, Entry, Fence, Outcome, Queue, Settled};
use crate::domain::{Job, JobKind, Shard};
use crate::store::script::script;
use crate::store::{GROUP, StoreError, field, parse_status};

script! {
    /// Marks a job `sending` unless it is finished, a poison pill, superseded or expired.
    struct BeginCall<'a> = include_str!("begin.lua");
    keys { job_key, events, stream, stats, code_key, dead, legacy_otp }
    argv {
        job_id: &'a str, entry_id: &'a str, group: &'a str, now: i64, ttl: u64,
        events_keep_ms: u64, attempt: u32, kind: &'a str, expires: String, max_deliveries: u32,
        job_json: &'a str, dead_maxlen: u64, token: &'a str,
    }
}

script! {
    /// Writes an attempt's outcome (fenced) and acks its entry.
    struct SettleCall<'a> = include_str!("settle.lua");
    keys { job_key, events, stream, code_key, stats, retry, dead, sid_key, early_key }
    argv {
        job_id: &'a str, entry_id: &'a str, group: &'a str, now: i64, ttl: u64,
        events_keep_ms: u64, outcome: String, attempt: u32, err: &'a str,
        provider_status: &'a str, message_field: &'static str, message_value: Vec<u8>,
        next_job: String,
        received_job: &'a str, dead_maxlen: u64, token: &'a str, me: &'a str,
        account: &'a str, sid_ttl: u64,
    }
}

script! {
    /// Notes in the job's history that its attempt moved on from an account (fenced).
    struct HopCall<'a> = include_str!("hop.lua");
    keys { job_key }
    argv { token: &'a str, now: i64, attempt: u32, err: &'a str, account: &'a str, ttl: u64 }
}

script! {
    /// Dead-letters an entry that is not a job, and acks it.
    struct PoisonCall<'a> = include_str!("poison.lua");
    keys { stream, dead, stats }
    argv {
        entry_id: &'a str, group: &'a str, raw: &'a str, err: &'a str, now: i64, ttl: u64,
        dead_maxlen: u64,
    }
}

script! {
    /// Moves due retries back onto the stream.
    struct PromoteCall = include_str!("promote.lua");
    keys { retry, stream }
    argv { now: i64, batch: usize }
}

/// How an outcome crosses into `settle.lua`. `outcome` is its status, and for a retry its due
/// time (`retrying:<ms>`), with the next attempt in `next_job`. Only an [`Outcome`] makes one,
/// so a retry without a due time, or a due time or next attempt on anything else, cannot be
/// written; the script refuses any other shape.
struct Seam<'a> {
    outcome: String,
    err: &'a str,
    provider_status: &'a str,
    message_id: &'a str,
    next_job: String,
}

impl<'a> Seam<'a> {
    fn of(outcome: &'a Outcome, job: &Job, attempt: u32) -> Self {
        let (err, provider_status, message_id) = match outcome {
            Outcome::Sent {
                provider_status,
                message_id,
            } => ("", provider_status.as_str(), message_id.as_str()),
            Outcome::RetryAt(_, f)
            | Outcome::Failed(f)
            | Outcome::Dead(f)
            | Outcome::Expired(f) => (f.error.as_str(), f.provider_status.as_str(), ""),
        };
        let (outcome, next_job) = match outcome {
            Outcome::RetryAt(due, _) => {
                let next = Job {
                    attempt,
                    ..job.clone()
                };
                (format!("retrying:{due}"), next.to_json())
            }
            other => (other.status().as_str().to_owned(), String::new()),
        };
        Self {
            outcome,
            err,
            provider_status,
            message_id,
            next_job,
        }
    }
}

impl Queue {
    /// Marks the job of `entry` as sending, unless it should not be sent. An entry read as
    /// new (`first_delivery`) skips counting its deliveries (the poison-pill check).
    pub async fn begin(
        &self,
        entry: &Entry,
        job: &Job,
        fence: &Fence,
        now_ms: i64,
    ) -> Result<Begin, StoreError> {
        let (k, id, r) = (self.keys(entry.shard), job.id.as_str(), self.retention);
        let reply: Vec<String> = BeginCall {
            job_key: k.job(id),
            events: k.events(),
            stream: k.jobs(),
            stats: k.stats(now_ms / 60_000),
            code_key: k.code_of(job),
            dead: k.dead(),
            legacy_otp: k.legacy_otp(id),
            job_id: id,
            entry_id: &entry.entry_id,
            group: GROUP,
            now: now_ms,
            ttl: r.status_ttl_secs,
            events_keep_ms: r.events_keep_ms,
            attempt: job.attempt + 1,
            kind: job.kind.as_str(),
            expires: job.expires_ms.map(|e| e.to_string()).unwrap_or_default(),
            max_deliveries: if entry.first_delivery {
                0
            } else {
                r.max_deliveries
            },
            // Only a poison check (an entry delivered again) may bury it: as it came.
            job_json: if entry.first_delivery { "" } else { &entry.raw },
            dead_maxlen: r.dead_maxlen,
            token: &fence.token,
        }
        .call(&mut self.conn())
        .await?;
        Ok(match field(&reply, 0)? {
            "send" => Begin::Send {
                sealed: match job.kind {
                    JobKind::Code => {
                        Some(crate::domain::SealedCode::from_stored(field(&reply, 1)?))
                    }
                    JobKind::Message => None,
                },
                // The API checked it before writing it; '' (none) or anything else that is not
                // an id is not logged.
                request_id: reply
                    .get(2)
                    .and_then(|r| crate::domain::RequestId::parse(r)),
            },
            "superseded" => Begin::Skipped(crate::domain::JobStatus::Superseded),
            "expired" => Begin::Skipped(crate::domain::JobStatus::Expired),
            "terminal" => Begin::Finished(parse_status(field(&reply, 1)?)?),
            "overtaken" => Begin::Overtaken(parse_status(field(&reply, 1)?)?),
            "poison" => Begin::Poisoned(field(&reply, 1)?.parse().map_err(|_| {
                StoreError::Reply(format!("begin: unreadable delivery count in {reply:?}"))
            })?),
            other => return Err(StoreError::Reply(format!("begin: {other:?}"))),
        })
    }

    /// Records how the attempt `fence` of `job` ended and acks its entry, in one script
    /// (see [`Fence`] for whose outcome is written). An earlier terminal status wins.
    /// `account` is the provider account the outcome came from ("" when none was called);
    /// `sid_ttl` how long a `sent` job keeps the index from the provider's message id to it
    /// (0: the account's reports name the job themselves).
    #[allow(clippy::too_many_arguments)]
    pub async fn settle(
        &self,
        entry: &Entry,
        job: &Job,
        fence: &Fence,
        attempt: u32,
        outcome: &Outcome,
        account: &str,
        sid_ttl: u64,
        now_ms: i64,
    ) -> Result<Settled, StoreError> {
        let seam = Seam::of(outcome, job, attempt);
        let (message_field, message_value) = crate::store::message_id_field(seam.message_id);
        let (k, id, r) = (self.keys(entry.shard), job.id.as_str(), self.retention);
        let status: String = SettleCall {
            job_key: k.job(id),
            events: k.events(),
            stream: k.jobs(),
            code_key: k.code_of(job),
            stats: k.stats(now_ms / 60_000),
            retry: k.retry(),
            dead: k.dead(),
            sid_key: k.sid(seam.message_id, job.to.as_str()),
            early_key: k.early_report(seam.message_id, job.to.as_str()),
            job_id: id,
            entry_id: &entry.entry_id,
            group: GROUP,
            now: now_ms,
            ttl: r.status_ttl_secs,
            events_keep_ms: r.events_keep_ms,
            outcome: seam.outcome,
            attempt,
            err: seam.err,
            provider_status: seam.provider_status,
            message_field,
            message_value,
            next_job: seam.next_job,
            // Only a dead job's letter holds it: the entry as it came.
            received_job: match outcome {
                Outcome::Dead(_) => &entry.raw,
                _ => "",
            },
            dead_maxlen: r.dead_maxlen,
            token: &fence.token,
            me: &fence.consumer,
            account,
            sid_ttl: sid_ttl.min(r.status_ttl_secs),
        }
        .call(&mut self.conn())
        .await?;
        match status.as_str() {
            "stale" => Ok(Settled::Stale),
            other => parse_status(other).map(Settled::Status),
        }
    }

    /// Notes in the history of `job` (still `sending`, still ours) that `account` refused
    /// it with `err` and the attempt moves on. False if the attempt no longer owns the job.
    pub async fn hop(
        &self,
        entry: &Entry,
        job: &Job,
        fence: &Fence,
        err: &str,
        account: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let k = self.keys(entry.shard);
        let written: i64 = HopCall {
            job_key: k.job(job.id.as_str()),
            token: &fence.token,
            now: now_ms,
            attempt: job.attempt + 1,
            err,
            account,
            ttl: self.retention.status_ttl_secs,
        }
        .call(&mut self.conn())
        .await?;
        Ok(written == 1)
    }

    /// Dead-letters an entry that cannot be parsed, with the reason, and acks it.
    pub async fn poison(&self, entry: &Entry, error: &str, now_ms: i64) -> Result<(), StoreError> {
        let (k, r) = (self.keys(entry.shard), self.retention);
        let _: i64 = PoisonCall {
            stream: k.jobs(),
            dead: k.dead(),
            stats: k.stats(now_ms / 60_000),
            entry_id: &entry.entry_id,
            group: GROUP,
            raw: &entry.raw,
            err: error,
            now: now_ms,
            ttl: r.status_ttl_secs,
            dead_maxlen: r.dead_maxlen,
        }
        .call(&mut self.conn())
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
        // Nearly always nothing is due: a plain read says so for a fraction of a script
        // call's cost (every worker asks every shard five times a second).
        let due: Vec<String> = self
            .conn()
            .zrangebyscore_limit(k.retry(), "-inf", now_ms, 0, 1)
            .await?;
        if due.is_empty() {
            return Ok(0);
        }
        PromoteCall {
            retry: k.retry(),
            stream: k.jobs(),
            now: now_ms,
            batch,
        }
        .call(&mut self.conn())
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ProviderFailure;

    #[test]
    fn only_a_retry_carries_a_due_time_and_a_next_attempt_across_the_seam() {
        let job = Job::from_json(
            r#"{"id":"00aabbccddeeff00112233445566778f","kind":"message","to":"13800138000","template_id":"1","datas":[],"attempt":0,"created_ms":1}"#,
        )
        .unwrap();
        let f = ProviderFailure {
            error: "e".into(),
            provider_status: "172001".into(),
        };
        let retry = Outcome::RetryAt(42, f.clone());
        let seam = Seam::of(&retry, &job, 1);
        assert_eq!(seam.outcome, "retrying:42");
        assert_eq!(Job::from_json(&seam.next_job).unwrap().attempt, 1);
        for (outcome, status) in [
            (Outcome::Dead(f.clone()), "dead"),
            (Outcome::Failed(f.clone()), "failed"),
            (Outcome::Expired(f), "expired"),
        ] {
            let seam = Seam::of(&outcome, &job, 1);
            assert_eq!(
                (seam.outcome.as_str(), seam.next_job.as_str()),
                (status, "")
            );
        }
    }
}
