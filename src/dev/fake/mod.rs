//! `smsq fake-provider`: a TemplateSMS simulator that checks what the real service checks and
//! answers each failure with the real code, plus fault injection for tests and the demo.
//!
//! Which 1111xx code answers which authentication fault is our best reading of the copied
//! error tables (the published table only gives ranges); every fault gets a distinct, real-family
//! code so a test can tell them apart.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::Utc;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

mod aliyun;
mod answers;
mod checks;
mod reports;
mod state;
mod tencent;

pub use reports::ReportFormat;

use answers::{Format, dropped_connection, error_answer, success_answer};
use checks::check;
use state::{Inner, accept};

/// Everything the simulator can be told. Account values default to the same `RONGLIAN_*`
/// variables the client reads, so a demo needs no setup.
#[derive(Debug, Clone, clap::Args)]
pub struct FakeOptions {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8883")]
    pub listen: SocketAddr,
    #[arg(long, env = "RONGLIAN_ACCOUNT_SID")]
    pub account_sid: String,
    #[arg(long, env = "RONGLIAN_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: String,
    #[arg(long, env = "RONGLIAN_APP_ID")]
    pub app_id: String,
    /// Template ids that exist (comma-separated); others answer 160032.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    pub templates: Vec<String>,
    /// Fraction of valid requests answered with 160000 (system error).
    #[arg(long, default_value_t = 0.0)]
    pub error_rate: f64,
    /// Fraction of valid requests refused for good with 160040 (the number's daily limit):
    /// a permanent answer, the SMS is not sent. A reqId already accepted is never refused:
    /// it gets its 160054.
    #[arg(long, default_value_t = 0.0)]
    pub reject_rate: f64,
    /// Fraction of valid requests answered with HTTP 500.
    #[arg(long, default_value_t = 0.0)]
    pub http500_rate: f64,
    /// Fraction of valid requests answered 200 with a body that is not the documented JSON
    /// (a provider that lies: the client cannot tell whether the SMS went out).
    #[arg(long, default_value_t = 0.0)]
    pub garbage_rate: f64,
    /// Fraction of requests whose connection is dropped after the request was read (the SMS is
    /// then *not* sent: the client cannot know that).
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Added to every answer, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub delay_ms: u64,
    /// Answer 160038 when a number gets a second SMS within this many seconds.
    #[arg(long)]
    pub per_number_interval_secs: Option<u64>,
    /// Answer 160040 past this many SMS per number per (Beijing) day.
    #[arg(long)]
    pub daily_limit: Option<u32>,
    /// How far the Authorization timestamp may be from the simulator's clock.
    #[arg(long, default_value_t = 86_400)]
    pub timestamp_window_secs: i64,
    /// Seed for the fault dice and message ids, for reproducible runs.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Answer the first valid requests with these codes, one request each, in order (e.g.
    /// `111111` to see every worker pause); later requests are handled normally.
    #[arg(long, value_delimiter = ',')]
    pub answer_first: Vec<String>,
    /// Push each accepted message's delivery report to this URL, like the platform.
    #[arg(long)]
    pub report_url: Option<String>,
    /// Push each Tencent message's status callback here (a JSON array, as Tencent does).
    #[arg(long)]
    pub tencent_report_url: Option<String>,
    /// Push each Aliyun message's `SmsReport` here (a JSON array, as Aliyun does).
    #[arg(long)]
    pub aliyun_report_url: Option<String>,
    /// How long after accepting a message its report is pushed.
    #[arg(long, default_value_t = 200)]
    pub report_delay_ms: u64,
    /// Fraction of reports that say "undelivered" (deliverCode UNDELIV).
    #[arg(long, default_value_t = 0.0)]
    pub undelivered_rate: f64,
    /// The form of the pushed reports.
    #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
    pub report_format: ReportFormat,
    /// Append every accepted message to this file as a JSON line.
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// How many accepted messages (and reqIds, for the duplicate check) are kept in memory;
    /// older ones are forgotten, so a long-running fake (`smsq dev`, a soak) stays bounded.
    #[arg(long, default_value_t = 100_000)]
    pub keep: usize,
    /// The Tencent Cloud API key pair and SmsSdkAppId it accepts (Tencent SendSms, told
    /// apart by its `X-TC-Action` header).
    #[arg(long, default_value = FAKE_TENCENT_SECRET_ID)]
    pub tencent_secret_id: String,
    #[arg(long, default_value = FAKE_TENCENT_SECRET_KEY, hide_default_value = true)]
    pub tencent_secret_key: String,
    #[arg(long, default_value = FAKE_TENCENT_APP_ID)]
    pub tencent_app_id: String,
    /// The Aliyun AccessKey it accepts (Dysmsapi SendSms, told apart by `x-acs-action`).
    #[arg(long, default_value = FAKE_ALIYUN_ACCESS_KEY_ID)]
    pub aliyun_access_key_id: String,
    #[arg(long, default_value = FAKE_ALIYUN_ACCESS_KEY_SECRET, hide_default_value = true)]
    pub aliyun_access_key_secret: String,
}

