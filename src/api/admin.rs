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
use crate::store::JobRecord;
use crate::store::records::DeadLetterView;
use crate::store::records::Halt;
use crate::store::records::{ReplayOutcome, Replayed};

type Answer<T> = Result<Json<T>, ApiError>;

fn store_error(e: crate::store::StoreError) -> ApiError {
    CodeError::from(e).into()
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"csrf": "9f8e7d6c5b4a39281706f5e4d3c2b1a0"}))]
pub(super) struct SessionAnswer {
    /// The session's CSRF token (send it as `X-CSRF-Token`); `null` for a bearer token.
    csrf: Option<String>,
}

/// The CSRF token of the caller's dashboard session.
#[utoipa::path(
    get, path = "/v1/admin/session", tag = "admin",
    responses((status = 200, description = "The session's CSRF token", body = SessionAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn session(admin: Admin) -> Answer<SessionAnswer> {
    let csrf = match admin {
        Admin::Session { csrf } => Some(csrf),
        Admin::Bearer => None,
    };
    Ok(Json(SessionAnswer { csrf }))
}

/// One minute of outcomes, for the chart.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct Minute {
    minute_ms: i64,
    sent: u64,
    delivered: u64,
    undelivered: u64,
    failed: u64,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct StatusAnswer {
    snapshot: Snapshot,
    /// The last hour, oldest minute first.
    series: Vec<Minute>,
}

/// The queue now (the snapshot `smsq status` shows) and the last hour's outcomes.
#[utoipa::path(
    get, path = "/v1/admin/status", tag = "admin",
    responses((status = 200, description = "The snapshot and the last hour", body = StatusAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
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
    let settings = state.codes.settings();
    let snapshot = Snapshot::from_state(raw, settings)
        .with_operators(&state.records, settings)
        .await
        .map_err(store_error)?;
    Ok(Json(StatusAnswer { snapshot, series }))
}

/// A job and its history.
#[utoipa::path(
    get, path = "/v1/admin/jobs/{id}", tag = "admin",
    params(("id" = String, Path, description = "The job id")),
    responses((status = 200, description = "The job and its history, oldest first", body = JobFound)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
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

#[derive(Deserialize, utoipa::IntoParams)]
pub(super) struct ByMobile {
    /// The number, in any form `POST /v1/codes` takes.
    mobile: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"mobile": "138****8000", "jobs": [{"id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "kind": "code",
    "mobile": "138****8000", "status": "sent", "attempts": 1, "provider_status": "000000",
    "provider_message_id": "ff8080813c373cab013c94b0f0512345", "last_error": null,
    "created_at": "2026-12-01T12:00:00.000Z", "updated_at": "2026-12-01T12:00:00.210Z"}]}))]
pub(super) struct JobsAnswer {
    /// The number, masked.
    mobile: String,
    /// Its newest 50 jobs, newest first.
    jobs: Vec<JobRecord>,
}

/// The newest jobs to a number; the number is only in the query, never in the answer.
#[utoipa::path(
    get, path = "/v1/admin/jobs", tag = "admin", params(ByMobile),
    responses((status = 200, description = "The number's newest jobs", body = JobsAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn jobs(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<ByMobile>,
) -> Answer<JobsAnswer> {
    let mobile = Mobile::parse(&q.mobile)
        .map_err(|e| ApiError::bad_request("invalid_mobile", e.to_string()))?;
    let jobs = state
        .records
        .jobs_of(&mobile, 50)
        .await
        .map_err(store_error)?;
    Ok(Json(JobsAnswer {
        mobile: mobile.masked(),
        jobs,
    }))
}

/// A page of dead letters.
const DEAD_PAGE: usize = 100;

#[derive(Deserialize, utoipa::IntoParams)]
pub(super) struct DeadPage {
    /// The `next` of the page before: letters after that entry id.
    after: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"total": 1, "next": null, "dead_letters": [{"id": "1764590400123-0",
    "job_id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "kind": "code", "mobile": "138****8000",
    "error": "172001 network error (retried 5 times)", "attempts": 5, "dead_at_ms": 1764590400123_i64}]}))]
