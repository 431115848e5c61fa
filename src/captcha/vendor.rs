//! Checking a vendor captcha server-side: the web app's page renders the vendor's widget, the
//! app passes what the widget returned in `POST /v1/codes`, and smsq asks the vendor whether it
//! is a real, unused pass before anything else happens.
//!
//! - Tencent Captcha: `DescribeCaptchaResult` (API 2019-07-22), TC3-HMAC-SHA256 signed, with
//!   `Ticket`, `Randstr`, `CaptchaAppId`, `AppSecretKey`, `UserIp`; `CaptchaCode` 1 is a pass.
//! - GeeTest v4: `POST /validate?captcha_id=…` with `lot_number`, `captcha_output`,
//!   `pass_token`, `gen_time` and `sign_token` = hex HMAC-SHA256 of `lot_number` under the
//!   captcha key; `result` = `success` is a pass.
//! - Cloudflare Turnstile / hCaptcha: `siteverify` with `secret`, `response`, `remoteip`;
//!   `success` is a pass.

use std::net::IpAddr;

use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use crate::config::{CaptchaProvider, CaptchaSettings, ConfigError, Secrets};
use crate::domain::Secret;

/// What the widget returned, as the app passes it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptchaToken {
    Tencent {
        ticket: String,
        randstr: String,
    },
    Geetest {
        lot_number: String,
        captcha_output: String,
        pass_token: String,
        gen_time: String,
    },
    /// Turnstile's or hCaptcha's response token.
    Token(String),
}

/// The vendor's answer about one token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VendorVerdict {
    Pass,
    /// Not a pass: forged, expired, used, for another site, or judged a bot. The vendor's
    /// own reason, for the log.
    Fail(String),
}

#[derive(Debug, thiserror::Error)]
pub enum VendorError {
    /// Down, slow, or answering something that is not its documented answer.
    #[error("the captcha vendor did not answer usably: {0}")]
    Unavailable(String),
    /// The vendor refused smsq's own credentials: every check will fail until fixed.
    #[error("the captcha vendor refused smsq's credentials: {0}")]
    Credentials(String),
}

enum Account {
    Tencent(TencentAccount),
    Geetest(GeetestAccount),
    /// Turnstile's or hCaptcha's secret key.
    Siteverify(Secret),
}

struct TencentAccount {
    app_id: u64,
    app_secret: Secret,
    secret_id: String,
    secret_key: Secret,
}

struct GeetestAccount {
    captcha_id: String,
    captcha_key: Secret,
}

/// One configured vendor.
pub struct Vendor {
    provider: CaptchaProvider,
    account: Account,
    url: reqwest::Url,
    http: reqwest::Client,
}

fn need<'a, T>(
    value: Option<&'a T>,
    var: &str,
    provider: CaptchaProvider,
) -> Result<&'a T, ConfigError> {
    value.ok_or_else(|| {
        ConfigError::new(
            var,
            format!("captcha.provider = \"{}\" needs it", provider.as_str()),
        )
    })
}

impl Vendor {
    /// `None` for the built-in captcha.
    pub fn from_settings(
        c: &CaptchaSettings,
        secrets: &Secrets,
    ) -> Result<Option<Self>, ConfigError> {
        let s = &secrets.captcha;
        let public = |url: &str| reqwest::Url::parse(url).expect("a valid constant URL");
        let (account, default_url) = match c.provider {
            CaptchaProvider::Builtin => return Ok(None),
            CaptchaProvider::Tencent => (
                Account::Tencent(TencentAccount {
                    app_id: c.app_id.parse().map_err(|_| {
                        ConfigError::new("captcha.app_id", "tencent: the CaptchaAppId, a number")
                    })?,
                    app_secret: need(s.secret.as_ref(), "SMSQ_CAPTCHA_SECRET", c.provider)?.clone(),
                    secret_id: need(s.secret_id.as_ref(), "SMSQ_CAPTCHA_SECRET_ID", c.provider)?
                        .clone(),
                    secret_key: need(s.secret_key.as_ref(), "SMSQ_CAPTCHA_SECRET_KEY", c.provider)?
                        .clone(),
                }),
                public("https://captcha.tencentcloudapi.com/"),
            ),
            CaptchaProvider::Geetest => {
                if c.app_id.is_empty() {
                    return Err(ConfigError::new(
                        "captcha.app_id",
                        "geetest: the captcha_id",
                    ));
                }
                (
                    Account::Geetest(GeetestAccount {
                        captcha_id: c.app_id.clone(),
                        captcha_key: need(s.secret.as_ref(), "SMSQ_CAPTCHA_SECRET", c.provider)?
                            .clone(),
                    }),
                    public("https://gcaptcha4.geetest.com/validate"),
                )
            }
            CaptchaProvider::Turnstile | CaptchaProvider::Hcaptcha => (
                Account::Siteverify(
                    need(s.secret.as_ref(), "SMSQ_CAPTCHA_SECRET", c.provider)?.clone(),
                ),
                public(if c.provider == CaptchaProvider::Turnstile {
                    "https://challenges.cloudflare.com/turnstile/v0/siteverify"
                } else {
                    "https://api.hcaptcha.com/siteverify"
                }),
            ),
        };
        let http = reqwest::Client::builder()
            .timeout(c.vendor_timeout)
            .connect_timeout(c.vendor_timeout)
            .build()
            .map_err(|e| ConfigError::new("captcha.vendor_url", e.to_string()))?;
        Ok(Some(Self {
            provider: c.provider,
            account,
            url: c.vendor_url.clone().unwrap_or(default_url),
            http,
        }))
    }

