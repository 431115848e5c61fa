//! Ronglian (容联云) TemplateSMS client, built exactly as `docs/provider.md` describes: one UTC+8
//! timestamp per request for both the upper-case MD5 `sig` and the bare base64
//! `Authorization`, JSON in and out, `datas` as strings, `reqId` = the job id so a retry after
//! an ambiguous network error can be recognised by the provider.

use std::sync::Once;
use std::time::Duration;

use chrono::{DateTime, Utc};

mod answer;
mod sign;

use answer::parse_answer;

pub use sign::{SignedRequest, authorization, sign, signature, timestamp};

use super::{Verdict, classify};
use crate::config::{ProviderSettings, RonglianAccount};

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
            SendError::Http { status } if (300..400).contains(status) => Verdict {
                action: Action::GiveUp,
                reason: "provider answered a redirect, not followed (check provider.base_url)",
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
            // A redirect would resend the body, code included, to wherever it points.
            .redirect(reqwest::redirect::Policy::none())
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
mod tests;