/// The simulator's default Tencent and Aliyun credentials (what `smsq dev` configures).
pub const FAKE_TENCENT_SECRET_ID: &str = "AKIDsmsqFakeTencentSecretId0000000000";
pub const FAKE_TENCENT_SECRET_KEY: &str = "smsqFakeTencentSecretKey00000000";
pub const FAKE_TENCENT_APP_ID: &str = "1400000000";
pub const FAKE_ALIYUN_ACCESS_KEY_ID: &str = "LTAIsmsqFakeAccessKeyId0";
pub const FAKE_ALIYUN_ACCESS_KEY_SECRET: &str = "smsqFakeAliyunAccessKeySecret00";

/// What one kind answers whatever it is sent (`POST /_fake/outage`): how a test or the demo
/// takes an account down and brings it back.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outage {
    /// Normal service.
    #[default]
    None,
    /// HTTP 500 for every request.
    Http500,
    /// The account's balance is gone (an account-level fault).
    Account,
    /// The account is over its API rate (account throttling).
    Throttle,
    /// The request is read and never answered (the client times out; nothing is sent).
    Hang,
    /// This vendor error code for every request.
    Code(String),
}

impl FakeOptions {
    /// No faults, template `1`, listening on a free loopback port.
    pub fn new(account_sid: &str, auth_token: &str, app_id: &str) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            account_sid: account_sid.to_owned(),
            auth_token: auth_token.to_owned(),
            app_id: app_id.to_owned(),
            templates: vec!["1".to_owned()],
            error_rate: 0.0,
            reject_rate: 0.0,
            http500_rate: 0.0,
            garbage_rate: 0.0,
            drop_rate: 0.0,
            delay_ms: 0,
            per_number_interval_secs: None,
            daily_limit: None,
            timestamp_window_secs: 86_400,
            seed: None,
            answer_first: Vec::new(),
            report_url: None,
            tencent_report_url: None,
            aliyun_report_url: None,
            report_delay_ms: 200,
            undelivered_rate: 0.0,
            report_format: ReportFormat::Json,
            record: None,
            keep: 100_000,
            tencent_secret_id: FAKE_TENCENT_SECRET_ID.to_owned(),
            tencent_secret_key: FAKE_TENCENT_SECRET_KEY.to_owned(),
            tencent_app_id: FAKE_TENCENT_APP_ID.to_owned(),
            aliyun_access_key_id: FAKE_ALIYUN_ACCESS_KEY_ID.to_owned(),
            aliyun_access_key_secret: FAKE_ALIYUN_ACCESS_KEY_SECRET.to_owned(),
        }
    }
}

/// One accepted message, as `GET /_fake/messages` and the record file show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FakeMessage {
    /// The message id in its vendor's shape (Tencent's `SerialNo`, Aliyun's `BizId`).
    pub sms_message_sid: String,
    /// Which vendor's API took it: `ronglian`, `tencent` or `aliyun`.
    #[serde(default = "ronglian")]
    pub kind: String,
    /// A voice code's `respUrl` (its `template_id` is `VoiceVerify`, its `datas` the code,
    /// its `req_id` the `userData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resp_url: Option<String>,
    pub to: String,
    pub template_id: String,
    pub datas: Vec<String>,
    pub req_id: Option<String>,
    pub date_created: String,
    /// When the request arrived (before any `--delay-ms`), µs since the epoch.
    #[serde(default)]
    pub received_us: i64,
    /// The message's place among every message this fake accepted, from 0: what
    /// `GET /_fake/messages?since=N` counts in.
    #[serde(default)]
    pub seq: u64,
}

fn ronglian() -> String {
    "ronglian".to_owned()
}

/// A request answered from `--answer-first` instead of being accepted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScriptedAnswer {
    pub code: String,
    pub received_us: i64,
}

#[derive(Clone)]
struct Fake {
    opts: Arc<FakeOptions>,
    inner: Arc<Mutex<Inner>>,
    /// For pushing delivery reports.
    http: reqwest::Client,
}

