//! Delivery reports and user replies, as the platform pushes them.

use redis::AsyncCommands;

use super::Intake;
use crate::domain::{JobStatus, Mobile, now_ms};
use crate::provider::StatusReport;
use crate::store::script::script;
use crate::store::{StoreError, field, parse_status};

script! {
    /// Matches a delivery report to its job and records it (or keeps it for a late `sent`).
    struct ReportCall<'a> = include_str!("report.lua");
    keys { sid_key, early_key, events, stats, req_job_key, by_mobile }
    argv {
        job_prefix: String, delivered: &'a str, deliver_code: &'a str, received_at: &'a str,
        now: i64, ttl: u64, events_maxlen: u64, req_id: &'a str, message_id: &'a str,
    }
}

/// What a status report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The job is now `delivered` or `undelivered`.
    Recorded { job_id: String, status: JobStatus },
    /// The job already had its report (or moved on): nothing changed.
    Unchanged,
    /// No sent job has this message id and number (yet): kept an hour in case our `sent`
    /// write is still to come, then dropped.
    Unmatched,
}

impl Intake {
    pub async fn record_report(&self, report: &StatusReport) -> Result<ReportOutcome, StoreError> {
        let k = self.of_mobile(&report.mobile);
        let (id, mobile) = (report.message_id.as_str(), report.mobile.as_str());
        let now = now_ms();
        // A job id from `reqId` counts only on the number's own shard (where its job is).
        let req_id = report
            .req_id
            .as_ref()
            .filter(|j| self.shards().of_job(j) == self.shards().of_mobile(&report.mobile));
        let req_job = req_id.map_or_else(|| k.job("-"), |j| k.job(j.as_str()));
        let reply: Vec<String> = ReportCall {
            sid_key: k.sid(id, mobile),
            early_key: k.early_report(id, mobile),
            events: k.events(),
            stats: k.stats(now / 60_000),
            req_job_key: req_job,
            by_mobile: k.by_mobile(mobile),
            job_prefix: k.job_prefix(),
            delivered: if report.delivered { "1" } else { "0" },
            deliver_code: &report.deliver_code,
            received_at: &report.received_at,
            now,
            ttl: self.retention.status_ttl_secs,
            events_maxlen: self.retention.events_maxlen,
            req_id: req_id.map_or("", |j| j.as_str()),
            message_id: id,
        }
        .call(&mut self.conn())
        .await?;
        Ok(match field(&reply, 0)? {
            "early" => ReportOutcome::Unmatched,
            "duplicate" | "ignored" => ReportOutcome::Unchanged,
            status @ ("delivered" | "undelivered") => ReportOutcome::Recorded {
                job_id: field(&reply, 1)?.to_owned(),
                status: parse_status(status)?,
            },
            other => return Err(StoreError::Reply(format!("report: {other:?}"))),
        })
    }

    /// A reply from a user: on the events stream, keyed by number (masked nowhere else).
    pub async fn record_inbound(&self, mobile: &Mobile, text: &str) -> Result<(), StoreError> {
        let _: String = self
            .conn()
            .xadd_maxlen(
                self.of_mobile(mobile).events(),
                redis::streams::StreamMaxlen::Approx(self.retention.events_maxlen as usize),
                "*",
                &[
                    ("id", "inbound"),
                    ("status", "inbound"),
                    ("mobile", mobile.as_str()),
                    ("text", text),
                    ("ts", &now_ms().to_string()),
                ],
            )
            .await?;
        Ok(())
    }
}
