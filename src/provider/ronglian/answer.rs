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
    if answer.status_code != "000000" {
        return Err(SendError::Rejected {
            kind: Kind::Ronglian,
            code: answer.status_code,
            message: answer.status_msg.unwrap_or_default(),
        });
    }
    match answer.template_sms {
        Some(sms) if !sms.sms_message_sid.is_empty() => Ok(Accepted {
            message_id: sms.sms_message_sid,
            date_created: sms.date_created,
        }),
        _ => Err(SendError::Malformed(
            "000000 without templateSMS.smsMessageSid".to_owned(),
        )),
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
    if answer.status_code != "000000" {
        return Err(SendError::Rejected {
            kind: Kind::Ronglian,
            code: answer.status_code,
            message: answer.status_msg.unwrap_or_default(),
        });
    }
    match answer.voice_verify {
        Some(v) if !v.call_sid.is_empty() => Ok(Accepted {
            message_id: v.call_sid,
            date_created: v.date_created,
        }),
        _ => Err(SendError::Malformed(
            "000000 without VoiceVerify.callSid".to_owned(),
        )),
    }
}
