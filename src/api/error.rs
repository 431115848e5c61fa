//! API errors: always `{"error": "<code>", "message": "<text>"}` with a fitting status.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
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
            | CodeError::IpLimit { retry_after } => ApiError::too_many(code, message, retry_after),
            CodeError::IdempotencyConflict => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
            }
            CodeError::QueueFull => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, code, message),
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
