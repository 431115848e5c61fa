//! `smsq fake-provider`: a TemplateSMS simulator that checks what the real service checks and
//! answers each failure with the real code, plus fault injection for tests and the demo.
//!
//! Which 1111xx code answers which authentication fault is our best reading of the copied
//! error tables (ronglian.md §4 only gives ranges); every fault gets a distinct, real-family
//! code so a test can tell them apart.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use chrono::{NaiveDateTime, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::Serialize;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::{API_VERSION, signature};
use crate::domain::{Mobile, beijing};

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
    /// Append every accepted message to this file as a JSON line.
    #[arg(long)]
    pub record: Option<PathBuf>,
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
            http500_rate: 0.0,
            garbage_rate: 0.0,
            drop_rate: 0.0,
            delay_ms: 0,
            per_number_interval_secs: None,
            daily_limit: None,
            timestamp_window_secs: 86_400,
            seed: None,
            record: None,
        }
    }
}

/// One accepted message, as `GET /_fake/messages` and the record file show it.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FakeMessage {
    pub sms_message_sid: String,
    pub to: String,
    pub template_id: String,
    pub datas: Vec<String>,
    pub req_id: Option<String>,
    pub date_created: String,
}

struct Inner {
    rng: StdRng,
    last_sent: HashMap<String, chrono::DateTime<Utc>>,
    daily: HashMap<String, u32>,
    req_ids: HashSet<(String, String)>,
    messages: Vec<FakeMessage>,
}

#[derive(Clone)]
struct Fake {
    opts: Arc<FakeOptions>,
    inner: Arc<Mutex<Inner>>,
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

