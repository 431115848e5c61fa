//! `smsq fake-captcha`: one simulator of the captcha vendors smsq checks with — Tencent
//! Captcha's `DescribeCaptchaResult` (TC3-HMAC-SHA256 checked as Tencent checks it), GeeTest
//! v4's `/validate` (its `sign_token` checked), Cloudflare Turnstile's and hCaptcha's
//! `siteverify` — answering in each vendor's shapes and codes.
//!
//! A test (or the demo page) plays the widget with `POST /_fake/solve {"vendor": "…"}`: the
//! answer is the `captcha` object a real widget hands the page, valid once for 5 minutes.
//! `POST /_fake/mode {"down": true, "delay_ms": 0}` makes the vendor fail.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::captcha::vendor::geetest_sign;

#[derive(Debug, Clone, clap::Args)]
pub struct FakeCaptchaOptions {
    #[arg(long, default_value = "127.0.0.1:8890")]
    pub listen: SocketAddr,
    /// Tencent's CaptchaAppId / GeeTest's captcha_id.
    #[arg(long, env = "SMSQ_CAPTCHA__APP_ID", default_value = "2000000001")]
    pub app_id: String,
    /// Tencent's AppSecretKey / GeeTest's captcha_key / Turnstile's and hCaptcha's secret.
    #[arg(long, env = "SMSQ_CAPTCHA_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The Tencent Cloud API key pair that must sign DescribeCaptchaResult.
    #[arg(
        long,
        env = "SMSQ_CAPTCHA_SECRET_ID",
        default_value = "AKIDfakecaptcha"
    )]
    pub secret_id: String,
    #[arg(
        long,
        env = "SMSQ_CAPTCHA_SECRET_KEY",
        hide_env_values = true,
        default_value = "fake-captcha-secret-key"
    )]
    pub secret_key: String,
}

const TTL: Duration = Duration::from_secs(300);

struct Issued {
    vendor: &'static str,
    /// Tencent's randstr, GeeTest's captcha_output + pass_token + gen_time.
    with: Vec<String>,
    at: Instant,
    used: bool,
}

#[derive(Default)]
struct Mode {
    down: bool,
    delay_ms: u64,
}

#[derive(Clone)]
struct Fake {
    opts: Arc<FakeCaptchaOptions>,
    issued: Arc<Mutex<HashMap<String, Issued>>>,
    mode: Arc<Mutex<Mode>>,
    checks: Arc<Mutex<u64>>,
}

pub struct FakeCaptchaHandle {
    pub addr: SocketAddr,
    fake: Fake,
    stop: CancellationToken,
}

impl FakeCaptchaHandle {
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The checks the vendors were asked, in all.
    pub fn checks(&self) -> u64 {
        *self.fake.checks.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Drop for FakeCaptchaHandle {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn spawn(opts: FakeCaptchaOptions) -> std::io::Result<FakeCaptchaHandle> {
    let listener = TcpListener::bind(opts.listen).await?;
    let addr = listener.local_addr()?;
    let fake = Fake {
        opts: Arc::new(opts),
        issued: Default::default(),
        mode: Default::default(),
        checks: Default::default(),
    };
    let app = Router::new()
        .route("/", post(tencent))
        .route("/validate", post(geetest))
        .route("/turnstile/v0/siteverify", post(siteverify))
        .route("/siteverify", post(siteverify))
        .route("/_fake/solve", post(solve))
        .route("/_fake/mode", post(mode))
        .with_state(fake.clone());
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "fake captcha vendor stopped");
        }
    });
    Ok(FakeCaptchaHandle { addr, fake, stop })
}

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    crate::domain::hex(&v)
}

