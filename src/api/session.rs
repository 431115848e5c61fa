//! Who may use what. The web app's backend holds an API token (`SMSQ_API_TOKENS`) for
//! `/v1/codes`, `/v1/messages` and `/v1/jobs/{id}`. Operators hold an admin token
//! (`SMSQ_ADMIN_TOKENS`) for `/v1/admin/…` and the dashboard. They present it as a bearer
//! token (scripts), or type it into the dashboard's login form, which sets a session cookie.
//! One kind of token never opens the other's routes, and with no admin token set the admin
//! side is off.
//!
//! The cookie is HttpOnly, SameSite=Strict, Secure when the API is reached over TLS, and
//! signed with `SMSQ_SECRET`. It carries a fingerprint of the admin token it was opened with,
//! so removing that token from the configuration ends its sessions. A logout is remembered in
//! Redis until the cookie would have expired. A cookie session's actions must also carry its
//! CSRF token in `X-CSRF-Token`.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use rand::RngExt;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::domain::{Secret, hex, now_ms};

pub(super) const COOKIE: &str = "smsq_session";
/// How long a dashboard login lasts.
const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The caller of an admin endpoint, authenticated.
pub(super) enum Admin {
    Bearer,
    Session { csrf: String },
}

fn ct_eq(a: &str, b: &str) -> bool {
    bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// The `Authorization: Bearer …` token of a request, if any. The scheme is matched without
/// regard to case (RFC 9110 §11.1: `bearer`, `BEARER` and `Bearer` are the same scheme).
pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim_start().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `given` is one of `tokens` (every token checked, constant time).
pub(super) fn one_of(tokens: &[Secret], given: &str) -> bool {
    tokens
        .iter()
        .fold(false, |ok, t| ok | ct_eq(t.expose(), given))
}

/// Whether `given` is one of the app's API tokens.
pub(super) fn valid_token(state: &AppState, given: &str) -> bool {
    one_of(&state.codes.settings().secrets.api_tokens, given)
}

/// Whether `given` is one of the operators' admin tokens.
pub(super) fn valid_admin_token(state: &AppState, given: &str) -> bool {
    one_of(&state.codes.settings().secrets.admin_tokens, given)
}

fn admin_off(state: &AppState) -> bool {
    state.codes.settings().secrets.admin_tokens.is_empty()
}

/// Which admin token a session was opened with, without holding it.
fn fingerprint(state: &AppState, token: &str) -> String {
    let full = state.codes.hasher().hash("dashboard-session-token", token);
    full[..32].to_owned()
}

/// A new session for `token` (an admin token): the cookie's value and its CSRF token.
pub(super) fn new_session(state: &AppState, token: &str) -> (String, String) {
    let id = hex(&rand::rng().random::<[u8; 16]>());
    let csrf = hex(&rand::rng().random::<[u8; 16]>());
    let expires = now_ms() + LIFETIME.as_millis() as i64;
    let body = format!("{expires}.{id}.{csrf}.{}", fingerprint(state, token));
    let mac = state.codes.hasher().hash("dashboard-session", &body);
    (format!("{body}.{mac}"), csrf)
}

/// Whether the request reached us over TLS: the API itself speaks plain HTTP, so that is a
/// proxy in front that says so (`X-Forwarded-Proto: https`), or `api.behind_tls`.
pub(super) fn over_tls(state: &AppState, headers: &HeaderMap) -> bool {
    state.codes.settings().api.behind_tls
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|p| p.trim().eq_ignore_ascii_case("https"))
}

pub(super) fn set_cookie(value: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

pub(super) fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A session cookie that is well signed, unexpired and opened with an admin token the
/// configuration still holds. Whether it logged out is Redis's to say (see [`Admin`]).
struct Session {
    id: String,
    csrf: String,
    expires_ms: i64,
}

fn session(state: &AppState, headers: &HeaderMap) -> Option<Session> {
    let cookies = headers.get_all(header::COOKIE);
    let value = cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let (body, mac) = value.rsplit_once('.')?;
    if !state.codes.hasher().matches("dashboard-session", body, mac) {
        return None;
    }
    let mut parts = body.split('.');
    let (expires, id, csrf, print) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let expires_ms = expires.parse::<i64>().ok().filter(|e| *e > now_ms())?;
    let tokens = &state.codes.settings().secrets.admin_tokens;
    let still_held = tokens.iter().fold(false, |ok, t| {
        ok | ct_eq(&fingerprint(state, t.expose()), print)
    });
    still_held.then(|| Session {
        id: id.to_owned(),
        csrf: csrf.to_owned(),
        expires_ms,
    })
}

/// Forgets the request's session server-side, so its cookie opens nothing any more.
pub(super) async fn revoke(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(s) = session(state, headers) else {
        return Ok(());
    };
    let left = (s.expires_ms - now_ms()).max(1) as u64;
    state
        .records
        .revoke_session(&s.id, left)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "cannot record the logout");
            ApiError::unavailable()
        })
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if admin_off(state) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "the admin API and the dashboard are off: set SMSQ_ADMIN_TOKENS",
            ));
        }
        if bearer(&parts.headers).is_some_and(|t| valid_admin_token(state, t)) {
            return Ok(Admin::Bearer);
        }
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "log in to the dashboard, or send an admin bearer token (SMSQ_ADMIN_TOKENS)",
            )
        };
        let s = session(state, &parts.headers).ok_or_else(unauthorized)?;
        match state.records.session_revoked(&s.id).await {
            Ok(false) => Ok(Admin::Session { csrf: s.csrf }),
            Ok(true) => Err(unauthorized()),
            Err(e) => {
                // Whether it logged out cannot be told: fail closed.
                tracing::warn!(error = %e, "cannot check the session");
                Err(ApiError::unavailable())
            }
        }
    }
}

impl Admin {
    /// Actions from a browser session must prove they come from the dashboard's own page.
    pub(super) fn check_csrf(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Admin::Session { csrf } = self else {
            return Ok(());
        };
        let given = headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if ct_eq(csrf, given) {
            Ok(())
        } else {
            Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token for this session",
            ))
        }
    }
}