pub(super) struct DeadAnswer {
    /// Dead letters on every shard.
    total: u64,
    dead_letters: Vec<DeadLetterView>,
    /// The `after` of the next page; `null` on the last.
    next: Option<String>,
}

/// The oldest 100 dead letters after `?after=` (from the oldest without it), with `next`,
/// the cursor of the page after this one (`null` on the last page).
#[utoipa::path(
    get, path = "/v1/admin/dead", tag = "admin", params(DeadPage),
    responses((status = 200, description = "A page of dead letters", body = DeadAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn dead(
    _: Admin,
    State(state): State<AppState>,
    Query(q): Query<DeadPage>,
) -> Answer<DeadAnswer> {
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
    Ok(Json(DeadAnswer {
        total,
        dead_letters: letters,
        next,
    }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ids": ["1764590400123-0", "00a1b2c3d4e5f60718293a4b5c6d7e8f"]}))]
pub(super) struct ReplayBody {
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    all: bool,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"replayed": 1, "refused": 0, "not_found": 0,
    "results": [{"name": "job 00a1b2c3d4e5f60718293a4b5c6d7e8f", "outcome": "replayed"}]}))]
pub(super) struct ReplayAnswer {
    replayed: usize,
    /// Stale codes and entries that are not jobs: never sent.
    refused: usize,
    not_found: usize,
    /// What each letter came to.
    results: Vec<Replayed>,
}

/// Send dead letters again (named ones, or all), each with a fresh attempt budget; a code
/// that expired or was replaced is refused, never sent stale.
#[utoipa::path(
    post, path = "/v1/admin/dead/replay", tag = "admin", request_body = ReplayBody,
    params(("X-CSRF-Token" = Option<String>, Header, description = "Needed with a dashboard session")),
    responses((status = 200, description = "What each came to", body = ReplayAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn replay(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody { value: body, .. }: JsonBody<ReplayBody>,
) -> Answer<ReplayAnswer> {
    admin.check_csrf(&headers)?;
    let results = state
        .records
        .replay_dead(&body.ids, body.all)
        .await
        .map_err(store_error)?;
    let count = |f: fn(&ReplayOutcome) -> bool| results.iter().filter(|r| f(&r.outcome)).count();
    Ok(Json(ReplayAnswer {
        replayed: count(|o| *o == ReplayOutcome::Replayed),
        refused: count(ReplayOutcome::refused),
        not_found: count(|o| *o == ReplayOutcome::NotFound),
        results,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"purged": 3}))]
pub(super) struct PurgeAnswer {
    purged: u64,
}

/// Delete every dead letter there is now (letters added meanwhile stay).
#[utoipa::path(
    post, path = "/v1/admin/dead/purge", tag = "admin",
    params(("X-CSRF-Token" = Option<String>, Header, description = "Needed with a dashboard session")),
    responses((status = 200, description = "How many went", body = PurgeAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn purge(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Answer<PurgeAnswer> {
    admin.check_csrf(&headers)?;
    let purged = state
        .records
        .purge_dead_letters()
        .await
        .map_err(store_error)?;
    Ok(Json(PurgeAnswer { purged }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "provider incident", "for_secs": 1800}))]
pub(super) struct PauseBody {
    /// Why, for the trail.
    #[serde(default)]
    reason: Option<String>,
    /// For how long; without it, until resumed.
    #[serde(default)]
    for_secs: Option<u64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct PauseAnswer {
    halt: Halt,
}

/// Who did it, for the trail.
fn operator(admin: &Admin) -> &'static str {
    match admin {
        Admin::Session { .. } => "dashboard session",
        Admin::Bearer => "admin token",
    }
}

/// The kill switch: no worker sends until resumed (or until `for_secs` has passed); jobs
/// wait and no attempt is used.
#[utoipa::path(
    post, path = "/v1/admin/pause", tag = "admin", request_body = PauseBody,
    params(("X-CSRF-Token" = Option<String>, Header, description = "Needed with a dashboard session")),
    responses((status = 200, description = "Paused", body = PauseAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn pause(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
    JsonBody { value: body, .. }: JsonBody<PauseBody>,
) -> Answer<PauseAnswer> {
    admin.check_csrf(&headers)?;
    let reason = body
        .reason
        .unwrap_or_else(|| "paused by an operator".to_owned());
    if reason.chars().count() > 200 {
        return Err(ApiError::bad_request(
            "invalid_request",
            "reason: at most 200 characters",
        ));
    }
    let now = crate::domain::now_ms();
    let until = match body.for_secs {
        Some(0) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "for_secs must be at least 1",
            ));
        }
        Some(s) if s > 30 * 86_400 => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "for_secs: at most 30 days",
            ));
        }
        Some(s) => Some(now + s as i64 * 1000),
        None => None,
    };
    let records = &state.records;
    records
        .pause_sending(operator(&admin), &reason, now, until)
        .await
        .map_err(store_error)?;
    let halt = records
        .halted()
        .await
        .map_err(store_error)?
        .unwrap_or(Halt {
            by: operator(&admin).to_owned(),
            reason,
            since_ms: now,
            until_ms: until,
        });
    Ok(Json(PauseAnswer { halt }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct ResumeAnswer {
    /// False if sending was not paused by an operator.
    resumed: bool,
}

/// Ends an operator's pause.
#[utoipa::path(
    post, path = "/v1/admin/resume", tag = "admin",
    params(("X-CSRF-Token" = Option<String>, Header, description = "Needed with a dashboard session")),
    responses((status = 200, description = "Resumed (or was not paused)", body = ResumeAnswer)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn resume(
    admin: Admin,
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Answer<ResumeAnswer> {
    admin.check_csrf(&headers)?;
    let now = crate::domain::now_ms();
    let resumed = state
        .records
        .resume_sending(operator(&admin), now)
        .await
        .map_err(store_error)?;
    Ok(Json(ResumeAnswer { resumed }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ProviderSwitch {
    /// `false` stops every worker sending through the account (within a second); `true`
    /// lets them again.
    enabled: bool,
}

/// Disables or enables a provider account for the whole fleet (in the audit trail).
#[utoipa::path(
    post, path = "/v1/admin/providers/{name}", tag = "admin", request_body = ProviderSwitch,
    params(
        ("name" = String, Path, description = "The account's name"),
        ("X-CSRF-Token" = Option<String>, Header, description = "Needed with a dashboard session"),
    ),
    responses((status = 200, description = "The account as it is now", body = crate::snapshot::AccountView)),
    security(("admin_token" = []), ("dashboard_session" = [])),
)]
pub(super) async fn provider(
    admin: Admin,
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    JsonBody { value: body, .. }: JsonBody<ProviderSwitch>,
) -> Answer<crate::snapshot::AccountView> {
    admin.check_csrf(&headers)?;
    let settings = state.codes.settings();
    if settings.providers.account(&name).is_none() {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no provider account {name:?}"),
        ));
    }
    let by = operator(&admin);
    let op = match body.enabled {
        true => crate::store::CircuitOp::Enable { by },
        false => crate::store::CircuitOp::Disable { by },
    };
    let now = crate::domain::now_ms();
    let policy = crate::snapshot::policy(&settings.providers);
    state
        .records
        .circuit(&name, op, &policy, now)
        .await
        .map_err(store_error)?;
    let views = crate::snapshot::accounts(&state.records, settings, now)
        .await
        .map_err(store_error)?;
    let view = views
        .into_iter()
        .find(|v| v.name == name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such account"))?;
    Ok(Json(view))
}
