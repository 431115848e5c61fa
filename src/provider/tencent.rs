//! Tencent Cloud SMS (`SendSms`, API 2021-01-11): a JSON `POST /` signed TC3-HMAC-SHA256
//! (`crate::tc3`), as `docs/provider.md` §Tencent describes. The answer is read in two
//! places, as the vendor answers in two: `Response.Error` for a refused request,
//! `Response.SendStatusSet[0].Code` for this number (`"Ok"`, exactly, is success).

use chrono::Utc;
use serde::{Deserialize, Serialize};

use super::error::transport;
use super::{Accepted, ClientError, Kind, SendError, TemplateSms};
use crate::domain::Secret;

pub const VERSION: &str = "2021-01-11";
pub const SERVICE: &str = "sms";

/// A Tencent Cloud account's SMS settings and its API key pair.
#[derive(Clone)]
pub struct TencentClient {
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
    region: String,
    app_id: String,
    sign_name: String,
    secret_id: String,
    secret_key: Secret,
}

impl std::fmt::Debug for TencentClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TencentClient")
            .field("url", &self.url.as_str())
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// Everything a Tencent account is made of.
pub struct TencentAccount<'a> {
    pub base_url: &'a reqwest::Url,
    pub region: &'a str,
    /// `SmsSdkAppId`.
    pub app_id: &'a str,
    pub sign_name: &'a str,
    pub secret_id: &'a str,
    pub secret_key: &'a Secret,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Body<'a> {
    phone_number_set: [String; 1],
    sms_sdk_app_id: &'a str,
    template_id: &'a str,
    sign_name: &'a str,
    template_param_set: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    session_context: Option<&'a str>,
}

