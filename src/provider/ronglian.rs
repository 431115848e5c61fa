//! Ronglian (容联云) TemplateSMS client, built exactly as `ronglian.md` describes: one UTC+8
//! timestamp per request for both the upper-case MD5 `sig` and the bare base64
//! `Authorization`, JSON in and out, `datas` as strings, `reqId` = the job id so a retry after
//! an ambiguous network error can be recognised by the provider.

use std::sync::Once;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::{API_VERSION, Verdict, classify};
use crate::config::{ProviderSettings, RonglianAccount};
use crate::domain::beijing;

/// One template SMS to one number.
#[derive(Debug, Clone)]
pub struct TemplateSms<'a> {
    /// 11-digit mainland number (already normalised by `Mobile`).
    pub to: &'a str,
    pub template_id: &'a str,
    pub datas: &'a [String],
    /// At most 32 characters, unique per account and day; kept across retries.
    pub req_id: Option<&'a str>,
}

/// The provider accepted the message (it is not yet delivered: that is the delivery report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    pub message_id: String,
    pub date_created: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// Could not connect (refused, DNS, TLS handshake): the request never left.
    Connect,
    /// No complete answer within `provider.timeout_ms`.
    Timeout,
    /// The connection broke after the request was written, or the answer was cut short.
    Broken,
}

/// Why a send did not end in `000000`. [`SendError::verdict`] says what to do about it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// A business error in a 200 answer: `statusCode` and `statusMsg`.
    #[error("provider error {code}: {message}")]
    Rejected { code: String, message: String },
    /// Any HTTP status other than 200 (the SDKs report it as the status code).
    #[error("provider answered HTTP {status}")]
    Http { status: u16 },
    /// What the SDKs call 172001. `reached` says whether the provider may have received the
    /// request, in which case a retry could send the SMS twice unless `reqId` deduplicates it.
    #[error("network error ({kind:?}, request may have reached the provider: {reached}): {detail}")]
    Transport {
        kind: TransportKind,
        reached: bool,
        detail: String,
    },
    /// A 200 answer that is not the documented JSON (SDK code 172003).
    #[error("unreadable provider answer: {0}")]
    Malformed(String),
}

impl SendError {
    /// The one place the worker learns whether to retry, back off or give up.
    pub fn verdict(&self) -> Verdict {
        use super::Action;
        match self {
            SendError::Rejected { code, .. } => classify(code),
            SendError::Http { status } if *status >= 500 || *status == 429 => Verdict {
                action: Action::Retry,
                reason: "provider HTTP error",
            },
            SendError::Http { .. } => Verdict {
                action: Action::GiveUp,
                reason: "unexpected HTTP status from provider",
            },
            SendError::Transport { .. } => Verdict {
                action: Action::Retry,
                reason: "network error (172001)",
            },
            // The answer might have been a success we could not read; reqId makes a retry safe.
            SendError::Malformed(_) => Verdict {
                action: Action::Retry,
                reason: "unreadable provider answer (172003)",
            },
        }
    }

