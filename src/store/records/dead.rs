//! The dead letters: listing them, replaying a job, purging. Safe while workers run: a
//! replay removes its dead letter in the same script that re-queues the job (twice is a
//! no-op), and a purge removes only what existed when it looked.

use redis::AsyncCommands;
use redis::streams::{StreamId, StreamRangeReply};
use serde::Serialize;

use super::Records;
use crate::domain::{EntryId, Job, JobId, Shard, now_ms};
use crate::store::script::script;
use crate::store::{StoreError, field};

script! {
    /// Re-queues a dead letter's job and removes the letter, unless its code went stale.
    struct ReplayCall<'a> = include_str!("replay.lua");
    keys { dead, stream, events, job_key, code_key, legacy_otp }
    argv {
        dead_id: &'a str, job_id: &'a str, job_json: String, kind: &'a str, now: i64,
        ttl: u64, events_keep_ms: u64,
    }
}

/// One entry of a shard's dead-letter stream.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// What operators name it by: the entry id, with `@<shard>` past shard 0 (entry ids are
    /// only unique within one stream).
    pub id: String,
    pub shard: Shard,
    pub entry_id: String,
    /// The job, or why its payload is not one (a poison entry).
    pub job: Result<Job, String>,
    pub error: String,
    pub attempts: u32,
    pub ts_ms: i64,
}

/// A dead letter as operators see it (`smsq dlq list --json`, `/v1/admin/dead`): the mobile
/// masked, never a code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct DeadLetterView {
    pub id: String,
    pub job_id: Option<String>,
    pub kind: Option<String>,
    pub mobile: Option<String>,
    pub error: String,
    pub attempts: u32,
    pub dead_at_ms: i64,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(d: &DeadLetter) -> Self {
        let job = d.job.as_ref().ok();
        Self {
            id: d.id.clone(),
            job_id: job.map(|j| j.id.to_string()),
            kind: job.map(|j| j.kind.as_str().to_owned()),
            mobile: job.map(|j| j.to.masked()),
            error: d.error.clone(),
            attempts: d.attempts,
            dead_at_ms: d.ts_ms,
        }
    }
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

fn read(shard: Shard, entry: StreamId) -> DeadLetter {
    let text = |k: &str| entry.get::<String>(k).unwrap_or_default();
    let raw = text("job");
    DeadLetter {
        job: Job::from_json(&raw),
        error: text("error"),
        attempts: text("attempts").parse().unwrap_or(0),
        ts_ms: text("ts").parse().unwrap_or(0),
        id: if shard == Shard::FIRST {
            entry.id.clone()
        } else {
            format!("{}@{shard}", entry.id)
        },
        shard,
        entry_id: entry.id,
    }
}

impl Records {
    /// The oldest `limit` dead letters of all shards, oldest first.
    pub async fn dead_letters(&self, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_since(None, limit).await
    }

    /// The oldest `limit` dead letters of all shards after the letter named `after` (a
    /// dead-letter name, as [`DeadLetter::id`]): a page, the next one starting after its
    /// last letter. Letters are ordered by entry id (a time) and then by shard, so one cursor
    /// serves every shard, ties included; `limit` entries per shard are read.
    pub async fn dead_letters_since(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let cursor = match after {
            Some(name) => match self.dead_letter_name(name) {
                Some(c) => Some(c),
                None => return Ok(Vec::new()),
            },
            None => None,
        };
        let mut letters = Vec::new();
        for shard in self.shards().all() {
            let page = match cursor {
                // Past the cursor's shard, the cursor's own id may still come (a tie).
                Some((id, at)) if shard.index() > at.index() => {
                    let reply: StreamRangeReply = self
                        .conn()
                        .xrange_count(self.keys(shard).dead(), id, "+", limit)
                        .await?;
                    reply.ids.into_iter().map(|e| read(shard, e)).collect()
                }
                Some((id, _)) => self.dead_letters_after(shard, Some(id), limit).await?,
                None => self.dead_letters_after(shard, None, limit).await?,
            };
            letters.extend(page);
        }
        letters.sort_by_key(|d| (EntryId::parse(&d.entry_id), d.shard.index()));
        letters.truncate(limit);
        Ok(letters)
    }

