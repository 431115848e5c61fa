//! `/healthz` and `/livez` (the process answers), `/readyz` (Redis answers too) and `/metrics`
//! (Prometheus text; the queue gauges come from a snapshot at most a second old).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{ApiError, AppState};
use crate::domain::Secret;
use crate::snapshot::SnapshotCache;
use crate::store::Store;
use std::sync::atomic::{AtomicBool, Ordering};

#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ready"}))]
pub(super) struct Probe {
    /// `ok` (alive) or `ready`.
    status: &'static str,
}

/// The process answers (also `GET /livez`).
#[utoipa::path(get, path = "/healthz", tag = "probes", responses((status = 200, description = "Alive", body = Probe)))]
pub(super) async fn healthz() -> Response {
    Json(Probe { status: "ok" }).into_response()
}

/// The process answers (the name Kubernetes uses).
#[utoipa::path(get, path = "/livez", tag = "probes", responses((status = 200, description = "Alive", body = Probe)))]
pub(super) async fn livez() -> Response {
    healthz().await
}

/// The process answers and Redis does.
#[utoipa::path(get, path = "/readyz", tag = "probes", responses((status = 200, description = "Ready", body = Probe)))]
pub(super) async fn readyz(State(state): State<AppState>) -> Response {
    redis_answers(&state.records).await
}

/// Ready as far as Redis goes: it answers a ping.
async fn redis_answers(store: &Store) -> Response {
    match store.ping().await {
        Ok(()) => Json(Probe { status: "ready" }).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "not ready: redis unreachable");
            ApiError::unavailable().into_response()
        }
    }
}

/// A side listener's `/readyz`: its process says it is ready (a worker: joined and not
/// stopping) and Redis answers.
pub(super) async fn ready(store: &Store, ready: &AtomicBool) -> Response {
    if !ready.load(Ordering::Relaxed) {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "starting (not yet in its consumer groups) or stopping",
        )
        .into_response();
    }
    redis_answers(store).await
}

/// Prometheus text: the process's counters and the queue's gauges (a snapshot at most a
/// second old). Behind `SMSQ_METRICS_TOKEN` when it is set.
#[utoipa::path(
    get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")),
    security((), ("metrics_token" = [])),
)]
pub(super) async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let token = state.codes.settings().secrets.metrics_token.as_ref();
    metrics_page(&state.scrapes, token, &headers).await
}

/// The Prometheus text, behind `token` when one is set (a bearer token, constant time).
pub(super) async fn metrics_page(
    cache: &SnapshotCache,
    token: Option<&Secret>,
    headers: &HeaderMap,
) -> Response {
    if let Some(token) = token {
        let given = super::session::bearer(headers).unwrap_or("");
        if !super::session::one_of(std::slice::from_ref(token), given) {
            return ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "/metrics needs Authorization: Bearer <SMSQ_METRICS_TOKEN>",
            )
            .into_response();
        }
    }
    let snapshot = cache.get().await;
    let body = crate::metrics::render(snapshot.as_ref());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