/// Plays the widget: what the page would get after a person passed the challenge.
async fn solve(State(f): State<Fake>, body: Bytes) -> Response {
    let vendor = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|v| v["vendor"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let (vendor, key, with, answer): (&'static str, String, Vec<String>, Value) = match vendor
        .as_str()
    {
        "tencent" => {
            let (ticket, randstr) = (
                format!("t03{}", random_hex(24)),
                format!("@{}", &random_hex(3)),
            );
            (
                "tencent",
                ticket.clone(),
                vec![randstr.clone()],
                json!({"ticket": ticket, "randstr": randstr}),
            )
        }
        "geetest" => {
            let lot = random_hex(16);
            let (output, pass) = (random_hex(32), random_hex(32));
            let gen_time = chrono::Utc::now().timestamp().to_string();
            (
                "geetest",
                lot.clone(),
                vec![output.clone(), pass.clone(), gen_time.clone()],
                json!({"lot_number": lot, "captcha_output": output, "pass_token": pass, "gen_time": gen_time}),
            )
        }
        "turnstile" | "hcaptcha" => {
            let token = format!("0.{}", random_hex(40));
            ("token", token.clone(), Vec::new(), json!({"token": token}))
        }
        _ => {
            return (
                StatusCode::BAD_REQUEST,
                "vendor: tencent, geetest, turnstile or hcaptcha",
            )
                .into_response();
        }
    };
    let issued = Issued {
        vendor,
        with,
        at: Instant::now(),
        used: false,
    };
    f.issued
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(key, issued);
    axum::Json(answer).into_response()
}

async fn mode(State(f): State<Fake>, body: Bytes) -> StatusCode {
    let v: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut m = f.mode.lock().unwrap_or_else(|p| p.into_inner());
    m.down = v["down"].as_bool().unwrap_or(false);
    m.delay_ms = v["delay_ms"].as_u64().unwrap_or(0);
    StatusCode::NO_CONTENT
}

/// The faults set by `/_fake/mode`: `Some` answer when the vendor is down.
async fn faults(f: &Fake) -> Option<Response> {
    *f.checks.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    let (down, delay) = {
        let m = f.mode.lock().unwrap_or_else(|p| p.into_inner());
        (m.down, m.delay_ms)
    };
    if delay > 0 {
        tokio::time::sleep(Duration::from_millis(delay)).await;
    }
    down.then(|| (StatusCode::SERVICE_UNAVAILABLE, "vendor down").into_response())
}

/// Why a token does not pass: `None` = it passes (and is now used).
fn redeem(f: &Fake, vendor: &str, key: &str, with: &[&str]) -> Option<&'static str> {
    let mut issued = f.issued.lock().unwrap_or_else(|p| p.into_inner());
    let Some(i) = issued.get_mut(key).filter(|i| i.vendor == vendor) else {
        return Some("unknown");
    };
    if i.used {
        return Some("used");
    }
    if i.at.elapsed() > TTL {
        return Some("expired");
    }
    if i.with.iter().map(String::as_str).ne(with.iter().copied()) {
        return Some("mismatch");
    }
    i.used = true;
    None
}

fn tencent_error(code: &str, message: &str) -> Response {
    axum::Json(json!({"Response": {"Error": {"Code": code, "Message": message}, "RequestId": random_hex(16)}}))
        .into_response()
}

/// `DescribeCaptchaResult`, checked as Tencent Cloud checks any API v3 call.
async fn tencent(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(down) = faults(&f).await {
        return down;
    }
    let header = |k: &str| headers.get(k).and_then(|v| v.to_str().ok()).unwrap_or("");
    if header("X-TC-Action") != "DescribeCaptchaResult" {
        return tencent_error("InvalidAction", "the action does not exist");
    }
    if header("X-TC-Version") != "2019-07-22" {
        return tencent_error("NoSuchVersion", "the version does not exist");
    }
    let Some(claimed) = crate::tc3::parse(header("Authorization")) else {
        return tencent_error(
            "AuthFailure.InvalidAuthorization",
            "Authorization is not TC3-HMAC-SHA256",
        );
    };
    if claimed.secret_id != f.opts.secret_id {
        return tencent_error(
            "AuthFailure.SecretIdNotFound",
            "the SecretId does not exist",
        );
    }
    let Ok(timestamp) = header("X-TC-Timestamp").parse::<i64>() else {
        return tencent_error(
            "AuthFailure.InvalidAuthorization",
            "X-TC-Timestamp is missing",
        );
    };
    if (chrono::Utc::now().timestamp() - timestamp).abs() > 300 {
        return tencent_error("AuthFailure.SignatureExpire", "the signature expired");
    }
    let expected = crate::tc3::signature(
        &f.opts.secret_key,
        "captcha",
        header("Host"),
        &body,
        timestamp,
    );
    let signed_right = claimed.signed_headers == "content-type;host"
        && claimed.service == "captcha"
        && claimed.date == crate::tc3::date(timestamp)
        && header("Content-Type") == crate::tc3::CONTENT_TYPE
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            claimed.signature.as_bytes(),
        ));
    if !signed_right {
        return tencent_error(
            "AuthFailure.SignatureFailure",
            "the signature does not match",
        );
    }
    let Ok(req) = serde_json::from_slice::<Value>(&body) else {
        return tencent_error("InvalidParameter", "the body is not JSON");
    };
    let answer = |code: i64, msg: &str| {
        axum::Json(json!({"Response": {
            "CaptchaCode": code, "CaptchaMsg": msg, "EvilLevel": 0,
            "GetCaptchaTime": 0, "RequestId": random_hex(16)}}))
        .into_response()
    };
    if req["CaptchaType"].as_i64() != Some(9) {
        return tencent_error("InvalidParameterValue", "CaptchaType must be 9");
    }
    if req["CaptchaAppId"].as_u64().map(|v| v.to_string()) != Some(f.opts.app_id.clone()) {
        return answer(16, "appid-ticket mismatch");
    }
    if req["AppSecretKey"].as_str() != Some(f.opts.secret.as_str()) {
        return answer(100, "appid-secretkey-ticket mismatch");
    }
    let (ticket, randstr) = (
        req["Ticket"].as_str().unwrap_or(""),
        req["Randstr"].as_str().unwrap_or(""),
    );
    match redeem(&f, "tencent", ticket, &[randstr]) {
        None => answer(1, "OK"),
        Some("mismatch") => answer(7, "captcha no match"),
        Some("expired") => answer(8, "ticket expired"),
        Some("used") => answer(9, "ticket reused"),
        Some(_) => answer(15, "decrypt fail"),
    }
}