    /// A dead-letter name (`<entry id>` on shard 0, `<entry id>@<shard>` past it) taken
    /// apart, or `None` if it is not one of this layout's.
    pub fn dead_letter_name<'n>(&self, name: &'n str) -> Option<(&'n str, Shard)> {
        let (entry_id, shard) = match name.split_once('@') {
            Some((id, shard)) => (id, self.shards().all().nth(shard.parse::<usize>().ok()?)?),
            None => (name, Shard::FIRST),
        };
        EntryId::parse(entry_id).map(|_| (entry_id, shard))
    }

    /// One dead letter by its name (`<entry id>` on shard 0, `<entry id>@<shard>` past it):
    /// one entry read, however many letters there are. `None` for a name that is not one.
    pub async fn dead_letter(&self, name: &str) -> Result<Option<DeadLetter>, StoreError> {
        let Some((entry_id, shard)) = self.dead_letter_name(name) else {
            return Ok(None);
        };
        let reply: StreamRangeReply = self
            .conn()
            .xrange(self.keys(shard).dead(), entry_id, entry_id)
            .await?;
        Ok(reply.ids.into_iter().next().map(|e| read(shard, e)))
    }

    /// The dead letter of a job, through the entry id its record keeps: two reads.
    pub async fn dead_letter_of(&self, job: &JobId) -> Result<Option<DeadLetter>, StoreError> {
        let shard = self.shards().of_job(job);
        let entry: Option<String> = self
            .conn()
            .hget(self.keys(shard).job(job.as_str()), "dead_entry")
            .await?;
        let Some(entry) = entry else {
            return Ok(None);
        };
        let name = if shard == Shard::FIRST {
            entry
        } else {
            format!("{entry}@{shard}")
        };
        self.dead_letter(&name).await
    }

    /// Up to `count` dead letters of `shard` after the entry `after` (from the oldest
    /// without it): a page, for going through all of them in bounded steps.
    pub async fn dead_letters_after(
        &self,
        shard: Shard,
        after: Option<&str>,
        count: usize,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let start = after.map_or("-".to_owned(), |id| format!("({id}"));
        let reply: StreamRangeReply = self
            .conn()
            .xrange_count(self.keys(shard).dead(), start, "+", count)
            .await?;
        Ok(reply.ids.into_iter().map(|e| read(shard, e)).collect())
    }

    pub async fn dead_letter_count(&self) -> Result<u64, StoreError> {
        let mut total = 0;
        for shard in self.shards().all() {
            let n: u64 = self.conn().xlen(self.keys(shard).dead()).await?;
            total += n;
        }
        Ok(total)
    }

    /// Re-queues the job of one dead letter with a fresh attempt budget.
    pub async fn replay(&self, letter: &DeadLetter) -> Result<Replay, StoreError> {
        let job = match &letter.job {
            Ok(job) => job,
            Err(why) => return Ok(Replay::NotAJob(why.clone())),
        };
        let k = self.keys(letter.shard);
        let id = job.id.as_str();
        let mut fresh = job.clone();
        fresh.attempt = 0;
        let reply: Vec<String> = ReplayCall {
            dead: k.dead(),
            stream: k.jobs(),
            events: k.events(),
            job_key: k.job(id),
            code_key: k.code_of(job),
            legacy_otp: k.legacy_otp(id),
            dead_id: &letter.entry_id,
            job_id: id,
            job_json: fresh.to_json(),
            kind: job.kind.as_str(),
            now: now_ms(),
            ttl: self.retention.status_ttl_secs,
            events_keep_ms: self.retention.events_keep_ms,
        }
        .call(&mut self.conn())
        .await?;
        Ok(match field(&reply, 0)? {
            "replayed" => Replay::Replayed,
            "gone" => Replay::Gone,
            "stale" => Replay::Stale,
            other => return Err(StoreError::Reply(format!("replay: {other:?}"))),
        })
    }

    /// Deletes every dead letter up to the newest one there is now, on every shard; returns
    /// how many. Letters that workers add meanwhile stay.
    pub async fn purge_dead_letters(&self) -> Result<u64, StoreError> {
        let mut removed = 0;
        for shard in self.shards().all() {
            removed += self.purge_shard(shard).await?;
        }
        Ok(removed)
    }

    /// The entry id of `shard`'s newest dead letter, if it has any.
    pub async fn newest_dead_letter(&self, shard: Shard) -> Result<Option<String>, StoreError> {
        let newest: StreamRangeReply = self
            .conn()
            .xrevrange_count(self.keys(shard).dead(), "+", "-", 1)
            .await?;
        Ok(newest.ids.into_iter().next().map(|e| e.id))
    }

    async fn purge_shard(&self, shard: Shard) -> Result<u64, StoreError> {
        let Some(newest) = self.newest_dead_letter(shard).await? else {
            return Ok(0);
        };
        let mut conn = self.conn();
        let dead = self.keys(shard).dead();
        let newest = EntryId::parse(&newest)
            .ok_or_else(|| StoreError::Reply(format!("dead letter id {newest:?}")))?;
        let removed: u64 = redis::cmd("XTRIM")
            .arg(&dead)
            .arg("MINID")
            .arg(newest.next().to_string())
            .query_async(&mut conn)
            .await?;
        Ok(removed)
    }
}
