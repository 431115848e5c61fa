//! `smsq dlq list / replay / purge`: what is dead and why, send it again, or let it go.

use std::fmt::Write as _;

use crate::store::records::DeadLetterView;
use crate::store::records::ReplayOutcome;
use crate::store::{Records, StoreError};
use chrono::{TimeZone, Utc};

pub async fn list(store: &Records, limit: usize, json: bool) -> Result<String, StoreError> {
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

/// What `replay` did, with counts and the report the CLI prints.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Replayed {
    pub report: String,
    pub replayed: usize,
    pub refused: usize,
    pub not_found: usize,
}

/// Replays the dead letters named by `ids` (dead-letter ids or job ids), or all of them
/// (see [`Records::replay_dead`]), and says what each came to.
pub async fn replay(store: &Records, ids: &[String], all: bool) -> Result<Replayed, StoreError> {
    let mut done = Replayed::default();
    for r in store.replay_dead(ids, all).await? {
        let name = &r.name;
        let line = match &r.outcome {
            ReplayOutcome::Replayed => {
                done.replayed += 1;
                format!("replayed {name}: queued again with a fresh attempt budget")
            }
            ReplayOutcome::NotFound => {
                done.not_found += 1;
                format!(
                    "not found: {name} (no such dead letter, already replayed or purged, or its record expired)"
                )
            }
            ReplayOutcome::Stale => {
                done.refused += 1;
                format!(
                    "refused {name}: its code has expired or was replaced; a stale code is never sent"
                )
            }
            ReplayOutcome::NotAJob => {
                done.refused += 1;
                let why = r.reason.as_deref().unwrap_or("unreadable");
                format!("refused {name}: not a job ({why})")
            }
        };
        let _ = writeln!(done.report, "{line}");
    }
    let _ = writeln!(
        done.report,
        "{} replayed, {} refused, {} not found",
        done.replayed, done.refused, done.not_found
    );
    Ok(done)
}

/// Without `yes`, only says what would go.
pub async fn purge(store: &Records, yes: bool) -> Result<String, StoreError> {
    if !yes {
        let n = store.dead_letter_count().await?;
        return Ok(format!(
            "{n} dead letter(s) would be deleted; run `smsq dlq purge --yes` to delete them"
        ));
    }
    let removed = store.purge_dead_letters().await?;
    Ok(format!("purged {removed} dead letter(s)"))
}
