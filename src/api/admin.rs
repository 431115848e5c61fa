//! `/v1/admin/…`: the JSON the dashboard reads, also usable with a bearer token. Mobiles are
//! masked and codes are never in a record, so nothing here can leak either.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::extract::JsonBody;
use super::session::Admin;
use super::{ApiError, AppState};
use crate::codes::CodeError;
use crate::domain::{JobId, Mobile};
use crate::ops::Snapshot;
use crate::ops::dlq::DeadLetterView;
use crate::store::{JobRecord, StatusEvent};

type Answer<T> = Result<Json<T>, ApiError>;

fn store_error(e: crate::store::StoreError) -> ApiError {
    CodeError::from(e).into()
}

/// The CSRF token of the caller's dashboard session.
pub(super) async fn session(admin: Admin) -> Answer<serde_json::Value> {
    match admin {
        Admin::Session { csrf } => Ok(Json(serde_json::json!({"csrf": csrf}))),
        Admin::Bearer => Ok(Json(serde_json::json!({"csrf": null}))),
    }
}

/// One minute of outcomes, for the chart.
#[derive(Serialize)]
pub(super) struct Minute {
    minute_ms: i64,
    sent: u64,
    delivered: u64,
    undelivered: u64,
    failed: u64,
}

#[derive(Serialize)]
pub(super) struct StatusAnswer {
    snapshot: Snapshot,
    /// The last hour, oldest minute first.
    series: Vec<Minute>,
}

pub(super) async fn status(_: Admin, State(state): State<AppState>) -> Answer<StatusAnswer> {
    let raw = state.store.inspect(60).await.map_err(store_error)?;
    let minute_now = raw.now_ms / 60_000;
    let series = raw
        .minutes
        .iter()
        .enumerate()
        .rev()
        .map(|(ago, m)| {
            let n = |k: &str| m.get(k).copied().unwrap_or(0);
            let failed = n("failed") + n("dead") + n("expired");
            Minute {
                minute_ms: (minute_now - ago as i64) * 60_000,
                sent: n("sent"),
                delivered: n("delivered"),
                undelivered: n("undelivered"),
                failed,
            }
        })
        .collect();
    let snapshot = Snapshot::from_state(raw, state.codes.settings());
    Ok(Json(StatusAnswer { snapshot, series }))
}

#[derive(Serialize)]
pub(super) struct JobAnswer {
    job: JobRecord,
    history: Vec<StatusEvent>,
}

pub(super) async fn job(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<JobAnswer> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such job");
    let id = JobId::parse(&id).ok_or_else(not_found)?;
    let job = state
        .store
        .job(&id)
        .await
        .map_err(store_error)?
        .ok_or_else(not_found)?;
    let history = state.store.events_of(&id).await.map_err(store_error)?;
    Ok(Json(JobAnswer { job, history }))
}

#[derive(Deserialize)]
pub(super) struct ByMobile {
    mobile: String,
}

/// The newest jobs to a number; the number is only in the query, never in the answer.
pub(super) async fn jobs(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<ByMobile>,
) -> Answer<serde_json::Value> {
    let mobile = Mobile::parse(&q.mobile)
        .map_err(|e| ApiError::bad_request("invalid_mobile", e.to_string()))?;
    let jobs = state
        .store
        .jobs_of(&mobile, 50)
        .await
        .map_err(store_error)?;
    Ok(Json(
        serde_json::json!({"mobile": mobile.masked(), "jobs": jobs}),
    ))
}

/// A page of dead letters.
const DEAD_PAGE: usize = 100;

#[derive(Deserialize)]
pub(super) struct DeadPage {
    /// The `next` of the page before: letters after that entry id.
    after: Option<String>,
}

/// The oldest 100 dead letters after `?after=` (from the oldest without it), with `next`,
/// the cursor of the page after this one (`null` on the last page).
pub(super) async fn dead(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<DeadPage>,
) -> Answer<serde_json::Value> {
    let after = q.after.as_deref();
    if after.is_some_and(|a| state.store.dead_letter_name(a).is_none()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "after must be a dead-letter id (<ms>-<seq>, or <ms>-<seq>@<shard>)",
        ));
    }
    let total = state.store.dead_letter_count().await.map_err(store_error)?;
    let page = state
        .store
        .dead_letters_since(after, DEAD_PAGE)
        .await
        .map_err(store_error)?;
    let next = (page.len() == DEAD_PAGE)
        .then(|| page.last().map(|d| d.id.clone()))
        .flatten();
    let letters: Vec<DeadLetterView> = page.iter().map(DeadLetterView::from).collect();
    Ok(Json(
        serde_json::json!({"total": total, "dead_letters": letters, "next": next}),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayBody {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

pub(super) async fn replay(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody { value: body, .. }: JsonBody<ReplayBody>,
) -> Answer<serde_json::Value> {
    admin.check_csrf(&headers)?;
    let done = crate::ops::dlq::replay(&state.store, &body.ids, body.all)
        .await
        .map_err(store_error)?;
    Ok(Json(serde_json::json!({
        "replayed": done.replayed, "refused": done.refused, "not_found": done.not_found,
        "report": done.report,
    })))
}

pub(super) async fn purge(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Answer<serde_json::Value> {
    admin.check_csrf(&headers)?;
    let purged = state
        .store
        .purge_dead_letters()
        .await
        .map_err(store_error)?;
    Ok(Json(serde_json::json!({"purged": purged})))
}
