//! The web app's side of smsq, independent of HTTP: issue a code, verify it, hand out image
//! captchas, enqueue notification messages. The API and `smsq send` both call this.

use std::net::IpAddr;
use std::time::Duration;

mod captchas;
mod guards;
mod idempotency;
mod messages;

use serde::Serialize;

pub use captchas::{CaptchaAnswer, CaptchaIssued};
pub use idempotency::IdempotencyRequest;
pub use messages::{MessageAccepted, MessageRequest};

use crate::config::Settings;
use crate::domain::{
    ClientNet, Code, CodeSealer, Hasher, Job, JobId, JobKind, Mobile, Purpose, RequestId, now_ms,
};
use crate::store::{
    Fallback, Idempotency, Intake, IpRefusal, IssueOutcome, NewCode, StoreError, Verification,
};
use idempotency::parse_answer;

/// Why a request was refused. Each variant is one API error code.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(
        "a solved captcha is required (captcha_id and captcha, or the vendor widget's captcha object)"
    )]
    CaptchaRequired,
    #[error("the captcha vendor cannot be reached to check the captcha; try again shortly")]
    CaptchaUnavailable,
    #[error("the image captcha is wrong, expired or already used; ask for a new one")]
    InvalidCaptcha,
    #[error("a code was sent to this number recently; try again later")]
    ResendTooSoon { retry_after: Duration },
    #[error("too many codes for this number this hour")]
    HourlyLimit { retry_after: Duration },
    #[error("too many codes for this number today")]
    DailyLimit { retry_after: Duration },
    #[error("too many voice calls to this number today; ask for a text")]
    VoiceLimit { retry_after: Duration },
    #[error("no voice calls at this hour (code.voice_quiet_hours, Beijing time); ask for a text")]
    VoiceQuietHours { retry_after: Duration },
    #[error("no voice code for this request: {0}")]
    VoiceUnavailable(&'static str),
    #[error("too many codes requested from this IP address (or IPv6 /64) this hour")]
    IpLimit { retry_after: Duration },
    #[error("too many codes requested from this network (IPv4 /24 or IPv6 /48) this hour")]
    NetworkLimit { retry_after: Duration },
    #[error("this Idempotency-Key was used with a different request body")]
    IdempotencyConflict,
    #[error("the send queue is full; try again later")]
    QueueFull,
    #[error("the {scope} of this service is used up; try again later")]
    BudgetExhausted {
        scope: String,
        retry_after: Duration,
    },
    #[error("codes to this number's prefix are held by the fleet guard; try again later")]
    PrefixBlocked { retry_after: Duration },
    #[error("a solved captcha is needed for this request right now ({why})")]
    GuardCaptcha { why: String },
    #[error("storage unavailable")]
    Unavailable(#[source] StoreError),
    #[error("storage error")]
    Store(#[source] StoreError),
}

impl CodeError {
    /// The API's error code for this refusal; also the `reason` label of the metrics.
    pub fn code(&self) -> &'static str {
        match self {
            CodeError::CaptchaRequired | CodeError::InvalidCaptcha => "invalid_captcha",
            CodeError::CaptchaUnavailable => "captcha_unavailable",
            CodeError::ResendTooSoon { .. } => "resend_too_soon",
            CodeError::HourlyLimit { .. } => "hourly_limit",
            CodeError::DailyLimit { .. } => "daily_limit",
            CodeError::VoiceLimit { .. } => "voice_daily_limit",
            CodeError::VoiceQuietHours { .. } => "voice_quiet_hours",
            CodeError::VoiceUnavailable(_) => "voice_unavailable",
            CodeError::IpLimit { .. } => "ip_limit",
            CodeError::NetworkLimit { .. } => "network_limit",
            CodeError::IdempotencyConflict => "idempotency_conflict",
            CodeError::QueueFull => "queue_full",
            CodeError::BudgetExhausted { .. } => "budget_exhausted",
            CodeError::PrefixBlocked { .. } => "prefix_blocked",
            CodeError::GuardCaptcha { .. } => "captcha_required",
            CodeError::Unavailable(_) => "unavailable",
            CodeError::Store(_) => "internal",
        }
    }
}

impl From<StoreError> for CodeError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            CodeError::Unavailable(e)
        } else {
            CodeError::Store(e)
        }
    }
}

