//! Reading job records and their status events (for `GET /v1/jobs/{id}` and operators).

use std::collections::HashMap;

use chrono::{SecondsFormat, TimeZone, Utc};
use redis::AsyncCommands;
use serde::Serialize;

use super::Records;
use crate::domain::{JobId, JobStatus, Mobile};
use crate::store::{StoreError, parse_status};

/// The job record as the API serves it: mobile masked, RFC 3339 times, never a code.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(example = json!({"id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "kind": "code",
    "mobile": "138****8000", "status": "delivered", "attempts": 1, "provider_status": "000000",
    "provider_message_id": "ff8080813c373cab013c94b0f0512345", "last_error": null,
    "created_at": "2026-12-01T12:00:00.000Z", "updated_at": "2026-12-01T12:00:02.480Z",
    "deliver_code": "DELIVRD", "delivered_at": "2026-12-01T12:00:02.000Z",
    "request_id": "signup-7f3a"}))]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub mobile: String,
    pub status: JobStatus,
    pub attempts: u32,
    pub provider_status: Option<String>,
    pub provider_message_id: Option<String>,
    pub last_error: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The carrier's code from the delivery report (`DELIVRD`, …), once one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deliver_code: Option<String>,
    /// When the handset got it, per the delivery report (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<String>,
    /// The `x-request-id` of the request that made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A test number's job (`SMSQ_TEST_NUMBERS`): recorded sent, never sent to the provider.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// The provider account its last attempt went through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// A job's record and its history, read together (one `HGETALL`): what every lookup by id
/// answers (`GET /v1/jobs/{id}` serves `job` alone).
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(example = json!({"job": {"id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "kind": "code",
    "mobile": "138****8000", "status": "sent", "attempts": 1, "provider_status": "000000",
    "provider_message_id": null, "last_error": null, "created_at": "2026-12-01T12:00:00.000Z",
    "updated_at": "2026-12-01T12:00:00.210Z"},
    "history": [{"id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "status": "queued", "attempt": 0,
    "error": "", "ts": 1764590400000_i64}, {"id": "00a1b2c3d4e5f60718293a4b5c6d7e8f",
    "status": "sending", "attempt": 1, "error": "", "ts": 1764590400100_i64},
    {"id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "status": "sent", "attempt": 1, "error": "",
    "ts": 1764590400210_i64}]}))]
pub struct JobFound {
    pub job: JobRecord,
    /// Oldest first, its newest 32 events.
    pub history: Vec<StatusEvent>,
}

/// One entry of a job's history.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct StatusEvent {
    pub id: String,
    pub status: JobStatus,
    pub attempt: u32,
    pub error: String,
    pub ts: i64,
    /// The provider account this step went through, when it called one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// A job record as stored (docs/contract.md "Job records"): the compact fields the scripts
/// write (`lib.lua`), and the long names of records written before them, which are read for
/// as long as such a record lives.
pub(crate) struct Stored<'a>(pub &'a HashMap<String, String>);

/// A record as `HGETALL` returns it, as text: `ib` (a message id of 32 hex digits, kept as
/// its 16 bytes) becomes the `i` it stands for.
pub(crate) fn as_text(raw: HashMap<String, Vec<u8>>) -> HashMap<String, String> {
    raw.into_iter()
        .map(|(name, value)| match name.as_str() {
            "ib" => ("i".to_owned(), crate::domain::hex(&value)),
            _ => (name, String::from_utf8_lossy(&value).into_owned()),
        })
        .collect()
}

impl Stored<'_> {
    fn get(&self, new: &str, old: &str) -> Option<&String> {
        self.0.get(new).or_else(|| self.0.get(old))
    }

    fn text(&self, new: &str, old: &str) -> Option<String> {
        self.get(new, old).filter(|v| !v.is_empty()).cloned()
    }

    /// A field only records of the old layout have (today's derive it from the history).
    fn old_only(&self, name: &str) -> Option<String> {
        self.text(name, name)
    }

    pub fn exists(&self) -> bool {
        self.get("s", "status").is_some()
    }

    pub fn created_ms(&self) -> Option<i64> {
        self.get("c", "created_ms").and_then(|c| c.parse().ok())
    }

    /// `code` or `message`: a code job has a purpose and no kind of its own.
    pub fn kind(&self) -> &str {
        match self.get("k", "kind") {
            Some(k) => k,
            None if self.0.contains_key("p") => "code",
            None => "",
        }
    }

    pub fn purpose(&self) -> Option<String> {
        self.text("p", "purpose")
    }

    /// Masked: `138****8000`, from the short form `1388000`.
    pub fn mobile(&self) -> String {
        match self.0.get("m") {
            Some(m) if m.len() == 7 => format!("{}****{}", &m[..3], &m[3..]),
            Some(m) => m.clone(),
            None => self.0.get("mobile").cloned().unwrap_or_default(),
        }
    }

    pub fn request_id(&self) -> Option<String> {
        self.text("rid", "request_id")
    }

    /// Oldest first: the events a record of the old layout kept (`hist`, absolute times),
    /// then those of `h` (ms after `c`).
    pub fn history(&self, id: &JobId) -> Result<Vec<StatusEvent>, StoreError> {
        let mut events = match self.0.get("hist") {
            Some(hist) => parse_history(id, hist, 0, false)?,
            None => Vec::new(),
        };
        if let Some(h) = self.0.get("h") {
            let created = self.created_ms().ok_or_else(|| {
                StoreError::Reply(format!("job {id}: a history without a creation time"))
            })?;
            events.extend(parse_history(id, h, created, true)?);
        }
        Ok(events)
    }
}

