//! `POST /v1/codes`, `POST /v1/codes/verify`, `POST /v1/captchas`.

use std::net::IpAddr;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::extract::{JsonBody, idempotency};
use super::{ApiError, AppState};
use crate::captcha::vendor::CaptchaToken;
use crate::codes::{CaptchaAnswer, CaptchaIssued, CodeAccepted, CodeRequest};
use crate::domain::{Mobile, Purpose, RequestId};
use crate::store::Verification;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct IssueBody {
    /// A mainland China mobile: 11 digits from `13`-`19`, optionally `+86`/`86`; spaces and
    /// dashes are fine.
    #[schema(
        pattern = r"^[\t\n\x0c\r ]*[ -]*(\+[ -]*8[ -]*6[ -]*|8[ -]*6[ -]*)?1[ -]*[3-9]([ -]*[0-9]){9}[ -]*[\t\n\x0c\r ]*$",
        max_length = 32,
        example = "+86 138 0013 8000"
    )]
    mobile: String,
    /// What the code is for (default `default`); one code per mobile and purpose.
    #[schema(pattern = "^[a-z0-9_-]{1,32}$", example = "login")]
    purpose: Option<String>,
    /// The end user's address, for the per-address caps (an IPv4 or IPv6 address).
    #[schema(example = "203.0.113.7")]
    client_ip: Option<String>,
    /// The built-in captcha: the id from `POST /v1/captchas`, with `captcha` = what the user
    /// read.
    #[schema(pattern = "^[0-9a-f]{32}$")]
    captcha_id: Option<String>,
    /// The built-in captcha's answer (a string, with `captcha_id`), or what the vendor's
    /// widget returned (an object, `captcha.provider` = tencent, geetest, turnstile, hcaptcha).
    captcha: Option<CaptchaField>,
    /// `sms` (the default) or `voice`: a call reads the code out (Ronglian `VoiceVerify`); it
    /// verifies like a text's.
    #[serde(default)]
    channel: crate::domain::Channel,
}

/// A captcha in `POST /v1/codes`: the built-in one's answer, or a vendor widget's result.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(super) enum CaptchaField {
    /// What the user read from the built-in captcha's image.
    Answer(#[schema(inline)] BuiltinAnswer),
    Vendor(VendorCaptcha),
}

/// What the user read from the built-in captcha's image.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(pattern = r"^[\s\S]{0,32}$")]
pub(super) struct BuiltinAnswer(String);

/// What the vendor's widget returned: Tencent Captcha `ticket` + `randstr`; GeeTest v4
/// `lot_number`, `captcha_output`, `pass_token`, `gen_time`; Turnstile or hCaptcha `token`.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ticket": "t03…", "randstr": "@abc"}))]
pub(super) struct VendorCaptcha {
    #[schema(max_length = 2048)]
    ticket: Option<String>,
    #[schema(max_length = 64)]
    randstr: Option<String>,
    #[schema(max_length = 64)]
    lot_number: Option<String>,
    #[schema(max_length = 2048)]
    captcha_output: Option<String>,
    #[schema(max_length = 256)]
    pass_token: Option<String>,
    #[schema(max_length = 32)]
    gen_time: Option<String>,
    #[schema(max_length = 2048)]
    token: Option<String>,
}

impl VendorCaptcha {
    /// One vendor's complete set of fields, and no other's.
    fn token(self) -> Result<CaptchaToken, ApiError> {
        let bad = || {
            ApiError::bad_request(
                "invalid_captcha",
                "captcha must be one vendor's fields: {ticket, randstr}, {lot_number, captcha_output, pass_token, gen_time} or {token}",
            )
        };
        // What the schema says (and what keeps a body under api.max_body_bytes).
        let long = [
            (&self.ticket, 2048),
            (&self.randstr, 64),
            (&self.lot_number, 64),
            (&self.captcha_output, 2048),
            (&self.pass_token, 256),
            (&self.gen_time, 32),
            (&self.token, 2048),
        ]
        .iter()
        .any(|(v, max)| v.as_ref().is_some_and(|v| v.chars().count() > *max));
        if long {
            return Err(bad());
        }
        match self {
            VendorCaptcha {
                ticket: Some(ticket),
                randstr: Some(randstr),
                lot_number: None,
                captcha_output: None,
                pass_token: None,
                gen_time: None,
                token: None,
            } => Ok(CaptchaToken::Tencent { ticket, randstr }),
            VendorCaptcha {
                ticket: None,
                randstr: None,
                lot_number: Some(lot_number),
                captcha_output: Some(captcha_output),
                pass_token: Some(pass_token),
                gen_time: Some(gen_time),
                token: None,
            } => Ok(CaptchaToken::Geetest {
                lot_number,
                captcha_output,
                pass_token,
                gen_time,
            }),
            VendorCaptcha {
                ticket: None,
                randstr: None,
                lot_number: None,
                captcha_output: None,
                pass_token: None,
                gen_time: None,
                token: Some(token),
            } => Ok(CaptchaToken::Token(token)),
            _ => Err(bad()),
        }
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct VerifyBody {
    #[schema(
        pattern = r"^[\t\n\x0c\r ]*[ -]*(\+[ -]*8[ -]*6[ -]*|8[ -]*6[ -]*)?1[ -]*[3-9]([ -]*[0-9]){9}[ -]*[\t\n\x0c\r ]*$",
        max_length = 32,
        example = "13800138000"
    )]
    mobile: String,
    #[schema(pattern = "^[a-z0-9_-]{1,32}$", example = "login")]
    purpose: Option<String>,
    /// What the user typed (a wrong one is an answer, not an error).
    #[schema(max_length = 32, example = "123456")]
    code: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"valid": false, "reason": "mismatch", "attempts_left": 4}))]
