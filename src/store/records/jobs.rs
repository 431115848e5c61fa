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

/// The `hist` field the scripts keep (see `lib.lua`): events split by `\x1e`, their fields
/// (ts, status, attempt, error, and the account when one was called) by `\x1f`.
fn parse_history(id: &JobId, hist: &str) -> Result<Vec<StatusEvent>, StoreError> {
    hist.split('\x1e')
        .map(|event| {
            let mut f = event.splitn(5, '\x1f');
            let bad = || StoreError::Reply(format!("job {id}: unreadable history event {event:?}"));
            let ts = f.next().and_then(|t| t.parse().ok()).ok_or_else(bad)?;
            let status = f.next().ok_or_else(bad).and_then(parse_status)?;
            let attempt = f.next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            let error = f.next().ok_or_else(bad)?.to_owned();
            Ok(StatusEvent {
                id: id.as_str().to_owned(),
                status,
                attempt,
                error,
                ts,
                provider: f.next().map(str::to_owned),
            })
        })
        .collect()
}

fn rfc3339(ms: Option<&String>) -> String {
    ms.and_then(|m| m.parse::<i64>().ok())
        .and_then(|m| Utc.timestamp_millis_opt(m).single())
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_default()
}

fn non_empty(h: &HashMap<String, String>, k: &str) -> Option<String> {
    h.get(k).filter(|v| !v.is_empty()).cloned()
}

impl Records {
    /// A job's record and history by its id, `None` when there is no such job (never was,
    /// or its record expired).
    pub async fn job(&self, id: &JobId) -> Result<Option<JobFound>, StoreError> {
        let key = self.keys(self.shards().of_job(id)).job(id.as_str());
        let h: HashMap<String, String> = self.conn().hgetall(key).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let history = h
            .get("hist")
            .map_or(Ok(Vec::new()), |hist| parse_history(id, hist))?;
        let field = |name: &str| {
            h.get(name)
                .ok_or_else(|| StoreError::Reply(format!("job {id}: a record without {name}")))
        };
        let status = parse_status(field("status")?)?;
        let attempts = field("attempts")?
            .parse()
            .map_err(|_| StoreError::Reply(format!("job {id}: unreadable attempts")))?;
        let job = JobRecord {
            id: id.as_str().to_owned(),
            kind: h.get("kind").cloned().unwrap_or_default(),
            mobile: h.get("mobile").cloned().unwrap_or_default(),
            status,
            attempts,
            provider_status: non_empty(&h, "provider_status"),
            provider_message_id: non_empty(&h, "provider_message_id"),
            last_error: non_empty(&h, "last_error"),
            created_at: rfc3339(h.get("created_ms")),
            updated_at: rfc3339(h.get("updated_ms")),
            deliver_code: non_empty(&h, "deliver_code"),
            delivered_at: non_empty(&h, "delivered_at"),
            request_id: non_empty(&h, "request_id"),
            test: h.get("test").is_some_and(|t| t == "1"),
            provider: non_empty(&h, "provider"),
        };
        Ok(Some(JobFound { job, history }))
    }

    /// The newest jobs (up to 50) sent to `mobile`, newest first.
    pub async fn jobs_of(
        &self,
        mobile: &Mobile,
        limit: usize,
    ) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<String> = self
            .conn()
            .zrevrange(
                self.of_mobile(mobile).by_mobile(mobile.as_str()),
                0,
                limit.saturating_sub(1) as isize,
            )
            .await?;
        let mut records = Vec::with_capacity(ids.len());
        for id in ids.iter().filter_map(|id| JobId::parse(id)) {
            records.extend(self.job(&id).await?.map(|found| found.job));
        }
        Ok(records)
    }

    /// The status history of one job, oldest first (its newest 32 events). Kept in its own
    /// record, so a read costs one field of one hash, however long the events stream is.
    pub async fn events_of(&self, id: &JobId) -> Result<Vec<StatusEvent>, StoreError> {
        let key = self.keys(self.shards().of_job(id)).job(id.as_str());
        let hist: Option<String> = self.conn().hget(key, "hist").await?;
        hist.as_deref()
            .map_or(Ok(Vec::new()), |h| parse_history(id, h))
    }
}
