//! Send jobs: the payload carried on the stream and the statuses a job goes through.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{JobId, Mobile, Purpose, TemplateId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// A verification code: the code itself lives sealed in the code record, never in the
    /// payload.
    Code,
    /// Any template SMS (notifications): `datas` is sent as is.
    Message,
}

impl JobKind {
    /// As in the payload (`"kind"`) and the scripts.
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Code => "code",
            JobKind::Message => "message",
        }
    }
}

/// How a code reaches the user: a text, or a call that reads it out (Ronglian `VoiceVerify`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[default]
    Sms,
    Voice,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Sms => "sms",
            Channel::Voice => "voice",
        }
    }

    pub fn is_sms(&self) -> bool {
        *self == Channel::Sms
    }
}

/// The stream payload. For a code job, `datas` holds the template values after the code (the
/// validity in minutes); the worker puts the code in front just before sending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub to: Mobile,
    /// Set for code jobs: the code record to check before sending is `code:<purpose>:<to>`.
    pub purpose: Option<Purpose>,
    pub template_id: TemplateId,
    pub datas: Vec<String>,
    /// Provider calls already made for this job.
    pub attempt: u32,
    pub created_ms: i64,
    /// A code job is worthless after this instant; message jobs have none.
    pub expires_ms: Option<i64>,
    /// The `x-request-id` of the request that made it: on the job record (`rid`), in the
    /// worker's log lines for it, so the app's logs join smsq's. Not in the payload: the
    /// record keeps it, and `begin` hands it to the worker (47 bytes less per queued job). An
    /// entry an older build wrote may still carry it, and is read as it came.
    #[serde(default, skip_serializing)]
    pub request_id: Option<super::RequestId>,
    /// A test number's code (`SMSQ_TEST_NUMBERS`): the worker records it sent without
    /// calling the provider.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub test: bool,
    /// A code job's channel: `voice` calls the number and reads the code out.
    #[serde(default, skip_serializing_if = "Channel::is_sms")]
    pub channel: Channel,
    /// A fallback call (`code.fallback = "voice"`): the text job whose code it reads out. Its
    /// sealed code was sealed for that job, so it opens with that job's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_of: Option<JobId>,
    /// The account the previous attempt went through when its outcome is unknown (a timeout
    /// after the request left): this attempt goes there first, with the same request id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The account the previous attempt failed at, transiently: this attempt tries the
    /// route's others first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avoid: Option<String>,
}

impl Job {
    /// Parses a stream payload; the error says what is wrong, for the dead-letter record.
    pub fn from_json(raw: &str) -> Result<Self, String> {
        let job: Job =
            serde_json::from_str(raw).map_err(|e| format!("invalid job payload: {e}"))?;
        if job.kind == JobKind::Code && job.purpose.is_none() {
            return Err("invalid job payload: a code job needs a purpose".to_owned());
        }
        Ok(job)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Job always serializes")
    }
}

/// Where a job is in its life. See docs/contract.md "Job statuses".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Sending,
    Retrying,
    /// Put back on the stream from the dead letters by an operator.
    Replayed,
    Sent,
    Failed,
    Dead,
    Expired,
    Superseded,
    /// After `sent`: the carrier's report says it reached the handset.
    Delivered,
    /// After `sent`: the carrier's report says it did not.
    Undelivered,
}

impl JobStatus {
    pub const ALL: [JobStatus; 11] = [
        Self::Queued,
        Self::Sending,
        Self::Retrying,
        Self::Replayed,
        Self::Sent,
        Self::Failed,
        Self::Dead,
        Self::Expired,
        Self::Superseded,
        Self::Delivered,
        Self::Undelivered,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sending => "sending",
            Self::Retrying => "retrying",
            Self::Replayed => "replayed",
            Self::Sent => "sent",
            Self::Failed => "failed",
            Self::Dead => "dead",
            Self::Expired => "expired",
            Self::Superseded => "superseded",
            Self::Delivered => "delivered",
            Self::Undelivered => "undelivered",
        }
    }
}

impl JobStatus {
    /// No later status follows from the queue (a replay starts a new life from `dead`; a
    /// delivery report may still follow `sent`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Sent
                | Self::Failed
                | Self::Dead
                | Self::Expired
                | Self::Superseded
                | Self::Delivered
                | Self::Undelivered
        )
    }
}

impl std::str::FromStr for JobStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| format!("unknown job status {s:?}"))
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! string_serde {
    ($ty:ty) => {
        impl Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_serde!(Mobile);
string_serde!(Purpose);
string_serde!(TemplateId);

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Job {
        Job {
            id: JobId::generate(),
            kind: JobKind::Code,
            to: Mobile::parse("13800138000").unwrap(),
            purpose: Some(Purpose::parse("login").unwrap()),
            template_id: TemplateId::parse("1").unwrap(),
            datas: vec!["5".into()],
            attempt: 0,
            created_ms: 1,
            expires_ms: Some(2),
            request_id: None,
            test: false,
            account: None,
            avoid: None,
            channel: Channel::Sms,
            code_of: None,
        }
    }

    #[test]
    fn payload_round_trips_and_has_the_spec_fields() {
        let job = sample();
        let json = job.to_json();
        assert_eq!(Job::from_json(&json).unwrap(), job);
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        for field in [
            "id",
            "kind",
            "to",
            "purpose",
            "template_id",
            "datas",
            "attempt",
            "created_ms",
            "expires_ms",
        ] {
            assert!(v.get(field).is_some(), "{field} missing from {json}");
        }
        assert_eq!(v["to"], "13800138000");
    }

    #[test]
    fn malformed_payloads_say_why() {
        assert!(
            Job::from_json("{")
                .unwrap_err()
                .contains("invalid job payload")
        );
        let mut v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        v["to"] = "12345".into();
        assert!(
            Job::from_json(&v.to_string())
                .unwrap_err()
                .contains("mobile")
        );
        v["to"] = "13800138000".into();
        v["purpose"] = serde_json::Value::Null;
        assert!(
            Job::from_json(&v.to_string())
                .unwrap_err()
                .contains("purpose")
        );
        v["id"] = "xyz".into();
        assert!(
            Job::from_json(&v.to_string())
                .unwrap_err()
                .contains("job id")
        );
    }

    #[test]
    fn job_ids_are_32_hex() {
        let id = JobId::generate();
        assert!(JobId::parse(id.as_str()).is_some());
        assert!(JobId::parse("ABCDEF0123456789abcdef0123456789").is_none());
        assert!(JobId::parse("abc").is_none());
    }
}
