//! Ronglian (容联云) TemplateSMS client, built exactly as `docs/provider.md` describes: one UTC+8
//! timestamp per request for both the upper-case MD5 `sig` and the bare base64
//! `Authorization`, JSON in and out, `datas` as strings, `reqId` = the job id so a retry after
//! an ambiguous network error can be recognised by the provider.

use chrono::{DateTime, Utc};

mod answer;
mod sign;

use answer::{parse_answer, parse_voice_answer};

pub use sign::{SignedRequest, authorization, sign, sign_voice, signature, timestamp};

use super::error::transport;
use super::{Accepted, ClientError, SendError, TemplateSms, VoiceCall};
use crate::config::{ProviderSettings, RonglianAccount};

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

impl Client {
    pub fn new(settings: &ProviderSettings, account: RonglianAccount) -> Result<Self, ClientError> {
        let http = super::http_client(settings.timeout, settings.connect_timeout)?;
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
        let text = self.post(signed).await?;
        parse_answer(&text)
    }

    /// A voice code (`Calls/VoiceVerify`): accepted means the call is placed, not answered.
    pub async fn call(&self, call: &VoiceCall<'_>) -> Result<Accepted, SendError> {
        let signed = sign_voice(&self.base_url, &self.account, call, Utc::now());
        let text = self.post(signed).await?;
        parse_voice_answer(&text)
    }

    /// POSTs a signed request; the body of a 200 answer.
    async fn post(&self, signed: SignedRequest) -> Result<String, SendError> {
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
        Ok(text)
    }
}

#[cfg(test)]
mod tests;
