//! `x-request-id`: the caller's (when usable) or a new one, on every log line of the request,
//! on the answer, and on the jobs it makes, so an app's logs and smsq's join on one id.

use axum::extract::{MatchedPath, Request};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use crate::domain::RequestId;

pub(super) const HEADER: &str = "x-request-id";

pub(super) async fn request_id(mut req: Request, next: Next) -> Response {
    let given = req.headers().get(HEADER).and_then(|v| v.to_str().ok());
    // One that would not be safe in a log line or a header is replaced, not refused: the
    // request id is the caller's convenience, never a reason to fail their request.
    let id = given
        .and_then(RequestId::parse)
        .unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(id.clone());
    // The route, filled in once it is matched (`record_route`): its template, never the raw
    // path, whose segments may be secret (the report callback's token) or personal.
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        route = tracing::field::Empty,
    );
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// Names the matched route (`/v1/jobs/{id}`) on the request's span. A route layer: it runs
/// only for a route that matched, inside [`request_id`]'s span.
pub(super) async fn record_route(req: Request, next: Next) -> Response {
    if let Some(route) = req.extensions().get::<MatchedPath>() {
        tracing::Span::current().record("route", tracing::field::display(route.as_str()));
    }
    next.run(req).await
}
