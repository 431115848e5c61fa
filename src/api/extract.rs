//! Request extractors: every malformed request becomes a precise [`ApiError`] before a handler
//! sees it.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::ApiError;
use crate::codes::IdempotencyRequest;

/// The `Idempotency-Key` header, if any, with the body it must be replayed for.
/// The `Idempotency-Key` header, as the OpenAPI document describes it.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(super) struct IdempotencyHeader {
    /// Replays the first answer for 24 h; the same key with another body is a 422.
    #[param(
        rename = "Idempotency-Key",
        min_length = 1,
        max_length = 255,
        pattern = "^[\\t\\x20-\\x7e]{1,255}$"
    )]
    idempotency_key: Option<String>,
}

pub(super) fn idempotency(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Option<IdempotencyRequest>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| (1..=255).contains(&k.len()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                "Idempotency-Key must be 1-255 visible ASCII characters",
            )
        })?;
    Ok(Some(IdempotencyRequest {
        key: key.to_owned(),
        body: body.to_vec(),
    }))
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
