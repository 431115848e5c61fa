//! `GET /v1/jobs/{id}`: a job's record (masked mobile, no code).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::{ApiError, AppState};
use crate::codes::CodeError;
use crate::domain::JobId;
use crate::store::JobRecord;

/// A job's record: its status, attempts, the provider's answer and delivery report (mobile
/// masked, never a code).
#[utoipa::path(
    get, path = "/v1/jobs/{id}", tag = "jobs",
    params(("id" = String, Path, description = "The job id (32 lower-case hex digits)")),
    responses((status = 200, description = "The job", body = JobRecord)),
    security((), ("app_token" = [])),
)]
pub(super) async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobRecord>, ApiError> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such job");
    let id = JobId::parse(&id).ok_or_else(not_found)?;
    let found = state.records.job(&id).await.map_err(CodeError::from)?;
    found.map(|f| Json(f.job)).ok_or_else(not_found)
}
