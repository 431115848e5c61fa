//! `POST /v1/provider/{account}/reports/{token}`: each account's delivery reports (and
//! Ronglian users' replies). A provider cannot send our bearer token, so this route is
//! guarded by a secret path segment (`SMSQ_REPORTS_TOKEN`) instead; a wrong one looks like
//! any unknown route.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::codes::CodeError;
use crate::metrics;
use crate::provider::{Kind, Report, StatusReport};
use crate::store::ReportOutcome;

/// What a report did.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"received": "delivered"}))]
pub(super) struct ReportReceived {
    /// `delivered`, `undelivered`, `duplicate`, `unmatched` or `inbound`.
    received: &'static str,
}

/// Where a provider pushes delivery reports (and, for Ronglian, users' replies), on each
/// account's own path: `ronglian` is the account of `[provider]`, a named account is
/// `[providers.<name>]`. Each body is read in its vendor's form (Ronglian JSON or XML,
/// Tencent's and Aliyun's JSON arrays) and answered the way that vendor expects, so it does
/// not push again. Guarded by the secret path segment (`SMSQ_REPORTS_TOKEN`): a wrong one,
/// or an unknown account, is a 404 like any unknown route.
#[utoipa::path(
    post, path = "/v1/provider/{account}/reports/{token}", tag = "callbacks",
    params(
        ("account" = String, Path, description = "The account's name (`ronglian` without [providers])"),
        ("token" = String, Path, description = "SMSQ_REPORTS_TOKEN"),
    ),
    request_body(content = String, description = "The vendor's report, in its own form", content_type = "application/json"),
    responses((status = 200, description = "Received. Ronglian: what the report did (delivered, undelivered, duplicate, unmatched or inbound); Tencent: {\"result\": 0, \"errmsg\": \"OK\"}; Aliyun: {\"code\": 0, \"msg\": \"接收成功\"}", body = ReportReceived)),
)]
pub(super) async fn receive(
    State(state): State<AppState>,
    Path((account, token)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let kind = callback_kind(&state, &account, &token)?;
    let reports = match kind {
        Kind::Ronglian => return ronglian(&state, &body).await,
        Kind::Tencent => crate::provider::parse_tencent(&body),
        Kind::Aliyun => crate::provider::parse_aliyun(&body),
    };
    let reports = reports.map_err(|e| {
        metrics::delivery_report("malformed");
        ApiError::bad_request("invalid_report", e.to_string())
    })?;
    for status in &reports {
        let outcome = record(&state, status).await?;
        metrics::delivery_report(outcome);
    }
    let ack = match kind {
        Kind::Tencent => serde_json::json!({"result": 0, "errmsg": "OK"}),
        _ => serde_json::json!({"code": 0, "msg": "接收成功"}),
    };
    Ok((StatusCode::OK, Json(ack)).into_response())
}

/// Where Ronglian posts a voice code's call result (the `respUrl` smsq gives each call, when
/// `code.voice_callback_base` is set): answered is `delivered`, not answered or failed is
/// `undelivered`, matched to the job by `callSid` and number. Answered with the
/// `<Response><statuscode>000000</statuscode></Response>` the platform expects. The same
/// secret path segment guards it.
#[utoipa::path(
    post, path = "/v1/provider/{account}/voice/{token}", tag = "callbacks",
    params(
        ("account" = String, Path, description = "A Ronglian account's name"),
        ("token" = String, Path, description = "SMSQ_REPORTS_TOKEN"),
    ),
    request_body(content = String, description = "The platform's call result (XML, sent as text/plain)", content_type = "text/plain"),
    responses((status = 200, description = "Received", body = String, content_type = "application/xml")),
)]
pub(super) async fn voice(
    State(state): State<AppState>,
    Path((account, token)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    if callback_kind(&state, &account, &token)? != Kind::Ronglian {
        return Err(not_found());
    }
    let report = crate::provider::parse_call_result(&body).map_err(|e| {
        metrics::delivery_report("malformed");
        ApiError::bad_request("invalid_report", e.to_string())
    })?;
    let outcome = record(&state, &report).await?;
    metrics::delivery_report(outcome);
    let ack = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><statuscode>000000</statuscode></Response>";
    Ok((
        StatusCode::OK,
        [(axum::http::header::CONTENT_TYPE, "application/xml")],
        ack,
    )
        .into_response())
}

/// The kind of the account a callback names, if its secret path segment is right. Constant
/// time, and the same 404 for "not configured", "wrong" and "no such account".
fn callback_kind(state: &AppState, account: &str, token: &str) -> Result<Kind, ApiError> {
    let settings = state.codes.settings();
    let expected = settings.secrets.reports_token.as_ref();
    let ok = expected.is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(token.as_bytes())));
    let kind = settings.providers.account(account).map(|a| a.kind);
    kind.filter(|_| ok).ok_or_else(not_found)
}

fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// One status report matched to its job: what it did.
async fn record(state: &AppState, status: &StatusReport) -> Result<&'static str, ApiError> {
    let outcome = state
        .codes
        .store()
        .record_report(status, state.codes.settings().code.voice.fallback_limit())
        .await
        .map_err(CodeError::from)?;
    Ok(match outcome {
        ReportOutcome::Recorded {
            job_id,
            status: new,
            call,
        } => {
            if let Some(call) = call {
                tracing::info!(%job_id, call_job_id = %call, mobile = %status.mobile, "text undelivered: calling with the same code");
            }
            tracing::info!(%job_id, mobile = %status.mobile, status = %new, deliver_code = %status.deliver_code, "delivery report");
            if new == crate::domain::JobStatus::Delivered {
                "delivered"
            } else {
                "undelivered"
            }
        }
        ReportOutcome::Unchanged => "duplicate",
        ReportOutcome::Unmatched => "unmatched",
    })
}

/// Ronglian's push: one report or one reply, answered with what it did.
async fn ronglian(state: &AppState, body: &[u8]) -> Result<Response, ApiError> {
    let report = Report::parse(body).map_err(|e| {
        metrics::delivery_report("malformed");
        ApiError::bad_request("invalid_report", e.to_string())
    })?;
    let outcome = match &report {
        Report::Inbound { from, text } => {
            state
                .codes
                .store()
                .record_inbound(from, text)
                .await
                .map_err(CodeError::from)?;
            tracing::info!(mobile = %from, "reply from a user recorded");
            "inbound"
        }
        Report::Status(status) => record(state, status).await?,
    };
    metrics::delivery_report(outcome);
    // The platform only needs a 200; the body helps someone testing by hand.
    Ok((StatusCode::OK, Json(ReportReceived { received: outcome })).into_response())
}