/// GeeTest v4 `/validate`.
async fn geetest(
    State(f): State<Fake>,
    Query(q): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if let Some(down) = faults(&f).await {
        return down;
    }
    if q.get("captcha_id") != Some(&f.opts.app_id) {
        return axum::Json(
            json!({"status": "error", "code": "-50005", "msg": "illegal captcha_id"}),
        )
        .into_response();
    }
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or("");
    let fail = |reason: &str| {
        axum::Json(json!({"status": "success", "result": "fail", "reason": reason})).into_response()
    };
    let sign = geetest_sign(&f.opts.secret, field("lot_number"));
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        sign.as_bytes(),
        field("sign_token").as_bytes(),
    )) {
        return fail("sign_token error");
    }
    let with = [
        field("captcha_output"),
        field("pass_token"),
        field("gen_time"),
    ];
    match redeem(&f, "geetest", field("lot_number"), &with) {
        None => axum::Json(json!({"status": "success", "result": "success", "reason": "",
            "captcha_args": {"used_type": "slide", "user_ip": "", "lot_number": field("lot_number")}}))
        .into_response(),
        Some("used") => fail("pass_token used"),
        Some("expired") => fail("pass_token expire"),
        Some(_) => fail("pass_token error"),
    }
}

/// Turnstile's and hCaptcha's `siteverify` (form or JSON).
async fn siteverify(State(f): State<Fake>, headers: HeaderMap, body: Bytes) -> Response {
    if let Some(down) = faults(&f).await {
        return down;
    }
    let json = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let form: HashMap<String, String> = if json {
        serde_json::from_slice(&body).unwrap_or_default()
    } else {
        serde_urlencoded::from_bytes(&body).unwrap_or_default()
    };
    let refuse =
        |code: &str| axum::Json(json!({"success": false, "error-codes": [code]})).into_response();
    match form.get("secret") {
        None => return refuse("missing-input-secret"),
        Some(s) if *s != f.opts.secret => return refuse("invalid-input-secret"),
        Some(_) => {}
    }
    let Some(token) = form.get("response") else {
        return refuse("missing-input-response");
    };
    match redeem(&f, "token", token, &[]) {
        None => axum::Json(
            json!({"success": true, "challenge_ts": chrono::Utc::now().to_rfc3339(),
            "hostname": "localhost", "error-codes": []}),
        )
        .into_response(),
        Some("used" | "expired") => refuse("timeout-or-duplicate"),
        Some(_) => refuse("invalid-input-response"),
    }
}