    /// The provider's status code, or the SDK-style stand-in for client-side failures.
    pub fn status_code(&self) -> String {
        match self {
            SendError::Rejected { code, .. } => code.clone(),
            SendError::Http { status } => status.to_string(),
            SendError::Transport { .. } => "172001".to_owned(),
            SendError::Malformed(_) => "172003".to_owned(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(String);

/// A fully signed request, separate from sending it so the protocol vectors can be tested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: String,
}

/// `yyyyMMddHHmmss` in Beijing time, whatever the host's TZ.
pub fn timestamp(now: DateTime<Utc>) -> String {
    now.with_timezone(&beijing())
        .format("%Y%m%d%H%M%S")
        .to_string()
}

/// `UPPER(hex(MD5(sid + token + timestamp)))`.
pub fn signature(account_sid: &str, auth_token: &str, timestamp: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(account_sid.as_bytes());
    md5.update(auth_token.as_bytes());
    md5.update(timestamp.as_bytes());
    md5.finalize().iter().map(|b| format!("{b:02X}")).collect()
}

/// Standard base64 (with padding) of `sid:timestamp`, with no `Basic ` prefix.
pub fn authorization(account_sid: &str, timestamp: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{account_sid}:{timestamp}"))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Body<'a> {
    to: &'a str,
    app_id: &'a str,
    template_id: &'a str,
    datas: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    req_id: Option<&'a str>,
}

pub fn sign(
    base_url: &str,
    account: &RonglianAccount,
    sms: &TemplateSms<'_>,
    now: DateTime<Utc>,
) -> SignedRequest {
    let ts = timestamp(now);
    let sig = signature(&account.account_sid, account.auth_token.expose(), &ts);
    let url = format!(
        "{}/{API_VERSION}/Accounts/{}/SMS/TemplateSMS?sig={sig}",
        base_url.trim_end_matches('/'),
        account.account_sid
    );
    let body = serde_json::to_string(&Body {
        to: sms.to,
        app_id: &account.app_id,
        template_id: sms.template_id,
        datas: sms.datas,
        req_id: sms.req_id,
    })
    .expect("strings always serialize");
    SignedRequest {
        url,
        headers: vec![
            ("Accept", "application/json".to_owned()),
            ("Content-Type", "application/json;charset=utf-8".to_owned()),
            ("Accept-Charset", "UTF-8".to_owned()),
            ("Authorization", authorization(&account.account_sid, &ts)),
        ],
        body,
    }
}

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

/// The HTTP client: one per process, connections reused across sends.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base_url: String,
    account: RonglianAccount,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

static CRYPTO: Once = Once::new();

/// reqwest is built without a bundled crypto provider (ring builds far faster than aws-lc):
/// install ring once per process before building any HTTP client. Certificates are verified
/// as usual.
pub fn install_crypto() {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

impl Client {
    pub fn new(settings: &ProviderSettings, account: RonglianAccount) -> Result<Self, ClientError> {
        install_crypto();
        let http = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("smsq/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError(e.without_url().to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url.clone(),
            account,
        })
    }

    pub async fn send(&self, sms: &TemplateSms<'_>) -> Result<Accepted, SendError> {
        self.send_at(sms, Utc::now()).await
    }

    /// Sends with the timestamp taken from `now` (tests use it to simulate a skewed clock).
    pub async fn send_at(
        &self,
        sms: &TemplateSms<'_>,
        now: DateTime<Utc>,
    ) -> Result<Accepted, SendError> {
        let signed = sign(&self.base_url, &self.account, sms, now);
        let mut request = self.http.post(&signed.url).body(signed.body);
        for (name, value) in &signed.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        if status != 200 {
            return Err(SendError::Http { status });
        }
        parse_answer(&text)
    }
}

/// reqwest errors carry the URL, whose query holds the sig: strip it before it can be logged.
fn transport(e: reqwest::Error) -> SendError {
    // A connect timeout is both: it is a connect failure, nothing was written.
    let kind = if e.is_connect() {
        TransportKind::Connect
    } else if e.is_timeout() {
        TransportKind::Timeout
    } else {
        TransportKind::Broken
    };
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(inner) = source {
        detail.push_str(": ");
        detail.push_str(&inner.to_string());
        source = inner.source();
    }
    SendError::Transport {
        kind,
        reached: kind != TransportKind::Connect,
        detail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Secret;
    use chrono::TimeZone;

    const SID: &str = "aaf98f89488d0aad0148a8e0d8d40a07";
    const TOKEN: &str = "e33d4b7d2f6e4b6bb1e2a0b1f2c3d4e5";

    fn account() -> RonglianAccount {
        RonglianAccount {
            account_sid: SID.into(),
            auth_token: Secret::new(TOKEN),
            app_id: "8a216da85f5c89b1015f7e6e3c2a0b1c".into(),
        }
    }

    /// 2026-11-24T01:36:22Z, which is 09:36:22 in Beijing.
    fn instant() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 24, 1, 36, 22).unwrap()
    }

    #[test]
    fn timestamp_is_beijing_wall_clock_whatever_the_host_tz() {
        assert_eq!(timestamp(instant()), "20261124093622");
        // 17:00 UTC is already the next day in Beijing.
        let late = Utc.with_ymd_and_hms(2026, 12, 31, 17, 0, 0).unwrap();
        assert_eq!(timestamp(late), "20270101010000");
    }

    #[test]
    fn signature_and_authorization_match_the_reference_values() {
        // Reference values computed independently (Python hashlib / base64).
        assert_eq!(
            signature(SID, TOKEN, "20261124093622"),
            "18165CA524849AA898306189EC6C1156"
        );
        assert_eq!(
            authorization(SID, "20261124093622"),
            "YWFmOThmODk0ODhkMGFhZDAxNDhhOGUwZDhkNDBhMDc6MjAyNjExMjQwOTM2MjI="
        );
    }

    #[test]
    fn signed_request_is_exactly_the_documented_one() {
        let datas = vec!["123456".to_owned(), "5".to_owned()];
        let sms = TemplateSms {
            to: "13800138000",
            template_id: "1",
            datas: &datas,
            req_id: Some("0123456789abcdef0123456789abcdef"),
        };
        let signed = sign("https://app.cloopen.com:8883/", &account(), &sms, instant());
        assert_eq!(
            signed.url,
            "https://app.cloopen.com:8883/2013-12-26/Accounts/aaf98f89488d0aad0148a8e0d8d40a07/SMS/TemplateSMS?sig=18165CA524849AA898306189EC6C1156"
        );
        assert_eq!(
            signed.headers,
            vec![
                ("Accept", "application/json".to_owned()),
                ("Content-Type", "application/json;charset=utf-8".to_owned()),
                ("Accept-Charset", "UTF-8".to_owned()),
                (
                    "Authorization",
                    "YWFmOThmODk0ODhkMGFhZDAxNDhhOGUwZDhkNDBhMDc6MjAyNjExMjQwOTM2MjI=".to_owned()
                ),
            ]
        );
        assert_eq!(
            signed.body,
            r#"{"to":"13800138000","appId":"8a216da85f5c89b1015f7e6e3c2a0b1c","templateId":"1","datas":["123456","5"],"reqId":"0123456789abcdef0123456789abcdef"}"#
        );
    }

    #[test]
    fn req_id_is_left_out_when_absent() {
        let sms = TemplateSms {
            to: "13800138000",
            template_id: "1",
            datas: &[],
            req_id: None,
        };
        let signed = sign("https://x", &account(), &sms, instant());
        assert!(!signed.body.contains("reqId"));
        assert!(signed.body.contains(r#""datas":[]"#));
    }

    #[test]
    fn answers_are_parsed_by_status_code_string() {
        let ok = parse_answer(
            r#"{"statusCode":"000000","templateSMS":{"smsMessageSid":"ff8080813c373cab013c94b0f0512345","dateCreated":"20130201155306"}}"#,
        )
        .unwrap();
        assert_eq!(ok.message_id, "ff8080813c373cab013c94b0f0512345");
        match parse_answer(r#"{"statusCode":"160038","statusMsg":"短信验证码发送过频繁"}"#)
        {
            Err(SendError::Rejected { code, .. }) => assert_eq!(code, "160038"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            parse_answer("<Response/>"),
            Err(SendError::Malformed(_))
        ));
        assert!(matches!(
            parse_answer(r#"{"statusCode":"000000"}"#),
            Err(SendError::Malformed(_))
        ));
    }

    #[test]
    fn debug_output_never_contains_the_token() {
        let settings = ProviderSettings {
            base_url: "https://app.cloopen.com:8883".into(),
            timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
        };
        let client = Client::new(&settings, account()).unwrap();
        assert!(!format!("{client:?}").contains(TOKEN));
        assert!(!format!("{:?}", account()).contains(TOKEN));
    }
}
