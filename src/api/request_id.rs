//! `x-request-id`: the caller's (when usable) or a new one, on every log line of the request,
//! on the answer, and on the jobs it makes, so an app's logs and smsq's join on one id.

use axum::extract::Request;
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
    let path = loggable(req.uri().path());
    let span =
        tracing::info_span!("request", request_id = %id, method = %req.method(), path = %path);
    let mut response = next.run(req).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

/// The path as log lines may carry it: the delivery-report callback's last segment is a
/// secret (`SMSQ_REPORTS_TOKEN`), so it is never written out.
fn loggable(path: &str) -> std::borrow::Cow<'_, str> {
    const REPORTS: &str = "/v1/provider/ronglian/reports/";
    match path.strip_prefix(REPORTS) {
        Some(_) => format!("{REPORTS}{{token}}").into(),
        None => path.into(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_report_token_never_reaches_a_log_line() {
        let path = "/v1/provider/ronglian/reports/reports-0123456789abcdef";
        assert_eq!(
            super::loggable(path),
            "/v1/provider/ronglian/reports/{token}"
        );
        assert_eq!(super::loggable("/v1/codes"), "/v1/codes");
    }
}
