//! Stage one: the serde mirror of `worker.toml`. The shipped `worker.toml` is compiled in and
//! is the single source of the defaults: a user's file and the `SMSQ_<SECTION>__<KEY>`
//! variables are laid over it, so every field is always present.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// The shipped configuration: every key with its default and a comment.
pub const SHIPPED: &str = include_str!("../../worker.toml");

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub redis: RawRedis,
    pub api: RawApi,
    pub code: RawCode,
    pub captcha: RawCaptcha,
    pub guard: RawGuard,
    pub provider: RawProvider,
    pub worker: RawWorker,
    pub retry: RawRetry,
    pub stream: RawStream,
    pub status: RawStatus,
    pub webhooks: RawWebhooks,
    pub failover: super::providers::RawFailover,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub providers: BTreeMap<String, super::providers::RawAccount>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub routing: BTreeMap<String, super::providers::RawRoute>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRedis {
    pub url: String,
    pub prefix: String,
    pub timeout_ms: u64,
    pub cluster: bool,
    pub shards: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawApi {
    pub listen: String,
    pub max_body_bytes: u64,
    pub metrics_listen: String,
    pub behind_tls: bool,
    pub while_paused: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCode {
    pub length: u64,
    pub ttl_secs: u64,
    pub resend_interval_secs: u64,
    pub hourly_limit_per_mobile: u64,
    pub daily_limit_per_mobile: u64,
    pub hourly_limit_per_ip: u64,
    pub hourly_limit_per_network: u64,
    pub max_verify_attempts: u64,
    pub template_id: String,
    pub voice_daily_limit_per_mobile: u64,
    pub voice_quiet_hours: String,
    pub voice_play_times: u64,
    pub voice_callback_base: String,
    pub fallback: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCaptcha {
    pub provider: String,
    pub required: bool,
    pub ttl_secs: u64,
    pub length: u64,
    pub app_id: String,
    pub vendor_url: String,
    pub vendor_timeout_ms: u64,
    pub fail_open: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuard {
    pub hourly_budget: u64,
    pub daily_budget: u64,
    pub soft_percent: u64,
    pub budget_action: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub purpose: BTreeMap<String, RawPurposeBudget>,
    pub prefix_guard: bool,
    pub prefix_window_secs: u64,
    pub prefix_min_codes: u64,
    pub prefix_max_share_percent: u64,
    pub prefix_min_conversion_percent: u64,
    pub prefix_action: String,
    pub prefix_block_secs: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPurposeBudget {
    #[serde(default)]
    pub hourly_budget: u64,
    #[serde(default)]
    pub daily_budget: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub base_url: String,
    pub timeout_ms: u64,
    pub connect_timeout_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorker {
    pub concurrency: u64,
    pub rate_per_sec: u64,
    pub burst: u64,
    pub heartbeat_ms: u64,
    pub claim_idle_ms: u64,
    pub max_deliveries: u64,
    pub pause_ms: u64,
    pub metrics_listen: String,
    pub shutdown_grace_ms: u64,
    pub block_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    pub max_attempts: u64,
    pub base_ms: u64,
    pub max_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStream {
    pub maxlen: u64,
    pub events_retention_secs: u64,
    pub dead_maxlen: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStatus {
    pub ttl_secs: u64,
    pub memory_alert_percent: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWebhooks {
    pub max_age_secs: u64,
    pub timeout_ms: u64,
    pub rate_per_sec: u64,
    pub concurrency: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoint: Vec<RawEndpoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoint {
    pub name: String,
    pub url: String,
    #[serde(default = "every_event")]
    pub events: Vec<String>,
}

fn every_event() -> Vec<String> {
    vec!["*".to_owned()]
}

impl Default for RawConfig {
    /// The shipped defaults. A unit test proves `worker.toml` parses into this type.
    fn default() -> Self {
        toml::from_str(SHIPPED).expect("the shipped worker.toml is valid (tested)")
    }
}

fn shipped_table() -> toml::Table {
    SHIPPED
        .parse()
        .expect("the shipped worker.toml is valid (tested)")
}

impl RawConfig {
    pub fn load(path: Option<&Path>, env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let file = match path {
            Some(p) => read_table(p, true)?,
            None => read_table(Path::new("worker.toml"), false)?,
        };
        let schema = shipped_table();
        let mut table = schema.clone();
        overlay(&mut table, file);
        apply_env(&mut table, &schema, env)?;
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

/// Lays the user's sections over the defaults key by key; anything that is not a known key
/// stays in and is refused by `deny_unknown_fields` with its name.
fn overlay(base: &mut toml::Table, file: toml::Table) {
    for (section, value) in file {
        match (base.get_mut(&section), value) {
            (Some(toml::Value::Table(into)), toml::Value::Table(keys)) => into.extend(keys),
            (_, value) => {
                base.insert(section, value);
            }
        }
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
fn apply_env(
    table: &mut toml::Table,
    schema: &toml::Table,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
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
