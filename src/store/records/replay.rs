//! Replaying dead letters by name or all of them: what each one came to, as data. The CLI
//! prints it (`smsq dlq replay`), the dashboard shows it (`POST /v1/admin/dead/replay`).

use serde::Serialize;

use super::{DeadLetter, Records, Replay};
use crate::domain::{EntryId, JobId};
use crate::store::StoreError;

/// How many dead letters `all` reads at a time.
const PAGE: usize = 100;

/// What one name came to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Replayed {
    /// The name asked for (a dead-letter id, or a job id), or the letter's job.
    pub name: String,
    pub outcome: ReplayOutcome,
    /// Why a letter that is not a job was refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReplayOutcome {
    /// Queued again with a fresh attempt budget.
    Replayed,
    /// No such dead letter: never was, already replayed or purged, or its record expired.
    NotFound,
    /// Its code expired or was replaced: a stale code is never sent.
    Stale,
    /// The payload is not a job (a poison entry): `reason` says why.
    NotAJob,
}

impl ReplayOutcome {
    pub fn refused(&self) -> bool {
        matches!(self, Self::Stale | Self::NotAJob)
    }
}

impl Records {
    /// Replays the dead letters named by `ids` (dead-letter ids or job ids), or all of them.
    /// A named one is read alone; `all` goes through every shard a page at a time, and only
    /// through what was dead when it began (a replayed job that dies again meanwhile waits for
    /// the next replay), so neither holds more than a page or asks Redis for more at once.
    pub async fn replay_dead(
        &self,
        ids: &[String],
        all: bool,
    ) -> Result<Vec<Replayed>, StoreError> {
        let mut done = Vec::new();
        if !all {
            for id in ids {
                match self.named(id).await? {
                    Some(letter) => done.push(self.replay_one(&letter).await?),
                    None => done.push(Replayed {
                        name: id.clone(),
                        outcome: ReplayOutcome::NotFound,
                        reason: None,
                    }),
                }
            }
            return Ok(done);
        }
        for shard in self.shards().all() {
            let Some(newest) = self.newest_dead_letter(shard).await? else {
                continue;
            };
            let newest = EntryId::parse(&newest);
            let mut after: Option<String> = None;
            'pages: loop {
                let page = self
                    .dead_letters_after(shard, after.as_deref(), PAGE)
                    .await?;
                for letter in &page {
                    if EntryId::parse(&letter.entry_id) > newest {
                        break 'pages;
                    }
                    done.push(self.replay_one(letter).await?);
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(last.entry_id.clone()),
                    _ => break,
                }
            }
        }
        Ok(done)
    }

    /// The dead letter a name means: a dead-letter id, or a job id.
    async fn named(&self, id: &str) -> Result<Option<DeadLetter>, StoreError> {
        match JobId::parse(id) {
            Some(job) => self.dead_letter_of(&job).await,
            None => self.dead_letter(id).await,
        }
    }

    async fn replay_one(&self, letter: &DeadLetter) -> Result<Replayed, StoreError> {
        let name = letter
            .job
            .as_ref()
            .map_or(letter.id.clone(), |j| format!("job {}", j.id));
        let (outcome, reason) = match self.replay(letter).await? {
            Replay::Replayed => (ReplayOutcome::Replayed, None),
            Replay::Gone => (ReplayOutcome::NotFound, None),
            Replay::Stale => (ReplayOutcome::Stale, None),
            Replay::NotAJob(why) => (ReplayOutcome::NotAJob, Some(why)),
        };
        Ok(Replayed {
            name,
            outcome,
            reason,
        })
    }
}