    pub fn provider(&self) -> CaptchaProvider {
        self.provider
    }

    /// Asks the vendor about `token`. A token of another vendor's shape is a failure, not a
    /// question to the vendor.
    pub async fn verify(
        &self,
        token: &CaptchaToken,
        client_ip: Option<IpAddr>,
    ) -> Result<VendorVerdict, VendorError> {
        match (&self.account, token) {
            (Account::Tencent(a), CaptchaToken::Tencent { ticket, randstr }) => {
                self.tencent(a, ticket, randstr, client_ip).await
            }
            (
                Account::Geetest(a),
                CaptchaToken::Geetest {
                    lot_number,
                    captcha_output,
                    pass_token,
                    gen_time,
                },
            ) => {
                self.geetest(a, [lot_number, captcha_output, pass_token, gen_time])
                    .await
            }
            (Account::Siteverify(secret), CaptchaToken::Token(t)) => {
                self.siteverify(secret, t, client_ip).await
            }
            _ => Ok(VendorVerdict::Fail(format!(
                "not the fields of a {} captcha",
                self.provider.as_str()
            ))),
        }
    }

    async fn tencent(
        &self,
        a: &TencentAccount,
        ticket: &str,
        randstr: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<VendorVerdict, VendorError> {
        let TencentAccount {
            app_id,
            app_secret,
            secret_id,
            secret_key,
        } = a;
        let body = serde_json::json!({
            "CaptchaType": 9,
            "Ticket": ticket,
            "Randstr": randstr,
            "UserIp": client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "CaptchaAppId": app_id,
            "AppSecretKey": app_secret.expose(),
        })
        .to_string();
        let host = host_of(&self.url);
        let now = chrono::Utc::now().timestamp();
        let auth = crate::tc3::authorization(
            secret_id,
            secret_key.expose(),
            "captcha",
            &host,
            body.as_bytes(),
            now,
        );
        let answer: TencentAnswer = self
            .send(
                self.http
                    .post(self.url.clone())
                    .header("Content-Type", crate::tc3::CONTENT_TYPE)
                    .header("Host", &host)
                    .header("X-TC-Action", "DescribeCaptchaResult")
                    .header("X-TC-Version", "2019-07-22")
                    .header("X-TC-Timestamp", now.to_string())
                    .header("Authorization", auth)
                    .body(body),
            )
            .await?;
        let r = answer.response;
        if let Some(e) = r.error {
            // AuthFailure.* and the like: smsq's key pair or clock, not the user.
            return Err(if e.code.starts_with("AuthFailure") {
                VendorError::Credentials(e.code)
            } else {
                VendorError::Unavailable(e.code)
            });
        }
        Ok(match r.captcha_code {
            Some(1) => VendorVerdict::Pass,
            Some(100) => {
                return Err(VendorError::Credentials(
                    "CaptchaCode 100 (CaptchaAppId / AppSecretKey)".into(),
                ));
            }
            Some(code) => VendorVerdict::Fail(format!(
                "CaptchaCode {code} {}",
                r.captcha_msg.unwrap_or_default()
            )),
            None => return Err(VendorError::Unavailable("no CaptchaCode".into())),
        })
    }

    /// `pass`: `lot_number`, `captcha_output`, `pass_token`, `gen_time`.
    async fn geetest(
        &self,
        a: &GeetestAccount,
        pass: [&String; 4],
    ) -> Result<VendorVerdict, VendorError> {
        let GeetestAccount {
            captcha_id,
            captcha_key,
        } = a;
        let [lot_number, captcha_output, pass_token, gen_time] = pass;
        let form = serde_urlencoded::to_string([
            ("lot_number", lot_number.as_str()),
            ("captcha_output", captcha_output.as_str()),
            ("pass_token", pass_token.as_str()),
            ("gen_time", gen_time.as_str()),
            (
                "sign_token",
                &geetest_sign(captcha_key.expose(), lot_number),
            ),
        ])
        .map_err(|e| VendorError::Unavailable(e.to_string()))?;
        let mut url = self.url.clone();
        url.query_pairs_mut().append_pair("captcha_id", captcha_id);
        let answer: GeetestAnswer = self
            .send(
                self.http
                    .post(url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form),
            )
            .await?;
        match (answer.status.as_deref(), answer.result.as_deref()) {
            (Some("success") | None, Some("success")) => Ok(VendorVerdict::Pass),
            (Some("success") | None, Some("fail")) => {
                Ok(VendorVerdict::Fail(answer.reason.unwrap_or_default()))
            }
            // {"status": "error", "code": "-50005", "msg": "illegal captcha_id"}: ours.
            (Some("error"), _) => Err(VendorError::Credentials(format!(
                "{} {}",
                answer.code.unwrap_or_default(),
                answer.msg.unwrap_or_default()
            ))),
            _ => Err(VendorError::Unavailable("neither success nor fail".into())),
        }
    }

    async fn siteverify(
        &self,
        secret: &Secret,
        token: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<VendorVerdict, VendorError> {
        let ip = client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let mut fields = vec![("secret", secret.expose()), ("response", token)];
        if !ip.is_empty() {
            fields.push(("remoteip", &ip));
        }
        let form = serde_urlencoded::to_string(&fields)
            .map_err(|e| VendorError::Unavailable(e.to_string()))?;
        let answer: SiteverifyAnswer = self
            .send(
                self.http
                    .post(self.url.clone())
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .body(form),
            )
            .await?;
        if answer.success {
            return Ok(VendorVerdict::Pass);
        }
        let codes = answer.error_codes.join(",");
        if answer.error_codes.iter().any(|c| c.contains("secret")) {
            return Err(VendorError::Credentials(codes));
        }
        if answer.error_codes.iter().any(|c| c == "internal-error") {
            return Err(VendorError::Unavailable(codes));
        }
        Ok(VendorVerdict::Fail(codes))
    }

    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, VendorError> {
        let response = request.send().await.map_err(|e| {
            VendorError::Unavailable(if e.is_timeout() {
                "timed out".into()
            } else {
                "unreachable".into()
            })
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(VendorError::Unavailable(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|_| VendorError::Unavailable("the answer broke off".into()))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| VendorError::Unavailable("not the documented JSON".into()))
    }
}

/// GeeTest v4's `sign_token`: hex HMAC-SHA256 of the `lot_number` under the captcha key.
pub fn geetest_sign(captcha_key: &str, lot_number: &str) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(captcha_key.as_bytes()).expect("HMAC takes any key");
    mac.update(lot_number.as_bytes());
    crate::domain::hex(&mac.finalize().into_bytes())
}

/// `host[:port]` as the `Host` header (and TC3's signed `host`) carries it.
fn host_of(url: &reqwest::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

#[derive(Deserialize)]
struct TencentAnswer {
    #[serde(rename = "Response")]
    response: TencentResponse,
}

#[derive(Deserialize)]
struct TencentResponse {
    #[serde(rename = "CaptchaCode")]
    captcha_code: Option<i64>,
    #[serde(rename = "CaptchaMsg")]
    captcha_msg: Option<String>,
    #[serde(rename = "Error")]
    error: Option<TencentError>,
}

#[derive(Deserialize)]
struct TencentError {
    #[serde(rename = "Code")]
    code: String,
}

#[derive(Deserialize)]
struct GeetestAnswer {
    status: Option<String>,
    result: Option<String>,
    reason: Option<String>,
    code: Option<String>,
    msg: Option<String>,
}

#[derive(Deserialize)]
struct SiteverifyAnswer {
    success: bool,
    #[serde(rename = "error-codes", default)]
    error_codes: Vec<String>,
}
