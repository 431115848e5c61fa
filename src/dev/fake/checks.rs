//! The protocol checks the real service makes, each answered with its real error code.

use std::collections::HashSet;

use axum::http::{HeaderMap, Uri, header};
use base64::Engine;
use chrono::{NaiveDateTime, TimeZone, Utc};
use serde_json::Value;

use super::{Fake, FakeOptions};
use crate::domain::{Mobile, beijing};
use crate::provider::{API_VERSION, signature};

pub(super) struct Fault {
    pub code: &'static str,
    pub msg: &'static str,
}

pub(super) const fn fault(code: &'static str, msg: &'static str) -> Fault {
    Fault { code, msg }
}

/// A request that passed every protocol check.
pub(super) struct Checked {
    pub to: Vec<String>,
    pub template_id: String,
    pub datas: Vec<String>,
    pub req_id: Option<String>,
    /// A `Calls/VoiceVerify` request: where its result goes.
    pub voice: Option<Voice>,
}

/// What a voice code asked for beyond the number and the code.
#[derive(Debug, Clone)]
pub(super) struct Voice {
    pub resp_url: Option<String>,
    pub user_data: String,
}

/// The protocol checks, in the order the real service plausibly runs them. `Err(None)` = 404.
pub(super) fn check(
    fake: &Fake,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, Option<Fault>> {
    let opts = &fake.opts;
    let segments: Vec<&str> = uri.path().split('/').collect();
    let (version, sid, voice) = match segments.as_slice() {
        [_, version, "Accounts", sid, "SMS", "TemplateSMS"] => (*version, *sid, false),
        [_, version, "Accounts", sid, "Calls", "VoiceVerify"] => (*version, *sid, true),
        _ => return Err(None),
    };
    if version != API_VERSION {
        return Err(Some(fault("111110", "REST API版本号错误")));
    }
    if sid != opts.account_sid {
        return Err(Some(fault("111141", "主账户不存在")));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Some(fault("111101", "请求包头Authorization参数为空")))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(Some(fault(
            "111102",
            "请求包头Authorization参数Base64解码失败",
        )))?;
    let (auth_sid, ts) = decoded.split_once(':').ok_or(Some(fault(
        "111102",
        "请求包头Authorization参数解码后格式有误",
    )))?;
    if auth_sid != opts.account_sid {
        return Err(Some(fault(
            "111103",
            "请求包头Authorization参数解码后账户ID为空或与URL不符",
        )));
    }
    let sent_at = NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S")
        .ok()
        .filter(|_| ts.len() == 14)
        .and_then(|t| beijing().from_local_datetime(&t).single())
        .ok_or(Some(fault(
            "111107",
            "请求包头Authorization参数解码后时间戳格式有误",
        )))?;
    let sig = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .filter(|s| !s.is_empty())
        .ok_or(Some(fault("111104", "请求地址SigParameter参数为空")))?;
    if sig.len() != 32 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Some(fault("111105", "请求地址SigParameter参数格式有误")));
    }
    let skew = (Utc::now() - sent_at.with_timezone(&Utc))
        .num_seconds()
        .abs();
    if skew > opts.timestamp_window_secs {
        return Err(Some(fault(
            "111106",
            "请求包头Authorization参数解码后时间戳过期",
        )));
    }
    // Exact comparison: the doc says the sig must be upper case.
    if sig != signature(&opts.account_sid, &opts.auth_token, ts) {
        return Err(Some(fault("111109", "请求地址Sig校验失败")));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(Some(fault("160031", "参数解析失败")));
    }
    if voice {
        return check_voice(opts, body);
    }
    check_body(opts, body)
}

/// `VoiceVerify`'s body: `appId`, `to`, `verifyCode` (4–8 letters or digits), `playTimes`
/// (1–3, a string), optional `respUrl` and `userData`. No voice-specific codes are
/// published: a bad `verifyCode` or `playTimes` answers `160052`, our reading.
fn check_voice(opts: &FakeOptions, body: &[u8]) -> Result<Checked, Option<Fault>> {
    let v: Value =
        serde_json::from_slice(body).map_err(|_| Some(fault("160031", "参数解析失败")))?;
    let text = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
    match text("appId").as_str() {
        "" => return Err(Some(fault("111169", "应用ID为空"))),
        app if app != opts.app_id => return Err(Some(fault("111181", "应用不存在"))),
        _ => {}
    }
    let to = text("to");
    if Mobile::parse(&to).is_err() || to.len() != 11 {
        return Err(Some(fault("160042", "号码格式有误")));
    }
    let code = text("verifyCode");
    if !(4..=8).contains(&code.len()) || !code.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(Some(fault("160052", "验证码格式有误")));
    }
    if !matches!(text("playTimes").as_str(), "" | "1" | "2" | "3") {
        return Err(Some(fault("160052", "播放次数有误")));
    }
    let resp_url = Some(text("respUrl")).filter(|u| !u.is_empty());
    Ok(Checked {
        to: vec![to],
        template_id: "VoiceVerify".to_owned(),
        datas: vec![code],
        req_id: None,
        voice: Some(Voice {
            resp_url,
            user_data: text("userData"),
        }),
    })
}

fn check_body(opts: &FakeOptions, body: &[u8]) -> Result<Checked, Option<Fault>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Some(fault("160030", "包体为空")));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|_| Some(fault("160031", "参数解析失败")))?;
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    match field("appId").and_then(Value::as_str) {
        None | Some("") => return Err(Some(fault("111169", "应用ID为空"))),
        Some(app) if app != opts.app_id => return Err(Some(fault("111181", "应用不存在"))),
        Some(_) => {}
    }
    let to = match field("to") {
        None => return Err(Some(fault("160044", "手机号为空"))),
        Some(Value::String(s)) if s.is_empty() => return Err(Some(fault("160044", "手机号为空"))),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect::<Vec<_>>(),
        Some(_) => return Err(Some(fault("160031", "参数解析失败"))),
    };
    if to.len() > 200 {
        return Err(Some(fault("160048", "号码数超200限制")));
    }
    if to
        .iter()
        .any(|n| n.len() != 11 || Mobile::parse(n).is_err())
    {
        return Err(Some(fault("160042", "号码格式有误")));
    }
    if to.iter().collect::<HashSet<_>>().len() != to.len() {
        return Err(Some(fault("160045", "重复的号码")));
    }
    let template_id = match field("templateId") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Some(fault("160031", "参数解析失败"))),
    };
    if template_id.is_empty() || !template_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Some(fault("160057", "短信模板ID格式有误")));
    }
    if !opts.templates.contains(&template_id) {
        return Err(Some(fault("160032", "短信模板无效")));
    }
    let datas = match field("datas") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(Some(fault("160052", "模板变量格式有误")))?,
        Some(_) => return Err(Some(fault("160052", "模板变量格式有误"))),
    };
    let req_id = match field("reqId") {
        None => None,
        Some(Value::String(s)) if s.chars().count() <= 32 => Some(s.clone()),
        Some(_) => return Err(Some(fault("160055", "请求reqId超长"))),
    };
    Ok(Checked {
        to,
        template_id,
        datas,
        req_id,
        voice: None,
    })
}
