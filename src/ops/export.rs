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
    let (mut out, in_file): (Box<dyn Write + Send>, _) = match &opts.out {
        Some(path) => {
            let (file, last) = open_resumable(path, shards.len())?;
            (Box::new(file), last)
        }
        None => (Box::new(std::io::stdout()), HashMap::new()),
    };
    // Per shard: the last event done with, and how many events had been added up to it
    // when that was known (it was the newest): what tells a real gap from a quiet stream.
    let mut cursors: HashMap<usize, (Option<EntryId>, Option<u64>)> = HashMap::new();
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

/// The file to append to, without a last line a crash cut short, and the last event of each
/// shard its lines name (read from the end, until each of `shards` was seen or the start).
fn open_resumable(
    path: &Path,
    shards: usize,
) -> Result<(std::fs::File, HashMap<usize, EntryId>), ExportError> {
    let io = |e| ExportError::Io(path.display().to_string(), e);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
        .map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    let keep = complete_len(&mut file, len).map_err(io)?;
    if keep < len {
        file.set_len(keep).map_err(io)?;
    }
    let mut found = HashMap::new();
    lines_from_end(&mut file, keep, |line| {
        if let Some((shard, entry)) = event_of(line) {
            found.entry(shard).or_insert(entry);
        }
        found.len() < shards
    })
    .map_err(io)?;
    Ok((file, found))
}

/// The shard and event a line names (`"event": "<shard>/<entry id>"`).
fn event_of(line: &[u8]) -> Option<(usize, EntryId)> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    let (shard, entry) = v["event"].as_str()?.split_once('/')?;
    Some((shard.parse().ok()?, EntryId::parse(entry)?))
}

const CHUNK: u64 = 64 * 1024;

/// The length of `file` up to its last newline.
fn complete_len(file: &mut std::fs::File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
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

/// Gives `each` the lines of `file` before `end` (which ends a line), the last first, until
/// it answers false.
fn lines_from_end(
    file: &mut std::fs::File,
    end: u64,
    mut each: impl FnMut(&[u8]) -> bool,
) -> std::io::Result<()> {
    let mut pos = end;
    // The start of the line the previous chunk began inside, with the rest of that line.
    let mut carry: Vec<u8> = Vec::new();
    while pos > 0 {
        let start = pos.saturating_sub(CHUNK);
        let mut chunk = vec![0u8; (pos - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&carry);
        // The chunk's first line may begin before it, unless the chunk starts the file.
        let first = match chunk.iter().position(|&b| b == b'\n') {
            _ if start == 0 => 0,
            Some(at) => at + 1,
            None => {
                carry = chunk;
                pos = start;
                continue;
            }
        };
        for line in chunk[first..].split(|&b| b == b'\n').rev() {
            if !line.is_empty() && !each(line) {
                return Ok(());
            }
        }
        carry = chunk[..first].to_vec();
        pos = start;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_is_read_from_its_end_across_chunks_and_a_torn_line_is_dropped() {
        let path = std::env::temp_dir().join(format!("smsq-export-{}.jsonl", std::process::id()));
        let mut text = String::new();
        // Lines longer than a chunk boundary falls on, and more of them than one chunk holds.
        for n in 0..3000u64 {
            let shard = n % 3;
            text.push_str(&format!(
                "{{\"event\":\"{shard}/{n}-0\",\"pad\":\"{}\"}}\n",
                "x".repeat((n % 97) as usize)
            ));
        }
        text.push_str("{\"event\":\"0/99999-0\",\"cut sho");
        std::fs::write(&path, &text).unwrap();
        let (_, last) = open_resumable(&path, 3).unwrap();
        let written = std::fs::read_to_string(&path).unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(written.ends_with("\"}\n"), "the torn line is gone");
        let want = |n| EntryId { ms: n, seq: 0 };
        assert_eq!(
            last,
            HashMap::from([(0, want(2997)), (1, want(2998)), (2, want(2999))])
        );
        let mut all = Vec::new();
        let path2 = path.with_extension("all");
        std::fs::write(&path2, &written).unwrap();
        let mut file = std::fs::File::open(&path2).unwrap();
        lines_from_end(&mut file, written.len() as u64, |l| {
            all.push(event_of(l).unwrap().1.ms);
            true
        })
        .unwrap();
        let _ = std::fs::remove_file(&path2);
        assert_eq!(all, (0..3000).rev().collect::<Vec<_>>());
    }
}