pub(super) struct VerifyAnswer {
    valid: bool,
    /// When not valid: `mismatch`, `too_many_attempts` or `expired` (unknown, used and
    /// expired codes look the same).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts_left: Option<u32>,
}

fn mobile(input: &str) -> Result<Mobile, ApiError> {
    Mobile::parse(input).map_err(|e| ApiError::bad_request("invalid_mobile", e.to_string()))
}

fn purpose(input: Option<&str>) -> Result<Purpose, ApiError> {
    input
        .map(Purpose::parse)
        .transpose()
        .map(Option::unwrap_or_default)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))
}

/// Issue a code: checks, stores its keyed hash and queues its SMS in one atomic step (a
/// refused request changes nothing).
#[utoipa::path(
    post, path = "/v1/codes", tag = "codes", request_body = IssueBody,
    params(super::extract::IdempotencyHeader),
    responses((status = 202, description = "Issued and queued", body = CodeAccepted)),
    security((), ("app_token" = [])),
)]
pub(super) async fn issue(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: JsonBody<IssueBody>,
) -> Result<(StatusCode, Json<CodeAccepted>), ApiError> {
    super::refuse_if_paused(&state)?;
    let JsonBody { value, raw } = body;
    let client_ip = value
        .client_ip
        .as_deref()
        .map(|ip| ip.trim().parse::<IpAddr>())
        .transpose()
        .map_err(|_| {
            ApiError::bad_request(
                "invalid_request",
                "client_ip must be an IPv4 or IPv6 address",
            )
        })?;
    let captcha = match (value.captcha_id, value.captcha) {
        (Some(_), Some(CaptchaField::Answer(BuiltinAnswer(answer))))
            if answer.chars().count() > 32 =>
        {
            return Err(ApiError::bad_request(
                "invalid_captcha",
                "a captcha answer is at most 32 characters",
            ));
        }
        (Some(id), Some(CaptchaField::Answer(BuiltinAnswer(answer)))) => {
            Some(CaptchaAnswer::Builtin { id, answer })
        }
        (None, Some(CaptchaField::Vendor(v))) => Some(CaptchaAnswer::Vendor(v.token()?)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "invalid_captcha",
                "send captcha_id with the built-in captcha's answer, or a vendor's captcha object alone",
            ));
        }
    };
    let request = CodeRequest {
        mobile: mobile(&value.mobile)?,
        purpose: purpose(value.purpose.as_deref())?,
        client_ip,
        captcha,
        idempotency: idempotency(&headers, &raw)?,
        request_id: Some(request_id),
        channel: value.channel,
    };
    let codes = state.codes.clone();
    let accepted = to_completion(async move { codes.issue(request).await }).await??;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// Verify a code: the attempt is counted before a constant-time comparison; a right code is
/// used up. Unknown, used and expired codes answer alike.
#[utoipa::path(
    post, path = "/v1/codes/verify", tag = "codes", request_body = VerifyBody,
    responses((status = 200, description = "Right or not (never an error for a wrong code)", body = VerifyAnswer)),
    security((), ("app_token" = [])),
)]
pub(super) async fn verify(
    State(state): State<AppState>,
    body: JsonBody<VerifyBody>,
) -> Result<Json<VerifyAnswer>, ApiError> {
    let value = body.value;
    let mobile = mobile(&value.mobile)?;
    let purpose = purpose(value.purpose.as_deref())?;
    if value.code.chars().count() > 32 {
        return Err(ApiError::bad_request("invalid_request", "code is too long"));
    }
    let codes = state.codes.clone();
    let code = value.code.clone();
    let outcome =
        to_completion(async move { codes.verify(&mobile, &purpose, &code).await }).await??;
    let (reason, left) = match outcome {
        Verification::Valid => {
            return Ok(Json(VerifyAnswer {
                valid: true,
                reason: None,
                attempts_left: None,
            }));
        }
        Verification::Mismatch { attempts_left } => ("mismatch", attempts_left),
        Verification::TooManyAttempts => ("too_many_attempts", 0),
        Verification::Expired => ("expired", 0),
    };
    Ok(Json(VerifyAnswer {
        valid: false,
        reason: Some(reason),
        attempts_left: Some(left),
    }))
}

/// An image captcha (needed by `POST /v1/codes` when `captcha.required` is on).
#[utoipa::path(
    post, path = "/v1/captchas", tag = "codes",
    responses((status = 201, description = "A new captcha, used up by its first check", body = CaptchaIssued)),
    security((), ("app_token" = [])),
)]
pub(super) async fn captcha(
    State(state): State<AppState>,
) -> Result<(StatusCode, Json<CaptchaIssued>), ApiError> {
    Ok((StatusCode::CREATED, Json(state.codes.new_captcha().await?)))
}

/// Runs a multi-step operation to its end even when its request is cut: by the API's
/// deadline, or by a client that hangs up. Issuing (reserve the per-IP slot → the issue
/// script → give the slot back if refused) and verifying (count the attempt → compare → use
/// the code up) are several Redis steps. A request future dropped between two of them would
/// leave the first done and the rest never run: a reservation never given back, an attempt
/// counted for a right code that was never used. On its own task, the operation completes
/// (or fails on a Redis error) as a whole, whatever happens to the request.
async fn to_completion<T: Send + 'static>(
    work: impl std::future::Future<Output = T> + Send + 'static,
) -> Result<T, ApiError> {
    // The request's span (its request id) goes with it onto the task.
    tokio::spawn(work.in_current_span()).await.map_err(|e| {
        tracing::error!(error = %e, "a request's task failed");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    })
}
