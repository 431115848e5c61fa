//! The OpenAPI 3.1 document, `GET /openapi.json`. Paths and schemas come from the handlers
//! (`#[utoipa::path]`, registered through `utoipa-axum`, so a route and its description are
//! one registration); the error answers come from one table, [`ERRORS`], the README's table,
//! and each operation names the codes it can answer ([`ROUTE_ERRORS`]).

use serde::Serialize;
use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, Object, OpenApi, Ref, RefOr, Required, ResponseBuilder, Type,
    example::ExampleBuilder,
};

/// Every error answer: `{"error": "<code>", "message": "<text>"}`.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(example = json!({"error": "invalid_mobile", "message": "not a mainland China mobile number"}))]
pub(super) struct ErrorBody {
    /// A stable, snake_case code: one of the README's table.
    pub error: String,
    /// For people; may change between versions.
    pub message: String,
}

/// The README's error table: code, status, when.
pub(super) const ERRORS: &[(&str, u16, &str)] = &[
    ("invalid_json", 400, "body is not a JSON object"),
    (
        "invalid_request",
        400,
        "missing field, wrong type, unknown field, or a bad value",
    ),
    ("invalid_mobile", 400, "not a mainland mobile number"),
    (
        "invalid_captcha",
        400,
        "captcha required and missing, wrong, expired or already used",
    ),
    (
        "invalid_report",
        400,
        "a delivery report that is neither the platform's JSON nor its XML",
    ),
    ("unauthorized", 401, "missing or wrong bearer token"),
    (
        "admin_disabled",
        403,
        "an admin route while SMSQ_ADMIN_TOKENS is not set",
    ),
    (
        "csrf",
        403,
        "a dashboard session's action without its X-CSRF-Token",
    ),
    (
        "captcha_required",
        403,
        "a fleet guard asks this request for a solved captcha (a budget used up, or the number's prefix tripped)",
    ),
    ("not_found", 404, "unknown route or job"),
    (
        "method_not_allowed",
        405,
        "the route does not take this method",
    ),
    ("payload_too_large", 413, "body over api.max_body_bytes"),
    (
        "unsupported_media_type",
        415,
        "body not sent as application/json",
    ),
    (
        "idempotency_conflict",
        422,
        "an Idempotency-Key reused with a different body",
    ),
    (
        "resend_too_soon",
        429,
        "a code for this mobile and purpose too soon (Retry-After)",
    ),
    ("hourly_limit", 429, "the mobile's hourly cap (Retry-After)"),
    ("daily_limit", 429, "the mobile's daily cap (Retry-After)"),
    (
        "voice_daily_limit",
        429,
        "the mobile's daily cap of voice calls (Retry-After)",
    ),
    (
        "voice_quiet_hours",
        429,
        "no voice calls at this hour, Beijing time (Retry-After: their end)",
    ),
    (
        "voice_unavailable",
        422,
        "no account on the purpose's route makes calls, or the code is longer than 8 digits",
    ),
    (
        "ip_limit",
        429,
        "the client_ip end user's hourly cap (Retry-After)",
    ),
    (
        "network_limit",
        429,
        "the client_ip network's hourly cap (Retry-After)",
    ),
    (
        "budget_exhausted",
        429,
        "the fleet's (or the purpose's) hourly or daily code budget is used up (Retry-After)",
    ),
    (
        "prefix_blocked",
        429,
        "the fleet guard holds codes to the number's 7-digit prefix (Retry-After)",
    ),
    ("internal", 500, "a bug or a Redis reply smsq cannot read"),
    (
        "captcha_unavailable",
        503,
        "the captcha vendor is down or slow and captcha.fail_open is off",
    ),
    ("not_ready", 503, "starting or stopping"),
    (
        "paused",
        503,
        "an operator paused sending and api.while_paused is \"refuse\"",
    ),
    (
        "unavailable",
        503,
        "Redis unreachable; the API recovers by itself",
    ),
    (
        "queue_full",
        503,
        "stream.maxlen unsent jobs already queued",
    ),
];

