//! Aliyun SMS (Dysmsapi `SendSms`, 2017-05-25), signed ACS3-HMAC-SHA256 as the official SDK
//! signs by default (`docs/provider.md` §Aliyun): the parameters in the query string, no
//! body, the common data in signed `x-acs-*` headers. `Code == "OK"` is success; a gateway
//! error (signature, key, throttling) comes as a 4xx/5xx whose JSON `Code` is classified
//! like any other.

use chrono::Utc;
use hmac::{Hmac, Mac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::error::transport;
use super::{Accepted, ClientError, Kind, SendError, TemplateSms};
use crate::domain::Secret;

pub const VERSION: &str = "2017-05-25";
/// SHA-256 of the empty body.
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// The headers smsq signs: the minimum the vendor's V3 document names.
const SIGNED: &str =
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version";

/// RFC 3986: everything but `A-Z a-z 0-9 - _ . ~` as `%XX`, upper-case.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn percent_encode(s: &str) -> String {
    utf8_percent_encode(s, RFC3986).to_string()
}

fn sha256_hex(data: &[u8]) -> String {
    crate::domain::hex(&Sha256::digest(data))
}

/// `k=enc(v)` pairs sorted by key and joined by `&`: the canonical query and the URL's.
pub fn canonical_query(params: &[(&str, String)]) -> String {
    let mut pairs: Vec<_> = params
        .iter()
        .map(|(k, v)| (percent_encode(k), percent_encode(v)))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The V3 signature (hex) of a request: its method, canonical query, the signed headers
/// (lower-case names, sorted, with their values) and the body's hash.
pub fn signature(
    secret: &str,
    method: &str,
    query: &str,
    headers: &[(&str, &str)],
    payload_sha256: &str,
) -> String {
    let mut headers: Vec<(String, &str)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim()))
        .collect();
    headers.sort();
    let canonical_headers: String = headers.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    let canonical = format!(
        "{method}\n/\n{query}\n{canonical_headers}\n{}\n{payload_sha256}",
        signed.join(";")
    );
    let to_sign = format!("ACS3-HMAC-SHA256\n{}", sha256_hex(canonical.as_bytes()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(to_sign.as_bytes());
    crate::domain::hex(&mac.finalize().into_bytes())
}

/// What an ACS3 `Authorization` header claims.
#[derive(Debug, PartialEq, Eq)]
pub struct Claimed<'a> {
    pub access_key_id: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

pub fn parse_authorization(header: &str) -> Option<Claimed<'_>> {
    let rest = header.strip_prefix("ACS3-HMAC-SHA256 ")?;
    let (mut id, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => id = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return None,
        }
    }
    Some(Claimed {
        access_key_id: id?,
        signed_headers: signed?,
        signature: signature?,
    })
}

/// An Aliyun account's SMS settings and its AccessKey.
#[derive(Clone)]
pub struct AliyunClient {
    http: reqwest::Client,
    url: reqwest::Url,
    host: String,
    sign_name: String,
    access_key_id: String,
    access_key_secret: Secret,
    /// Each template's variable names, by TemplateCode (`TemplateParam` is a JSON object).
    params: std::collections::BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for AliyunClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AliyunClient")
            .field("url", &self.url.as_str())
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

pub struct AliyunAccount<'a> {
    pub base_url: &'a reqwest::Url,
    pub sign_name: &'a str,
    pub access_key_id: &'a str,
    pub access_key_secret: &'a Secret,
    pub params: std::collections::BTreeMap<String, Vec<String>>,
}

/// A signed request: its URL (the query carries the parameters) and headers.
#[derive(Debug, Clone)]
pub struct SignedRequest {
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
}

/// The variable names of a template with no `params` entry: a code template's `${code}`.
const DEFAULT_PARAMS: &[&str] = &["code"];

