//! The request as the provider wants it signed: one UTC+8 timestamp for both the upper-case
//! MD5 `sig` in the URL and the bare base64 `Authorization` header.

use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::Serialize;

use crate::config::RonglianAccount;
use crate::domain::beijing;
use crate::provider::API_VERSION;
use crate::provider::{TemplateSms, VoiceCall};

/// A fully signed request, separate from sending it so the protocol vectors can be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// `yyyyMMddHHmmss` in Beijing time, whatever the host's TZ.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.with_timezone(&beijing())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `UPPER(hex(MD5(sid + token + timestamp)))`.
pub fn signature(account_sid: &str, auth_token: &str, timestamp: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(account_sid.as_bytes());
    md5.update(auth_token.as_bytes());
    md5.update(timestamp.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02X}")).collect()
}

/// Standard base64 (with padding) of `sid:timestamp`, with no `Basic ` prefix.
pub fn authorization(account_sid: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{timestamp}"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    to: &'a str,
    app_id: &'a str,
    template_id: &'a str,
    datas: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    req_id: Option<&'a str>,
}

pub fn sign(
    base_url: &str,
    account: &RonglianAccount,
    sms: &TemplateSms<'_>,
    now: DateTime<Utc>,
) -> SignedRequest {
    let body = Body {
        to: sms.to,
        app_id: &account.app_id,
        template_id: sms.template_id,
        datas: sms.datas,
        req_id: sms.req_id,
    };
    signed(base_url, account, "SMS/TemplateSMS", &body, now)
}

/// A request to `{base}/2013-12-26/Accounts/{sid}/{path}`: one timestamp for the `sig` and
/// the `Authorization` header, JSON in and out.
fn signed(
    base_url: &str,
    account: &RonglianAccount,
    path: &str,
    body: &impl Serialize,
    now: DateTime<Utc>,
) -> SignedRequest {
    let ts = timestamp(now);
    let sig = signature(&account.account_sid, account.auth_token.expose(), &ts);
    let url = format!(
        "{}/{API_VERSION}/Accounts/{}/{path}?sig={sig}",
        base_url.trim_end_matches('/'),
        account.account_sid
    );
    SignedRequest {
        url,
        headers: vec![
            ("Accept", "application/json".to_owned()),
            ("Content-Type", "application/json;charset=utf-8".to_owned()),
            ("Accept-Charset", "UTF-8".to_owned()),
            ("Authorization", authorization(&account.account_sid, &ts)),
        ],
        body: serde_json::to_string(body).expect("strings always serialize"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VoiceBody<'a> {
    app_id: &'a str,
    verify_code: &'a str,
    to: &'a str,
    play_times: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    resp_url: Option<&'a str>,
    user_data: &'a str,
}

/// `Calls/VoiceVerify`, signed exactly as TemplateSMS is.
pub fn sign_voice(
    base_url: &str,
    account: &RonglianAccount,
    call: &VoiceCall<'_>,
    now: DateTime<Utc>,
) -> SignedRequest {
    let body = VoiceBody {
        app_id: &account.app_id,
        verify_code: call.code,
        to: call.to,
        play_times: call.play_times.to_string(),
        resp_url: call.resp_url,
        user_data: call.user_data,
    };
    signed(base_url, account, "Calls/VoiceVerify", &body, now)
}