/// The status letters of `h` (`LETTER` in lib.lua).
const LETTERS: [(&str, JobStatus); 11] = [
    ("q", JobStatus::Queued),
    ("s", JobStatus::Sending),
    ("S", JobStatus::Sent),
    ("r", JobStatus::Retrying),
    ("f", JobStatus::Failed),
    ("x", JobStatus::Dead),
    ("e", JobStatus::Expired),
    ("u", JobStatus::Superseded),
    ("d", JobStatus::Delivered),
    ("n", JobStatus::Undelivered),
    ("p", JobStatus::Replayed),
];

/// A history field: events split by `\x1e`, their fields (time, status, attempt, then the
/// error and the account when there are any) by `\x1f`. `compact`: the `h` of today's
/// records (ms after `base`, status letters); else the `hist` of older ones (Unix ms, words).
fn parse_history(
    id: &JobId,
    hist: &str,
    base: i64,
    compact: bool,
) -> Result<Vec<StatusEvent>, StoreError> {
    hist.split('\x1e')
        .map(|event| {
            let mut f = event.splitn(5, '\x1f');
            let bad = || StoreError::Reply(format!("job {id}: unreadable history event {event:?}"));
            let ts = f
                .next()
                .and_then(|t| t.parse::<i64>().ok())
                .ok_or_else(bad)?
                + base;
            let word = f.next().ok_or_else(bad)?;
            let status = match LETTERS.iter().find(|(l, _)| compact && *l == word) {
                Some((_, status)) => *status,
                None => parse_status(word)?,
            };
            let attempt = f.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            let error = f.next().unwrap_or("").to_owned();
            Ok(StatusEvent {
                id: id.as_str().to_owned(),
                status,
                attempt,
                error,
                ts,
                provider: f.next().filter(|a| !a.is_empty()).map(str::to_owned),
            })
        })
        .collect()
}

fn rfc3339(ms: Option<i64>) -> String {
    ms.and_then(|m| Utc.timestamp_millis_opt(m).single())
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

impl Records {
    /// A job's record and history by its id, `None` when there is no such job (never was,
    /// or its record expired).
    pub async fn job(&self, id: &JobId) -> Result<Option<JobFound>, StoreError> {
        let key = self.keys(self.shards().of_job(id)).job(id.as_str());
        let h = as_text(self.conn().hgetall(key).await?);
        let stored = Stored(&h);
        if !stored.exists() {
            return Ok(None);
        }
        let history = stored.history(id)?;
        let status =
            parse_status(stored.get("s", "status").ok_or_else(|| {
                StoreError::Reply(format!("job {id}: a record without a status"))
            })?)?;
        let attempts = stored
            .get("a", "attempts")
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| StoreError::Reply(format!("job {id}: unreadable attempts")))?;
        // What today's records leave to the history: the last change, the account of the
        // last call, the carrier's code of the report.
        let updated_ms = h
            .get("updated_ms")
            .and_then(|u| u.parse().ok())
            .or_else(|| history.last().map(|e| e.ts));
        let provider = stored
            .old_only("provider")
            .or_else(|| history.iter().rev().find_map(|e| e.provider.clone()));
        let reported = history
            .iter()
            .rev()
            .find(|e| matches!(e.status, JobStatus::Delivered | JobStatus::Undelivered));
        let deliver_code = stored
            .old_only("deliver_code")
            .or_else(|| reported.map(|e| e.error.clone()).filter(|e| !e.is_empty()));
        let delivered_at = match (
            h.get("dt").and_then(|d| d.parse::<i64>().ok()),
            stored.created_ms(),
        ) {
            (Some(dt), Some(created)) => Utc
                .timestamp_opt(created.div_euclid(1000) + dt, 0)
                .single()
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)),
            _ => stored.old_only("delivered_at"),
        };
        let job = JobRecord {
            id: id.as_str().to_owned(),
            kind: stored.kind().to_owned(),
            mobile: stored.mobile(),
            status,
            attempts,
            provider_status: stored.text("ps", "provider_status"),
            provider_message_id: stored.text("i", "provider_message_id"),
            last_error: stored.text("e", "last_error"),
            created_at: rfc3339(stored.created_ms()),
            updated_at: rfc3339(updated_ms),
            deliver_code,
            delivered_at,
            request_id: stored.request_id(),
            test: h.get("test").is_some_and(|t| t == "1"),
            provider,
        };
        Ok(Some(JobFound { job, history }))
    }

    /// The newest jobs (up to 50) sent to `mobile`, newest first: the number's index (16
    /// bytes per job id, newest first), then the sorted set an older build kept.
    pub async fn jobs_of(
        &self,
        mobile: &Mobile,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let k = self.of_mobile(mobile);
        let packed: Option<Vec<u8>> = self.conn().get(k.by_mobile(mobile.as_str())).await?;
        let mut ids: Vec<String> = packed
            .unwrap_or_default()
            .chunks_exact(16)
            .map(crate::domain::hex)
            .collect();
        if ids.len() < limit {
            let older: Vec<String> = self
                .conn()
                .zrevrange(k.by_mobile_before(mobile.as_str()), 0, limit as isize)
                .await?;
            for id in older {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        }
        let mut records = Vec::with_capacity(ids.len().min(limit));
        for id in ids.iter().filter_map(|id| JobId::parse(id)).take(limit) {
            records.extend(self.job(&id).await?.map(|found| found.job));
        }
        Ok(records)
    }

    /// The status history of one job, oldest first (its newest 32 events). Kept in its own
    /// record, so a read costs one small hash, however long the events stream is.
    pub async fn events_of(&self, id: &JobId) -> Result<Vec<StatusEvent>, StoreError> {
        let key = self.keys(self.shards().of_job(id)).job(id.as_str());
        let h = as_text(self.conn().hgetall(key).await?);
        Stored(&h).history(id)
    }
}
