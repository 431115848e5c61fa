//! `POST /v1/messages`: any template SMS through the same queue (notifications).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use serde::Deserialize;

use super::extract::{JsonBody, idempotency};
use super::{ApiError, AppState};
use crate::codes::{MessageAccepted, MessageRequest};
use crate::domain::{Mobile, RequestId, TemplateId};

/// Template values: the provider allows about 70 characters per SMS segment; long
/// notifications are fine, absurd ones are refused here rather than by the provider.
const MAX_DATAS: usize = 20;
const MAX_DATA_CHARS: usize = 500;

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MessageBody {
    #[schema(
        pattern = r"^[\t\n\x0c\r ]*[ -]*(\+[ -]*8[ -]*6[ -]*|8[ -]*6[ -]*)?1[ -]*[3-9]([ -]*[0-9]){9}[ -]*[\t\n\x0c\r ]*$",
        max_length = 32,
        example = "13800138000"
    )]
    to: String,
    /// The provider's own template id (digits), or a template name each account maps to its
    /// own id (`templates` in `[providers.<name>]`), e.g. `order_shipped`.
    #[schema(
        pattern = "^([0-9]{1,32}|[a-z][a-z0-9_]{0,31})$",
        example = "order_shipped"
    )]
    template_id: String,
    /// The template's values, in order.
    #[schema(max_items = 20, example = json!(["order 42", "shipped"]))]
    #[serde(default)]
    datas: Vec<String>,
}

/// Queue any template SMS (a notification), sent like codes.
#[utoipa::path(
    post, path = "/v1/messages", tag = "messages", request_body = MessageBody,
    params(super::extract::IdempotencyHeader),
    responses((status = 202, description = "Queued", body = MessageAccepted)),
    security((), ("app_token" = [])),
)]
pub(super) async fn enqueue(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: JsonBody<MessageBody>,
) -> Result<(StatusCode, Json<MessageAccepted>), ApiError> {
    super::refuse_if_paused(&state)?;
    let JsonBody { value, raw } = body;
    let to = Mobile::parse(&value.to)
        .map_err(|e| ApiError::bad_request("invalid_mobile", e.to_string()))?;
    let template_id = TemplateId::parse(&value.template_id)
        .map_err(|e| ApiError::bad_request("invalid_request", e.to_string()))?;
    if template_id.is_name() && !mapped(&state, &template_id) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!(
                "template_id {template_id:?} is a name no account on the messages route maps \
                 (templates in [providers.<name>])"
            ),
        ));
    }
    if value.datas.len() > MAX_DATAS
        || value
            .datas
            .iter()
            .any(|d| d.chars().count() > MAX_DATA_CHARS)
    {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("datas: at most {MAX_DATAS} values of at most {MAX_DATA_CHARS} characters"),
        ));
    }
    let request = MessageRequest {
        to,
        template_id,
        datas: value.datas,
        idempotency: idempotency(&headers, &raw)?,
        request_id: Some(request_id),
    };
    let accepted = state.codes.enqueue_message(request).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}

/// Whether some account on the messages route maps this template name (else nothing could
/// send it: refused now, rather than failed later).
fn mapped(state: &AppState, name: &TemplateId) -> bool {
    let providers = &state.codes.settings().providers;
    providers
        .on_route("messages")
        .iter()
        .any(|a| a.templates.contains_key(name.as_str()))
}
