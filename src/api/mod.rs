//! `smsq api`: the HTTP API a web app's backend calls (server to server). See docs/contract.md.

mod admin;
mod codes;
mod dashboard;
mod error;
mod extract;
mod health;
mod jobs;
mod messages;
mod openapi;
mod reports;
mod request_id;
mod session;

use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::ApiError;

use crate::codes::Codes;
use crate::domain::Secret;
use crate::snapshot::SnapshotCache;
use crate::store::{Records, Store};

/// What every handler shares, behind one `Arc`. axum clones the state for each request (for
/// the token check and again for the handler); cloning the parts themselves (the stores'
/// connections, the keys, the secrets) took about 8 % of the API's CPU per code in a profile
/// of the enqueue bench.
#[derive(Clone)]
pub(crate) struct AppState(std::sync::Arc<Shared>);

impl std::ops::Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

pub(crate) struct Shared {
    pub codes: Codes,
    pub records: Records,
    /// The snapshot `/metrics` renders, at most one a second.
    pub scrapes: std::sync::Arc<SnapshotCache>,
    /// An operator paused sending (read once a second, only with `api.while_paused =
    /// "refuse"`: the hot path never asks Redis).
    pub halted: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// The router, ready to serve. Separate from [`serve`] so tests can drive it in-process.
pub fn router(codes: Codes, records: Records) -> Router {
    let settings = codes.settings();
    let max_body = settings.api.max_body_bytes;
    // A request that needs Redis gets an answer within this, even while Redis is down.
    let deadline = settings.redis.timeout * 2 + Duration::from_millis(500);
    let scrapes = std::sync::Arc::new(SnapshotCache::new(records.clone(), codes.shared_settings()));
    let on_main = settings.api.metrics_listen.is_none();
    let halted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if settings.api.refuse_while_paused {
        tokio::spawn(watch_halt(
            records.clone(),
            std::sync::Arc::downgrade(&halted),
        ));
    }
    let state = AppState(std::sync::Arc::new(Shared {
        codes,
        records,
        scrapes,
        halted,
    }));

    let auth = middleware::from_fn_with_state(state.clone(), authenticate);
    let mut routes = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .merge(app_routes().route_layer(auth))
        .merge(operator_routes());
    if on_main {
        routes = routes.routes(routes!(health::metrics));
    }
    let (documented, doc) = routes.split_for_parts();
    // Rendered once: the document cannot change while the process runs.
    let doc: std::sync::Arc<str> = openapi::complete(doc)
        .to_pretty_json()
        .unwrap_or_default()
        .into();
    // The dashboard is a page for people, not part of the API the document describes.
    let dashboard = Router::new()
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .route("/dashboard/login", post(dashboard::login))
        .route("/dashboard/logout", post(dashboard::logout));
    let router = documented
        .merge(dashboard)
        .route("/openapi.json", get(move || openapi::serve(doc.clone())))
        .route_layer(middleware::from_fn(request_id::record_route));
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(deadline, within_deadline))
        .layer(middleware::from_fn(error::json_errors))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(middleware::from_fn(request_id::request_id))
        .with_state(state)
}

/// The app's routes, behind its bearer token.
fn app_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(codes::issue))
        .routes(routes!(codes::verify))
        .routes(routes!(codes::captcha))
        .routes(routes!(messages::enqueue))
        .routes(routes!(jobs::show))
}

/// The routes outside the app's bearer token: the platform's callback (its secret path is
/// its guard), the admin JSON (an admin token or a dashboard session, through its own
/// extractor) and the probes.
fn operator_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(reports::receive))
        .routes(routes!(reports::voice))
        .routes(routes!(admin::session))
        .routes(routes!(admin::status))
        .routes(routes!(admin::jobs))
        .routes(routes!(admin::job))
        .routes(routes!(admin::dead))
        .routes(routes!(admin::replay))
        .routes(routes!(admin::purge))
        .routes(routes!(admin::pause))
        .routes(routes!(admin::resume))
        .routes(routes!(admin::provider))
        .routes(routes!(health::healthz))
        .routes(routes!(health::livez))
        .routes(routes!(health::readyz))
}