impl AliyunClient {
    pub fn new(
        account: AliyunAccount<'_>,
        timeout: std::time::Duration,
        connect_timeout: std::time::Duration,
    ) -> Result<Self, ClientError> {
        Ok(Self {
            http: super::http_client(timeout, connect_timeout)?,
            host: super::host_header(account.base_url),
            url: account.base_url.clone(),
            sign_name: account.sign_name.to_owned(),
            access_key_id: account.access_key_id.to_owned(),
            access_key_secret: account.access_key_secret.clone(),
            params: account.params,
        })
    }

    /// `{"name": value, …}`: the template's names paired with the values in order (values
    /// beyond its names are not sent; a name without a value is refused by the vendor).
    fn template_param(&self, sms: &TemplateSms<'_>) -> String {
        let names: Vec<&str> = match self.params.get(sms.template_id) {
            Some(names) => names.iter().map(String::as_str).collect(),
            None => DEFAULT_PARAMS.to_vec(),
        };
        let object: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .zip(sms.datas)
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(v.as_str())))
            .collect();
        serde_json::Value::Object(object).to_string()
    }

    /// The request for `sms`, signed at `date` (`yyyy-MM-ddTHH:mm:ssZ`) with `nonce`.
    pub fn sign(&self, sms: &TemplateSms<'_>, date: &str, nonce: &str) -> SignedRequest {
        let mut params = vec![
            ("PhoneNumbers", sms.to.to_owned()),
            ("SignName", self.sign_name.clone()),
            ("TemplateCode", sms.template_id.to_owned()),
            ("TemplateParam", self.template_param(sms)),
        ];
        if let Some(req_id) = sms.req_id {
            params.push(("OutId", req_id.to_owned()));
        }
        let query = canonical_query(&params);
        let headers = [
            ("host", self.host.as_str()),
            ("x-acs-action", "SendSms"),
            ("x-acs-content-sha256", EMPTY_SHA256),
            ("x-acs-date", date),
            ("x-acs-signature-nonce", nonce),
            ("x-acs-version", VERSION),
        ];
        let signature = signature(
            self.access_key_secret.expose(),
            "POST",
            &query,
            &headers,
            EMPTY_SHA256,
        );
        let mut base = self.url.as_str().trim_end_matches('/').to_owned();
        base.push_str("/?");
        base.push_str(&query);
        SignedRequest {
            url: base,
            headers: vec![
                ("x-acs-action", "SendSms".to_owned()),
                ("x-acs-content-sha256", EMPTY_SHA256.to_owned()),
                ("x-acs-date", date.to_owned()),
                ("x-acs-signature-nonce", nonce.to_owned()),
                ("x-acs-version", VERSION.to_owned()),
                ("Accept", "application/json".to_owned()),
                (
                    "Authorization",
                    format!(
                        "ACS3-HMAC-SHA256 Credential={},SignedHeaders={SIGNED},Signature={signature}",
                        self.access_key_id
                    ),
                ),
            ],
        }
    }

    pub async fn send(&self, sms: &TemplateSms<'_>) -> Result<Accepted, SendError> {
        let date = Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
        let nonce = crate::domain::hex(&rand::random::<[u8; 16]>());
        let signed = self.sign(sms, &date, &nonce);
        let mut request = self.http.post(&signed.url);
        for (name, value) in &signed.headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.map_err(transport)?;
        let status = response.status().as_u16();
        let text = response.text().await.map_err(transport)?;
        parse_answer(status, &text)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    code: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    biz_id: Option<String>,
}

