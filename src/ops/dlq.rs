//! `smsq dlq list / replay / purge`: what is dead and why, send it again, or let it go.

use std::fmt::Write as _;

use chrono::{TimeZone, Utc};
use serde::Serialize;

use crate::store::{DeadLetter, Replay, Store, StoreError};

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

/// Replays the dead letters named by `ids` (dead-letter ids or job ids), or all of them.
pub async fn replay(store: &Store, ids: &[String], all: bool) -> Result<Replayed, StoreError> {
    let total = store.dead_letter_count().await? as usize;
    let letters = store.dead_letters(total.max(1)).await?;
    let mut done = Replayed::default();
    let chosen = if all {
        letters.iter().collect()
    } else {
        choose(&letters, ids, &mut done)
    };
    for letter in chosen {
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
    }
    let _ = writeln!(
        done.report,
        "{} replayed, {} refused, {} not found",
        done.replayed, done.refused, done.not_found
    );
    Ok(done)
}

/// The dead letters named by dead-letter id or job id; the others are counted not found.
fn choose<'a>(
    letters: &'a [DeadLetter],
    ids: &[String],
    done: &mut Replayed,
) -> Vec<&'a DeadLetter> {
    let mut chosen = Vec::new();
    for id in ids {
        let named = |d: &&DeadLetter| {
            d.id == *id || d.job.as_ref().is_ok_and(|j| j.id.as_str() == id.as_str())
        };
        match letters.iter().find(named) {
            Some(d) => chosen.push(d),
            None => {
                done.not_found += 1;
                let _ = writeln!(done.report, "not found: {id} (no such dead letter)");
            }
        }
    }
    chosen
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
