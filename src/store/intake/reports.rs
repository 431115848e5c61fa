//! Delivery reports and user replies, as the platform pushes them.

use super::Intake;
use crate::domain::{JobStatus, Mobile, now_ms};
use crate::provider::StatusReport;
use crate::store::script::script;
use crate::store::{StoreError, field, parse_status};

script! {
    /// Matches a delivery report to its job and records it (or keeps it for a late `sent`).
    struct ReportCall<'a> = include_str!("report.lua");
    keys { sid_key, early_key, events, stats, req_job_key, by_mobile, stream, caps }
    argv {
        job_prefix: String, delivered: &'a str, deliver_code: &'a str, received_s: String,
        now: i64, ttl: u64, events_keep_ms: u64, req_id: &'a str, message_id: &'a str,
        code_prefix: String, mobile: &'a str, voice_limit: u32,
        voice_ttl_ms: i64, message_field: &'static str, message_value: Vec<u8>,
    }
}

/// What a status report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The job is now `delivered` or `undelivered`; `call` is the voice job that now calls
    /// with the same code (`code.fallback = "voice"`).
    Recorded {
        job_id: String,
        status: JobStatus,
        call: Option<String>,
    },
    /// The job already had its report (or moved on): nothing changed.
    Unchanged,
    /// No sent job has this message id and number (yet): kept an hour in case our `sent`
    /// write is still to come, then dropped.
    Unmatched,
}

/// An RFC 3339 time as Unix seconds, as the record keeps the handset's receipt; '' when absent.
fn unix_secs(rfc3339: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .map(|t| t.timestamp().to_string())
        .unwrap_or_default()
}

impl Intake {
    /// Records a status report. `voice_fallback` is the day's voice cap when an undelivered
    /// text's code is to be called (`code.fallback = "voice"`).
    pub async fn record_report(
        &self,
        report: &StatusReport,
        voice_fallback: Option<u32>,
    ) -> Result<ReportOutcome, StoreError> {
        let k = self.of_mobile(&report.mobile);
        let (id, mobile) = (report.message_id.as_str(), report.mobile.as_str());
        let now = now_ms();
        let w = super::windows::windows(now);
        // A job id from `reqId` counts only on the number's own shard (where its job is).
        let req_id = report
            .req_id
            .as_ref()
            .filter(|j| self.shards().of_job(j) == self.shards().of_mobile(&report.mobile));
        let req_job = req_id.map_or_else(|| k.job("-"), |j| k.job(j.as_str()));
        let (message_field, message_value) = crate::store::message_id_field(id);
        let reply: Vec<String> = ReportCall {
            sid_key: k.sid(id, mobile),
            early_key: k.early_report(id, mobile),
            events: k.events(),
            stats: k.stats(now / 60_000),
            req_job_key: req_job,
            by_mobile: k.by_mobile(mobile),
            stream: k.jobs(),
            caps: k.caps(mobile, &w.day),
            job_prefix: k.job_prefix(),
            delivered: if report.delivered { "1" } else { "0" },
            deliver_code: &report.deliver_code,
            received_s: unix_secs(&report.received_at),
            now,
            ttl: self.retention.status_ttl_secs,
            events_keep_ms: self.retention.events_keep_ms,
            req_id: req_id.map_or("", |j| j.as_str()),
            message_id: id,
            code_prefix: k.code_prefix(),
            mobile,
            voice_limit: voice_fallback.unwrap_or(0),
            voice_ttl_ms: w.day_left_ms,
            message_field,
            message_value,
        }
        .call(&mut self.conn())
        .await?;
        Ok(match field(&reply, 0)? {
            "early" => ReportOutcome::Unmatched,
            "duplicate" | "ignored" => ReportOutcome::Unchanged,
            status @ ("delivered" | "undelivered") => ReportOutcome::Recorded {
                job_id: field(&reply, 1)?.to_owned(),
                status: parse_status(status)?,
                call: reply.get(2).cloned(),
            },
            other => return Err(StoreError::Reply(format!("report: {other:?}"))),
        })
    }

    /// A reply from a user: on the events stream, keyed by number (masked nowhere else).
    pub async fn record_inbound(&self, mobile: &Mobile, text: &str) -> Result<(), StoreError> {
        // Kept as long as the events stream keeps everything (a time, as lib.lua's `event`).
        let now = now_ms();
        let keep_from = now - self.retention.events_keep_ms as i64;
        let _: String = redis::cmd("XADD")
            .arg(self.of_mobile(mobile).events())
            .arg("MINID")
            .arg("~")
            .arg(keep_from)
            .arg("*")
            .arg(&[
                ("id", "inbound"),
                ("status", "inbound"),
                ("mobile", mobile.as_str()),
                ("text", text),
                ("ts", &now.to_string()),
            ])
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }
}
