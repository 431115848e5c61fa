//! Who may use `/v1/admin/…` and the dashboard: the holder of an API bearer token, either
//! presenting it (scripts) or through a session cookie the dashboard's login form sets
//! (HttpOnly, SameSite=Strict, signed with `SMSQ_SECRET`). A cookie session's actions must
//! also carry its CSRF token in `X-CSRF-Token`.

use std::time::Duration;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use rand::RngExt;
use subtle::ConstantTimeEq;

use super::{ApiError, AppState};
use crate::domain::{hex_lower, now_ms};

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

/// Whether `given` is one of the API's bearer tokens (every token checked, constant time).
pub(super) fn valid_token(state: &AppState, given: &str) -> bool {
    let tokens = &state.codes.settings().secrets.api_tokens;
    tokens
        .iter()
        .fold(false, |ok, t| ok | ct_eq(t.expose(), given))
}

/// A new session: the cookie's value and its CSRF token.
pub(super) fn new_session(state: &AppState) -> (String, String) {
    let csrf = hex_lower(&rand::rng().random::<[u8; 16]>());
    let expires = now_ms() + LIFETIME.as_millis() as i64;
    let body = format!("{expires}.{csrf}");
    let mac = state.codes.hasher().hash("dashboard-session", &body);
    (format!("{body}.{mac}"), csrf)
}

pub(super) fn set_cookie(value: &str) -> String {
    format!(
        "{COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        LIFETIME.as_secs()
    )
}

pub(super) fn clear_cookie() -> String {
    format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
}

/// The CSRF token of a valid, unexpired session cookie.
fn session(state: &AppState, headers: &HeaderMap) -> Option<String> {
    let cookies = headers.get_all(header::COOKIE);
    let value = cookies
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))?;
    let (body, mac) = value.rsplit_once('.')?;
    let (expires, csrf) = body.split_once('.')?;
    let signed = state.codes.hasher().matches("dashboard-session", body, mac);
    let fresh = expires.parse::<i64>().is_ok_and(|e| e > now_ms());
    (signed && fresh).then(|| csrf.to_owned())
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if bearer(&parts.headers).is_some_and(|t| valid_token(state, t)) {
            return Ok(Admin::Bearer);
        }
        match session(state, &parts.headers) {
            Some(csrf) => Ok(Admin::Session { csrf }),
            None => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "log in to the dashboard, or send an API bearer token",
            )),
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