/// The OpenAPI document `GET /openapi.json` serves (checked in as `docs/openapi.json`).
/// `/metrics` is in it although `api.metrics_listen` may move it to a listener of its own.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let doc = OpenApiRouter::<AppState>::with_openapi(openapi::ApiDoc::openapi())
        .merge(app_routes())
        .merge(operator_routes())
        .routes(routes!(health::metrics))
        .into_openapi();
    openapi::complete(doc)
}

/// Serves until `shutdown` is cancelled, then lets in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    codes: Codes,
    records: Records,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    if codes.settings().secrets.admin_tokens.is_empty() {
        tracing::info!("SMSQ_ADMIN_TOKENS is not set: the admin API and the dashboard are off");
    }
    if codes.settings().secrets.api_tokens.is_empty() {
        tracing::warn!("SMSQ_API_TOKENS is not set: the API accepts requests without a token");
    }
    let settings = codes.shared_settings();
    if settings.secrets.metrics_token.is_none() {
        tracing::info!("SMSQ_METRICS_TOKEN is not set: /metrics needs no token");
    }
    tracing::info!(addr = %listener.local_addr()?, "api listening");
    let app = router(codes, records.clone());
    let metrics = match settings.api.metrics_listen {
        Some(addr) => {
            let listener = TcpListener::bind(addr).await?;
            tracing::info!(%addr, "serving /metrics (api.metrics_listen)");
            let cache = std::sync::Arc::new(SnapshotCache::new(records.clone(), settings.clone()));
            let always = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
            let token = settings.secrets.metrics_token.clone();
            let page = side_listener(cache, token, Store::clone(&records), always);
            let stop = shutdown.clone();
            Some(tokio::spawn(async move {
                axum::serve(listener, page)
                    .with_graceful_shutdown(stop.cancelled_owned())
                    .await
            }))
        }
        None => None,
    };
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await;
    if let Some(task) = metrics {
        let _ = task.await;
    }
    served
}

/// A listener of its own for operators' probes (the API's `api.metrics_listen`, a worker's
/// `worker.metrics_listen`): `/metrics` (the same rendering, cache and token as on the API),
/// `/livez` (the process answers) and `/readyz` (`ready` is set and Redis answers).
pub fn side_listener(
    cache: std::sync::Arc<SnapshotCache>,
    token: Option<Secret>,
    store: crate::store::Store,
    ready: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move |headers: axum::http::HeaderMap| {
                let (cache, token) = (cache.clone(), token.clone());
                async move { health::metrics_page(&cache, token.as_ref(), &headers).await }
            }),
        )
        .route("/livez", get(health::healthz))
        .route(
            "/readyz",
            get(move || {
                let (store, ready) = (store.clone(), ready.clone());
                async move { health::ready(&store, &ready).await }
            }),
        )
        .fallback(not_found)
        .layer(middleware::from_fn(error::json_errors))
}

/// Keeps `halted` current, once a second, for as long as the router that holds it lives.
async fn watch_halt(records: Records, halted: std::sync::Weak<std::sync::atomic::AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let Some(flag) = halted.upgrade() else {
            return;
        };
        match records.halted().await {
            Ok(h) => flag.store(h.is_some(), std::sync::atomic::Ordering::Relaxed),
            Err(e) => tracing::debug!(error = %e, "cannot read the operator's pause"),
        }
    }
}

/// `api.while_paused = "refuse"` and an operator paused sending: no new codes or messages.
pub(super) fn refuse_if_paused(state: &AppState) -> Result<(), ApiError> {
    if state.halted.load(std::sync::atomic::Ordering::Relaxed) {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "paused",
            "sending is paused by an operator; try again later",
        ));
    }
    Ok(())
}

async fn authenticate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    // No tokens configured: the API is open (`serve` warned at start).
    let open = state.codes.settings().secrets.api_tokens.is_empty();
    let ok =
        open || session::bearer(req.headers()).is_some_and(|t| session::valid_token(&state, t));
    if ok {
        next.run(req).await
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        )
        .into_response()
    }
}

async fn within_deadline(State(deadline): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(deadline, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(?deadline, "request timed out waiting for redis");
            ApiError::unavailable().into_response()
        }
    }
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not accept that method",
    )
}