    pub fn messages(&self) -> Vec<FakeMessage> {
        self.fake.lock().messages.clone()
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
        Self {
            opts: Arc::new(opts),
            inner: Arc::new(Mutex::new(Inner {
                rng,
                last_sent: HashMap::new(),
                daily: HashMap::new(),
                req_ids: HashSet::new(),
                messages: Vec::new(),
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
            .fallback(template_sms)
            .with_state(self.clone())
    }

    fn roll(&self, rate: f64) -> bool {
        rate > 0.0 && self.lock().rng.random::<f64>() < rate
    }
}

async fn list_messages(State(fake): State<Fake>) -> Response {
    axum::Json(fake.lock().messages.clone()).into_response()
}

/// Answer format: JSON when asked for, XML otherwise (as a client that forgets `Accept` sees).
#[derive(Clone, Copy)]
enum Format {
    Json,
    Xml,
}

struct Fault {
    code: &'static str,
    msg: &'static str,
}

const fn fault(code: &'static str, msg: &'static str) -> Fault {
    Fault { code, msg }
}

async fn template_sms(
    State(fake): State<Fake>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
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
            if fake.roll(fake.opts.error_rate) {
                error_answer(format, "160000", "系统错误")
            } else {
                match accept(&fake, request).await {
                    Ok(m) => success_answer(format, &m),
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

/// The connection breaks before a complete answer: headers may go out, the body never ends.
fn dropped_connection() -> Response {
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

/// A request that passed every protocol check.
struct Checked {
    to: Vec<String>,
    template_id: String,
    datas: Vec<String>,
    req_id: Option<String>,
}

/// The protocol checks, in the order the real service plausibly runs them. `Err(None)` = 404.
fn check(
    fake: &Fake,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Checked, Option<Fault>> {
    let opts = &fake.opts;
    let segments: Vec<&str> = uri.path().split('/').collect();
    let [_, version, "Accounts", sid, "SMS", "TemplateSMS"] = segments.as_slice() else {
        return Err(None);
    };
    if *version != API_VERSION {
        return Err(Some(fault("111110", "REST API版本号错误")));
    }
    if *sid != opts.account_sid {
        return Err(Some(fault("111141", "主账户不存在")));
    }
    let auth = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or(Some(fault("111101", "请求包头Authorization参数为空")))?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or(Some(fault(
            "111102",
            "请求包头Authorization参数Base64解码失败",
        )))?;
    let (auth_sid, ts) = decoded.split_once(':').ok_or(Some(fault(
        "111102",
        "请求包头Authorization参数解码后格式有误",
    )))?;
    if auth_sid != opts.account_sid {
        return Err(Some(fault(
            "111103",
            "请求包头Authorization参数解码后账户ID为空或与URL不符",
        )));
    }
    let sent_at = NaiveDateTime::parse_from_str(ts, "%Y%m%d%H%M%S")
        .ok()
        .filter(|_| ts.len() == 14)
        .and_then(|t| beijing().from_local_datetime(&t).single())
        .ok_or(Some(fault(
            "111107",
            "请求包头Authorization参数解码后时间戳格式有误",
        )))?;
    let sig = uri
        .query()
        .unwrap_or("")
        .split('&')
        .find_map(|kv| kv.strip_prefix("sig="))
        .filter(|s| !s.is_empty())
        .ok_or(Some(fault("111104", "请求地址SigParameter参数为空")))?;
    if sig.len() != 32 || !sig.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(Some(fault("111105", "请求地址SigParameter参数格式有误")));
    }
    let skew = (Utc::now() - sent_at.with_timezone(&Utc))
        .num_seconds()
        .abs();
    if skew > opts.timestamp_window_secs {
        return Err(Some(fault(
            "111106",
            "请求包头Authorization参数解码后时间戳过期",
        )));
    }
    // Exact comparison: the doc says the sig must be upper case.
    if sig != signature(&opts.account_sid, &opts.auth_token, ts) {
        return Err(Some(fault("111109", "请求地址Sig校验失败")));
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.starts_with("application/json") {
        return Err(Some(fault("160031", "参数解析失败")));
    }
    check_body(opts, body)
}

fn check_body(opts: &FakeOptions, body: &[u8]) -> Result<Checked, Option<Fault>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Some(fault("160030", "包体为空")));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|_| Some(fault("160031", "参数解析失败")))?;
    let field = |name: &str| v.get(name).filter(|x| !x.is_null());
    match field("appId").and_then(Value::as_str) {
        None | Some("") => return Err(Some(fault("111169", "应用ID为空"))),
        Some(app) if app != opts.app_id => return Err(Some(fault("111181", "应用不存在"))),
        Some(_) => {}
    }
    let to = match field("to") {
        None => return Err(Some(fault("160044", "手机号为空"))),
        Some(Value::String(s)) if s.is_empty() => return Err(Some(fault("160044", "手机号为空"))),
        Some(Value::String(s)) => s.split(',').map(str::to_owned).collect::<Vec<_>>(),
        Some(_) => return Err(Some(fault("160031", "参数解析失败"))),
    };
    if to.len() > 200 {
        return Err(Some(fault("160048", "号码数超200限制")));
    }
    if to
        .iter()
        .any(|n| n.len() != 11 || Mobile::parse(n).is_err())
    {
        return Err(Some(fault("160042", "号码格式有误")));
    }
    if to.iter().collect::<HashSet<_>>().len() != to.len() {
        return Err(Some(fault("160045", "重复的号码")));
    }
    let template_id = match field("templateId") {
        Some(Value::String(s)) => s.clone(),
        _ => return Err(Some(fault("160031", "参数解析失败"))),
    };
    if template_id.is_empty() || !template_id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Some(fault("160057", "短信模板ID格式有误")));
    }
    if !opts.templates.contains(&template_id) {
        return Err(Some(fault("160032", "短信模板无效")));
    }
    let datas = match field("datas") {
        None => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|x| x.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or(Some(fault("160052", "模板变量格式有误")))?,
        Some(_) => return Err(Some(fault("160052", "模板变量格式有误"))),
    };
    let req_id = match field("reqId") {
        None => None,
        Some(Value::String(s)) if s.chars().count() <= 32 => Some(s.clone()),
        Some(_) => return Err(Some(fault("160055", "请求reqId超长"))),
    };
    Ok(Checked {
        to,
        template_id,
        datas,
        req_id,
    })
}

/// Limits that depend on what was sent before, then the message is accepted and recorded.
async fn accept(fake: &Fake, request: Checked) -> Result<FakeMessage, Fault> {
    let opts = &fake.opts;
    let now = Utc::now();
    let day = now.with_timezone(&beijing()).format("%Y%m%d").to_string();
    let message = {
        let mut inner = fake.lock();
        if let Some(req_id) = &request.req_id
            && inner.req_ids.contains(&(day.clone(), req_id.clone()))
        {
            return Err(fault("160054", "请求重复"));
        }
        // Daily counts are per number and template, per Beijing day.
        let daily_key = |number: &str| format!("{number}/{}/{day}", request.template_id);
        for number in &request.to {
            if let (Some(secs), Some(last)) =
                (opts.per_number_interval_secs, inner.last_sent.get(number))
                && (now - *last).num_milliseconds() < (secs as i64) * 1000
            {
                return Err(fault("160038", "短信验证码发送过频繁"));
            }
            if let Some(limit) = opts.daily_limit
                && inner.daily.get(&daily_key(number)).copied().unwrap_or(0) >= limit
            {
                return Err(fault("160040", "验证码超出同模板同号码天发送上限"));
            }
        }
        for number in &request.to {
            inner.last_sent.insert(number.clone(), now);
            *inner.daily.entry(daily_key(number)).or_default() += 1;
        }
        if let Some(req_id) = &request.req_id {
            inner.req_ids.insert((day.clone(), req_id.clone()));
        }
        let sid_bytes: [u8; 16] = inner.rng.random();
        let message = FakeMessage {
            sms_message_sid: crate::domain::hex_lower(&sid_bytes),
            to: request.to.join(","),
            template_id: request.template_id,
            datas: request.datas,
            req_id: request.req_id,
            date_created: now
                .with_timezone(&beijing())
                .format("%Y%m%d%H%M%S")
                .to_string(),
        };
        inner.messages.push(message.clone());
        message
    };
    if let Some(path) = &opts.record {
        let line = format!("{}\n", serde_json::to_string(&message).unwrap_or_default());
        let written = async {
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            f.write_all(line.as_bytes()).await?;
            // tokio's File hands writes to a background thread; flush waits until it is done,
            // so the line is on disk before the client gets its answer.
            f.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, path = %path.display(), "cannot record fake message");
        }
    }
    Ok(message)
}

fn success_answer(format: Format, m: &FakeMessage) -> Response {
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

fn error_answer(format: Format, code: &str, msg: &str) -> Response {
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
