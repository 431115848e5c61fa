//! The SMS provider boundary: one client per kind of account (Ronglian TemplateSMS, Tencent
//! Cloud SMS, Aliyun Dysmsapi), one error type whose answers are classified in one table per
//! kind, and the [`Sender`] the worker calls whatever the kind. The simulator tests and the
//! demo talk to lives in `dev::fake`.

pub mod aliyun;
mod classify;
mod error;
mod report;
mod ronglian;
mod sender;
mod tencent;

pub use aliyun::VERSION as ALIYUN_VERSION;
pub use aliyun::{AliyunAccount, AliyunClient, percent_encode};
pub use classify::{Action, Verdict, classify};
pub use error::{SendError, TransportKind};
pub use report::{
    Report, ReportError, StatusReport, parse_aliyun, parse_call_result, parse_tencent,
};
pub use ronglian::{Client, SignedRequest, authorization, sign, sign_voice, signature, timestamp};
pub use sender::{ClientError, Sender};
pub use tencent::{
    SERVICE as TENCENT_SERVICE, TencentAccount, TencentClient, VERSION as TENCENT_VERSION,
};

use std::sync::Once;
use std::time::Duration;

/// The REST API version every Ronglian SDK hard-codes; the server answers 111110 to anything
/// else.
pub const API_VERSION: &str = "2013-12-26";

/// How long after a send a delivery report may still come and find its job (3 days). No
/// vendor documents a window; carriers retry an undelivered SMS for up to 48–72 hours and
/// report after that, so a later report is treated as not ours (docs/provider.md).
pub const REPORT_WINDOW_SECS: u64 = 3 * 86_400;

/// Which vendor's protocol an account speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Ronglian,
    Tencent,
    Aliyun,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Ronglian, Kind::Tencent, Kind::Aliyun];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Ronglian => "ronglian",
            Kind::Tencent => "tencent",
            Kind::Aliyun => "aliyun",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether this vendor's delivery report names the job itself: Ronglian echoes `reqId`
    /// (and a call's `userData`), Aliyun `OutId`, both the job id. Tencent's report has only
    /// its own `sid`, so a `sent` Tencent job keeps an index from that `sid` to the job for as
    /// long as a report may come ([`REPORT_WINDOW_SECS`]).
    pub fn report_names_the_job(self) -> bool {
        !matches!(self, Kind::Tencent)
    }

    /// The vendor's public endpoint.
    pub fn default_base_url(self) -> &'static str {
        match self {
            Kind::Ronglian => "https://app.cloopen.com:8883",
            Kind::Tencent => "https://sms.tencentcloudapi.com",
            Kind::Aliyun => "https://dysmsapi.aliyuncs.com",
        }
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One template SMS to one number, whatever the kind: each client shapes it into its
/// vendor's request.
#[derive(Debug, Clone)]
pub struct TemplateSms<'a> {
    /// 11-digit mainland number (already normalised by `Mobile`).
    pub to: &'a str,
    /// The account's own template id (Ronglian and Tencent: digits; Aliyun: `SMS_…`).
    pub template_id: &'a str,
    pub datas: &'a [String],
    /// At most 32 characters, the same on every attempt: Ronglian's `reqId` (which
    /// deduplicates), Tencent's `SessionContext` and Aliyun's `OutId` (which only correlate).
    pub req_id: Option<&'a str>,
}

/// A voice code: Ronglian calls `to` and reads `code` out (`Calls/VoiceVerify`).
#[derive(Debug, Clone)]
pub struct VoiceCall<'a> {
    pub to: &'a str,
    /// 4–8 digits (the platform's limit).
    pub code: &'a str,
    /// 1–3 repeats.
    pub play_times: u8,
    /// Where the platform posts the call's result.
    pub resp_url: Option<&'a str>,
    /// Echoed in the result: smsq's job id.
    pub user_data: &'a str,
}

/// The provider accepted the message (it is not yet delivered: that is the delivery report).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// Ronglian's `smsMessageSid`, Tencent's `SerialNo`, Aliyun's `BizId`: what the delivery
    /// report names.
    pub message_id: String,
    pub date_created: String,
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

/// The HTTP client every kind uses: connections reused, no redirects (a redirect would resend
/// the body, code included, to wherever it points).
pub(crate) fn http_client(
    timeout: Duration,
    connect_timeout: Duration,
) -> Result<reqwest::Client, ClientError> {
    install_crypto();
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("smsq/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| ClientError::Http(e.without_url().to_string()))
}

/// `host[:port]` of a base URL, as reqwest sends it in `Host` (what Tencent and Aliyun sign).
pub(crate) fn host_header(url: &reqwest::Url) -> String {
    match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => String::new(),
    }
}
