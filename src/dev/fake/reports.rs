//! `--report-url`: after accepting a message, the simulator pushes its delivery report (状态报告)
//! to smsq like the platform does, in JSON or XML, after `--report-delay-ms`, saying
//! "undelivered" for a share of them (`--undelivered-rate`).

use std::time::Duration;

use chrono::Utc;

use super::{Fake, FakeMessage};
use crate::domain::beijing;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    Json,
    Xml,
}

/// Pushes the report of `message` in the background (a push that fails is logged and dropped,
/// as the platform would retry on its own schedule).
pub(super) fn push(fake: &Fake, message: &FakeMessage) {
    let Some(url) = fake.opts.report_url.clone() else {
        return;
    };
    let delivered = !fake.roll(fake.opts.undelivered_rate);
    let body = report_body(fake.opts.report_format, message, delivered);
    let content_type = match fake.opts.report_format {
        ReportFormat::Json => "application/json",
        ReportFormat::Xml => "application/xml",
    };
    let delay = Duration::from_millis(fake.opts.report_delay_ms);
    let http = fake.http.clone();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let sent = http
            .post(&url)
            .header("Content-Type", content_type)
            .body(body)
            .send()
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e.without_url(), "fake provider: cannot push a delivery report");
        }
    });
}

fn report_body(format: ReportFormat, m: &FakeMessage, delivered: bool) -> String {
    let now = Utc::now()
        .with_timezone(&beijing())
        .format("%Y%m%d%H%M%S")
        .to_string();
    let (status, code) = if delivered {
        ("0", "DELIVRD")
    } else {
        ("1", "UNDELIV")
    };
    let fields = [
        ("action", "SMSArrived"),
        ("smsType", "1"),
        ("apiVersion", "2013-12-26"),
        ("content", m.sms_message_sid.as_str()),
        ("fromNum", m.to.as_str()),
        ("dateSent", m.date_created.as_str()),
        ("deliverCode", code),
        ("recvTime", now.as_str()),
        ("status", status),
        ("reqId", m.req_id.as_deref().unwrap_or("")),
        ("smsCount", "1"),
        ("spCode", "10690000"),
    ];
    match format {
        ReportFormat::Json => {
            let request: serde_json::Map<String, serde_json::Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
                .collect();
            serde_json::json!({"Request": request}).to_string()
        }
        ReportFormat::Xml => {
            let inner: String = fields
                .iter()
                .map(|(k, v)| format!("<{k}>{v}</{k}>"))
                .collect();
            format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request>{inner}</Request>")
        }
    }
}
