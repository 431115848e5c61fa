//! `POST /v1/provider/ronglian/reports/{token}`: the platform's delivery reports and users'
//! replies. The platform cannot send our bearer token, so this route is guarded by a secret
//! path segment (`SMSQ_REPORTS_TOKEN`) instead; a wrong one looks like any unknown route.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::codes::CodeError;
use crate::metrics;
use crate::provider::Report;
use crate::store::ReportOutcome;

/// What a report did.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"received": "delivered"}))]
pub(super) struct ReportReceived {
    /// `delivered`, `undelivered`, `duplicate`, `unmatched` or `inbound`.
    received: &'static str,
}

/// Where the platform pushes delivery reports and users' replies (JSON or XML, as the
/// platform sends them). Guarded by the secret path segment (`SMSQ_REPORTS_TOKEN`): a wrong
/// one is a 404 like any unknown route.
#[utoipa::path(
    post, path = "/v1/provider/ronglian/reports/{token}", tag = "callbacks",
    params(("token" = String, Path, description = "SMSQ_REPORTS_TOKEN")),
    request_body(content = String, description = "The platform's report, JSON or XML", content_type = "application/json"),
    responses((status = 200, description = "Received: delivered, undelivered, duplicate, unmatched or inbound", body = ReportReceived)),
)]
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(token): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let expected = state.codes.settings().secrets.reports_token.as_ref();
    // Constant time, and the same answer for "not configured" and "wrong".
    let ok = expected.is_some_and(|t| bool::from(t.expose().as_bytes().ct_eq(token.as_bytes())));
    if !ok {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        ));
    }
    let report = Report::parse(&body).map_err(|e| {
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
        Report::Status(status) => {
            match state
                .codes
                .store()
                .record_report(status)
                .await
                .map_err(CodeError::from)?
            {
                ReportOutcome::Recorded {
                    job_id,
                    status: new,
                } => {
                    tracing::info!(%job_id, mobile = %status.mobile, status = %new, deliver_code = %status.deliver_code, "delivery report");
                    if new == crate::domain::JobStatus::Delivered {
                        "delivered"
                    } else {
                        "undelivered"
                    }
                }
                ReportOutcome::Unchanged => "duplicate",
                ReportOutcome::Unmatched => "unmatched",
            }
        }
    };
    metrics::delivery_report(outcome);
    // The platform only needs a 200; the body helps someone testing by hand.
    Ok((StatusCode::OK, Json(ReportReceived { received: outcome })).into_response())
}