/// A signed request: the exact bytes and the headers that sign them (tests check these
/// against the official SDK's signer).
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl TencentClient {
    pub fn new(
        account: TencentAccount<'_>,
        timeout: std::time::Duration,
        connect_timeout: std::time::Duration,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            http: super::http_client(timeout, connect_timeout)?,
            host: super::host_header(account.base_url),
            url: account.base_url.clone(),
            region: account.region.to_owned(),
            app_id: account.app_id.to_owned(),
            sign_name: account.sign_name.to_owned(),
            secret_id: account.secret_id.to_owned(),
            secret_key: account.secret_key.clone(),
        })
    }

    /// The request for `sms`, signed at `timestamp` (Unix seconds).
    pub fn sign(&self, sms: &TemplateSms<'_>, timestamp: i64) -> SignedRequest {
        let body = serde_json::to_vec(&Body {
            phone_number_set: [format!("+86{}", sms.to)],
            sms_sdk_app_id: &self.app_id,
            template_id: sms.template_id,
            sign_name: &self.sign_name,
            template_param_set: sms.datas,
            session_context: sms.req_id,
        })
        .expect("strings always serialize");
        let authorization = crate::tc3::authorization(
            &self.secret_id,
            self.secret_key.expose(),
            SERVICE,
            &self.host,
            &body,
            timestamp,
        );
        SignedRequest {
            headers: vec![
                ("Content-Type", crate::tc3::CONTENT_TYPE.to_owned()),
                ("X-TC-Action", "SendSms".to_owned()),
                ("X-TC-Version", VERSION.to_owned()),
                ("X-TC-Timestamp", timestamp.to_string()),
                ("X-TC-Region", self.region.clone()),
                ("Authorization", authorization),
            ],
            body,
        }
    }

    pub async fn send(&self, sms: &TemplateSms<'_>) -> Result<Accepted, SendError> {
        let signed = self.sign(sms, Utc::now().timestamp());
        let mut request = self.http.post(self.url.clone()).body(signed.body);
        for (name, value) in &signed.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        if status != 200 {
            // The SDK's ServerNetworkError: the gateway answers every API error with a 200.
            return Err(SendError::Http { status });
        }
        parse_answer(&text)
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "Response")]
    response: Answer,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    error: Option<Coded>,
    send_status_set: Option<Vec<SendStatus>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Coded {
    code: String,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SendStatus {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    serial_no: String,
}

/// Reads a 200 answer: `Error` first, then this number's entry; neither is malformed.
pub(crate) fn parse_answer(body: &str) -> Result<Accepted, SendError> {
    let Envelope { response } =
        serde_json::from_str(body).map_err(|e| SendError::Malformed(e.to_string()))?;
    let rejected = |c: Coded| SendError::Rejected {
        kind: Kind::Tencent,
        code: c.code,
        message: c.message,
    };
    if let Some(error) = response.error {
        return Err(rejected(error));
    }
    let Some(status) = response.send_status_set.and_then(|s| s.into_iter().next()) else {
        return Err(SendError::Malformed(
            "Response without Error or SendStatusSet".to_owned(),
        ));
    };
    match status.code.as_str() {
        "Ok" if !status.serial_no.is_empty() => Ok(Accepted {
            message_id: status.serial_no,
            date_created: String::new(),
        }),
        "Ok" => Err(SendError::Malformed("Ok without a SerialNo".to_owned())),
        _ => Err(rejected(Coded {
            code: status.code,
            message: status.message,
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> TencentClient {
        let url = reqwest::Url::parse(url).unwrap();
        TencentClient::new(
            TencentAccount {
                base_url: &url,
                region: "ap-guangzhou",
                app_id: "1400006666",
                sign_name: "腾讯云",
                secret_id: "AKIDEXAMPLEsecretid00000000000000000",
                secret_key: &Secret::new("EXAMPLEsecretkey0000000000000000"),
            },
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        )
        .unwrap()
    }

    /// Vector B of the reference (`../shared/tencent-sms.md` §2.4): the same inputs with a
    /// compact, raw-UTF-8 body, computed with the SDK's own code path.
    #[test]
    fn the_signature_is_the_reference_vector() {
        let c = client("https://sms.tencentcloudapi.com");
        let datas = ["123456".to_owned(), "5".to_owned()];
        let sms = TemplateSms {
            to: "13800138000",
            template_id: "1234567",
            datas: &datas,
            req_id: None,
        };
        let signed = c.sign(&sms, 1_700_000_000);
        assert_eq!(
            String::from_utf8(signed.body).unwrap(),
            r#"{"PhoneNumberSet":["+8613800138000"],"SmsSdkAppId":"1400006666","TemplateId":"1234567","SignName":"腾讯云","TemplateParamSet":["123456","5"]}"#
        );
        let auth = &signed.headers.last().unwrap().1;
        assert_eq!(
            auth,
            "TC3-HMAC-SHA256 Credential=AKIDEXAMPLEsecretid00000000000000000/2023-11-14/sms/tc3_request, SignedHeaders=content-type;host, Signature=f2ce919e232dafd2330cf4a532847c36d826579abe4d31146646d6ea6318dfe4"
        );
        assert!(!format!("{c:?}").contains("EXAMPLEsecretkey"));
    }

    #[test]
    fn answers_are_read_in_both_places() {
        let ok = parse_answer(r#"{"Response":{"SendStatusSet":[{"SerialNo":"5000:1045710669157053657849499619","PhoneNumber":"+8618511122233","Fee":1,"SessionContext":"test","Code":"Ok","Message":"send success","IsoCode":"CN"}],"RequestId":"a0aabda6"}}"#).unwrap();
        assert_eq!(ok.message_id, "5000:1045710669157053657849499619");
        let number = parse_answer(
            r#"{"Response":{"SendStatusSet":[{"SerialNo":"","PhoneNumber":"+8618501234444","Fee":0,"Code":"LimitExceeded.PhoneNumberDailyLimit","Message":"x","IsoCode":""}],"RequestId":"4e"}}"#,
        );
        assert!(
            matches!(number, Err(SendError::Rejected { ref code, .. }) if code == "LimitExceeded.PhoneNumberDailyLimit")
        );
        let request = parse_answer(
            r#"{"Response":{"Error":{"Code":"AuthFailure.SignatureFailure","Message":"no"},"RequestId":"ed"}}"#,
        );
        assert!(
            matches!(request, Err(SendError::Rejected { kind: Kind::Tencent, ref code, .. }) if code == "AuthFailure.SignatureFailure")
        );
        for garbage in [
            r#"{"Response":{"RequestId":"x"}}"#,
            "<html/>",
            r#"{"Response":{"SendStatusSet":[{"Code":"Ok"}]}}"#,
        ] {
            assert!(
                matches!(parse_answer(garbage), Err(SendError::Malformed(_))),
                "{garbage}"
            );
        }
    }
}
