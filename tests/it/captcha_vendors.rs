//! Vendor captchas checked server-side (issue 18 item 1), through `smsq fake-captcha`, which
//! checks signatures and secrets as each vendor does: a widget's pass works once, anything a
//! script makes up does not, a vendor down fails closed (or open, when configured), and the
//! official Tencent Cloud SDK agrees with smsq's TC3 signing.

use std::time::Duration;

use serde_json::{Value, json};
use smsq::config::CaptchaSecrets;
use smsq::dev::fake_captcha::{FakeCaptchaHandle, FakeCaptchaOptions};
use smsq::domain::Secret;

use crate::common::{App, logs, settings, spawn_app};

const APP_ID: &str = "2000000001";
const SECRET: &str = "vendor-app-secret-0123456789";
const SECRET_ID: &str = "AKIDsmsqtest0000000000000000";
const SECRET_KEY: &str = "smsq-test-tc3-secret-key";

async fn vendor() -> FakeCaptchaHandle {
    smsq::dev::fake_captcha::spawn(FakeCaptchaOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        app_id: APP_ID.into(),
        secret: SECRET.into(),
        secret_id: SECRET_ID.into(),
        secret_key: SECRET_KEY.into(),
    })
    .await
    .unwrap()
}

/// The API with `provider` checked at `fake`, captchas required; `secret_key` signs Tencent.
async fn app_with(
    provider: &str,
    fake: &FakeCaptchaHandle,
    secret_key: &str,
    fail_open: bool,
) -> App {
    let url = match provider {
        "tencent" => format!("{}/", fake.base_url()),
        "geetest" => format!("{}/validate", fake.base_url()),
        "turnstile" => format!("{}/turnstile/v0/siteverify", fake.base_url()),
        _ => format!("{}/siteverify", fake.base_url()),
    };
    let mut s = settings(|c| {
        c.captcha.provider = provider.into();
        c.captcha.required = true;
        c.captcha.app_id = APP_ID.into();
        c.captcha.vendor_url = url;
        c.captcha.vendor_timeout_ms = 500;
        c.captcha.fail_open = fail_open;
    });
    s.secrets.captcha = CaptchaSecrets {
        secret: Some(Secret::new(SECRET)),
        secret_id: Some(SECRET_ID.into()),
        secret_key: Some(Secret::new(secret_key)),
    };
    spawn_app(s).await
}

