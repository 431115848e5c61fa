//! Stage two: validated settings with durations, non-zero counts and parsed addresses. Every
//! error names its key.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::Path;
use std::time::Duration;

use super::secrets::mask_url_password;
use super::{ConfigError, RawConfig, Secrets};
use crate::domain::{Shards, TemplateId};

#[derive(Debug, Clone)]
pub struct Settings {
    pub redis: RedisSettings,
    pub api: ApiSettings,
    pub code: CodeSettings,
    pub captcha: CaptchaSettings,
    pub guard: super::GuardSettings,
    pub provider: ProviderSettings,
    /// The accounts sends go through (one, `ronglian`, made of `[provider]`, by default).
    pub providers: super::ProviderAccounts,
    pub worker: WorkerSettings,
    pub retry: RetrySettings,
    pub stream: StreamSettings,
    pub status: StatusSettings,
    pub webhooks: super::WebhookSettings,
    pub secrets: Secrets,
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// As configured: one URL, or (cluster only) seed nodes separated by commas.
    pub url: String,
    /// Talk to a Redis Cluster (following MOVED/ASK and failovers).
    pub cluster: bool,
    pub shards: Shards,
    pub prefix: String,
    /// Response and connect timeout for every command that is not a blocking read.
    pub timeout: Duration,
}

impl RedisSettings {
    /// The URLs in `url` (checked when the settings were made).
    pub fn seeds(&self) -> impl Iterator<Item = &str> {
        self.url.split(',').map(str::trim)
    }
}

#[derive(Debug, Clone)]
pub struct ApiSettings {
    pub listen: SocketAddr,
    pub max_body_bytes: usize,
    /// Where the API serves `/metrics` instead of `listen`; `None` = on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Requests reach the API over TLS (a proxy in front): session cookies are `Secure`.
    pub behind_tls: bool,
    /// `api.while_paused = "refuse"`: 503 `paused` for new codes and messages while an
    /// operator paused sending.
    pub refuse_while_paused: bool,
}

#[derive(Debug, Clone)]
pub struct CodeSettings {
    pub length: u8,
    pub ttl: Duration,
    pub resend_interval: Duration,
    pub hourly_limit_per_mobile: NonZeroU32,
    pub daily_limit_per_mobile: NonZeroU32,
    pub hourly_limit_per_ip: NonZeroU32,
    pub hourly_limit_per_network: NonZeroU32,
    pub max_verify_attempts: NonZeroU32,
    pub template_id: TemplateId,
    pub voice: VoiceSettings,
}

/// Voice codes: their own cap, the hours calls are not made, and where results come back.
#[derive(Debug, Clone)]
pub struct VoiceSettings {
    pub daily_limit_per_mobile: NonZeroU32,
    /// Beijing minutes of the day `[from, to)`, wrapping past midnight; `None` = any time.
    pub quiet: Option<(u32, u32)>,
    pub play_times: u8,
    /// The API's public base URL, for the call-result notification (`respUrl`).
    pub callback_base: Option<reqwest::Url>,
    /// `code.fallback = "voice"`: a text's code is called out once when the text is reported
    /// undelivered or a resend is asked for after the interval.
    pub fallback: bool,
}

impl VoiceSettings {
    /// The day's voice cap when undelivered texts fall back to a call.
    pub fn fallback_limit(&self) -> Option<u32> {
        self.fallback.then_some(self.daily_limit_per_mobile.get())
    }

    /// How long until calls may be made again, when now is in the quiet hours (Beijing time).
    pub fn quiet_now(&self) -> Option<Duration> {
        use chrono::Timelike;
        let now = chrono::Utc::now().with_timezone(&crate::domain::beijing());
        let minutes = self.quiet_for(now.hour() * 60 + now.minute())?;
        let secs = (u64::from(minutes) * 60).saturating_sub(u64::from(now.second()));
        Some(Duration::from_secs(secs.max(1)))
    }

