//! `/healthz` (the process answers) and `/readyz` (Redis answers too).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};

pub(super) async fn healthz() -> Response {
    Json(serde_json::json!({"status": "ok"})).into_response()
}

pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ready"})).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: redis unreachable");
            ApiError::unavailable().into_response()
        }
    }
}