/// What any route behind the API's middleware can answer, whatever it does.
const ANY: &[&str] = &[
    "not_found",
    "method_not_allowed",
    "payload_too_large",
    "internal",
];
/// A JSON body: what its extractor refuses.
const BODY: &[&str] = &["invalid_json", "invalid_request", "unsupported_media_type"];
const ADMIN: &[&str] = &["unauthorized", "admin_disabled", "unavailable"];

/// The error codes each operation can answer, besides [`ANY`].
pub(super) const ROUTE_ERRORS: &[(&str, &str, &[&[&str]])] = &[
    (
        "post",
        "/v1/codes",
        &[
            BODY,
            &[
                "invalid_mobile",
                "invalid_captcha",
                "unauthorized",
                "idempotency_conflict",
            ],
            &[
                "resend_too_soon",
                "hourly_limit",
                "daily_limit",
                "ip_limit",
                "network_limit",
                "budget_exhausted",
                "prefix_blocked",
                "captcha_required",
            ],
            &[
                "voice_daily_limit",
                "voice_quiet_hours",
                "voice_unavailable",
            ],
            &["unavailable", "queue_full", "paused", "captcha_unavailable"],
        ],
    ),
    (
        "post",
        "/v1/codes/verify",
        &[BODY, &["invalid_mobile", "unauthorized", "unavailable"]],
    ),
    ("post", "/v1/captchas", &[&["unauthorized", "unavailable"]]),
    (
        "post",
        "/v1/messages",
        &[
            BODY,
            &["invalid_mobile", "unauthorized", "idempotency_conflict"],
            &["unavailable", "queue_full", "paused"],
        ],
    ),
    ("get", "/v1/jobs/{id}", &[&["unauthorized", "unavailable"]]),
    (
        "post",
        "/v1/provider/{account}/reports/{token}",
        &[&["invalid_report", "unavailable"]],
    ),
    (
        "post",
        "/v1/provider/{account}/voice/{token}",
        &[&["invalid_report", "unavailable"]],
    ),
    ("get", "/v1/admin/session", &[ADMIN]),
    ("get", "/v1/admin/status", &[ADMIN]),
    (
        "get",
        "/v1/admin/jobs",
        &[ADMIN, &["invalid_request", "invalid_mobile"]],
    ),
    ("get", "/v1/admin/jobs/{id}", &[ADMIN]),
    ("get", "/v1/admin/dead", &[ADMIN, &["invalid_request"]]),
    ("post", "/v1/admin/dead/replay", &[ADMIN, BODY, &["csrf"]]),
    ("post", "/v1/admin/dead/purge", &[ADMIN, &["csrf"]]),
    ("post", "/v1/admin/pause", &[ADMIN, BODY, &["csrf"]]),
    ("post", "/v1/admin/resume", &[ADMIN, &["csrf"]]),
    (
        "post",
        "/v1/admin/providers/{name}",
        &[ADMIN, BODY, &["csrf"]],
    ),
    ("get", "/healthz", &[]),
    ("get", "/livez", &[]),
    ("get", "/readyz", &[&["unavailable"]]),
    ("get", "/metrics", &[&["unauthorized"]]),
];

/// The top of the document: what it is, how to authenticate, the tags.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "smsq",
        description = "SMS verification codes for web apps, delivered through Chinese SMS \
            providers. Server to server: the end user's browser never calls smsq. Every error \
            is `{\"error\", \"message\"}` (see `ErrorBody`); every answer carries an \
            `x-request-id` (the request's own when it sent a usable one). With \
            `SMSQ_API_TOKENS` unset the `/v1` routes need no token.",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(ErrorBody)),
    tags(
        (name = "codes", description = "Issue and verify codes; captchas"),
        (name = "messages", description = "Any template SMS through the same queue"),
        (name = "jobs", description = "What happened to a code or message"),
        (name = "callbacks", description = "What the SMS platform calls"),
        (name = "admin", description = "The dashboard's JSON, also for scripts"),
        (name = "probes", description = "Liveness, readiness, Prometheus"),
    ),
)]
pub(super) struct ApiDoc;

/// `GET /openapi.json`: no token, it holds nothing secret.
pub(super) async fn serve(doc: std::sync::Arc<str>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
    (json, doc.to_string()).into_response()
}

