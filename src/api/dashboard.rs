//! `/dashboard`: one page (HTML, CSS and a small script, embedded in the binary; no build
//! step) over the `/v1/admin/…` JSON, and the login that gives a browser its session.

use axum::Form;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::AppState;
use super::session::{clear_cookie, new_session, over_tls, revoke, set_cookie, valid_admin_token};

const PAGE: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/app.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-store"),
            // The page loads nothing from elsewhere and runs only its own script.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

pub(super) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

pub(super) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

pub(super) async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}

#[derive(Deserialize)]
pub(super) struct Login {
    token: String,
}

fn back_to(location: &str, cookie: Option<String>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response();
    if let Some(cookie) = cookie.and_then(|c| c.parse().ok()) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The API bearer token, typed into the login form, opens a session.
pub(super) async fn login(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
    Form(form): Form<Login>,
) -> Response {
    let token = form.token.trim();
    if !valid_admin_token(&state, token) {
        if state.codes.settings().secrets.admin_tokens.is_empty() {
            tracing::warn!("dashboard login refused: SMSQ_ADMIN_TOKENS is not set");
        } else {
            tracing::warn!("dashboard login refused");
        }
        return back_to("/dashboard?login=failed", None);
    }
    let (cookie, _) = new_session(&state, token);
    back_to(
        "/dashboard",
        Some(set_cookie(&cookie, over_tls(&state, &headers))),
    )
}

/// Ends the session for good: the server remembers it, so a copy of the cookie opens
/// nothing either.
pub(super) async fn logout(
    State(state): State<AppState>,
    headers: axum::http::HeaderMap,
) -> Response {
    if let Err(e) = revoke(&state, &headers).await {
        return axum::response::IntoResponse::into_response(e);
    }
    back_to("/dashboard", Some(clear_cookie(over_tls(&state, &headers))))
}
