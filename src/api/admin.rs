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
use crate::snapshot::Snapshot;
use crate::store::JobFound;
use crate::store::records::DeadLetterView;
use crate::store::records::ReplayOutcome;

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
    let raw = state.records.inspect(60).await.map_err(store_error)?;
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

pub(super) async fn job(
    _: Admin,
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Answer<JobFound> {
    let not_found = || ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such job");
    let id = JobId::parse(&id).ok_or_else(not_found)?;
    let found = state.records.job(&id).await.map_err(store_error)?;
    found.map(Json).ok_or_else(not_found)
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
        .records
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
    if after.is_some_and(|a| state.records.dead_letter_name(a).is_none()) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "after must be a dead-letter id (<ms>-<seq>, or <ms>-<seq>@<shard>)",
        ));
    }
    let total = state
        .records
        .dead_letter_count()
        .await
        .map_err(store_error)?;
    let page = state
        .records
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
    let results = state
        .records
        .replay_dead(&body.ids, body.all)
        .await
        .map_err(store_error)?;
    let count = |f: fn(&ReplayOutcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    Ok(Json(serde_json::json!({
        "replayed": count(|o| *o == ReplayOutcome::Replayed),
        "refused": count(ReplayOutcome::refused),
        "not_found": count(|o| *o == ReplayOutcome::NotFound),
        "results": results,
    })))
}

pub(super) async fn purge(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Answer<serde_json::Value> {
    admin.check_csrf(&headers)?;
    let purged = state
        .records
        .purge_dead_letters()
        .await
        .map_err(store_error)?;
    Ok(Json(serde_json::json!({"purged": purged})))
}