/// Adds the security schemes, the `x-request-id` header and every operation's error
/// answers to a document whose paths are already in.
pub(super) fn complete(mut doc: OpenApi) -> OpenApi {
    let components = doc.components.get_or_insert_with(Default::default);
    let bearer = |what: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(what.to_owned()))
                .build(),
        )
    };
    components.add_security_scheme("app_token", bearer("One of SMSQ_API_TOKENS"));
    components.add_security_scheme("admin_token", bearer("One of SMSQ_ADMIN_TOKENS"));
    components.add_security_scheme("metrics_token", bearer("SMSQ_METRICS_TOKEN"));
    components.add_security_scheme(
        "dashboard_session",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            super::session::COOKIE,
            "The dashboard's session cookie (POST /dashboard/login); actions also need \
             X-CSRF-Token",
        ))),
    );
    for (method, path, groups) in ROUTE_ERRORS {
        let Some(op) = operation(&mut doc, method, path) else {
            continue;
        };
        op.parameters
            .get_or_insert_with(Vec::new)
            .push(request_id_header());
        let codes = groups.iter().flat_map(|g| g.iter()).chain(ANY);
        add_errors(op, codes.copied());
    }
    doc
}

fn operation<'d>(doc: &'d mut OpenApi, method: &str, path: &str) -> Option<&'d mut Operation> {
    let item = doc.paths.paths.get_mut(path)?;
    match method {
        "get" => item.get.as_mut(),
        "post" => item.post.as_mut(),
        _ => None,
    }
}

fn request_id_header() -> Parameter {
    ParameterBuilder::new()
        .name("x-request-id")
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Your request id (1-128 of letters, digits, -_.:/+=@); returned, logged, kept on \
             the jobs this request makes. A fresh one is made when absent or unusable.",
        ))
        .schema(Some(Object::with_type(Type::String)))
        .build()
}

/// One response per status, with an example per code of that status.
fn add_errors<'c>(op: &mut Operation, codes: impl Iterator<Item = &'c str>) {
    let mut by_status: std::collections::BTreeMap<u16, Vec<(&str, &str)>> = Default::default();
    for code in codes {
        if let Some((code, status, when)) = ERRORS.iter().find(|(c, ..)| *c == code) {
            let seen = by_status.entry(*status).or_default();
            if !seen.iter().any(|(c, _)| c == code) {
                seen.push((code, when));
            }
        }
    }
    for (status, codes) in by_status {
        let schema = RefOr::Ref(Ref::from_schema_name("ErrorBody"));
        let mut content = ContentBuilder::new().schema(Some(schema));
        for (code, when) in &codes {
            let example = ExampleBuilder::new()
                .summary(*when)
                .value(Some(serde_json::json!({"error": code, "message": when})))
                .build();
            content = content.examples_from_iter([(code.to_string(), example)]);
        }
        let description = codes
            .iter()
            .map(|(c, _)| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut response = ResponseBuilder::new()
            .description(description)
            .content("application/json", content.build());
        if status == 429 {
            let after = utoipa::openapi::HeaderBuilder::new()
                .schema(Object::with_type(Type::Integer))
                .description(Some("Seconds until the cap or window allows another"))
                .build();
            response = response.header("Retry-After", after);
        }
        let response = response.build();
        op.responses
            .responses
            .insert(status.to_string(), RefOr::T(response));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A route renamed or added without its error table would document no errors at all.
    #[test]
    fn every_operation_has_its_error_table_and_every_table_its_operation() {
        let doc = super::super::openapi();
        let mut operations = Vec::new();
        for (path, item) in &doc.paths.paths {
            if item.get.is_some() {
                operations.push(("get", path.clone()));
            }
            if item.post.is_some() {
                operations.push(("post", path.clone()));
            }
        }
        for (method, path) in &operations {
            assert!(
                ROUTE_ERRORS
                    .iter()
                    .any(|(m, p, _)| m == method && p == path),
                "{method} {path} has no entry in ROUTE_ERRORS"
            );
        }
        for (method, path, _) in ROUTE_ERRORS {
            assert!(
                operations.iter().any(|(m, p)| m == method && p == path),
                "ROUTE_ERRORS names {method} {path}, which the document does not have"
            );
        }
    }
}
