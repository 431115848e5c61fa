//! The simulator's Tencent Cloud SMS (`SendSms` 2021-01-11): the TC3 checks the gateway makes,
//! in its order, each answered with its own `Response.Error` code; per-number answers in
//! `SendStatusSet`, as the vendor gives them (`../shared/tencent-sms.md` §2.5, §4).

use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Value, json};

use super::checks::Checked;
use super::state::accept;
use super::{Fake, Outage};
use crate::domain::Mobile;
use crate::provider::Kind;

fn request_id(fake: &Fake) -> String {
    fake.uuid()
}

fn error(fake: &Fake, code: &str, message: &str) -> Response {
    let body = json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": request_id(fake)}});
    axum::Json(body).into_response()
}

fn number_status(
    fake: &Fake,
    number: &str,
    code: &str,
    message: &str,
    serial: &str,
    context: &str,
) -> Response {
    let fee = if code == "Ok" { 1 } else { 0 };
    let iso = if code == "Ok" { "CN" } else { "" };
    let body = json!({"Response": {"SendStatusSet": [{
        "SerialNo": serial, "PhoneNumber": number, "Fee": fee, "SessionContext": context,
        "Code": code, "Message": message, "IsoCode": iso,
    }], "RequestId": request_id(fake)}});
    axum::Json(body).into_response()
}

pub(super) async fn handle(
    fake: &Fake,
    method: &Method,
    headers: &HeaderMap,
    body: &[u8],
    received_us: i64,
) -> Response {
    let opts = &fake.opts;
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let Some(claimed) = crate::tc3::parse(header("authorization")) else {
        return error(
            fake,
            "AuthFailure.InvalidAuthorization",
            "Authorization is malformed",
        );
    };
    if claimed.secret_id != opts.tencent_secret_id {
        return error(
            fake,
            "AuthFailure.SecretIdNotFound",
            "The SecretId is not found",
        );
    }
    let Ok(timestamp) = header("x-tc-timestamp").parse::<i64>() else {
        return error(fake, "MissingParameter", "X-TC-Timestamp is missing");
    };
    if (Utc::now().timestamp() - timestamp).abs() > 300 {
        return error(fake, "AuthFailure.SignatureExpire", "The signature expired");
    }
    let expected = crate::tc3::signature(
        &opts.tencent_secret_key,
        claimed.service,
        header("host"),
        body,
        timestamp,
    );
    let signed_right = claimed.signature == expected
        && claimed.service == crate::provider::TENCENT_SERVICE
        && claimed.date == crate::tc3::date(timestamp)
        && claimed.signed_headers == "content-type;host"
        && header("content-type") == crate::tc3::CONTENT_TYPE;
    if !signed_right {
        return error(
            fake,
            "AuthFailure.SignatureFailure",
            "The provided credentials could not be validated. Please check your signature is correct.",
        );
    }
    if header("x-tc-action") != "SendSms" {
        return error(fake, "InvalidAction", "The action is not found");
    }
    if header("x-tc-version") != crate::provider::TENCENT_VERSION {
        return error(fake, "NoSuchVersion", "The version is not found");
    }
    if header("x-tc-region").is_empty() {
        return error(fake, "MissingParameter", "X-TC-Region is missing");
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return error(
            fake,
            "FailedOperation.JsonParseFail",
            "cannot parse the body",
        );
    };
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("");
    if text("SmsSdkAppId") != opts.tencent_app_id {
        return error(
            fake,
            "UnauthorizedOperation.SmsSdkAppIdVerifyFail",
            "SmsSdkAppId does not belong to this key",
        );
    }
    if text("SignName").is_empty() {
        return error(fake, "FailedOperation.MissingSignatureList", "no signature");
    }
    let template_id = text("TemplateId").to_owned();
    if !opts.templates.contains(&template_id) {
        return error(
            fake,
            "FailedOperation.TemplateIncorrectOrUnapproved",
            "template not approved or not found",
        );
    }
    let numbers: Vec<&str> = v
        .get("PhoneNumberSet")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let [number] = numbers.as_slice() else {
        return error(
            fake,
            "MissingParameter.EmptyPhoneNumberSet",
            "send one number per request (smsq's fake)",
        );
    };
    let context = text("SessionContext").to_owned();
    let Some(local) = number
        .strip_prefix("+86")
        .filter(|n| Mobile::parse(n).is_ok())
    else {
        return number_status(
            fake,
            number,
            "InvalidParameterValue.IncorrectPhoneNumber",
            "incorrect number",
            "",
            &context,
        );
    };
    let datas = v
        .get("TemplateParamSet")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    match fake.outage(Kind::Tencent) {
        Outage::None => {}
        Outage::Http500 => {
            return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response();
        }
        Outage::Account => {
            return number_status(
                fake,
                number,
                "FailedOperation.InsufficientBalanceInSmsPackage",
                "SMS package exhausted",
                "",
                &context,
            );
        }
        Outage::Throttle => return error(fake, "RequestLimitExceeded", "request limit exceeded"),
        Outage::Hang => return fake.hang().await,
        Outage::Code(code) => {
            return number_status(
                fake,
                number,
                &code,
                "scripted by /_fake/outage",
                "",
                &context,
            );
        }
    }
    if let Some(answer) = fake.dice() {
        return answer;
    }
    let checked = Checked {
        to: vec![local.to_owned()],
        template_id,
        datas,
        voice: None,
        req_id: (!context.is_empty()).then_some(context.clone()),
    };
    match accept(fake, checked, received_us, Kind::Tencent).await {
        Ok(m) => {
            super::reports::push(fake, &m);
            let serial = &m.sms_message_sid;
            number_status(fake, number, "Ok", "send success", serial, &context)
        }
        Err(f) => {
            let (code, message) = match f.code {
                "160038" => (
                    "LimitExceeded.PhoneNumberThirtySecondLimit",
                    "too frequent for this number",
                ),
                _ => (
                    "LimitExceeded.PhoneNumberDailyLimit",
                    "daily limit for this number",
                ),
            };
            number_status(fake, number, code, message, "", &context)
        }
    }
}
