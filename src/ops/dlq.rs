//! `smsq dlq list / replay / purge`: what is dead and why, send it again, or let it go.

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::store::{DeadLetter, Replay, Store, StoreError, entry_order};

/// A dead letter as `smsq dlq list --json` shows it: the mobile masked, never a code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
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
            kind: job.map(|j| format!("{:?}", j.kind).to_lowercase()),
            mobile: job.map(|j| j.to.masked()),
            error: d.error.clone(),
            attempts: d.attempts,
            dead_at_ms: d.ts_ms,
        }
    }
}

pub async fn list(store: &Store, limit: usize, json: bool) -> Result<String, StoreError> {
    let total = store.dead_letter_count().await?;
    let letters: Vec<DeadLetterView> = store
        .dead_letters(limit)
        .await?
        .iter()
        .map(DeadLetterView::from)
        .collect();
    if json {
        let doc = serde_json::json!({"total": total, "dead_letters": letters});
        return Ok(serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let mut out = format!("{total} dead letter(s)");
    if letters.len() < total as usize {
        let _ = write!(out, ", the oldest {} shown", letters.len());
    }
    out.push('\n');
    for d in &letters {
        let when = Utc
            .timestamp_millis_opt(d.dead_at_ms)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{}  {}  job {} {} to {}  after {} attempt(s): {}",
            d.id,
            when,
            d.job_id.as_deref().unwrap_or("-"),
            d.kind.as_deref().unwrap_or("(not a job)"),
            d.mobile.as_deref().unwrap_or("-"),
            d.attempts,
            d.error
        );
    }
    Ok(out)
}

/// What `replay` did, with counts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub report: String,
    pub replayed: usize,
    pub refused: usize,
    pub not_found: usize,
}

/// How many dead letters `--all` reads at a time.
const PAGE: usize = 100;

/// Replays the dead letters named by `ids` (dead-letter ids or job ids), or all of them.
/// A named one is read alone; `all` goes through every shard a page at a time, so neither
/// holds more than a page in memory or asks Redis for more than that at once.
pub async fn replay(store: &Store, ids: &[String], all: bool) -> Result<Replayed, StoreError> {
    let mut done = Replayed::default();
    if !all {
        for id in ids {
            match named(store, id).await? {
                Some(letter) => replay_one(store, &letter, &mut done).await?,
                None => {
                    done.not_found += 1;
                    let _ = writeln!(done.report, "not found: {id} (no such dead letter)");
                }
            }
        }
    } else {
        for shard in store.shards().all() {
            // Only what was dead when we began: a replayed job that dies again meanwhile
            // lands past this and waits for the next replay.
            let Some(newest) = store.newest_dead_letter(shard).await? else {
                continue;
            };
            let mut after: Option<String> = None;
            'pages: loop {
                let page = store
                    .dead_letters_after(shard, after.as_deref(), PAGE)
                    .await?;
                for letter in &page {
                    if entry_order(&letter.entry_id) > entry_order(&newest) {
                        break 'pages;
                    }
                    replay_one(store, letter, &mut done).await?;
                }
                match page.last() {
                    Some(last) if page.len() == PAGE => after = Some(last.entry_id.clone()),
                    _ => break,
                }
            }
        }
    }
    let _ = writeln!(
        done.report,
        "{} replayed, {} refused, {} not found",
        done.replayed, done.refused, done.not_found
    );
    Ok(done)
}

/// The dead letter a name means: a dead-letter id, or a job id.
async fn named(store: &Store, id: &str) -> Result<Option<DeadLetter>, StoreError> {
    match crate::domain::JobId::parse(id) {
        Some(job) => store.dead_letter_of(&job).await,
        None => store.dead_letter(id).await,
    }
}

async fn replay_one(
    store: &Store,
    letter: &DeadLetter,
    done: &mut Replayed,
) -> Result<(), StoreError> {
    let name = letter
        .job
        .as_ref()
        .map_or(letter.id.clone(), |j| format!("job {}", j.id));
    match store.replay(letter).await? {
        Replay::Replayed => {
            done.replayed += 1;
            let _ = writeln!(
                done.report,
                "replayed {name}: queued again with a fresh attempt budget"
            );
        }
        Replay::Gone => {
            done.not_found += 1;
            let _ = writeln!(
                done.report,
                "not found: {name} (already replayed or purged, or its record expired)"
            );
        }
        Replay::Stale => {
            done.refused += 1;
            let _ = writeln!(
                done.report,
                "refused {name}: its code has expired or was replaced; a stale code is never sent"
            );
        }
        Replay::NotAJob(why) => {
            done.refused += 1;
            let _ = writeln!(done.report, "refused {}: not a job ({why})", letter.id);
        }
    }
    Ok(())
}

/// Without `yes`, only says what would go.
pub async fn purge(store: &Store, yes: bool) -> Result<String, StoreError> {
    if !yes {
        let n = store.dead_letter_count().await?;
        return Ok(format!(
            "{n} dead letter(s) would be deleted; run `smsq dlq purge --yes` to delete them"
        ));
    }
    let removed = store.purge_dead_letters().await?;
    Ok(format!("purged {removed} dead letter(s)"))
}
