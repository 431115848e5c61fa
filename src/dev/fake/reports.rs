//! `--report-url` (and `--tencent-report-url`, `--aliyun-report-url`): after accepting a
//! message, the simulator pushes its delivery report (状态报告) to smsq like the vendor does, in
//! that vendor's form, after `--report-delay-ms`, saying "undelivered" for a share of them
//! (`--undelivered-rate`).

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
    let opts = &fake.opts;
    if message.template_id == "VoiceVerify" {
        return push_call_result(fake, message);
    }
    let url = match message.kind.as_str() {
        "tencent" => opts.tencent_report_url.clone(),
        "aliyun" => opts.aliyun_report_url.clone(),
        _ => opts.report_url.clone(),
    };
    let Some(url) = url else {
        return;
    };
    let delivered = !fake.roll(opts.undelivered_rate);
    let (body, content_type) = match (message.kind.as_str(), opts.report_format) {
        ("tencent", _) => (tencent_body(message, delivered), "application/json"),
        ("aliyun", _) => (aliyun_body(message, delivered), "application/json"),
        (_, ReportFormat::Json) => (
            report_body(ReportFormat::Json, message, delivered),
            "application/json",
        ),
        (_, ReportFormat::Xml) => (
            report_body(ReportFormat::Xml, message, delivered),
            "application/xml",
        ),
    };
    push_later(fake, url, content_type, body);
}

/// POSTs `body` to `url` after `--report-delay-ms`, in the background.
fn push_later(fake: &Fake, url: String, content_type: &'static str, body: String) {
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
            tracing::warn!(error = %e.without_url(), "fake provider: cannot push a report");
        }
    });
}

/// A voice code's call result, to the `respUrl` it named (none without one): XML sent as
/// `text/plain`, as the platform does; `state` 0 answered, 1 not answered.
fn push_call_result(fake: &Fake, m: &FakeMessage) {
    let Some(url) = m.resp_url.clone() else {
        return;
    };
    let state = if fake.roll(fake.opts.undelivered_rate) {
        "1"
    } else {
        "0"
    };
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Request><action>VoiceCode</action>\
         <number>{}</number><callSid>{}</callSid><state>{state}</state><duration>12</duration>\
         <userData>{}</userData></Request>",
        m.to,
        m.sms_message_sid,
        m.req_id.as_deref().unwrap_or("")
    );
    push_later(fake, url, "text/plain", body);
}

fn dashed_now() -> String {
    Utc::now()
        .with_timezone(&beijing())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Tencent's status callback: an array, as the vendor pushes it.
fn tencent_body(m: &FakeMessage, delivered: bool) -> String {
    let (status, code) = if delivered {
        ("SUCCESS", "DELIVRD")
    } else {
        ("FAIL", "UNDELIV")
    };
    serde_json::json!([{
        "user_receive_time": dashed_now(), "nationcode": "86", "mobile": m.to,
        "report_status": status, "errmsg": code, "description": "", "sid": m.sms_message_sid,
    }])
    .to_string()
}

/// Aliyun's `SmsReport` push: an array.
fn aliyun_body(m: &FakeMessage, delivered: bool) -> String {
    let (code, text) = if delivered {
        ("DELIVERED", "用户接收成功")
    } else {
        ("UNDELIV", "用户接收失败")
    };
    serde_json::json!([{
        "phone_number": m.to, "send_time": dashed_now(), "report_time": dashed_now(),
        "success": delivered, "err_code": code, "err_msg": text, "sms_size": "1",
        "biz_id": m.sms_message_sid, "out_id": m.req_id.clone().unwrap_or_default(),
    }])
    .to_string()
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