/// A 200 answer, or a gateway error whose JSON names its code (any other is an HTTP error).
pub(crate) fn parse_answer(status: u16, body: &str) -> Result<Accepted, SendError> {
    let answer = serde_json::from_str::<Answer>(body);
    if status != 200 {
        return match answer {
            Ok(a) if (400..500).contains(&status) => Err(SendError::Rejected {
                kind: Kind::Aliyun,
                code: a.code,
                message: a.message,
            }),
            _ => Err(SendError::Http { status }),
        };
    }
    let answer = answer.map_err(|e| SendError::Malformed(e.to_string()))?;
    match (answer.code.as_str(), answer.biz_id) {
        ("OK", Some(biz_id)) if !biz_id.is_empty() => Ok(Accepted {
            message_id: biz_id,
            date_created: String::new(),
        }),
        ("OK", _) => Err(SendError::Malformed("OK without a BizId".to_owned())),
        _ => Err(SendError::Rejected {
            kind: Kind::Aliyun,
            code: answer.code,
            message: answer.message,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The V3 worked example of the reference (`../shared/aliyun-sms.md` §3.3), computed with
    /// the official SDK's `get_authorization`.
    #[test]
    fn the_signature_is_the_reference_vector() {
        let url = reqwest::Url::parse("https://dysmsapi.aliyuncs.com").unwrap();
        let c = AliyunClient::new(
            AliyunAccount {
                base_url: &url,
                sign_name: "阿里云短信测试",
                access_key_id: "LTAIexampleAccessKeyId00",
                access_key_secret: &Secret::new("exampleAccessKeySecret000000000"),
                params: Default::default(),
            },
            std::time::Duration::from_secs(1),
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let datas = ["123456".to_owned(), "5".to_owned()];
        let sms = TemplateSms {
            to: "13800138000",
            template_id: "SMS_154950909",
            datas: &datas,
            req_id: Some("otp-42"),
        };
        let signed = c.sign(
            &sms,
            "2023-11-14T22:13:20Z",
            "8f14e45fceea167a5a36dedd4bea2543",
        );
        assert_eq!(
            signed.url,
            "https://dysmsapi.aliyuncs.com/?OutId=otp-42&PhoneNumbers=13800138000&SignName=%E9%98%BF%E9%87%8C%E4%BA%91%E7%9F%AD%E4%BF%A1%E6%B5%8B%E8%AF%95&TemplateCode=SMS_154950909&TemplateParam=%7B%22code%22%3A%22123456%22%7D"
        );
        assert_eq!(
            signed.headers.last().unwrap().1,
            "ACS3-HMAC-SHA256 Credential=LTAIexampleAccessKeyId00,SignedHeaders=host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version,Signature=62a6d61441918953d1af8c5d3b64562c4b820f7ebc66f9f263716f37d0999f90"
        );
        assert!(!format!("{c:?}").contains("exampleAccessKeySecret"));
    }

    #[test]
    fn answers_and_gateway_errors_are_classified_by_their_code() {
        let ok = parse_answer(
            200,
            r#"{"Message":"OK","RequestId":"2184","BizId":"197703245997295588^0","Code":"OK"}"#,
        )
        .unwrap();
        assert_eq!(ok.message_id, "197703245997295588^0");
        let limit = parse_answer(
            200,
            r#"{"Message":"触发分钟级流控Permits:1","RequestId":"1F","Code":"isv.BUSINESS_LIMIT_CONTROL"}"#,
        );
        assert!(
            matches!(limit, Err(SendError::Rejected { ref code, .. }) if code == "isv.BUSINESS_LIMIT_CONTROL")
        );
        let gateway = parse_answer(
            400,
            r#"{"RequestId":"A5","HostId":"dysmsapi.aliyuncs.com","Code":"SignatureDoesNotMatch","Message":"no"}"#,
        );
        assert!(
            matches!(gateway, Err(SendError::Rejected { kind: Kind::Aliyun, ref code, .. }) if code == "SignatureDoesNotMatch")
        );
        assert!(matches!(
            parse_answer(503, "<html/>"),
            Err(SendError::Http { status: 503 })
        ));
        assert!(matches!(
            parse_answer(200, "<html/>"),
            Err(SendError::Malformed(_))
        ));
        assert!(matches!(
            parse_answer(200, r#"{"Code":"OK"}"#),
            Err(SendError::Malformed(_))
        ));
    }
}
