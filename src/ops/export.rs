//! `smsq export`: a follower that writes every job that finished as one JSON line (its
//! record and history, as `GET /v1/admin/jobs/{id}` answers), for audit records kept longer
//! than Redis keeps them. Redis stays the hot store; this only reads.
//!
//! It follows the events stream of every shard, `settle` behind its head so that a delivery
//! report that comes soon after the send is in the line. A finishing event (`sent`,
//! `failed`, `dead`, `expired`, `superseded`, `delivered`, `undelivered`) gives a line when
//! it is still the newest event of the job's history: one line per job, unless the job
//! changes after its line was written (a report later than `settle`, a replay), which writes
//! a newer line. Keep the last line per `job.id`.
//!
//! Where it got to: with `--out FILE`, the file itself (each line names its event, and the
//! follower resumes after the last line of each shard, dropping a line a crash cut short),
//! so a restart neither misses nor repeats a line; a cursor saved in Redis after each batch
//! is written (`{prefix:shard}:export:<name>`) lets it skip the events that made no line.
//! To stdout, only that cursor: a crash between writing a batch and saving it repeats the
//! batch. A follower that was away longer than `stream.events_retention_secs` finds the
//! events after its cursor trimmed: it stops with an error (counted exactly when it knows how
//! many events had been added up to its cursor) unless told `--accept-gap`.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::domain::{EntryId, JobId, Shard, now_ms};
use crate::store::StoreError;
use crate::store::records::{Event, Records};

const FINISHING: [&str; 7] = [
    "sent",
    "failed",
    "dead",
    "expired",
    "superseded",
    "delivered",
    "undelivered",
];

#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// Append to this file (created if missing); `None`: stdout.
    pub out: Option<PathBuf>,
    /// How far behind the stream's head to stay.
    pub settle: Duration,
    /// The follower's name (its cursor in Redis, stdout mode).
    pub name: String,
    /// Start at the stream's end when nothing says where to resume.
    pub from_now: bool,
    /// Go on past events the stream's retention already trimmed (else stop with an error).
    pub accept_gap: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    #[error(
        "shard {shard}: the events stream no longer holds the events after {after} (it trimmed \
         up to {trimmed}: stream.events_retention_secs); jobs that finished in between are \
         not exported. Their records are still in Redis for status.ttl_secs. Run with \
         --accept-gap to go on from the oldest event kept"
    )]
    Gap {
        shard: Shard,
        after: EntryId,
        trimmed: EntryId,
    },
}

