//! Delivery reports and user replies, as the platform pushes them.

use redis::AsyncCommands;

use super::scripts::SCRIPTS;
use super::{Store, StoreError, field};
use crate::domain::{Mobile, now_ms};
use crate::provider::StatusReport;

/// What a status report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    /// The job is now `delivered` or `undelivered`.
    Recorded { job_id: String, status: String },
    /// The job already had its report (or moved on): nothing changed.
    Unchanged,
    /// No sent job has this message id and number (yet): kept an hour in case our `sent`
    /// write is still to come, then dropped.
    Unmatched,
}

impl Store {
    pub async fn record_report(&self, report: &StatusReport) -> Result<ReportOutcome, StoreError> {
        let k = self.of_mobile(&report.mobile);
        let (id, mobile) = (report.message_id.as_str(), report.mobile.as_str());
        let now = now_ms();
        // A job id from `reqId` counts only on the number's own shard (where its job is).
        let req_id = report
            .req_id
            .as_ref()
            .filter(|j| self.shards.of_job(j) == self.shards.of_mobile(&report.mobile));
        let req_job = req_id.map_or_else(|| k.job("-"), |j| k.job(j.as_str()));
        let reply: Vec<String> = SCRIPTS
            .report
            .key(k.sid(id, mobile))
            .key(k.early_report(id, mobile))
            .key(k.events())
            .key(k.stats(now / 60_000))
            .key(req_job)
            .key(k.by_mobile(mobile))
            .arg(k.job_prefix())
            .arg(if report.delivered { "1" } else { "0" })
            .arg(&report.deliver_code)
            .arg(&report.received_at)
            .arg(now)
            .arg(self.retention.status_ttl_secs)
            .arg(self.retention.events_maxlen)
            .arg(req_id.map_or("", |j| j.as_str()))
            .arg(id)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match field(&reply, 0)? {
            "early" => ReportOutcome::Unmatched,
            "duplicate" | "ignored" => ReportOutcome::Unchanged,
            status @ ("delivered" | "undelivered") => ReportOutcome::Recorded {
                job_id: field(&reply, 1)?.to_owned(),
                status: status.to_owned(),
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
