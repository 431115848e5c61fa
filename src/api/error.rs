//! API errors: always `{"error": "<code>", "message": "<text>"}` with a fitting status, and the
//! JSON body extractor that turns every malformed request into one of them.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

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
        let message = e.to_string();
        match e {
            CodeError::CaptchaRequired | CodeError::InvalidCaptcha => {
                ApiError::bad_request("invalid_captcha", message)
            }
            CodeError::ResendTooSoon { retry_after } => {
                ApiError::too_many("resend_too_soon", message, retry_after)
            }
            CodeError::HourlyLimit { retry_after } => {
                ApiError::too_many("hourly_limit", message, retry_after)
            }
            CodeError::DailyLimit { retry_after } => {
                ApiError::too_many("daily_limit", message, retry_after)
            }
            CodeError::IpLimit { retry_after } => {
                ApiError::too_many("ip_limit", message, retry_after)
            }
            CodeError::IdempotencyConflict => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_conflict",
                message,
            ),
            CodeError::QueueFull => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "queue_full", message)
            }
            CodeError::Unavailable(source) => {
                tracing::warn!(error = %source, "redis unavailable");
                ApiError::unavailable()
            }
            CodeError::Store(source) => {
                tracing::error!(error = %source, "storage error");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                )
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

/// A JSON body parsed into `T`, with a precise error for each way it can be wrong.
/// Also keeps the raw bytes, which idempotency fingerprints.
pub struct JsonBody<T> {
    pub value: T,
    pub raw: Bytes,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        let raw = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    "request body is too large",
                )
            } else {
                ApiError::bad_request("invalid_json", rejection.body_text())
            }
        })?;
        let json: serde_json::Value = serde_json::from_slice(&raw).map_err(|e| {
            ApiError::bad_request("invalid_json", format!("body is not valid JSON: {e}"))
        })?;
        if !json.is_object() {
            return Err(ApiError::bad_request(
                "invalid_json",
                "body must be a JSON object",
            ));
        }
        let value = serde_json::from_value(json)
            .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
        Ok(JsonBody { value, raw })
    }
}