/// Follows until `stop`; returns how many lines it wrote.
pub async fn follow(
    records: &Records,
    opts: &ExportOptions,
    stop: CancellationToken,
) -> Result<u64, ExportError> {
    let shards: Vec<Shard> = records.shards().all().collect();
    let mut out: Box<dyn Write + Send> = match &opts.out {
        Some(path) => Box::new(open_resumable(path)?),
        None => Box::new(std::io::stdout()),
    };
    // Per shard: the last event done with, and how many events had been added up to it
    // when that was known (it was the newest): what tells a real gap from a quiet stream.
    let mut cursors: HashMap<usize, (Option<EntryId>, Option<u64>)> = HashMap::new();
    let in_file = match &opts.out {
        Some(path) => resume_from_file(path)?,
        None => HashMap::new(),
    };
    for &shard in &shards {
        let saved = records.export_cursor(shard, &opts.name).await?;
        let from_file = in_file.get(&shard.index()).copied();
        // The file is the truth for what it holds; the saved cursor may be further on (events
        // done with that made no line), never behind what it saved after writing.
        let at = match (saved, from_file) {
            (Some((id, added)), Some(f)) if id >= f => (Some(id), added),
            (_, Some(f)) => (Some(f), None),
            (Some((id, added)), None) => (Some(id), added),
            (None, None) if opts.from_now => (records.newest_event(shard).await?, None),
            (None, None) => (None, None),
        };
        cursors.insert(shard.index(), at);
    }
    let what = opts
        .out
        .as_ref()
        .map_or("stdout".to_owned(), |p| p.display().to_string());
    let mut written = 0;
    loop {
        let mut busy = false;
        for &shard in &shards {
            let (at, mut added) = cursors.get(&shard.index()).copied().unwrap_or((None, None));
            let Some(counts) = records.event_counts(shard).await? else {
                continue;
            };
            if let Some(after) = at
                && counts.first.is_some_and(|first| first > after)
            {
                // The cursor's own event is gone: were events after it trimmed too?
                let lost = added.map(|a0| counts.added.saturating_sub(a0 + counts.length));
                if lost != Some(0) {
                    if !opts.accept_gap {
                        return Err(ExportError::Gap {
                            shard,
                            after,
                            trimmed: counts.first.unwrap_or(after),
                        });
                    }
                    tracing::error!(%shard, %after, ?lost, "export: events were trimmed before they were read; going on");
                    added = None;
                }
            }
            let due = now_ms() - opts.settle.as_millis() as i64;
            let events = records.events_after(shard, at, 500).await?;
            let mut lines = String::new();
            let mut last = at;
            for event in events.iter().take_while(|e| e.entry.ms as i64 <= due) {
                last = Some(event.entry);
                if let Some(line) = line_for(records, shard, event).await? {
                    lines.push_str(&line);
                    lines.push('\n');
                    written += 1;
                }
            }
            let caught_up = last.is_some() && last == counts.last;
            if last == at && (added.is_some() || !caught_up) {
                continue;
            }
            busy |= last != at;
            if caught_up {
                added = Some(counts.added);
            } else if last != at {
                added = None;
            }
            out.write_all(lines.as_bytes())
                .and_then(|()| out.flush())
                .map_err(|e| ExportError::Io(what.clone(), e))?;
            cursors.insert(shard.index(), (last, added));
            if let Some(last) = last {
                records
                    .save_export_cursor(shard, &opts.name, last, added)
                    .await?;
            }
        }
        if stop.is_cancelled() {
            return Ok(written);
        }
        if !busy {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                _ = stop.cancelled() => {}
            }
        }
    }
}

/// The line of a finishing event that is still the newest of its job's history.
async fn line_for(
    records: &Records,
    shard: Shard,
    event: &Event,
) -> Result<Option<String>, StoreError> {
    if !FINISHING.contains(&event.status.as_str()) {
        return Ok(None);
    }
    let Some(id) = event.job_id.as_deref().and_then(JobId::parse) else {
        return Ok(None);
    };
    let Some(found) = records.job(&id).await? else {
        return Ok(None);
    };
    let newest = found
        .history
        .last()
        .is_some_and(|e| e.status.as_str() == event.status && e.ts == event.ts);
    if !newest {
        return Ok(None);
    }
    let line = json!({
        "event": format!("{}/{}", shard.index(), event.entry),
        "job": found.job,
        "history": found.history,
    });
    Ok(Some(line.to_string()))
}

/// The file to append to, without a last line a crash cut short.
fn open_resumable(path: &Path) -> Result<std::fs::File, ExportError> {
    let io = |e| ExportError::Io(path.display().to_string(), e);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len > 0 {
        let keep = complete_len(&mut file, len).map_err(io)?;
        if keep < len {
            file.set_len(keep).map_err(io)?;
        }
    }
    Ok(file)
}

/// The length of `file` up to its last newline.
fn complete_len(file: &mut std::fs::File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// Each shard's last exported event, read from the end of the file until every shard that
/// has a line was seen (or the file's start).
fn resume_from_file(path: &Path) -> Result<HashMap<usize, EntryId>, ExportError> {
    let io = |e| ExportError::Io(path.display().to_string(), e);
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HashMap::new()),
        Err(e) => return Err(io(e)),
    };
    let mut found = HashMap::new();
    for line in text.lines().rev() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some((shard, entry)) = v["event"].as_str().and_then(|e| e.split_once('/')) else {
            continue;
        };
        if let (Ok(shard), Some(entry)) = (shard.parse::<usize>(), EntryId::parse(entry)) {
            found.entry(shard).or_insert(entry);
        }
    }
    Ok(found)
}
