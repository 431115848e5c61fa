//! What the simulator answers: the documented JSON or XML bodies, and a broken connection.

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::FakeMessage;

/// Answer format: JSON when asked for, XML otherwise (as a client that forgets `Accept` sees).
#[derive(Clone, Copy)]
pub(super) enum Format {
    Json,
    Xml,
}

/// The connection breaks before a complete answer: headers may go out, the body never ends.
pub(super) fn dropped_connection() -> Response {
    let broken = futures_util::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::other(
            "fake provider dropped the connection",
        ))
    });
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from_stream(broken))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

pub(super) fn success_answer(format: Format, m: &FakeMessage) -> Response {
    if m.template_id == "VoiceVerify" {
        return match format {
            Format::Json => json_answer(serde_json::json!({
                "statusCode": "000000",
                "VoiceVerify": {"callSid": m.sms_message_sid, "dateCreated": m.date_created}
            })),
            Format::Xml => xml_answer(format!(
                "<statusCode>000000</statusCode><VoiceVerify><callSid>{}</callSid>\
                 <dateCreated>{}</dateCreated></VoiceVerify>",
                m.sms_message_sid, m.date_created
            )),
        };
    }
    match format {
        Format::Json => json_answer(serde_json::json!({
            "statusCode": "000000",
            "templateSMS": {"smsMessageSid": m.sms_message_sid, "dateCreated": m.date_created}
        })),
        Format::Xml => xml_answer(format!(
            "<statusCode>000000</statusCode><TemplateSMS><smsMessageSid>{}</smsMessageSid>\
             <dateCreated>{}</dateCreated></TemplateSMS>",
            m.sms_message_sid, m.date_created
        )),
    }
}

pub(super) fn error_answer(format: Format, code: &str, msg: &str) -> Response {
    match format {
        Format::Json => json_answer(serde_json::json!({"statusCode": code, "statusMsg": msg})),
        Format::Xml => xml_answer(format!(
            "<statusCode>{code}</statusCode><statusMsg>{msg}</statusMsg>"
        )),
    }
}

fn json_answer(v: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json;charset=utf-8")],
        v.to_string(),
    )
        .into_response()
}

fn xml_answer(inner: String) -> Response {
    (
        [(header::CONTENT_TYPE, "application/xml;charset=utf-8")],
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response>{inner}</Response>"),
    )
        .into_response()
}
