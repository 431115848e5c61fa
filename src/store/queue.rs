//! The send stream from the worker's side: consumer group, reads, and the scripted status
//! transitions that ack entries only once their outcome is written.

use std::time::Duration;

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use redis::streams::{StreamAutoClaimOptions, StreamId, StreamReadOptions, StreamReadReply};

use super::scripts::SCRIPTS;
use super::{GROUP, Store, StoreError, field};
use crate::domain::{Code, Job, JobKind, JobStatus};

/// One stream entry, parsed as far as it goes.
#[derive(Debug)]
pub struct Entry {
    pub entry_id: String,
    /// The raw `job` field, kept for the dead-letter record of a poison entry.
    pub raw: String,
    pub job: Result<Job, String>,
}

/// What `begin` decided.
#[derive(Debug)]
pub enum Begin {
    /// Marked `sending`. For code jobs, the plain code, read just now from its `otp` key.
    Send(Option<Code>),
    /// Ended without a send (`superseded`, `expired`), or was already terminal; acked.
    Skipped(JobStatus),
}

/// A failed provider call and what comes next.
pub struct Failure<'a> {
    /// The attempt that failed (1-based).
    pub attempt: u32,
    pub error: &'a str,
    pub provider_status: &'a str,
    /// The job for its next attempt and when it is due, or `None` when the job ends here.
    pub next: Option<(&'a Job, i64)>,
    /// The status when it ends here: `Dead` or `Expired` (or `Failed` for permanent errors).
    pub end: JobStatus,
}

fn parse_entry(id: StreamId) -> Entry {
    let raw: Option<String> = id.get("job");
    match raw {
        Some(raw) => Entry {
            job: Job::from_json(&raw),
            raw,
            entry_id: id.id,
        },
        None => Entry {
            job: Err("stream entry has no `job` field".to_owned()),
            raw: format!("{:?}", id.map.keys().collect::<Vec<_>>()),
            entry_id: id.id,
        },
    }
}

impl Store {
    /// Creates the consumer group (reading from the start of the stream) unless it exists.
    pub async fn ensure_group(&self) -> Result<(), StoreError> {
        let created: Result<(), redis::RedisError> = self
            .conn()
            .xgroup_create_mkstream(self.keys.jobs(), GROUP, "0")
            .await;
        match created {
            Err(e) if e.code() == Some("BUSYGROUP") => Ok(()),
            other => Ok(other?),
        }
    }