/// A code request whose fields are already parsed.
#[derive(Debug, Clone)]
pub struct CodeRequest {
    pub mobile: Mobile,
    pub purpose: Purpose,
    pub client_ip: Option<IpAddr>,
    pub captcha: Option<CaptchaAnswer>,
    pub idempotency: Option<IdempotencyRequest>,
    /// The request's `x-request-id`, kept on the job.
    pub request_id: Option<RequestId>,
    /// `voice`: a call reads the code out instead of a text.
    pub channel: crate::domain::Channel,
}

/// `202` body of `POST /v1/codes`.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq, utoipa::ToSchema)]
#[schema(example = json!({"job_id": "00a1b2c3d4e5f60718293a4b5c6d7e8f", "expires_in": 300, "resend_after": 60}))]
pub struct CodeAccepted {
    pub job_id: String,
    pub expires_in: u64,
    pub resend_after: u64,
    /// `voice` when the code goes out by a call: asked for, or a resend that fell back to
    /// calling with the same code (`code.fallback = "voice"`).
    #[serde(default, skip_serializing_if = "crate::domain::Channel::is_sms")]
    pub channel: crate::domain::Channel,
}

/// The service: settings, the Redis store and the hashing key.
#[derive(Clone)]
pub struct Codes {
    settings: std::sync::Arc<Settings>,
    store: Intake,
    hasher: Hasher,
    sealer: CodeSealer,
    /// The captcha vendor (`captcha.provider` other than `builtin`).
    vendor: Option<std::sync::Arc<crate::captcha::vendor::Vendor>>,
}

impl Codes {
    pub fn new(
        settings: std::sync::Arc<Settings>,
        store: Intake,
        hasher: Hasher,
        sealer: CodeSealer,
    ) -> Self {
        Self {
            settings,
            store,
            hasher,
            sealer,
            vendor: None,
        }
    }

    /// Checks captchas with this vendor instead of the built-in image captcha.
    pub fn with_vendor(self, vendor: Option<crate::captcha::vendor::Vendor>) -> Self {
        Self {
            vendor: vendor.map(std::sync::Arc::new),
            ..self
        }
    }

