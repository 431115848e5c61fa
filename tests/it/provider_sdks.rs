//! The vendors' official Python SDKs are the ground truth (installed by `./test.sh`, never
//! vendored): each sends through the simulator and is accepted, a call signed with another
//! key gets the vendor's own error code, and the SDK's signer computes exactly the
//! signature smsq's client puts on its own request.

use smsq::dev::fake::{
    FAKE_ALIYUN_ACCESS_KEY_ID, FAKE_ALIYUN_ACCESS_KEY_SECRET, FAKE_TENCENT_APP_ID,
    FAKE_TENCENT_SECRET_ID, FAKE_TENCENT_SECRET_KEY,
};
use smsq::domain::Secret;
use smsq::provider::{AliyunAccount, AliyunClient, TemplateSms, TencentAccount, TencentClient};

use crate::common::{fake_options, python_says_ok as python, spawn_fake};

async fn fake() -> smsq::dev::fake::FakeHandle {
    let mut opts = fake_options();
    opts.templates = ["1234567", "SMS_154950909"].map(String::from).to_vec();
    spawn_fake(opts).await
}

fn datas() -> Vec<String> {
    vec!["123456".to_owned(), "5".to_owned()]
}

/// `tencentcloud-sdk-python-sms` 3.1.153 (`SendSms`, 2021-01-11).
#[tokio::test]
async fn the_official_tencent_sms_sdk_agrees_with_the_simulator_and_smsq_s_signing() {
    let fake = fake().await;
    let host = fake.addr.to_string();
    let url = reqwest::Url::parse(&fake.base_url()).unwrap();
    let client = TencentClient::new(
        TencentAccount {
            base_url: &url,
            region: "ap-guangzhou",
            app_id: FAKE_TENCENT_APP_ID,
            sign_name: "腾讯云",
            secret_id: FAKE_TENCENT_SECRET_ID,
            secret_key: &Secret::new(FAKE_TENCENT_SECRET_KEY),
        },
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let datas = datas();
    let sms = TemplateSms {
        to: "13800138401",
        template_id: "1234567",
        datas: &datas,
        req_id: Some("0123456789abcdef0123456789abcdef"),
    };
    let signed = client.sign(&sms, 1_700_000_000);
    let body = String::from_utf8(signed.body.clone()).unwrap();
    let ours = signed
        .headers
        .iter()
        .find(|(k, _)| *k == "Authorization")
        .map(|(_, v)| v.rsplit("Signature=").next().unwrap().to_owned())
        .unwrap();
    let script = r#"
import json, sys
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.sms.v20210111 import sms_client, models

host, sid, key, app_id, body, ours = sys.argv[1:7]

def client(secret_key):
    http = HttpProfile(endpoint=host, protocol="http")
    return sms_client.SmsClient(credential.Credential(sid, secret_key), "ap-guangzhou", ClientProfile(httpProfile=http))

req = models.SendSmsRequest()
req.from_json_string(json.dumps({"PhoneNumberSet": ["+8613800138402"], "SmsSdkAppId": app_id,
    "TemplateId": "1234567", "SignName": "腾讯云", "TemplateParamSet": ["654321", "5"], "SessionContext": "sdk"}))
r = client(key).SendSms(req)
status = r.SendStatusSet[0]
assert status.Code == "Ok", r.to_json_string()
assert status.SerialNo.startswith("2019:") and status.SessionContext == "sdk", r.to_json_string()
try:
    client(key + "x").SendSms(req)
    sys.exit("a wrongly signed call was accepted")
except TencentCloudSDKException as e:
    assert e.code == "AuthFailure.SignatureFailure", e.code

class Req:
    uri = "/"
    method = "POST"
    data = body
    header = {"Content-Type": "application/json", "Host": host, "X-TC-Timestamp": "1700000000"}
theirs = client(key)._get_tc3_signature({}, Req(), "2023-11-14", "sms", key)
assert theirs == ours, (theirs, ours)
print("ok")
"#;
    python(
        script,
        &[
            &host,
            FAKE_TENCENT_SECRET_ID,
            FAKE_TENCENT_SECRET_KEY,
            FAKE_TENCENT_APP_ID,
            &body,
            &ours,
        ],
    )
    .await;
    let sdk = fake.messages();
    assert_eq!(sdk.len(), 1, "only the well-signed SDK call was accepted");
    assert_eq!(
        (sdk[0].kind.as_str(), sdk[0].to.as_str()),
        ("tencent", "13800138402")
    );
    assert_eq!(sdk[0].datas, ["654321", "5"]);
    // And smsq's own request, sent for real, is accepted too.
    let accepted = client.send(&sms).await.expect("smsq's request is accepted");
    assert!(accepted.message_id.starts_with("2019:"));
}

/// `alibabacloud-dysmsapi20170525` 4.6.0 on `alibabacloud-tea-openapi` 0.4.6 (ACS3-HMAC-SHA256,
/// its default).
#[tokio::test]
async fn the_official_aliyun_sdk_agrees_with_the_simulator_and_smsq_s_signing() {
    let fake = fake().await;
    let host = fake.addr.to_string();
    let url = reqwest::Url::parse(&fake.base_url()).unwrap();
    let client = AliyunClient::new(
        AliyunAccount {
            base_url: &url,
            sign_name: "阿里云短信测试",
            access_key_id: FAKE_ALIYUN_ACCESS_KEY_ID,
            access_key_secret: &Secret::new(FAKE_ALIYUN_ACCESS_KEY_SECRET),
            params: [(
                "SMS_154950909".to_owned(),
                vec!["code".to_owned(), "min".to_owned()],
            )]
            .into_iter()
            .collect(),
        },
        std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(1),
    )
    .unwrap();
    let datas = datas();
    let sms = TemplateSms {
        to: "13800138403",
        template_id: "SMS_154950909",
        datas: &datas,
        req_id: Some("0123456789abcdef0123456789abcdef"),
    };
    let date = "2023-11-14T22:13:20Z";
    let nonce = "8f14e45fceea167a5a36dedd4bea2543";
    let signed = client.sign(&sms, date, nonce);
    let ours = signed
        .headers
        .iter()
        .find(|(k, _)| *k == "Authorization")
        .map(|(_, v)| v.clone())
        .unwrap();
    let script = r#"
import sys, urllib.parse
from alibabacloud_dysmsapi20170525.client import Client
from alibabacloud_dysmsapi20170525 import models
from alibabacloud_tea_openapi import models as open_api_models
from alibabacloud_tea_openapi.utils import Utils

host, ak, secret, url, date, nonce, ours = sys.argv[1:8]

def client(s):
    return Client(open_api_models.Config(access_key_id=ak, access_key_secret=s, endpoint=host, protocol="http"))

req = models.SendSmsRequest(phone_numbers="13800138404", sign_name="阿里云短信测试",
    template_code="SMS_154950909", template_param='{"code":"654321"}', out_id="sdk")
r = client(secret).send_sms(req)
assert r.body.code == "OK", r.body
assert r.body.biz_id.endswith("^0"), r.body
try:
    client(secret + "x").send_sms(req)
    sys.exit("a wrongly signed call was accepted")
except Exception as e:
    assert getattr(e, "code", None) == "SignatureDoesNotMatch", repr(e)

class Req:
    pathname = "/"
    method = "POST"
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    headers = {"host": "dysmsapi.aliyuncs.com", "x-acs-action": "SendSms", "x-acs-version": "2017-05-25",
        "x-acs-date": date, "x-acs-signature-nonce": nonce,
        "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
Req.headers["host"] = host
theirs = Utils.get_authorization(Req(), "ACS3-HMAC-SHA256",
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ak, secret)
assert theirs == ours, (theirs, ours)
print("ok")
"#;
    python(
        script,
        &[
            &host,
            FAKE_ALIYUN_ACCESS_KEY_ID,
            FAKE_ALIYUN_ACCESS_KEY_SECRET,
            &signed.url,
            date,
            nonce,
            &ours,
        ],
    )
    .await;
    let sdk = fake.messages();
    assert_eq!(sdk.len(), 1, "only the well-signed SDK call was accepted");
    assert_eq!(
        (sdk[0].kind.as_str(), sdk[0].to.as_str()),
        ("aliyun", "13800138404")
    );
    assert_eq!(sdk[0].datas, ["654321"]);
    let accepted = client.send(&sms).await.expect("smsq's request is accepted");
    assert!(accepted.message_id.ends_with("^0"));
    let last = fake.messages().pop().unwrap();
    assert_eq!(
        last.datas,
        ["123456", "5"],
        "both of the template's named values"
    );
}