/// What the vendor's widget gives the page after a person passed it.
async fn widget(fake: &FakeCaptchaHandle, vendor: &str) -> Value {
    reqwest::Client::new()
        .post(format!("{}/_fake/solve", fake.base_url()))
        .json(&json!({"vendor": vendor}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn set_mode(fake: &FakeCaptchaHandle, mode: Value) {
    reqwest::Client::new()
        .post(format!("{}/_fake/mode", fake.base_url()))
        .json(&mode)
        .send()
        .await
        .unwrap();
}

async fn issue(app: &App, mobile: &str, captcha: Value) -> (u16, String) {
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": mobile, "client_ip": "203.0.113.9", "captcha": captcha}),
        )
        .await;
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn each_vendor_s_pass_works_once_and_nothing_a_script_makes_up_passes() {
    let fake = vendor().await;
    for (i, provider) in ["tencent", "geetest", "turnstile", "hcaptcha"]
        .into_iter()
        .enumerate()
    {
        let app = app_with(provider, &fake, SECRET_KEY, false).await;
        let mobile = |n: u64| smsq::dev::bench::mobile(100 * i as u64 + n);
        let pass = widget(&fake, provider).await;
        assert_eq!(
            issue(&app, &mobile(0), pass.clone()).await.0,
            202,
            "{provider}: a real pass"
        );
        assert_eq!(
            issue(&app, &mobile(1), pass).await,
            (400, "invalid_captcha".to_owned()),
            "{provider}: the same pass again"
        );
        // A script without the widget: made-up fields of the right shape, never a pass.
        let forged = match provider {
            "tencent" => json!({"ticket": "t03forged", "randstr": "@xyz"}),
            "geetest" => {
                json!({"lot_number": "00ff", "captcha_output": "x", "pass_token": "y", "gen_time": "1700000000"})
            }
            _ => json!({"token": "0.forged"}),
        };
        for n in 2..22 {
            assert_eq!(
                issue(&app, &mobile(n), forged.clone()).await,
                (400, "invalid_captcha".to_owned()),
                "{provider}"
            );
        }
        // No captcha, or the built-in one's fields, or another vendor's: refused.
        let (status, body) = app.call("/v1/codes", json!({"mobile": mobile(30)})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_captcha"))
        );
        let other = if provider == "tencent" {
            widget(&fake, "turnstile").await
        } else {
            widget(&fake, "tencent").await
        };
        assert_eq!(
            issue(&app, &mobile(31), other).await.0,
            400,
            "{provider}: another vendor's pass"
        );
    }
}

#[tokio::test]
async fn a_tencent_pass_with_the_wrong_randstr_or_mixed_fields_is_refused() {
    let fake = vendor().await;
    let app = app_with("tencent", &fake, SECRET_KEY, false).await;
    let pass = widget(&fake, "tencent").await;
    let wrong = json!({"ticket": pass["ticket"], "randstr": "@not"});
    assert_eq!(issue(&app, "13900000001", wrong).await.0, 400);
    let mixed = json!({"ticket": pass["ticket"], "randstr": pass["randstr"], "token": "x"});
    assert_eq!(
        issue(&app, "13900000002", mixed).await,
        (400, "invalid_captcha".to_owned())
    );
}

#[tokio::test]
async fn a_vendor_down_or_slow_fails_closed_by_default_and_open_when_configured() {
    smsq::metrics::install();
    let fake = vendor().await;
    let closed = app_with("turnstile", &fake, SECRET_KEY, false).await;
    let open = app_with("turnstile", &fake, SECRET_KEY, true).await;
    set_mode(&fake, json!({"down": true})).await;
    let pass = widget(&fake, "turnstile").await;
    assert_eq!(
        issue(&closed, "13900000011", pass.clone()).await,
        (503, "captcha_unavailable".to_owned())
    );
    assert_eq!(
        issue(&open, "13900000012", pass.clone()).await.0,
        202,
        "fail_open lets it through"
    );
    // Slower than captcha.vendor_timeout_ms (500) is down too.
    set_mode(&fake, json!({"delay_ms": 1500})).await;
    let started = std::time::Instant::now();
    assert_eq!(
        issue(&closed, "13900000013", pass).await,
        (503, "captcha_unavailable".to_owned())
    );
    assert!(
        started.elapsed() < Duration::from_millis(1400),
        "{:?}",
        started.elapsed()
    );
    set_mode(&fake, json!({})).await;
    let metrics = smsq::metrics::render(None);
    for outcome in ["unavailable_refused", "unavailable_allowed"] {
        assert!(
            metrics.contains(&format!(
                r#"smsq_captcha_checks_total{{provider="turnstile",outcome="{outcome}"}}"#
            )),
            "{outcome}: {metrics}"
        );
    }
}

#[tokio::test]
async fn a_wrong_tencent_key_is_the_vendor_s_signature_failure_and_logged_as_smsq_s_fault() {
    let fake = vendor().await;
    let app = app_with("tencent", &fake, "not-the-key", false).await;
    let pass = widget(&fake, "tencent").await;
    assert_eq!(
        issue(&app, "13900000021", pass).await,
        (503, "captcha_unavailable".to_owned())
    );
    let line = logs()
        .lines()
        .find(|l| {
            l.contains("refused smsq's credentials") && l.contains("AuthFailure.SignatureFailure")
        })
        .map(str::to_owned)
        .expect("the credentials fault is logged");
    assert!(
        !line.contains(SECRET) && !line.contains("not-the-key"),
        "{line}"
    );
}

/// The official Tencent Cloud SDK (`tencentcloud-sdk-python-captcha`, installed by
/// `./test.sh`): its signed `DescribeCaptchaResult` is accepted by the simulator, the same
/// call signed with another key gets Tencent's own `AuthFailure.SignatureFailure`, and its
/// signer computes the signature smsq computes.
#[tokio::test]
async fn the_official_tencent_sdk_agrees_with_the_simulator_and_smsq_s_signing() {
    let fake = vendor().await;
    let pass = widget(&fake, "tencent").await;
    let host = fake.addr.to_string();
    let payload = r#"{"CaptchaType": 9, "Ticket": "t"}"#;
    let ours = smsq::tc3::signature(
        SECRET_KEY,
        "captcha",
        &host,
        payload.as_bytes(),
        1_700_000_000,
    );
    let script = r#"
import json, sys
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.abstract_client import AbstractClient
from tencentcloud.captcha.v20190722 import captcha_client, models

host, sid, key, ticket, randstr, app_id, secret, payload, ours = sys.argv[1:10]

def client(secret_key):
    http = HttpProfile(endpoint=host, protocol="http")
    return captcha_client.CaptchaClient(credential.Credential(sid, secret_key), "", ClientProfile(httpProfile=http))

req = models.DescribeCaptchaResultRequest()
req.from_json_string(json.dumps({"CaptchaType": 9, "Ticket": ticket, "Randstr": randstr,
    "UserIp": "203.0.113.9", "CaptchaAppId": int(app_id), "AppSecretKey": secret}))
r = client(key).DescribeCaptchaResult(req)
assert r.CaptchaCode == 1, r.to_json_string()
try:
    client(key + "x").DescribeCaptchaResult(req)
    sys.exit("a wrongly signed call was accepted")
except TencentCloudSDKException as e:
    assert e.code == "AuthFailure.SignatureFailure", e.code

class Req:
    uri = "/"
    method = "POST"
    data = payload
    header = {"Content-Type": "application/json", "Host": host, "X-TC-Timestamp": "1700000000"}
c = client(key)
theirs = c._get_tc3_signature({}, Req(), "2023-11-14", "captcha", key)
assert theirs == ours, (theirs, ours)
print("ok")
"#;
    let args = [
        host.as_str(),
        SECRET_ID,
        SECRET_KEY,
        pass["ticket"].as_str().unwrap(),
        pass["randstr"].as_str().unwrap(),
        APP_ID,
        SECRET,
        payload,
        ours.as_str(),
    ];
    crate::common::python_says_ok(script, &args).await;
}
