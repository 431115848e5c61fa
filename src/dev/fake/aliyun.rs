//! The simulator's Aliyun SMS (Dysmsapi `SendSms` 2017-05-25), signed ACS3-HMAC-SHA256 as the
//! official SDK signs by default. Gateway errors are 4xx with the vendor's JSON; business
//! results are 200 with `Code` (`../shared/aliyun-sms.md` §3, §5, §6). The RPC v1
//! (HMAC-SHA1) scheme is not simulated: it is refused as an incomplete signature.

use std::collections::BTreeMap;

use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{NaiveDateTime, Utc};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::checks::Checked;
use super::state::accept;
use super::{Fake, Outage};
use crate::domain::Mobile;
use crate::provider::Kind;
use crate::provider::aliyun::{
    canonical_query, parse_authorization as parse_acs3, signature as aliyun_signature,
};

fn answer(fake: &Fake, status: StatusCode, code: &str, message: &str) -> Response {
    let mut body =
        json!({"RequestId": fake.uuid().to_uppercase(), "Code": code, "Message": message});
    if status != StatusCode::OK {
        body["HostId"] = json!("dysmsapi.aliyuncs.com");
        body["Recommend"] = json!(format!(
            "https://api.aliyun.com/troubleshoot?q={code}&product=Dysmsapi"
        ));
    }
    (status, axum::Json(body)).into_response()
}

pub(super) fn is_aliyun(uri: &Uri, headers: &HeaderMap) -> bool {
    headers.contains_key("x-acs-action") || uri.query().is_some_and(|q| q.contains("Action="))
}