    /// Minutes until calls may be made again, when `minute` (of the Beijing day) is quiet.
    pub fn quiet_for(&self, minute: u32) -> Option<u32> {
        let (from, to) = self.quiet?;
        let quiet = if from <= to {
            (from..to).contains(&minute)
        } else {
            minute >= from || minute < to
        };
        quiet.then(|| (to + 1440 - minute) % 1440)
    }
}

/// `HH:MM-HH:MM` → minutes of the day.
fn quiet_hours(text: &str) -> Result<Option<(u32, u32)>, ConfigError> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let minute = |t: &str| {
        let (h, m) = t.trim().split_once(':')?;
        let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
        (h < 24 && m < 60).then_some(h * 60 + m)
    };
    let parsed = text
        .split_once('-')
        .and_then(|(a, b)| Some((minute(a)?, minute(b)?)))
        .filter(|(a, b)| a != b);
    parsed.map(Some).ok_or_else(|| {
        ConfigError::new(
            "code.voice_quiet_hours",
            "must be \"HH:MM-HH:MM\" (Beijing time, e.g. \"22:00-08:00\") or \"\"",
        )
    })
}

impl CodeSettings {
    /// The same, with no resend interval and no per-number caps: a test number's.
    pub fn exempt(&self) -> Self {
        Self {
            resend_interval: Duration::ZERO,
            hourly_limit_per_mobile: NonZeroU32::MAX,
            daily_limit_per_mobile: NonZeroU32::MAX,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone)]
pub struct CaptchaSettings {
    pub provider: CaptchaProvider,
    pub required: bool,
    /// The built-in captcha's lifetime and length.
    pub ttl: Duration,
    pub length: u8,
    /// Tencent's CaptchaAppId or GeeTest's captcha_id ("" for the others).
    pub app_id: String,
    /// Where the vendor is; `None` = its public endpoint.
    pub vendor_url: Option<reqwest::Url>,
    pub vendor_timeout: Duration,
    pub fail_open: bool,
}

/// Who checks a captcha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaProvider {
    Builtin,
    Tencent,
    Geetest,
    Turnstile,
    Hcaptcha,
}

impl CaptchaProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptchaProvider::Builtin => "builtin",
            CaptchaProvider::Tencent => "tencent",
            CaptchaProvider::Geetest => "geetest",
            CaptchaProvider::Turnstile => "turnstile",
            CaptchaProvider::Hcaptcha => "hcaptcha",
        }
    }
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
    /// How often a worker refreshes its heartbeat; the key lives 3 × this.
    pub heartbeat: Duration,
    pub claim_idle: Duration,
    /// Deliveries of one entry without an outcome before it is dead-lettered.
    pub max_deliveries: NonZeroU32,
    /// Every worker's pause after an account-level "too fast" answer.
    pub pause: Duration,
    /// Where a worker serves Prometheus `/metrics`; `None` = off.
    pub metrics_listen: Option<SocketAddr>,
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
    pub events_keep_ms: u64,
    pub dead_maxlen: u64,
}

#[derive(Debug, Clone)]
pub struct StatusSettings {
    pub ttl: Duration,
    /// The verdict is `degraded` when Redis uses this share of its `maxmemory` (1-100).
    pub memory_alert_percent: u8,
}

