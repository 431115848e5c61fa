//! `/healthz` (the process answers), `/readyz` (Redis answers too) and `/metrics`
//! (Prometheus text; the queue gauges come from a fresh snapshot).

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::ops::Snapshot;

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

pub(super) async fn metrics(State(state): State<AppState>) -> Response {
    let snapshot = Snapshot::take(&state.store, state.codes.settings()).await;
    if let Err(e) = &snapshot {
        tracing::warn!(error = %e, "metrics without queue gauges: redis unreachable");
    }
    let body = crate::metrics::render(snapshot.as_ref().ok());
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        body,
    )
        .into_response()
}