    pub fn store(&self) -> &Intake {
        &self.store
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The same settings, shared.
    pub fn shared_settings(&self) -> std::sync::Arc<Settings> {
        self.settings.clone()
    }

    /// The keyed hash, also used to sign dashboard sessions.
    pub fn hasher(&self) -> &Hasher {
        &self.hasher
    }

    fn code_context(mobile: &Mobile, purpose: &Purpose) -> String {
        format!("code:{}:{}", purpose.as_str(), mobile.as_str())
    }

    /// Checks, in order: an earlier answer for the same `Idempotency-Key`, the captcha (if
    /// required or given), the per-IP cap, then — atomically in Redis — resend interval,
    /// hourly and daily caps, and stores the code and the job.
    pub async fn issue(&self, req: CodeRequest) -> Result<CodeAccepted, CodeError> {
        self.issue_at(req, now_ms()).await
    }

    /// [`Codes::issue`] as if the clock read `now` (Unix ms): the windows, caps and the code's
    /// expiry all count from it. Tests cross a Beijing midnight with it.
    pub async fn issue_at(&self, req: CodeRequest, now: i64) -> Result<CodeAccepted, CodeError> {
        let result = self.check_and_issue(req, now).await;
        match &result {
            Ok(_) => crate::metrics::code_issued(),
            Err(e) => crate::metrics::code_refused(e.code()),
        }
        result
    }

    async fn check_and_issue(&self, req: CodeRequest, now: i64) -> Result<CodeAccepted, CodeError> {
        let cs = &self.settings.code;
        let idem = req.idempotency.as_ref().map(|i| i.digests("codes"));
        if let Some((name, fp)) = &idem
            && let Some(answer) = self.replay(&req.mobile, name, fp).await?
        {
            return Ok(answer);
        }
        let test_code = self.settings.secrets.test_code(&req.mobile);
        let test = test_code.is_some();
        if req.channel == crate::domain::Channel::Voice {
            self.voice_allowed(&req.purpose)?;
        }
        let captcha_solved = !test
            && self
                .check_captcha(req.captcha.as_ref(), req.client_ip)
                .await?;

        // A test number is exempt from the caps: it is never sent, so it costs nothing.
        let ip = req.client_ip.filter(|_| !test).map(ClientNet::of);
        if let Some(ip) = &ip {
            let limits = (
                cs.hourly_limit_per_ip.get(),
                cs.hourly_limit_per_network.get(),
            );
            match self.store.reserve_ip(ip, limits, now).await? {
                None => {}
                Some(IpRefusal::User(retry_after)) => {
                    return Err(CodeError::IpLimit { retry_after });
                }
                Some(IpRefusal::Network(retry_after)) => {
                    return Err(CodeError::NetworkLimit { retry_after });
                }
            }
        }
        let outcome = self
            .store_code(&req, now, idem.as_ref(), test_code, captcha_solved)
            .await;
        let refused = !matches!(outcome, Ok((IssueOutcome::Issued(_), _)));
        if let (Some(ip), true) = (&ip, refused) {
            // Give the reservation back: only a newly issued code counts against the IP.
            if let Err(e) = self.store.release_ip(ip, now).await {
                tracing::warn!(error = %e, "could not release a per-IP reservation");
            }
        }
        let (outcome, accepted) = outcome?;
        match outcome {
            IssueOutcome::Issued(alerts) => {
                guards::alerted(&self.settings.guard, &alerts);
                tracing::info!(job_id = %accepted.job_id, mobile = %req.mobile, purpose = %req.purpose, "code issued");
                Ok(accepted)
            }
            IssueOutcome::Replay(answer) => parse_answer(&answer),
            IssueOutcome::Conflict => Err(CodeError::IdempotencyConflict),
            IssueOutcome::ResendTooSoon(retry_after) => {
                Err(CodeError::ResendTooSoon { retry_after })
            }
            IssueOutcome::HourlyLimit(retry_after) => Err(CodeError::HourlyLimit { retry_after }),
            IssueOutcome::DailyLimit(retry_after) => Err(CodeError::DailyLimit { retry_after }),
            IssueOutcome::VoiceLimit(retry_after) => Err(CodeError::VoiceLimit { retry_after }),
            IssueOutcome::Fallback(answer) => {
                let accepted: CodeAccepted = parse_answer(&answer)?;
                tracing::info!(job_id = %accepted.job_id, mobile = %req.mobile, purpose = %req.purpose, "resend: calling with the same code");
                Ok(accepted)
            }
            IssueOutcome::QueueFull => Err(CodeError::QueueFull),
            IssueOutcome::Guarded(refusal) => Err(guards::refused(refusal)),
        }
    }

    /// A text's fallback call (`code.fallback = "voice"`), when one could be made for it: the
    /// call's job, and whether a resend now may fall back to it (not in the quiet hours).
    fn fallback_for(&self, job: &Job) -> Option<Fallback> {
        let voice = &self.settings.code.voice;
        if !voice.fallback || job.test || self.voice_route(job.purpose.as_ref()?).is_err() {
            return None;
        }
        let call = Job {
            id: JobId::generate_in(self.store.shards().of_mobile(&job.to)),
            channel: crate::domain::Channel::Voice,
            code_of: Some(job.id.clone()),
            datas: Vec::new(),
            ..job.clone()
        };
        Some(Fallback {
            call_json: call.to_json(),
            // No call in the quiet hours: a resend then is a new text.
            resend_cap: match voice.quiet_now() {
                Some(_) => 0,
                None => voice.daily_limit_per_mobile.get(),
            },
        })
    }

    /// A voice code needs a Ronglian account on the purpose's route, and a code a call can
    /// read out. The hours (`code.voice_quiet_hours`) are [`Codes::voice_allowed`]'s.
    fn voice_route(&self, purpose: &Purpose) -> Result<(), CodeError> {
        let route = self.settings.providers.on_route(purpose.as_str());
        if !route
            .iter()
            .any(|a| a.kind == crate::provider::Kind::Ronglian)
        {
            return Err(CodeError::VoiceUnavailable(
                "no account on this purpose's route makes calls (Ronglian VoiceVerify only)",
            ));
        }
        if self.settings.code.length > 8 {
            return Err(CodeError::VoiceUnavailable(
                "a call reads at most 8 digits (code.length is longer)",
            ));
        }
        Ok(())
    }

    /// A voice code: possible on the purpose's route (see [`Codes::voice_route`]) and not in
    /// `code.voice_quiet_hours`.
    fn voice_allowed(&self, purpose: &Purpose) -> Result<(), CodeError> {
        self.voice_route(purpose)?;
        match self.settings.code.voice.quiet_now() {
            Some(retry_after) => Err(CodeError::VoiceQuietHours { retry_after }),
            None => Ok(()),
        }
    }

    async fn store_code(
        &self,
        req: &CodeRequest,
        now: i64,
        idem: Option<&(String, String)>,
        test_code: Option<&crate::domain::Secret>,
        captcha_solved: bool,
    ) -> Result<(IssueOutcome, CodeAccepted), CodeError> {
        let exempt;
        let cs = match test_code {
            None => &self.settings.code,
            Some(_) => {
                exempt = self.settings.code.exempt();
                &exempt
            }
        };
        let code = match test_code {
            Some(fixed) => Code::fixed(fixed.expose()),
            None => Code::generate(cs.length),
        };
        let ttl_minutes = cs.ttl.as_secs().div_ceil(60).max(1);
        let job = Job {
            id: JobId::generate_in(self.store.shards().of_mobile(&req.mobile)),
            kind: JobKind::Code,
            to: req.mobile.clone(),
            purpose: Some(req.purpose.clone()),
            template_id: cs.template_id.clone(),
            datas: vec![ttl_minutes.to_string()],
            attempt: 0,
            created_ms: now,
            expires_ms: Some(now + cs.ttl.as_millis() as i64),
            request_id: req.request_id.clone(),
            test: test_code.is_some(),
            account: None,
            avoid: None,
            channel: req.channel,
            code_of: None,
        };
        let accepted = CodeAccepted {
            job_id: job.id.to_string(),
            expires_in: cs.ttl.as_secs(),
            resend_after: cs.resend_interval.as_secs(),
            channel: job.channel,
        };
        let fallback = match job.channel {
            crate::domain::Channel::Sms => self.fallback_for(&job),
            crate::domain::Channel::Voice => None,
        };
        let answer = serde_json::to_string(&accepted).expect("plain struct serializes");
        let code_hash = self.hasher.code_tag(
            &Self::code_context(&req.mobile, &req.purpose),
            code.expose(),
        );
        let outcome = self
            .store
            .issue_code(
                &NewCode {
                    job: &job,
                    purpose: &req.purpose,
                    sealed: &self.sealer.seal(job.id.as_str(), &code),
                    code_hash: &code_hash,
                    idempotency: idem.map(|(digest, fingerprint)| Idempotency {
                        digest,
                        fingerprint,
                    }),
                    answer: &answer,
                    captcha_solved,
                    guard: test_code.is_none().then_some(&self.settings.guard),
                    fallback: fallback.as_ref(),
                },
                cs,
            )
            .await?;
        Ok((outcome, accepted))
    }

    pub async fn verify(
        &self,
        mobile: &Mobile,
        purpose: &Purpose,
        code: &str,
    ) -> Result<Verification, CodeError> {
        let context = Self::code_context(mobile, purpose);
        let counted = self.settings.secrets.test_code(mobile).is_none();
        let window = self.settings.guard.prefix.as_ref().map(|p| p.window);
        let result = self
            .store
            .verify_code(mobile, purpose, window.filter(|_| counted), |stored| {
                self.hasher.matches_code(&context, code, stored)
            })
            .await?;
        tracing::info!(mobile = %mobile, purpose = %purpose, outcome = ?result, "code verified");
        crate::metrics::verification(match result {
            Verification::Valid => "valid",
            Verification::Mismatch { .. } => "mismatch",
            Verification::TooManyAttempts => "too_many_attempts",
            Verification::Expired => "expired",
        });
        Ok(result)
    }
}