pub(super) async fn handle(
    fake: &Fake,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    received_us: i64,
) -> Response {
    let opts = &fake.opts;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let mut params: BTreeMap<String, String> =
        serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap_or_default();
    if header("content-type").starts_with("application/x-www-form-urlencoded")
        && let Ok(form) = serde_urlencoded::from_bytes::<BTreeMap<String, String>>(body)
    {
        params.extend(form);
    }
    let bad = StatusCode::BAD_REQUEST;
    let Some(claimed) = parse_acs3(header("authorization")) else {
        return answer(
            fake,
            bad,
            "IncompleteSignature",
            "The request signature does not conform to Aliyun standards (smsq's fake checks ACS3-HMAC-SHA256 only).",
        );
    };
    if claimed.access_key_id != opts.aliyun_access_key_id {
        return answer(
            fake,
            StatusCode::NOT_FOUND,
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        );
    }
    let Ok(date) = NaiveDateTime::parse_from_str(header("x-acs-date"), "%Y-%m-%dT%H:%M:%SZ") else {
        return answer(
            fake,
            bad,
            "MissingParameter",
            "x-acs-date is mandatory for this action.",
        );
    };
    if (Utc::now().naive_utc() - date).num_seconds().abs() > 900 {
        return answer(
            fake,
            bad,
            "InvalidTimeStamp.Expired",
            "Specified time stamp or date value is expired.",
        );
    }
    let payload_hash = crate::domain::hex(&Sha256::digest(body));
    let signed: Vec<&str> = claimed.signed_headers.split(';').collect();
    let must_sign = [
        "host",
        "x-acs-action",
        "x-acs-content-sha256",
        "x-acs-date",
        "x-acs-signature-nonce",
        "x-acs-version",
    ];
    let values: Vec<(&str, &str)> = signed.iter().map(|h| (*h, header(h))).collect();
    let pairs: Vec<(&str, String)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.clone()))
        .collect();
    let expected = aliyun_signature(
        &opts.aliyun_access_key_secret,
        method.as_str(),
        &canonical_query(&pairs),
        &values,
        &payload_hash,
    );
    if claimed.signature != expected
        || header("x-acs-content-sha256") != payload_hash
        || !must_sign.iter().all(|h| signed.contains(h))
    {
        return answer(
            fake,
            bad,
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        );
    }
    if !fake.fresh_nonce(header("x-acs-signature-nonce")) {
        return answer(
            fake,
            bad,
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        );
    }
    if header("x-acs-version") != crate::provider::ALIYUN_VERSION {
        return answer(
            fake,
            bad,
            "InvalidVersion",
            "Specified parameter Version is not valid.",
        );
    }
    if header("x-acs-action") != "SendSms" {
        return answer(
            fake,
            StatusCode::NOT_FOUND,
            "InvalidAction.NotFound",
            "Specified api is not found, please check your url and method.",
        );
    }
    let get = |k: &str| params.get(k).map(String::as_str).unwrap_or("");
    if get("SignName").is_empty() {
        return answer(
            fake,
            bad,
            "MissingSignName",
            "SignName is mandatory for this action.",
        );
    }
    if get("TemplateCode").is_empty() {
        return answer(
            fake,
            bad,
            "MissingTemplateCode",
            "TemplateCode is mandatory for this action.",
        );
    }
    let ok = StatusCode::OK;
    let number = get("PhoneNumbers");
    let local = number.trim_start_matches('+').trim_start_matches("86");
    let local = if local.len() == 11 { local } else { number };
    if number.contains(',') || Mobile::parse(local).is_err() || local.len() != 11 {
        return answer(fake, ok, "isv.MOBILE_NUMBER_ILLEGAL", "非法手机号");
    }
    let template_id = get("TemplateCode").to_owned();
    if !opts.templates.contains(&template_id) {
        return answer(
            fake,
            ok,
            "isv.SMS_TEMPLATE_ILLEGAL",
            "该账号下找不到对应模板",
        );
    }
    let datas = match serde_json::from_str::<Value>(get("TemplateParam")) {
        Ok(Value::Object(map)) if map.values().all(Value::is_string) => {
            // The code first (what the tests read), then the rest by name.
            let mut values: Vec<(String, String)> = map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect();
            values.sort_by_key(|(k, _)| (k != "code", k.clone()));
            values.into_iter().map(|(_, v)| v).collect()
        }
        _ if get("TemplateParam").is_empty() => Vec::new(),
        _ => {
            return answer(
                fake,
                ok,
                "isv.INVALID_JSON_PARAM",
                "JSON参数不合法，只接受字符串值",
            );
        }
    };
    match fake.outage(Kind::Aliyun) {
        Outage::None => {}
        Outage::Http500 => {
            return answer(
                fake,
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceUnavailable",
                "The request has failed due to a temporary failure of the server.",
            );
        }
        Outage::Account => return answer(fake, ok, "isv.AMOUNT_NOT_ENOUGH", "账户余额不足"),
        Outage::Throttle => {
            return answer(
                fake,
                bad,
                "Throttling.User",
                "Request was denied due to user flow control.",
            );
        }
        Outage::Hang => return fake.hang().await,
        Outage::Code(code) => return answer(fake, ok, &code, "scripted by /_fake/outage"),
    }
    if let Some(answer) = fake.dice() {
        return answer;
    }
    let out_id = get("OutId").to_owned();
    let checked = Checked {
        to: vec![local.to_owned()],
        template_id,
        datas,
        voice: None,
        req_id: (!out_id.is_empty()).then_some(out_id),
    };
    match accept(fake, checked, received_us, Kind::Aliyun).await {
        Ok(m) => {
            super::reports::push(fake, &m);
            let body = json!({"Message": "OK", "RequestId": fake.uuid().to_uppercase(), "BizId": m.sms_message_sid, "Code": "OK"});
            axum::Json(body).into_response()
        }
        Err(f) => {
            let message = match f.code {
                "160038" => "触发分钟级流控Permits:1",
                _ => "触发天级流控Permits:10",
            };
            answer(fake, ok, "isv.BUSINESS_LIMIT_CONTROL", message)
        }
    }
}
