//! Configuration: `worker.toml` plus `SMSQ_<SECTION>__<KEY>` overrides, parsed once at start into
//! validated [`Settings`]. Secrets come only from the environment.
//!
//! Two stages: a serde mirror of the file ([`RawConfig`], every field defaulted) and the
//! validated [`Settings`] with durations, non-zero counts and parsed addresses. Every error names
//! the key it is about, so the binary can exit 2 with a message an operator can act on.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::domain::TemplateId;

/// A configuration problem, always about one key (or one environment variable).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A secret value: never printed, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

// ---------------------------------------------------------------------------------------------
// Stage one: the serde mirror of worker.toml. Defaults here are the documented defaults.

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub redis: RawRedis,
    pub api: RawApi,
    pub code: RawCode,
    pub captcha: RawCaptcha,
    pub provider: RawProvider,
    pub worker: RawWorker,
    pub retry: RawRetry,
    pub stream: RawStream,
    pub status: RawStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRedis {
    pub url: String,
    pub prefix: String,
    pub timeout_ms: u64,
}

impl Default for RawRedis {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            prefix: "smsq".into(),
            timeout_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawApi {
    pub listen: String,
    pub max_body_bytes: u64,
}

impl Default for RawApi {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 16 * 1024,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCode {
    pub length: u64,
    pub ttl_secs: u64,
    pub resend_interval_secs: u64,
    pub hourly_limit_per_mobile: u64,
    pub daily_limit_per_mobile: u64,
    pub hourly_limit_per_ip: u64,
    pub max_verify_attempts: u64,
    pub template_id: String,
}

impl Default for RawCode {
    fn default() -> Self {
        Self {
            length: 6,
            ttl_secs: 300,
            resend_interval_secs: 60,
            hourly_limit_per_mobile: 5,
            daily_limit_per_mobile: 10,
            hourly_limit_per_ip: 20,
            max_verify_attempts: 5,
            template_id: "1".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawCaptcha {
    pub required: bool,
    pub ttl_secs: u64,
    pub length: u64,
}

impl Default for RawCaptcha {
    fn default() -> Self {
        Self {
            required: false,
            ttl_secs: 300,
            length: 4,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawProvider {
    pub base_url: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

impl Default for RawProvider {
    fn default() -> Self {
        Self {
            base_url: "https://app.cloopen.com:8883".into(),
            timeout_ms: 5000,
            connect_timeout_ms: 3000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawWorker {
    pub concurrency: u64,
    pub rate_per_sec: u64,
    pub burst: u64,
    pub claim_idle_ms: u64,
    pub shutdown_grace_ms: u64,
    pub block_ms: u64,
}

impl Default for RawWorker {
    fn default() -> Self {
        Self {
            concurrency: 64,
            rate_per_sec: 100,
            burst: 20,
            claim_idle_ms: 30_000,
            shutdown_grace_ms: 10_000,
            block_ms: 2000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawRetry {
    pub max_attempts: u64,
    pub base_ms: u64,
    pub max_ms: u64,
}

impl Default for RawRetry {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            base_ms: 500,
            max_ms: 30_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStream {
    pub maxlen: u64,
    pub events_maxlen: u64,
}

impl Default for RawStream {
    fn default() -> Self {
        Self {
            maxlen: 1_000_000,
            events_maxlen: 100_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStatus {
    pub ttl_secs: u64,
}

impl Default for RawStatus {
    fn default() -> Self {
        Self { ttl_secs: 604_800 }
    }
}

// ---------------------------------------------------------------------------------------------
// Stage two: validated settings.

#[derive(Debug, Clone)]
pub struct Settings {
    pub redis: RedisSettings,
    pub api: ApiSettings,
    pub code: CodeSettings,
    pub captcha: CaptchaSettings,
    pub provider: ProviderSettings,
    pub worker: WorkerSettings,
    pub retry: RetrySettings,
    pub stream: StreamSettings,
    pub status: StatusSettings,
    pub secrets: Secrets,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    pub url: String,
    pub prefix: String,
    /// Response and connect timeout for every command that is not a blocking read.
    pub timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct CodeSettings {
    pub length: u8,
    pub ttl: Duration,
    pub resend_interval: Duration,
    pub hourly_limit_per_mobile: NonZeroU32,
    pub daily_limit_per_mobile: NonZeroU32,
    pub hourly_limit_per_ip: NonZeroU32,
    pub max_verify_attempts: NonZeroU32,
    pub template_id: TemplateId,
}

#[derive(Debug, Clone)]
pub struct CaptchaSettings {
    pub required: bool,
    pub ttl: Duration,
    pub length: u8,
}

#[derive(Debug, Clone)]
pub struct ProviderSettings {
    pub base_url: String,
    pub timeout: Duration,
    pub connect_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct WorkerSettings {
    pub concurrency: NonZeroUsize,
    pub rate_per_sec: NonZeroU32,
    pub burst: NonZeroU32,
    pub claim_idle: Duration,
    pub shutdown_grace: Duration,
    pub block: Duration,
}

#[derive(Debug, Clone)]
pub struct RetrySettings {
    pub max_attempts: NonZeroU32,
    pub base: Duration,
    pub max: Duration,
}

#[derive(Debug, Clone)]
pub struct StreamSettings {
    pub maxlen: u64,
    pub events_maxlen: u64,
}

#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub ttl: Duration,
}

/// Credentials for the Ronglian REST API.
#[derive(Debug, Clone)]
pub struct RonglianAccount {
    pub account_sid: String,
    pub auth_token: Secret,
    pub app_id: String,
}

#[derive(Debug, Clone, Default)]
pub struct Secrets {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    pub app_id: Option<String>,
    /// Key of the keyed hashes of codes and captcha answers.
    pub secret: Option<Secret>,
    /// Bearer tokens accepted by the API; empty means no authentication.
    pub api_tokens: Vec<Secret>,
}

impl Secrets {
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            account_sid: get("RONGLIAN_ACCOUNT_SID"),
            auth_token: get("RONGLIAN_AUTH_TOKEN").map(Secret),
            app_id: get("RONGLIAN_APP_ID"),
            secret: get("SMSQ_SECRET").map(Secret),
            api_tokens: get("SMSQ_API_TOKENS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(|t| Secret(t.to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The Ronglian account, or an error naming the first missing variable.
    pub fn ronglian(&self) -> Result<RonglianAccount, ConfigError> {
        let missing = |k: &str| ConfigError::new(k, "must be set in the environment");
        Ok(RonglianAccount {
            account_sid: self
                .account_sid
                .clone()
                .ok_or_else(|| missing("RONGLIAN_ACCOUNT_SID"))?,
            auth_token: self
                .auth_token
                .clone()
                .ok_or_else(|| missing("RONGLIAN_AUTH_TOKEN"))?,
            app_id: self
                .app_id
                .clone()
                .ok_or_else(|| missing("RONGLIAN_APP_ID"))?,
        })
    }

    /// The hashing key, or an error: codes must not be stored under a guessable key.
    pub fn hash_key(&self) -> Result<Secret, ConfigError> {
        match &self.secret {
            Some(s) if s.0.len() >= 16 => Ok(s.clone()),
            Some(_) => Err(ConfigError::new(
                "SMSQ_SECRET",
                "must be at least 16 characters",
            )),
            None => Err(ConfigError::new(
                "SMSQ_SECRET",
                "must be set in the environment",
            )),
        }
    }
}

impl Settings {
    /// Loads the configuration file (if any) and applies environment overrides from `env`.
    ///
    /// `path = None` means "the default `./worker.toml` if it exists, else the built-in
    /// defaults"; an explicit path must exist.
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let raw = RawConfig::load(path, env)?;
        Self::from_raw(&raw, Secrets::from_env(env))
    }

    pub fn from_raw(raw: &RawConfig, secrets: Secrets) -> Result<Self, ConfigError> {
        Ok(Settings {
            redis: RedisSettings {
                url: redis_url(&raw.redis.url)?,
                prefix: key_prefix(&raw.redis.prefix)?,
                timeout: millis("redis.timeout_ms", raw.redis.timeout_ms)?,
            },
            api: ApiSettings {
                listen: raw.api.listen.parse().map_err(|_| {
                    ConfigError::new("api.listen", "must be an address like 127.0.0.1:8080")
                })?,
                max_body_bytes: ranged("api.max_body_bytes", raw.api.max_body_bytes, 256, 1 << 20)?
                    as usize,
            },
            code: CodeSettings {
                length: ranged("code.length", raw.code.length, 4, 10)? as u8,
                ttl: secs("code.ttl_secs", raw.code.ttl_secs)?,
                resend_interval: secs("code.resend_interval_secs", raw.code.resend_interval_secs)?,
                hourly_limit_per_mobile: count(
                    "code.hourly_limit_per_mobile",
                    raw.code.hourly_limit_per_mobile,
                )?,
                daily_limit_per_mobile: count(
                    "code.daily_limit_per_mobile",
                    raw.code.daily_limit_per_mobile,
                )?,
                hourly_limit_per_ip: count(
                    "code.hourly_limit_per_ip",
                    raw.code.hourly_limit_per_ip,
                )?,
                max_verify_attempts: count(
                    "code.max_verify_attempts",
                    raw.code.max_verify_attempts,
                )?,
                template_id: TemplateId::parse(&raw.code.template_id)
                    .map_err(|e| ConfigError::new("code.template_id", e.to_string()))?,
            },
            captcha: CaptchaSettings {
                required: raw.captcha.required,
                ttl: secs("captcha.ttl_secs", raw.captcha.ttl_secs)?,
                length: ranged("captcha.length", raw.captcha.length, 4, 8)? as u8,
            },
            provider: ProviderSettings {
                base_url: base_url(&raw.provider.base_url)?,
                timeout: millis("provider.timeout_ms", raw.provider.timeout_ms)?,
                connect_timeout: millis(
                    "provider.connect_timeout_ms",
                    raw.provider.connect_timeout_ms,
                )?,
            },
            worker: WorkerSettings {
                concurrency: NonZeroUsize::new(ranged(
                    "worker.concurrency",
                    raw.worker.concurrency,
                    1,
                    10_000,
                )? as usize)
                .expect("ranged() rejects 0"),
                rate_per_sec: count("worker.rate_per_sec", raw.worker.rate_per_sec)?,
                burst: count("worker.burst", raw.worker.burst)?,
                claim_idle: millis("worker.claim_idle_ms", raw.worker.claim_idle_ms)?,
                shutdown_grace: millis("worker.shutdown_grace_ms", raw.worker.shutdown_grace_ms)?,
                block: Duration::from_millis(ranged(
                    "worker.block_ms",
                    raw.worker.block_ms,
                    10,
                    60_000,
                )?),
            },
            retry: {
                let base = millis("retry.base_ms", raw.retry.base_ms)?;
                let max = millis("retry.max_ms", raw.retry.max_ms)?;
                if max < base {
                    return Err(ConfigError::new(
                        "retry.max_ms",
                        "must be at least retry.base_ms",
                    ));
                }
                RetrySettings {
                    max_attempts: count("retry.max_attempts", raw.retry.max_attempts)?,
                    base,
                    max,
                }
            },
            stream: StreamSettings {
                maxlen: ranged("stream.maxlen", raw.stream.maxlen, 1000, u64::MAX)?,
                events_maxlen: ranged(
                    "stream.events_maxlen",
                    raw.stream.events_maxlen,
                    100,
                    u64::MAX,
                )?,
            },
            status: StatusSettings {
                ttl: secs("status.ttl_secs", raw.status.ttl_secs)?,
            },
            secrets,
        })
    }

    /// The effective configuration as TOML, with a comment block saying which secrets are set.
    pub fn describe(raw: &RawConfig, secrets: &Secrets) -> String {
        let mut shown = raw.clone();
        shown.redis.url = mask_url_password(&raw.redis.url);
        let mut out = toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        let shown = |set: bool| if set { "set (hidden)" } else { "not set" };
        out.push_str("\n# secrets, from the environment only\n");
        let sid = secrets.account_sid.as_deref().map(mask_id);
        out.push_str(&format!(
            "# RONGLIAN_ACCOUNT_SID = {}\n",
            sid.as_deref().unwrap_or("not set")
        ));
        out.push_str(&format!(
            "# RONGLIAN_AUTH_TOKEN  = {}\n",
            shown(secrets.auth_token.is_some())
        ));
        let app = secrets.app_id.as_deref().map(mask_id);
        out.push_str(&format!(
            "# RONGLIAN_APP_ID      = {}\n",
            app.as_deref().unwrap_or("not set")
        ));
        out.push_str(&format!(
            "# SMSQ_SECRET          = {}\n",
            shown(secrets.secret.is_some())
        ));
        out.push_str(&format!(
            "# SMSQ_API_TOKENS      = {}\n",
            if secrets.api_tokens.is_empty() {
                "not set (API open to anyone who can reach it)".to_owned()
            } else {
                format!("{} token(s), hidden", secrets.api_tokens.len())
            }
        ));
        out
    }
}

/// `redis://user:pass@host` → `redis://user:***@host`: a Redis password may sit in the URL.
pub fn mask_url_password(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Account and app ids are not secrets, but there is no reason to print them whole.
fn mask_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}**** ({} chars)", id.chars().count())
}

impl RawConfig {
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let mut table = match path {
            Some(p) => read_table(p, true)?,
            None => read_table(Path::new("worker.toml"), false)?,
        };
        apply_env(&mut table, env)?;
        let de = toml::Value::Table(table);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let inner = e.into_inner().to_string();
            match unknown_field(&inner) {
                // The path already ends with the unknown field.
                Some(_) if key.contains('.') => ConfigError::new(key, "unknown key"),
                Some(_) => ConfigError::new(key, "unknown section"),
                None => ConfigError::new(key, inner.trim().to_owned()),
            }
        })
    }
}

fn unknown_field(message: &str) -> Option<&str> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next()
}

fn read_table(path: &Path, must_exist: bool) -> Result<toml::Table, ConfigError> {
    let name = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
            return Ok(toml::Table::new());
        }
        Err(e) => return Err(ConfigError::new(name, format!("cannot read: {e}"))),
    };
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::new(name, e.message().to_owned()))
}

/// Applies `SMSQ_<SECTION>__<KEY>` variables. The defaults double as the schema: a variable for
/// a key that has no default is unknown, and its value is read with the default's type, so
/// `SMSQ_CODE__TEMPLATE_ID=2` stays a string and `SMSQ_WORKER__CONCURRENCY=abc` is an error.
fn apply_env(table: &mut toml::Table, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let schema = match toml::Value::try_from(RawConfig::default()) {
        Ok(toml::Value::Table(t)) => t,
        _ => unreachable!("RawConfig serializes to a table"),
    };
    let overrides: BTreeMap<&String, &String> = env
        .iter()
        .filter(|(k, _)| k.starts_with("SMSQ_") && k.contains("__"))
        .collect();
    for (var, value) in overrides {
        let path = &var["SMSQ_".len()..];
        let (section, key) = path.split_once("__").expect("filtered on __");
        let (section, key) = (section.to_ascii_lowercase(), key.to_ascii_lowercase());
        let name = format!("{section}.{key}");
        let unknown = || ConfigError::new(var.clone(), format!("unknown key `{name}`"));
        let default = schema
            .get(&section)
            .and_then(|s| s.get(&key))
            .ok_or_else(unknown)?;
        let bad =
            |what: &str| ConfigError::new(name.clone(), format!("{var}: {what}, got {value:?}"));
        let parsed = match default {
            toml::Value::String(_) => toml::Value::String(value.clone()),
            toml::Value::Integer(_) => toml::Value::Integer(
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected a whole number"))?,
            ),
            toml::Value::Boolean(_) => toml::Value::Boolean(
                value
                    .trim()
                    .parse()
                    .map_err(|_| bad("expected true or false"))?,
            ),
            _ => return Err(unknown()),
        };
        let entry = table
            .entry(section.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        match entry {
            toml::Value::Table(t) => {
                t.insert(key, parsed);
            }
            _ => return Err(ConfigError::new(section, "must be a table")),
        }
    }
    Ok(())
}

fn ranged(key: &str, v: u64, min: u64, max: u64) -> Result<u64, ConfigError> {
    if (min..=max).contains(&v) {
        Ok(v)
    } else if max == u64::MAX {
        Err(ConfigError::new(
            key,
            format!("must be at least {min}, got {v}"),
        ))
    } else {
        Err(ConfigError::new(
            key,
            format!("must be between {min} and {max}, got {v}"),
        ))
    }
}

fn count(key: &str, v: u64) -> Result<NonZeroU32, ConfigError> {
    let v = ranged(key, v, 1, u32::MAX as u64)?;
    Ok(NonZeroU32::new(v as u32).expect("ranged() rejects 0"))
}

fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_secs(ranged(key, v, 1, 365 * 86_400)?))
}

fn millis(key: &str, v: u64) -> Result<Duration, ConfigError> {
    Ok(Duration::from_millis(ranged(key, v, 1, 86_400_000)?))
}

fn redis_url(url: &str) -> Result<String, ConfigError> {
    redis::Client::open(url)
        .map(|_| url.to_owned())
        .map_err(|e| ConfigError::new("redis.url", format!("{e}")))
}

fn key_prefix(prefix: &str) -> Result<String, ConfigError> {
    let ok = !prefix.is_empty()
        && prefix.len() <= 32
        && prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(prefix.to_owned())
    } else {
        Err(ConfigError::new(
            "redis.prefix",
            "must be 1-32 characters of [A-Za-z0-9_-]",
        ))
    }
}

fn base_url(url: &str) -> Result<String, ConfigError> {
    let parsed = reqwest::Url::parse(url)
        .map_err(|e| ConfigError::new("provider.base_url", format!("{e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::new(
            "provider.base_url",
            "must be an http(s) URL with a host",
        ));
    }
    Ok(url.trim_end_matches('/').to_owned())
}
