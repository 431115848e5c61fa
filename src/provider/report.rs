//! Delivery reports (状态报告) the platform pushes, in its JSON or XML form (docs/provider.md
//! §4), parsed into a [`Report`] once, at the edge.

use std::collections::HashMap;

use chrono::{NaiveDateTime, SecondsFormat, TimeZone, Utc};
use quick_xml::events::Event;
use serde_json::Value;

use crate::domain::{JobId, Mobile, beijing};

/// What a push said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `smsType` 1: what became of one message to one number.
    Status(StatusReport),
    /// `smsType` 0: the user replied.
    Inbound { from: Mobile, text: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    /// `content`: the `smsMessageSid` the send was answered with.
    pub message_id: String,
    /// `fromNum`: the number the message went to.
    pub mobile: Mobile,
    /// `status` "0".
    pub delivered: bool,
    /// The carrier's code (`DELIVRD`, `UNDELIV`, …).
    pub deliver_code: String,
    /// `recvTime` (Beijing wall clock in the push), RFC 3339 UTC; empty if absent or unreadable.
    pub received_at: String,
    /// `reqId`, echoed: smsq sends its job id there. It matches a job whose `smsMessageSid`
    /// smsq never learned (a `160054` answer). `None` when absent or not a job id.
    pub req_id: Option<JobId>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReportError {
    #[error("the body is neither the JSON nor the XML form of a report")]
    Unreadable,
    #[error("the report has no `{0}`")]
    Missing(&'static str),
    #[error("`{0}` is not a mainland mobile number")]
    BadNumber(&'static str),
    #[error("unknown smsType {0:?}")]
    UnknownType(String),
}

impl Report {
    /// The push body as received: `{"Request": {…}}` or `<Request>…</Request>`.
    pub fn parse(body: &[u8]) -> Result<Self, ReportError> {
        let fields = match body.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => json_fields(body)?,
            Some(b'<') => xml_fields(body)?,
            _ => return Err(ReportError::Unreadable),
        };
        let get = |k: &'static str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let need = |k: &'static str| get(k).ok_or(ReportError::Missing(k));
        let number =
            |k: &'static str| Mobile::parse(need(k)?).map_err(|_| ReportError::BadNumber(k));
        match need("smsType")? {
            "1" => Ok(Report::Status(StatusReport {
                message_id: need("content")?.to_owned(),
                mobile: number("fromNum")?,
                delivered: need("status")? == "0",
                deliver_code: get("deliverCode").unwrap_or("").to_owned(),
                received_at: get("recvTime").map(rfc3339).unwrap_or_default(),
                req_id: get("reqId").and_then(JobId::parse),
            })),
            "0" => Ok(Report::Inbound {
                from: number("fromNum")?,
                text: get("content").unwrap_or("").to_owned(),
            }),
            other => Err(ReportError::UnknownType(other.to_owned())),
        }
    }
}

fn json_fields(body: &[u8]) -> Result<HashMap<String, String>, ReportError> {
    let v: Value = serde_json::from_slice(body).map_err(|_| ReportError::Unreadable)?;
    let request = v
        .get("Request")
        .and_then(Value::as_object)
        .ok_or(ReportError::Unreadable)?;
    Ok(request
        .iter()
        .filter_map(|(k, v)| {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            Some((k.clone(), text))
        })
        .collect())
}

/// The flat `<Request><name>value</name>…</Request>` form. A value is its text, CDATA and
/// references together (`a &amp; b` is `a & b`): the five predefined entities and character
/// references are resolved; nothing else is expanded — no DTD is read, so a report cannot
/// define entities (billion laughs) or pull in files (XXE), and an unknown `&name;` stays
/// as written.
fn xml_fields(body: &[u8]) -> Result<HashMap<String, String>, ReportError> {
    let mut reader = quick_xml::Reader::from_reader(body);
    let mut fields = HashMap::new();
    let (mut in_request, mut saw_request) = (false, false);
    let mut current: Option<(String, String)> = None;
    let bad = |_| ReportError::Unreadable;
    loop {
        match reader.read_event().map_err(|_| ReportError::Unreadable)? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
                if name == "Request" {
                    (in_request, saw_request) = (true, true);
                } else if in_request {
                    current = Some((name, String::new()));
                }
            }
            Event::Text(t) => {
                if let Some((_, value)) = &mut current {
                    value.push_str(&t.decode().map_err(bad)?);
                }
            }
            Event::CData(t) => {
                if let Some((_, value)) = &mut current {
                    value.push_str(&t.decode().map_err(bad)?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, value)) = &mut current {
                    let name = r.decode().map_err(bad)?;
                    match r.resolve_char_ref().map_err(|_| ReportError::Unreadable)? {
                        Some(ch) => value.push(ch),
                        None => match quick_xml::escape::resolve_xml_entity(&name) {
                            Some(text) => value.push_str(text),
                            None => {
                                value.push('&');
                                value.push_str(&name);
                                value.push(';');
                            }
                        },
                    }
                }
            }
            Event::End(e) => {
                if e.name().as_ref() == b"Request" {
                    in_request = false;
                }
                if let Some((name, value)) = current.take() {
                    fields.insert(name, value.trim().to_owned());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if saw_request {
        Ok(fields)
    } else {
        Err(ReportError::Unreadable)
    }
}

/// Ronglian's voice-code result (语音验证码状态通知), posted to the call's `respUrl`: XML (sent as
/// `text/plain`) `<Request><action>VoiceCode</action><number/><callSid/><state/>…</Request>`;
/// `state` 0 = answered and played, 1 = not answered, 2 = the call failed. A JSON form of the
/// same fields is read too (`{"Request": {…}}`), in case a JSON-mode app gets one.
pub fn parse_call_result(body: &[u8]) -> Result<StatusReport, ReportError> {
    let fields = match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => json_fields(body)?,
        Some(b'<') => xml_fields(body)?,
        _ => return Err(ReportError::Unreadable),
    };
    let get = |k: &'static str| fields.get(k).map(String::as_str).filter(|v| !v.is_empty());
    let need = |k: &'static str| get(k).ok_or(ReportError::Missing(k));
    if need("action")? != "VoiceCode" {
        return Err(ReportError::UnknownType(need("action")?.to_owned()));
    }
    let state = need("state")?;
    Ok(StatusReport {
        message_id: need("callSid")?.to_owned(),
        mobile: Mobile::parse(need("number")?).map_err(|_| ReportError::BadNumber("number"))?,
        delivered: state == "0",
        deliver_code: match state {
            "0" => "answered".to_owned(),
            "1" => "not answered".to_owned(),
            "2" => "call failed".to_owned(),
            other => format!("state {other}"),
        },
        received_at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        req_id: get("userData").and_then(JobId::parse),
    })
}

/// Tencent's status callback: a JSON array, one entry per message (`../shared/tencent-sms.md`
/// §6). `sid` is the `SerialNo`; `report_status` is `SUCCESS` or `FAIL`.
pub fn parse_tencent(body: &[u8]) -> Result<Vec<StatusReport>, ReportError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        sid: Option<String>,
        mobile: Option<String>,
        report_status: Option<String>,
        #[serde(default)]
        errmsg: String,
        #[serde(default)]
        user_receive_time: String,
    }
    let entries: Vec<Entry> = serde_json::from_slice(body).map_err(|_| ReportError::Unreadable)?;
    entries
        .into_iter()
        .map(|e| {
            let need =
                |v: Option<String>, k| v.filter(|v| !v.is_empty()).ok_or(ReportError::Missing(k));
            let mobile = need(e.mobile, "mobile")?;
            Ok(StatusReport {
                message_id: need(e.sid, "sid")?,
                mobile: Mobile::parse(&mobile).map_err(|_| ReportError::BadNumber("mobile"))?,
                delivered: need(e.report_status, "report_status")? == "SUCCESS",
                deliver_code: e.errmsg,
                received_at: dashed_rfc3339(&e.user_receive_time),
                req_id: None,
            })
        })
        .collect()
}

/// Aliyun's `SmsReport` push: a JSON array (`../shared/aliyun-sms.md` §7). `biz_id` is the
/// `BizId`, `success` the authoritative flag, `out_id` smsq's job id.
pub fn parse_aliyun(body: &[u8]) -> Result<Vec<StatusReport>, ReportError> {
    #[derive(serde::Deserialize)]
    struct Entry {
        biz_id: Option<String>,
        phone_number: Option<String>,
        success: Option<bool>,
        #[serde(default)]
        err_code: String,
        #[serde(default)]
        report_time: String,
        #[serde(default)]
        out_id: String,
    }
    let entries: Vec<Entry> = serde_json::from_slice(body).map_err(|_| ReportError::Unreadable)?;
    entries
        .into_iter()
        .map(|e| {
            let mobile = e
                .phone_number
                .filter(|v| !v.is_empty())
                .ok_or(ReportError::Missing("phone_number"))?;
            Ok(StatusReport {
                message_id: e
                    .biz_id
                    .filter(|v| !v.is_empty())
                    .ok_or(ReportError::Missing("biz_id"))?,
                mobile: Mobile::parse(&mobile)
                    .map_err(|_| ReportError::BadNumber("phone_number"))?,
                delivered: e.success.ok_or(ReportError::Missing("success"))?,
                deliver_code: e.err_code,
                received_at: dashed_rfc3339(&e.report_time),
                req_id: JobId::parse(&e.out_id),
            })
        })
        .collect()
}

/// `yyyy-MM-dd HH:mm:ss` in Beijing time (the vendors' callbacks) → RFC 3339 UTC.
fn dashed_rfc3339(beijing_time: &str) -> String {
    beijing_to_rfc3339(beijing_time, "%Y-%m-%d %H:%M:%S")
}

/// `yyyyMMddHHmmss` in Beijing time → RFC 3339 UTC.
fn rfc3339(beijing_time: &str) -> String {
    beijing_to_rfc3339(beijing_time, "%Y%m%d%H%M%S")
}

/// A Beijing wall-clock time in `format` → RFC 3339 UTC; empty if unreadable.
fn beijing_to_rfc3339(beijing_time: &str, format: &str) -> String {
    NaiveDateTime::parse_from_str(beijing_time, format)
        .ok()
        .and_then(|t| beijing().from_local_datetime(&t).single())
        .map(|t| {
            t.with_timezone(&Utc)
                .to_rfc3339_opts(SecondsFormat::Secs, true)
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_voice_call_result_reads_as_a_report() {
        let xml = br#"<?xml version="1.0" encoding="UTF-8"?><Request><action>VoiceCode</action><number>13800000000</number><callSid>1307241452320369000100030000002f</callSid><state>1</state><duration>30</duration><userData>0123456789abcdef0123456789abcdef</userData></Request>"#;
        let r = parse_call_result(xml).unwrap();
        assert_eq!(r.message_id, "1307241452320369000100030000002f");
        assert_eq!(
            (r.delivered, r.deliver_code.as_str()),
            (false, "not answered")
        );
        assert_eq!(
            r.req_id.unwrap().as_str(),
            "0123456789abcdef0123456789abcdef"
        );
        let other = br#"<Request><action>SellingCall</action><number>13800000000</number><callSid>x</callSid><state>0</state></Request>"#;
        assert!(matches!(
            parse_call_result(other),
            Err(ReportError::UnknownType(_))
        ));
    }

    #[test]
    fn tencent_and_aliyun_callbacks_read_as_reports() {
        let tencent = br#"[{"user_receive_time":"2015-10-17 08:03:04","nationcode":"86","mobile":"13912345678","report_status":"SUCCESS","errmsg":"DELIVRD","description":"ok","sid":"2019:1459782579269331713"},
            {"user_receive_time":"2015-10-17 08:03:05","nationcode":"86","mobile":"13912345679","report_status":"FAIL","errmsg":"UNDELIV","description":"no","sid":"2019:2"}]"#;
        let r = parse_tencent(tencent).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(
            (
                r[0].message_id.as_str(),
                r[0].delivered,
                r[0].received_at.as_str()
            ),
            ("2019:1459782579269331713", true, "2015-10-17T00:03:04Z")
        );
        assert_eq!(
            (r[1].delivered, r[1].deliver_code.as_str()),
            (false, "UNDELIV")
        );
        let aliyun = br#"[{"phone_number":"13900000001","send_time":"2017-01-01 00:00:00","report_time":"2017-01-01 00:00:00","success":true,"err_code":"DELIVERED","err_msg":"ok","sms_size":"1","biz_id":"12345^0","out_id":"0123456789abcdef0123456789abcdef"}]"#;
        let r = parse_aliyun(aliyun).unwrap();
        assert_eq!(
            (r[0].message_id.as_str(), r[0].delivered),
            ("12345^0", true)
        );
        assert_eq!(
            r[0].req_id.as_ref().map(|j| j.as_str()),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(parse_tencent(b"{}"), Err(ReportError::Unreadable));
        assert_eq!(
            parse_aliyun(br#"[{"phone_number":"1","success":true,"biz_id":"x"}]"#),
            Err(ReportError::BadNumber("phone_number"))
        );
        assert_eq!(
            parse_tencent(br#"[{"mobile":"13912345678","report_status":"SUCCESS"}]"#),
            Err(ReportError::Missing("sid"))
        );
    }

    const JSON: &str = r#"{"Request":{"action":"SMSArrived","smsType":"1","apiVersion":"2013-12-26",
        "content":"4121908f3d1b4edb9210f0eb4742f62c","fromNum":"13912345678",
        "dateSent":"20130923010000","deliverCode":"DELIVRD","recvTime":"20130923010010",
        "status":"0","reqId":"123","smsCount":"2","spCode":"10690876"}}"#;

    #[test]
    fn the_json_and_xml_forms_read_the_same() {
        let xml = "<?xml version=\"1.0\"?><Request><action>SMSArrived</action><smsType>1</smsType>\
            <content>4121908f3d1b4edb9210f0eb4742f62c</content><fromNum>13912345678</fromNum>\
            <deliverCode>DELIVRD</deliverCode><recvTime>20130923010010</recvTime>\
            <status>0</status></Request>";
        let expected = Report::Status(StatusReport {
            message_id: "4121908f3d1b4edb9210f0eb4742f62c".into(),
            mobile: Mobile::parse("13912345678").unwrap(),
            delivered: true,
            deliver_code: "DELIVRD".into(),
            received_at: "2013-09-22T17:00:10Z".into(),
            req_id: None,
        });
        assert_eq!(Report::parse(JSON.as_bytes()).unwrap(), expected);
        assert_eq!(Report::parse(xml.as_bytes()).unwrap(), expected);
    }

    fn inbound_content(xml_content: &str) -> String {
        let xml = format!(
            "<?xml version=\"1.0\"?><Request><action>SMSArrived</action><smsType>0</smsType>\
             <content>{xml_content}</content><fromNum>13912345678</fromNum></Request>"
        );
        match Report::parse(xml.as_bytes()) {
            Ok(Report::Inbound { text, .. }) => text,
            other => panic!("{xml_content}: {other:?}"),
        }
    }

    #[test]
    fn xml_values_keep_their_entities_and_cdata() {
        assert_eq!(inbound_content("a &amp; b"), "a & b");
        assert_eq!(
            inbound_content("&lt;b&gt; &quot;x&quot; &apos;y&apos;"),
            "<b> \"x\" 'y'"
        );
        assert_eq!(inbound_content("<![CDATA[hello <b>]]>"), "hello <b>");
        assert_eq!(
            inbound_content("x <![CDATA[<1>]]> &#20320;&#x597D;"),
            "x <1> 你好"
        );
        // Only the predefined entities: anything else stays as it was written.
        assert_eq!(inbound_content("&lol9;"), "&lol9;");
    }

    #[test]
    fn a_dtd_defines_nothing() {
        let laughs = "<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY lol \"lol\">\
            <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
            <!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>\
            <Request><action>SMSArrived</action><smsType>0</smsType>\
            <content>&lol2;&xxe;</content><fromNum>13912345678</fromNum></Request>";
        match Report::parse(laughs.as_bytes()) {
            Ok(Report::Inbound { text, .. }) => assert_eq!(text, "&lol2;&xxe;"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn malformed_reports_say_why() {
        assert_eq!(Report::parse(b"hello"), Err(ReportError::Unreadable));
        assert_eq!(Report::parse(b"{\"x\":1}"), Err(ReportError::Unreadable));
        assert_eq!(
            Report::parse(JSON.replace("\"content\"", "\"c\"").as_bytes()),
            Err(ReportError::Missing("content"))
        );
        assert_eq!(
            Report::parse(JSON.replace("13912345678", "123").as_bytes()),
            Err(ReportError::BadNumber("fromNum"))
        );
        let reply = JSON.replace("\"smsType\":\"1\"", "\"smsType\":\"0\"");
        assert!(matches!(
            Report::parse(reply.as_bytes()),
            Ok(Report::Inbound { .. })
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn json_body(fields: &[(&str, String)]) -> Vec<u8> {
            let map: serde_json::Map<String, Value> = fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Value::String(v.clone())))
                .collect();
            serde_json::json!({"Request": map}).to_string().into_bytes()
        }

        fn xml_body(fields: &[(&str, String)]) -> Vec<u8> {
            let mut out = String::from("<?xml version=\"1.0\"?><Request>");
            for (k, v) in fields {
                out.push_str(&format!(
                    "<{k}>{}</{k}>",
                    quick_xml::escape::escape(v.as_str())
                ));
            }
            out.push_str("</Request>");
            out.into_bytes()
        }

        proptest! {
            /// Whatever the network delivers: an answer or an error, never a panic.
            #[test]
            fn any_body_is_read_or_refused(body in proptest::collection::vec(any::<u8>(), 0..300)) {
                let _ = Report::parse(&body);
            }

            #[test]
            fn any_text_in_either_form_is_read_or_refused(body in "\\PC{0,200}") {
                let _ = Report::parse(format!("{{\"Request\":{body}}}").as_bytes());
                let _ = Report::parse(format!("<Request>{body}</Request>").as_bytes());
            }

            /// A status report, written by the platform in either form, reads back as itself.
            #[test]
            fn status_reports_round_trip_in_json_and_xml(
                sid in "[0-9a-f]{32}",
                second in 3u8..=9,
                rest in "[0-9]{9}",
                delivered in any::<bool>(),
                code in "[A-Z]{0,8}",
                req in proptest::option::of("[0-9a-f]{32}"),
            ) {
                let number = format!("1{second}{rest}");
                let mut fields = vec![
                    ("action", "SMSArrived".to_owned()),
                    ("smsType", "1".to_owned()),
                    ("content", sid.clone()),
                    ("fromNum", number.clone()),
                    ("deliverCode", code.clone()),
                    ("recvTime", "20261201083000".to_owned()),
                    ("status", if delivered { "0" } else { "1" }.to_owned()),
                ];
                if let Some(r) = &req {
                    fields.push(("reqId", r.clone()));
                }
                let expected = Report::Status(StatusReport {
                    message_id: sid,
                    mobile: Mobile::parse(&number).unwrap(),
                    delivered,
                    deliver_code: code,
                    received_at: "2026-12-01T00:30:00Z".into(),
                    req_id: req.as_deref().and_then(JobId::parse),
                });
                prop_assert_eq!(Report::parse(&json_body(&fields)), Ok(expected.clone()));
                prop_assert_eq!(Report::parse(&xml_body(&fields)), Ok(expected));
            }

            /// A user's reply keeps every character, XML specials and CJK included.
            #[test]
            fn replies_keep_their_text(text in "[a-zA-Z0-9&<>'\"你好，。！? ]{0,40}") {
                let fields = vec![
                    ("smsType", "0".to_owned()),
                    ("content", text.clone()),
                    ("fromNum", "13912345678".to_owned()),
                ];
                let read = |body: Vec<u8>| match Report::parse(&body) {
                    Ok(Report::Inbound { text, .. }) => Some(text),
                    _ => None,
                };
                prop_assert_eq!(read(json_body(&fields)), Some(text.clone()));
                // The XML form's values are trimmed.
                prop_assert_eq!(read(xml_body(&fields)), Some(text.trim().to_owned()));
            }
        }
    }
}
