//! The body of a delivery, made from an events-stream entry and its job's record.

use std::collections::HashMap;

use chrono::{SecondsFormat, TimeZone, Utc};
use serde::Serialize;

use crate::domain::{EventType, JobKind};
use crate::store::hooks::EventEntry;

/// What the app receives (JSON). `id` is unique per event and the same on every retry of it:
/// the app deduplicates by it (delivery is at least once).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct WebhookEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// When it happened (RFC 3339, ms).
    pub created_at: String,
    pub job_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// Masked: `138****8000`.
    pub mobile: String,
    /// The job's status (`verified` for `code.verified`).
    pub status: String,
    /// Provider attempts so far.
    pub attempt: u32,
    /// The provider account it went through.
    pub provider_account: &'static str,
    /// The `x-request-id` of the request that made the job.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl WebhookEvent {
    /// The event an entry is for the app, if any (`None` for the queue's own statuses, a
    /// user's reply, or a job whose record has expired).
    pub fn of(entry: &EventEntry, job: &HashMap<String, String>) -> Option<(EventType, Self)> {
        let job_id = entry.job_id.as_ref()?;
        let kind = match job.get("kind")?.as_str() {
            "code" => JobKind::Code,
            "message" => JobKind::Message,
            _ => return None,
        };
        let event = EventType::of(kind, &entry.status)?;
        let created_at = Utc
            .timestamp_millis_opt(entry.ts_ms)
            .single()
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true))
            .unwrap_or_default();
        Some((
            event,
            Self {
                id: format!("evt_{}_{}", entry.shard, entry.entry_id),
                kind: event.as_str(),
                created_at,
                job_id: job_id.to_string(),
                purpose: job.get("purpose").cloned(),
                mobile: job.get("mobile").cloned().unwrap_or_default(),
                status: entry.status.clone(),
                attempt: entry.attempt,
                provider_account: "ronglian",
                request_id: job.get("request_id").cloned(),
            },
        ))
    }
}