    /// New entries for `consumer`, blocking up to `block` when there are none.
    pub async fn read(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
        count: usize,
        block: Duration,
    ) -> Result<Vec<Entry>, StoreError> {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count)
            .block(block.as_millis() as usize);
        self.read_with(conn, ">", &options).await
    }

    /// Entries already delivered to `consumer` and not acked, after id `from` (`"0"` = all).
    pub async fn read_from(
        &self,
        conn: &mut MultiplexedConnection,
        consumer: &str,
        from: &str,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let options = StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count);
        self.read_with(conn, from, &options).await
    }

    async fn read_with(
        &self,
        conn: &mut MultiplexedConnection,
        start: &str,
        options: &StreamReadOptions,
    ) -> Result<Vec<Entry>, StoreError> {
        let reply: Option<StreamReadReply> = conn
            .xread_options(&[self.keys.jobs()], &[start], options)
            .await?;
        Ok(reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .map(parse_entry)
            .collect())
    }

    /// Takes over entries that other consumers left pending for `min_idle` (crashed workers).
    pub async fn claim_idle(
        &self,
        consumer: &str,
        min_idle: Duration,
        count: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let mut start = "0-0".to_owned();
        let mut claimed = Vec::new();
        loop {
            let reply: redis::streams::StreamAutoClaimReply = self
                .conn()
                .xautoclaim_options(
                    self.keys.jobs(),
                    GROUP,
                    consumer,
                    min_idle.as_millis() as u64,
                    &start,
                    StreamAutoClaimOptions::default().count(count),
                )
                .await?;
            claimed.extend(reply.claimed.into_iter().map(parse_entry));
            if reply.next_stream_id == "0-0" || claimed.len() >= count {
                return Ok(claimed);
            }
            start = reply.next_stream_id;
        }
    }

    pub async fn begin(&self, entry_id: &str, job: &Job, now_ms: i64) -> Result<Begin, StoreError> {
        let k = &self.keys;
        let id = job.id.as_str();
        let code_key = match (&job.kind, &job.purpose) {
            (JobKind::Code, Some(p)) => k.code(p.as_str(), job.to.as_str()),
            _ => k.job(id),
        };
        let reply: Vec<String> = SCRIPTS
            .begin
            .key(k.job(id))
            .key(k.events())
            .key(k.jobs())
            .key(k.otp(id))
            .key(code_key)
            .arg(id)
            .arg(entry_id)
            .arg(GROUP)
            .arg(now_ms)
            .arg(job.attempt + 1)
            .arg(match job.kind {
                JobKind::Code => "code",
                JobKind::Message => "message",
            })
            .arg(job.expires_ms.map(|e| e.to_string()).unwrap_or_default())
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.events_maxlen)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match field(&reply, 0)? {
            "send" => Begin::Send(match job.kind {
                JobKind::Code => Some(Code::from_input(field(&reply, 1)?)),
                JobKind::Message => None,
            }),
            "superseded" => Begin::Skipped(JobStatus::Superseded),
            "expired" => Begin::Skipped(JobStatus::Expired),
            "terminal" => Begin::Skipped(parse_status(field(&reply, 1)?)?),
            other => return Err(StoreError::Reply(format!("begin: {other:?}"))),
        })
    }

    /// Writes a terminal status after a provider call, then drops the code and the entry.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish(
        &self,
        entry_id: &str,
        job: &Job,
        status: JobStatus,
        attempt: u32,
        error: &str,
        provider_status: &str,
        provider_message_id: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let k = &self.keys;
        let id = job.id.as_str();
        let _: String = SCRIPTS
            .finish
            .key(k.job(id))
            .key(k.events())
            .key(k.jobs())
            .key(k.otp(id))
            .arg(id)
            .arg(entry_id)
            .arg(GROUP)
            .arg(now_ms)
            .arg(status.as_str())
            .arg(attempt)
            .arg(error)
            .arg(provider_status)
            .arg(provider_message_id)
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.events_maxlen)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Records a failed attempt: into the retry set, or to its end (dead letter / expired /
    /// failed), acking the stream entry in the same step.
    pub async fn reschedule(
        &self,
        entry_id: &str,
        job: &Job,
        failure: &Failure<'_>,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let k = &self.keys;
        let id = job.id.as_str();
        let (next_json, due) = match failure.next {
            Some((next, due)) => (next.to_json(), due.to_string()),
            None => (String::new(), String::new()),
        };
        let _: String = SCRIPTS
            .reschedule
            .key(k.job(id))
            .key(k.events())
            .key(k.jobs())
            .key(k.otp(id))
            .key(k.retry())
            .key(k.dead())
            .arg(id)
            .arg(entry_id)
            .arg(GROUP)
            .arg(now_ms)
            .arg(failure.attempt)
            .arg(failure.error)
            .arg(failure.provider_status)
            .arg(next_json)
            .arg(due)
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.events_maxlen)
            .arg(failure.end.as_str())
            .arg(job.to_json())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Dead-letters an entry that cannot be parsed, with the reason, and acks it.
    pub async fn poison(&self, entry: &Entry, error: &str, now_ms: i64) -> Result<(), StoreError> {
        let _: i64 = SCRIPTS
            .poison
            .key(self.keys.jobs())
            .key(self.keys.dead())
            .arg(&entry.entry_id)
            .arg(GROUP)
            .arg(&entry.raw)
            .arg(error)
            .arg(now_ms)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Moves due retries back onto the stream; returns how many moved.
    pub async fn promote_due(&self, now_ms: i64, batch: usize) -> Result<usize, StoreError> {
        let moved: usize = SCRIPTS
            .promote
            .key(self.keys.retry())
            .key(self.keys.jobs())
            .arg(now_ms)
            .arg(batch)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(moved)
    }
}

pub(crate) fn parse_status(s: &str) -> Result<JobStatus, StoreError> {
    serde_json::from_value(serde_json::Value::String(s.to_owned()))
        .map_err(|_| StoreError::Reply(format!("unknown status {s:?}")))
}