/// A running simulator (in-process, for tests and `smsq dev`).
pub struct FakeHandle {
    pub addr: SocketAddr,
    fake: Fake,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl FakeHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The messages still kept (the last `--keep`), oldest first.
    pub fn messages(&self) -> Vec<FakeMessage> {
        self.fake.lock().messages.iter().cloned().collect()
    }

    /// The requests answered from `--answer-first`.
    pub fn scripted(&self) -> Vec<ScriptedAnswer> {
        self.fake.lock().scripted.clone()
    }

    /// Makes `kind` answer every request this way from now on (`Outage::None` ends it).
    pub fn set_outage(&self, kind: crate::provider::Kind, outage: Outage) {
        self.fake.lock().outages.insert(kind, outage);
    }

    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Binds `opts.listen` and serves until `stop` is cancelled.
pub async fn spawn(opts: FakeOptions) -> std::io::Result<FakeHandle> {
    let listener = TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let fake = Fake::new(opts);
    let stop = CancellationToken::new();
    let app = fake.router();
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "fake provider stopped");
        }
    });
    Ok(FakeHandle {
        addr,
        fake,
        stop,
        task,
    })
}

impl Fake {
    fn new(opts: FakeOptions) -> Self {
        let rng = match opts.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_rng(&mut rand::rng()),
        };
        crate::provider::install_crypto();
        Self {
            opts: Arc::new(opts),
            http: reqwest::Client::new(),
            inner: Arc::new(Mutex::new(Inner {
                rng,
                last_sent: HashMap::new(),
                daily: HashMap::new(),
                daily_day: String::new(),
                req_ids: HashSet::new(),
                req_id_order: VecDeque::new(),
                messages: VecDeque::new(),
                accepted: 0,
                scripted: Vec::new(),
                outages: HashMap::new(),
                nonces: HashSet::new(),
                nonce_order: VecDeque::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic elsewhere must not take the simulator down with it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn router(&self) -> Router {
        Router::new()
            .route("/_fake/messages", get(list_messages))
            .route("/_fake/outage", axum::routing::post(set_outage))
            .fallback(template_sms)
            .with_state(self.clone())
    }

    /// The next `--answer-first` code, if any are left; recorded with its arrival time.
    fn scripted_answer(&self, received_us: i64) -> Option<String> {
        let mut inner = self.lock();
        let code = self.opts.answer_first.get(inner.scripted.len())?.clone();
        inner.scripted.push(ScriptedAnswer {
            code: code.clone(),
            received_us,
        });
        Some(code)
    }

    /// Whether a message with this reqId was accepted (and is still remembered) today.
    fn has_req_id(&self, req_id: Option<&str>) -> bool {
        let Some(req_id) = req_id else {
            return false;
        };
        let day = state::beijing_day(Utc::now());
        self.lock().req_ids.contains(&(day, req_id.to_owned()))
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.lock().rng.random::<f64>() < rate
    }

    fn outage(&self, kind: crate::provider::Kind) -> Outage {
        self.lock().outages.get(&kind).cloned().unwrap_or_default()
    }

    /// Never answers (the client's timeout ends it); the request is not sent.
    async fn hang(&self) -> Response {
        tokio::time::sleep(Duration::from_secs(600)).await;
        StatusCode::GATEWAY_TIMEOUT.into_response()
    }

    /// `--http500-rate` and `--garbage-rate` for the kinds that answer JSON of their own.
    fn dice(&self) -> Option<Response> {
        if self.roll(self.opts.http500_rate) {
            return Some(
                (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error").into_response(),
            );
        }
        if self.roll(self.opts.garbage_rate) {
            let page = "<html>Service Temporarily Unavailable</html>";
            return Some((StatusCode::OK, page).into_response());
        }
        None
    }

    /// A random request id in the vendors' UUID shape.
    fn uuid(&self) -> String {
        let b: [u8; 16] = self.lock().rng.random();
        let h = crate::domain::hex(&b);
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    }

    /// False for a nonce seen before (the last `--keep` are remembered).
    fn fresh_nonce(&self, nonce: &str) -> bool {
        let keep = self.opts.keep.max(1);
        let mut inner = self.lock();
        if nonce.is_empty() || !inner.nonces.insert(nonce.to_owned()) {
            return false;
        }
        inner.nonce_order.push_back(nonce.to_owned());
        while inner.nonce_order.len() > keep {
            if let Some(old) = inner.nonce_order.pop_front() {
                inner.nonces.remove(&old);
            }
        }
        true
    }
}

#[derive(Debug, serde::Deserialize)]
struct OutageRequest {
    kind: String,
    #[serde(flatten)]
    outage: OutageBody,
}

#[derive(Debug, serde::Deserialize)]
#[serde(untagged)]
enum OutageBody {
    Code { code: String },
    Fault { fault: Outage },
}

/// `POST /_fake/outage {"kind": "ronglian", "fault": "http500"}` (or `"account"`,
/// `"throttle"`, `"hang"`, `"none"`), or `{"kind": "tencent", "code": "LimitExceeded.AppDailyLimit"}`.
async fn set_outage(State(fake): State<Fake>, body: Bytes) -> Response {
    let parsed: Result<OutageRequest, _> = serde_json::from_slice(&body);
    let Ok(req) = parsed else {
        return (StatusCode::BAD_REQUEST, "expected {\"kind\": \"ronglian|tencent|aliyun\", \"fault\": \"none|http500|account|throttle|hang\"} or {\"kind\": …, \"code\": \"<vendor code>\"}").into_response();
    };
    let Some(kind) = crate::provider::Kind::parse(&req.kind) else {
        return (StatusCode::BAD_REQUEST, "kind: ronglian, tencent or aliyun").into_response();
    };
    let outage = match req.outage {
        OutageBody::Code { code } => Outage::Code(code),
        OutageBody::Fault { fault } => fault,
    };
    tracing::info!(%kind, ?outage, "fake provider: outage set");
    fake.lock().outages.insert(kind, outage);
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Debug, serde::Deserialize)]
struct Since {
    #[serde(default)]
    since: u64,
}

/// The kept messages whose `seq` is at least `?since=` (all of them without it).
async fn list_messages(State(fake): State<Fake>, Query(q): Query<Since>) -> Response {
    let inner = fake.lock();
    let newer: Vec<&FakeMessage> = inner.messages.iter().filter(|m| m.seq >= q.since).collect();
    axum::Json(newer).into_response()
}

async fn template_sms(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let received_us = Utc::now().timestamp_micros();
    if fake.opts.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(fake.opts.delay_ms)).await;
    }
    let format = match headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) {
        Some(a) if a.contains("application/json") => Format::Json,
        _ => Format::Xml,
    };
    if fake.roll(fake.opts.drop_rate) {
        return dropped_connection();
    }
    if headers.contains_key("x-tc-action") {
        return tencent::handle(&fake, &method, &headers, &body, received_us).await;
    }
    if aliyun::is_aliyun(&uri, &headers) {
        return aliyun::handle(&fake, &method, &uri, &headers, &body, received_us).await;
    }
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let result = check(&fake, &uri, &headers, &body);
    let answer = match result {
        Err(None) => return StatusCode::NOT_FOUND.into_response(),
        Err(Some(f)) => error_answer(format, f.code, f.msg),
        Ok(request) => {
            if fake.roll(fake.opts.http500_rate) {
                return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                    .into_response();
            }
            if fake.roll(fake.opts.garbage_rate) {
                return (
                    StatusCode::OK,
                    "<html>Service Temporarily Unavailable</html>",
                )
                    .into_response();
            }
            match fake.outage(crate::provider::Kind::Ronglian) {
                Outage::None => {}
                Outage::Http500 => {
                    return (StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error")
                        .into_response();
                }
                Outage::Account => return error_answer(format, "111142", "主账户余额不足"),
                Outage::Throttle => return error_answer(format, "111111", "请求过于频繁"),
                Outage::Code(code) => {
                    return error_answer(format, &code, "scripted by /_fake/outage");
                }
                Outage::Hang => return fake.hang().await,
            }
            if let Some(code) = fake.scripted_answer(received_us) {
                error_answer(format, &code, "scripted by --answer-first")
            } else if fake.roll(fake.opts.error_rate) {
                error_answer(format, "160000", "系统错误")
            } else if !fake.has_req_id(request.req_id.as_deref())
                && fake.roll(fake.opts.reject_rate)
            {
                // A message it already has is answered 160054 (by `accept`), not refused anew.
                error_answer(format, "160040", "验证码超出同模板同号码天发送上限")
            } else {
                match accept(&fake, request, received_us, crate::provider::Kind::Ronglian).await {
                    Ok(m) => {
                        reports::push(&fake, &m);
                        success_answer(format, &m)
                    }
                    Err(f) => error_answer(format, f.code, f.msg),
                }
            }
        }
    };
    let mut response = answer;
    if fake.opts.drop_rate > 0.0 {
        // Keep-alive would let a reused connection dodge the dice; one request per connection
        // makes the drop rate a per-request rate.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
    }
    response
}
