//! API errors: always `{"error": "<code>", "message": "<text>"}` with a fitting status.

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::codes::CodeError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "storage is unavailable; try again shortly",
        )
    }

    fn too_many(code: &'static str, message: String, retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::TOO_MANY_REQUESTS, code, message)
        }
    }
}

impl From<CodeError> for ApiError {
    fn from(e: CodeError) -> Self {
        let (code, message) = (e.code(), e.to_string());
        match e {
            CodeError::CaptchaRequired | CodeError::InvalidCaptcha => {
                ApiError::bad_request(code, message)
            }
            CodeError::ResendTooSoon { retry_after }
            | CodeError::HourlyLimit { retry_after }
            | CodeError::DailyLimit { retry_after }
            | CodeError::VoiceLimit { retry_after }
            | CodeError::VoiceQuietHours { retry_after }
            | CodeError::IpLimit { retry_after }
            | CodeError::NetworkLimit { retry_after }
            | CodeError::BudgetExhausted { retry_after, .. }
            | CodeError::PrefixBlocked { retry_after } => {
                ApiError::too_many(code, message, retry_after)
            }
            CodeError::GuardCaptcha { .. } => ApiError::new(StatusCode::FORBIDDEN, code, message),
            CodeError::IdempotencyConflict => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            CodeError::VoiceUnavailable(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            CodeError::QueueFull | CodeError::CaptchaUnavailable => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            }
            CodeError::Unavailable(source) => {
                tracing::warn!(error = %source, "redis unavailable");
                ApiError::unavailable()
            }
            CodeError::Store(source) => {
                tracing::error!(error = %source, "storage error");
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, code, "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({"error": self.code, "message": self.message}));
        let mut response = (self.status, body).into_response();
        if let Some(after) = self.retry_after {
            // Whole seconds, rounded up: never invite a retry that is still too early.
            let secs = after.as_millis().div_ceil(1000).max(1);
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Every error answer in the README's form, including those the framework writes itself
/// (a missing query field, a wrong content type or bad JSON for an extractor, a form
/// rejection): a failure that is not already JSON becomes `{"error","message"}` with the
/// same status, its text kept as the message.
pub(super) async fn json_errors(req: Request, next: Next) -> Response {
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let retry_after = response.headers().get(header::RETRY_AFTER).cloned();
    // Framework rejections are one short line; never echo more than a line of anything.
    let text = match axum::body::to_bytes(response.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b)
            .lines()
            .next()
            .unwrap_or("")
            .to_owned(),
        Err(_) => String::new(),
    };
    let code = match status {
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::UNAUTHORIZED => "unauthorized",
        s if s.is_server_error() => "internal",
        _ => "invalid_request",
    };
    let message = if text.trim().is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    if let Some(v) = retry_after {
        out.headers_mut().insert(header::RETRY_AFTER, v);
    }
    out
}
