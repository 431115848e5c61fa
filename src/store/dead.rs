//! The dead letters: listing them, replaying a job, purging. Safe while workers run: a
//! replay removes its dead letter in the same script that re-queues the job (twice is a
//! no-op), and a purge removes only what existed when it looked.

use redis::AsyncCommands;
use redis::streams::{StreamId, StreamRangeReply};

use super::scripts::SCRIPTS;
use super::{Store, StoreError, field};
use crate::domain::{Job, JobKind, now_ms};

/// One entry of the dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The dead-letter stream's entry id.
    pub id: String,
    /// The job, or why its payload is not one (a poison entry).
    pub job: Result<Job, String>,
    pub error: String,
    pub attempts: u32,
    pub ts_ms: i64,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    Replayed,
    /// No such dead letter (already replayed or purged), or the job record has expired.
    Gone,
    /// A code job whose code expired or was replaced: sending it now would send a stale code.
    Stale,
    /// The payload is not a job (a poison entry): nothing to send.
    NotAJob(String),
}

fn read(entry: StreamId) -> DeadLetter {
    let text = |k: &str| entry.get::<String>(k).unwrap_or_default();
    let raw = text("job");
    DeadLetter {
        job: Job::from_json(&raw),
        error: text("error"),
        attempts: text("attempts").parse().unwrap_or(0),
        ts_ms: text("ts").parse().unwrap_or(0),
        id: entry.id,
    }
}

impl Store {
    /// The oldest `limit` dead letters.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        let reply: StreamRangeReply = self
            .conn()
            .xrange_count(self.keys.dead(), "-", "+", limit)
            .await?;
        Ok(reply.ids.into_iter().map(read).collect())
    }

    pub async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        Ok(self.conn().xlen(self.keys.dead()).await?)
    }

    /// Re-queues the job of one dead letter with a fresh attempt budget.
    pub async fn replay(&self, letter: &DeadLetter) -> Result<Replay, StoreError> {
        let job = match &letter.job {
            Ok(job) => job,
            Err(why) => return Ok(Replay::NotAJob(why.clone())),
        };
        let k = &self.keys;
        let id = job.id.as_str();
        let code_key = match (&job.kind, &job.purpose) {
            (JobKind::Code, Some(p)) => k.code(p.as_str(), job.to.as_str()),
            _ => k.job(id),
        };
        let mut fresh = job.clone();
        fresh.attempt = 0;
        let reply: Vec<String> = SCRIPTS
            .replay
            .key(k.dead())
            .key(k.jobs())
            .key(k.events())
            .key(k.job(id))
            .key(code_key)
            .key(k.otp(id))
            .arg(&letter.id)
            .arg(id)
            .arg(fresh.to_json())
            .arg(match job.kind {
                JobKind::Code => "code",
                JobKind::Message => "message",
            })
            .arg(now_ms())
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.events_maxlen)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match field(&reply, 0)? {
            "replayed" => Replay::Replayed,
            "gone" => Replay::Gone,
            "stale" => Replay::Stale,
            other => return Err(StoreError::Reply(format!("replay: {other:?}"))),
        })
    }

    /// Deletes every dead letter up to the newest one there is now; returns how many. Letters
    /// that workers add meanwhile stay.
    pub async fn purge_dead_letters(&self) -> Result<u64, StoreError> {
        let mut conn = self.conn();
        let newest: StreamRangeReply = conn.xrevrange_count(self.keys.dead(), "+", "-", 1).await?;
        let Some(newest) = newest.ids.first() else {
            return Ok(0);
        };
        let (ms, seq) = newest
            .id
            .split_once('-')
            .unwrap_or((newest.id.as_str(), "0"));
        let seq: u64 = seq.parse().unwrap_or(0);
        let removed: u64 = redis::cmd("XTRIM")
            .arg(self.keys.dead())
            .arg("MINID")
            .arg(format!("{ms}-{}", seq + 1))
            .query_async(&mut conn)
            .await?;
        Ok(removed)
    }
}