impl Settings {
    /// Loads the configuration file (if any) and applies environment overrides from `env`.
    ///
    /// `path = None` means "the default `./worker.toml` if it exists, else the built-in
    /// defaults"; an explicit path must exist.
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let raw = RawConfig::load(path, env)?;
        Self::from_raw(&raw, Secrets::from_env(env)?)
    }

    pub fn from_raw(raw: &RawConfig, secrets: Secrets) -> Result<Self, ConfigError> {
        Ok(Settings {
            redis: RedisSettings {
                url: redis_url(&raw.redis.url, raw.redis.cluster)?,
                cluster: raw.redis.cluster,
                shards: Shards::new(raw.redis.shards)
                    .map_err(|e| ConfigError::new("redis.shards", e.to_string()))?,
                prefix: key_prefix(&raw.redis.prefix)?,
                timeout: millis("redis.timeout_ms", raw.redis.timeout_ms)?,
            },
            api: ApiSettings {
                listen: raw.api.listen.parse().map_err(|_| {
                    ConfigError::new("api.listen", "must be an address like 127.0.0.1:8080")
                })?,
                max_body_bytes: ranged("api.max_body_bytes", raw.api.max_body_bytes, 256, 1 << 20)?
                    as usize,
                metrics_listen: optional_addr(
                    "api.metrics_listen",
                    &raw.api.metrics_listen,
                    "must be empty (on api.listen) or an address like 127.0.0.1:9100",
                )?,
                behind_tls: raw.api.behind_tls,
                refuse_while_paused: match raw.api.while_paused.as_str() {
                    "queue" => false,
                    "refuse" => true,
                    _ => {
                        return Err(ConfigError::new(
                            "api.while_paused",
                            "must be \"queue\" or \"refuse\"",
                        ));
                    }
                },
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
                hourly_limit_per_network: count(
                    "code.hourly_limit_per_network",
                    raw.code.hourly_limit_per_network,
                )?,
                max_verify_attempts: count(
                    "code.max_verify_attempts",
                    raw.code.max_verify_attempts,
                )?,
                template_id: TemplateId::parse(&raw.code.template_id)
                    .ok()
                    .filter(|t| !t.is_name())
                    .ok_or_else(|| {
                        ConfigError::new(
                            "code.template_id",
                            "must be 1-32 digits (the provider's id)",
                        )
                    })?,
                voice: VoiceSettings {
                    daily_limit_per_mobile: count(
                        "code.voice_daily_limit_per_mobile",
                        raw.code.voice_daily_limit_per_mobile,
                    )?,
                    quiet: quiet_hours(&raw.code.voice_quiet_hours)?,
                    play_times: ranged("code.voice_play_times", raw.code.voice_play_times, 1, 3)?
                        as u8,
                    fallback: match raw.code.fallback.trim() {
                        "" => false,
                        "voice" => true,
                        _ => {
                            return Err(ConfigError::new(
                                "code.fallback",
                                "must be \"\" (none) or \"voice\"",
                            ));
                        }
                    },
                    callback_base: match raw.code.voice_callback_base.trim() {
                        "" => None,
                        url => Some(reqwest::Url::parse(url).map_err(|e| {
                            ConfigError::new("code.voice_callback_base", format!("not a URL: {e}"))
                        })?),
                    },
                },
            },
            captcha: CaptchaSettings {
                provider: match raw.captcha.provider.as_str() {
                    "builtin" => CaptchaProvider::Builtin,
                    "tencent" => CaptchaProvider::Tencent,
                    "geetest" => CaptchaProvider::Geetest,
                    "turnstile" => CaptchaProvider::Turnstile,
                    "hcaptcha" => CaptchaProvider::Hcaptcha,
                    _ => {
                        return Err(ConfigError::new(
                            "captcha.provider",
                            "must be \"builtin\", \"tencent\", \"geetest\", \"turnstile\" or \"hcaptcha\"",
                        ));
                    }
                },
                required: raw.captcha.required,
                ttl: secs("captcha.ttl_secs", raw.captcha.ttl_secs)?,
                length: ranged("captcha.length", raw.captcha.length, 4, 8)? as u8,
                app_id: raw.captcha.app_id.trim().to_owned(),
                vendor_url: match raw.captcha.vendor_url.trim() {
                    "" => None,
                    url => Some(reqwest::Url::parse(url).map_err(|e| {
                        ConfigError::new("captcha.vendor_url", format!("not a URL: {e}"))
                    })?),
                },
                vendor_timeout: millis("captcha.vendor_timeout_ms", raw.captcha.vendor_timeout_ms)?,
                fail_open: raw.captcha.fail_open,
            },
            guard: super::GuardSettings::from_raw(&raw.guard)?,
            provider: ProviderSettings {
                base_url: base_url(&raw.provider.base_url)?,
                timeout: millis("provider.timeout_ms", raw.provider.timeout_ms)?,
                connect_timeout: millis(
                    "provider.connect_timeout_ms",
                    raw.provider.connect_timeout_ms,
                )?,
            },
            providers: super::providers::from_raw(
                &raw.providers,
                &raw.routing,
                &raw.failover,
                super::providers::Defaults {
                    legacy_base_url: &raw.provider.base_url,
                    timeout: millis("provider.timeout_ms", raw.provider.timeout_ms)?,
                    connect_timeout: millis(
                        "provider.connect_timeout_ms",
                        raw.provider.connect_timeout_ms,
                    )?,
                    rate_per_sec: count("worker.rate_per_sec", raw.worker.rate_per_sec)?,
                    burst: count("worker.burst", raw.worker.burst)?,
                    code_template: &raw.code.template_id,
                },
            )?,
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
                heartbeat: Duration::from_millis(ranged(
                    "worker.heartbeat_ms",
                    raw.worker.heartbeat_ms,
                    50,
                    60_000,
                )?),
                claim_idle: millis("worker.claim_idle_ms", raw.worker.claim_idle_ms)?,
                max_deliveries: count("worker.max_deliveries", raw.worker.max_deliveries)?,
                pause: millis("worker.pause_ms", raw.worker.pause_ms)?,
                metrics_listen: optional_addr(
                    "worker.metrics_listen",
                    &raw.worker.metrics_listen,
                    "must be empty (off) or an address like 0.0.0.0:9101",
                )?,
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
                events_keep_ms: ranged(
                    "stream.events_retention_secs",
                    raw.stream.events_retention_secs,
                    1,
                    366 * 86_400,
                )? * 1000,
                dead_maxlen: ranged("stream.dead_maxlen", raw.stream.dead_maxlen, 1, u64::MAX)?,
            },
            status: StatusSettings {
                ttl: secs("status.ttl_secs", raw.status.ttl_secs)?,
                memory_alert_percent: ranged(
                    "status.memory_alert_percent",
                    raw.status.memory_alert_percent,
                    1,
                    100,
                )? as u8,
            },
            webhooks: super::WebhookSettings::from_raw(&raw.webhooks)?,
            // Checked here, where code.length is known: a test number's code is a real one.
            secrets: {
                let length = raw.code.length as usize;
                if secrets
                    .test_numbers
                    .values()
                    .any(|c| c.expose().len() != length)
                {
                    return Err(ConfigError::new(
                        "SMSQ_TEST_NUMBERS",
                        format!("each code must have code.length ({length}) digits"),
                    ));
                }
                secrets
            },
        })
    }

    /// The effective configuration as TOML, with a comment block saying which secrets are set.
    pub fn describe(raw: &RawConfig, secrets: &Secrets) -> String {
        let mut shown = raw.clone();
        shown.redis.url = mask_url_password(&raw.redis.url);
        let mut out = toml::to_string(&shown).unwrap_or_else(|e| format!("# cannot render: {e}\n"));
        out.push_str(
            "\n# secrets, from the environment (or the files their _FILE variables name)\n",
        );
        for (name, value) in secrets.summary() {
            out.push_str(&format!("# {name:<20} = {value}\n"));
        }
        out
    }
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

/// One URL, or (cluster only) seed nodes separated by commas, each a URL the client takes.
fn redis_url(url: &str, cluster: bool) -> Result<String, ConfigError> {
    let seeds: Vec<&str> = url.split(',').map(str::trim).collect();
    if seeds.len() > 1 && !cluster {
        return Err(ConfigError::new(
            "redis.url",
            "a list of nodes needs redis.cluster = true",
        ));
    }
    for seed in seeds {
        redis::Client::open(seed).map_err(|e| ConfigError::new("redis.url", format!("{e}")))?;
        if cluster && !seed.starts_with("redis://") && !seed.starts_with("rediss://") {
            return Err(ConfigError::new(
                "redis.url",
                "Redis Cluster nodes are reached over TCP",
            ));
        }
    }
    Ok(url.to_owned())
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

/// An address key that may be empty.
fn optional_addr(
    key: &str,
    value: &str,
    expected: &str,
) -> Result<Option<SocketAddr>, ConfigError> {
    match value.trim() {
        "" => Ok(None),
        addr => addr
            .parse()
            .map(Some)
            .map_err(|_| ConfigError::new(key, expected)),
    }
}
