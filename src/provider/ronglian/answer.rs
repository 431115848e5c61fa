//! Reading the provider's answer: `000000` with a message id, or its error code.

use serde::Deserialize;

use crate::provider::{Accepted, Kind, SendError};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    status_code: String,
    #[serde(default)]
    status_msg: Option<String>,
    #[serde(rename = "templateSMS")]
    template_sms: Option<AnswerSms>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AnswerSms {
    sms_message_sid: String,
    #[serde(default)]
    date_created: String,
}

/// Reads a 200 answer body.
pub(crate) fn parse_answer(body: &str) -> Result<Accepted, SendError> {
    let answer: Answer =
        serde_json::from_str(body).map_err(|e| SendError::Malformed(e.to_string()))?;
    let sms = answer
        .template_sms
        .map(|s| (s.sms_message_sid, s.date_created));
    accepted(
        answer.status_code,
        answer.status_msg,
        sms,
        "templateSMS.smsMessageSid",
    )
}

/// What every answer says: `000000` and the id of what was accepted (`what` names where it
/// should have been), or the platform's refusal.
fn accepted(
    status_code: String,
    status_msg: Option<String>,
    id: Option<(String, String)>,
    what: &str,
) -> Result<Accepted, SendError> {
    if status_code != "000000" {
        return Err(SendError::Rejected {
            kind: Kind::Ronglian,
            code: status_code,
            message: status_msg.unwrap_or_default(),
        });
    }
    match id {
        Some((message_id, date_created)) if !message_id.is_empty() => Ok(Accepted {
            message_id,
            date_created,
        }),
        _ => Err(SendError::Malformed(format!("000000 without {what}"))),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VoiceAnswer {
    status_code: String,
    #[serde(default)]
    status_msg: Option<String>,
    #[serde(rename = "VoiceVerify")]
    voice_verify: Option<VoiceAccepted>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VoiceAccepted {
    call_sid: String,
    #[serde(default)]
    date_created: String,
}

/// Reads a `VoiceVerify` answer: `000000` with the `callSid` the call's result will name.
pub(crate) fn parse_voice_answer(body: &str) -> Result<Accepted, SendError> {
    let answer: VoiceAnswer =
        serde_json::from_str(body).map_err(|e| SendError::Malformed(e.to_string()))?;
    let call = answer.voice_verify.map(|v| (v.call_sid, v.date_created));
    accepted(
        answer.status_code,
        answer.status_msg,
        call,
        "VoiceVerify.callSid",
    )
}
