//! Provider accounts (`[providers.<name>]`), how jobs are routed over them (`[routing]`) and
//! when an account's circuit opens (`[failover]`). Without `[providers]`, the `[provider]`
//! section and the `RONGLIAN_*` variables are one Ronglian account named `ronglian`, exactly
//! as before accounts had names.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, RonglianAccount, Secrets};
use crate::domain::Secret;
use crate::provider::Kind;

/// One `[providers.<name>]` table.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_per_sec: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
    /// Tencent and Aliyun: the approved signature (签名), e.g. "腾讯云".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sign_name: Option<String>,
    /// Tencent: `X-TC-Region`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Tencent: `SmsSdkAppId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_id: Option<String>,
    /// The template of every code purpose not in `templates`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_template: Option<String>,
    /// A code purpose (`login`, …), or the `template_id` a message names, → this account's
    /// own template id. A message whose id is not here goes as is.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub templates: BTreeMap<String, String>,
    /// This account's template id → its variables: the names Aliyun's `TemplateParam`
    /// needs; for Ronglian and Tencent only their number counts (the first N values go).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, Vec<String>>,
}

/// One `[routing.<purpose>]` (or `default`, `messages`) table: `order` or `weights`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<BTreeMap<String, u32>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFailover {
    pub error_window_secs: u64,
    pub error_threshold: u64,
    pub cool_down_secs: u64,
    pub probes: u64,
}

/// A validated account. Its credentials are read only by the process that sends
/// ([`AccountSettings::credentials`]).
#[derive(Debug, Clone)]
pub struct AccountSettings {
    pub name: String,
    pub kind: Kind,
    pub base_url: reqwest::Url,
    pub rate_per_sec: NonZeroU32,
    pub burst: NonZeroU32,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub sign_name: String,
    pub region: String,
    pub app_id: String,
    pub code_template: Option<String>,
    pub templates: BTreeMap<String, String>,
    pub params: BTreeMap<String, Vec<String>>,
    /// The account made of `[provider]` and `RONGLIAN_*`: a message's raw `template_id` goes
    /// through as is, and it keeps the fleet's unnamed rate and pause keys.
    pub legacy: bool,
}

/// What an account signs with.
#[derive(Debug, Clone)]
pub enum Credentials {
    Ronglian(RonglianAccount),
    Tencent {
        secret_id: String,
        secret_key: Secret,
    },
    Aliyun {
        access_key_id: String,
        access_key_secret: Secret,
    },
}

impl AccountSettings {
    /// `SMSQ_PROVIDER_<NAME>_<FIELD>`, the name upper-cased with `-` as `_`.
    pub fn secret_var(&self, field: &str) -> String {
        format!(
            "SMSQ_PROVIDER_{}_{field}",
            self.name.to_uppercase().replace('-', "_")
        )
    }

    /// The account's credentials from the environment, or an error naming the missing
    /// variable.
    pub fn credentials(&self, secrets: &Secrets) -> Result<Credentials, ConfigError> {
        if self.legacy {
            return secrets.ronglian().map(Credentials::Ronglian);
        }
        let get = |field: &str| {
            let var = self.secret_var(field);
            secrets.providers.get(&var).cloned().ok_or_else(|| {
                ConfigError::new(
                    var,
                    format!(
                        "provider account {:?} needs it in the environment",
                        self.name
                    ),
                )
            })
        };
        Ok(match self.kind {
            Kind::Ronglian => Credentials::Ronglian(RonglianAccount {
                account_sid: get("ACCOUNT_SID")?.expose().to_owned(),
                auth_token: get("AUTH_TOKEN")?,
                app_id: get("APP_ID")?.expose().to_owned(),
            }),
            Kind::Tencent => Credentials::Tencent {
                secret_id: get("SECRET_ID")?.expose().to_owned(),
                secret_key: get("SECRET_KEY")?,
            },
            Kind::Aliyun => Credentials::Aliyun {
                access_key_id: get("ACCESS_KEY_ID")?.expose().to_owned(),
                access_key_secret: get("ACCESS_KEY_SECRET")?,
            },
        })
    }
}

/// The accounts a job may go through, in the order to try them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// The first healthy one, then the next.
    Ordered(Vec<String>),
    /// Spread by weight over the healthy ones; the others are the fallbacks.
    Weighted(Vec<(String, u32)>),
}

#[derive(Debug, Clone)]
pub struct ProviderAccounts {
    pub accounts: Vec<AccountSettings>,
    /// `default`, then per purpose or `messages`.
    pub routes: BTreeMap<String, Route>,
    pub failover: FailoverSettings,
}

#[derive(Debug, Clone, Copy)]
pub struct FailoverSettings {
    /// Transient errors (5xx, timeouts) counted over this window…
    pub error_window: Duration,
    /// …open the circuit at this many.
    pub error_threshold: NonZeroU32,
    /// An open circuit stays open this long, then lets probes through.
    pub cool_down: Duration,
    /// Probe sends that must succeed, in a row, to close it again.
    pub probes: NonZeroU32,
}

impl ProviderAccounts {
    pub fn route(&self, name: &str) -> &Route {
        self.routes
            .get(name)
            .or_else(|| self.routes.get("default"))
            .expect("from_raw always sets a default route")
    }

    pub fn account(&self, name: &str) -> Option<&AccountSettings> {
        self.accounts.iter().find(|a| a.name == name)
    }

    /// The accounts of a route (`default` when there is no route of that name), in its
    /// order (by name for weights).
    pub fn on_route(&self, name: &str) -> Vec<&AccountSettings> {
        let names: Vec<&str> = match self.route(name) {
            Route::Ordered(names) => names.iter().map(String::as_str).collect(),
            Route::Weighted(weights) => weights.iter().map(|(n, _)| n.as_str()).collect(),
        };
        names.into_iter().filter_map(|n| self.account(n)).collect()
    }

    /// Points every account at `url`: `smsq dev` and the tests, where one simulator serves
    /// all three kinds.
    pub fn use_base_url(&mut self, url: &str) -> Result<(), ConfigError> {
        let parsed = self::url("base_url", url)?;
        for account in &mut self.accounts {
            account.base_url = parsed.clone();
        }
        Ok(())
    }

    /// Every template id the accounts name (what a simulator must know).
    pub fn template_ids(&self) -> std::collections::BTreeSet<String> {
        self.accounts
            .iter()
            .flat_map(|a| a.templates.values().chain(a.code_template.iter()).cloned())
            .collect()
    }

    /// The first account: what `smsq send` and the bench's floor use.
    pub fn primary(&self) -> &AccountSettings {
        self.on_route("default")
            .first()
            .copied()
            .unwrap_or(&self.accounts[0])
    }
}

/// Shared with the `[provider]` section: timeouts an account does not set.
pub(super) struct Defaults<'a> {
    pub legacy_base_url: &'a str,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub rate_per_sec: NonZeroU32,
    pub burst: NonZeroU32,
    pub code_template: &'a str,
}

pub(super) fn from_raw(
    raw: &BTreeMap<String, RawAccount>,
    routing: &BTreeMap<String, RawRoute>,
    failover: &RawFailover,
    defaults: Defaults<'_>,
) -> Result<ProviderAccounts, ConfigError> {
    let failover = FailoverSettings {
        error_window: secs("failover.error_window_secs", failover.error_window_secs)?,
        error_threshold: nonzero("failover.error_threshold", failover.error_threshold)?,
        cool_down: secs("failover.cool_down_secs", failover.cool_down_secs)?,
        probes: nonzero("failover.probes", failover.probes)?,
    };
    if raw.is_empty() {
        if !routing.is_empty() {
            return Err(ConfigError::new(
                "routing",
                "routes name [providers.<name>] accounts; there are none",
            ));
        }
        let legacy = AccountSettings {
            name: "ronglian".to_owned(),
            kind: Kind::Ronglian,
            base_url: url("provider.base_url", defaults.legacy_base_url)?,
            rate_per_sec: defaults.rate_per_sec,
            burst: defaults.burst,
            timeout: defaults.timeout,
            connect_timeout: defaults.connect_timeout,
            sign_name: String::new(),
            region: String::new(),
            app_id: String::new(),
            code_template: Some(defaults.code_template.to_owned()),
            templates: BTreeMap::new(),
            params: BTreeMap::new(),
            legacy: true,
        };
        let routes = BTreeMap::from([(
            "default".to_owned(),
            Route::Ordered(vec![legacy.name.clone()]),
        )]);
        return Ok(ProviderAccounts {
            accounts: vec![legacy],
            routes,
            failover,
        });
    }
    let mut accounts = Vec::new();
    for (name, a) in raw {
        accounts.push(account(name, a, &defaults)?);
    }
    let mut routes = BTreeMap::new();
    for (name, r) in routing {
        routes.insert(name.clone(), route(name, r, &accounts)?);
    }
    if !routes.contains_key("default") {
        if accounts.len() > 1 {
            return Err(ConfigError::new(
                "routing.default",
                "with several accounts, say which goes first: order = [\"a\", \"b\"] or weights = { a = 3, b = 1 }",
            ));
        }
        routes.insert(
            "default".to_owned(),
            Route::Ordered(vec![accounts[0].name.clone()]),
        );
    }
    Ok(ProviderAccounts {
        accounts,
        routes,
        failover,
    })
}

fn account(
    name: &str,
    a: &RawAccount,
    defaults: &Defaults<'_>,
) -> Result<AccountSettings, ConfigError> {
    let key = |k: &str| format!("providers.{name}.{k}");
    let named = !name.is_empty()
        && name.len() <= 32
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !named {
        return Err(ConfigError::new(
            format!("providers.{name}"),
            "an account name is 1-32 characters of [a-z0-9-]",
        ));
    }
    let kind = Kind::parse(&a.kind).ok_or_else(|| {
        ConfigError::new(
            key("kind"),
            "must be \"ronglian\", \"tencent\" or \"aliyun\"",
        )
    })?;
    let base_url = url(
        &key("base_url"),
        a.base_url.as_deref().unwrap_or(kind.default_base_url()),
    )?;
    let sign_name = a.sign_name.clone().unwrap_or_default();
    if kind != Kind::Ronglian && sign_name.trim().is_empty() {
        return Err(ConfigError::new(
            key("sign_name"),
            format!("a {kind} account needs its approved signature (签名)"),
        ));
    }
    let app_id = a.app_id.clone().unwrap_or_default();
    if kind == Kind::Tencent && !valid_id(&app_id, |b| b.is_ascii_digit()) {
        return Err(ConfigError::new(
            key("app_id"),
            "a tencent account needs its SmsSdkAppId (digits)",
        ));
    }
    let template_ok = |id: &str| match kind {
        Kind::Ronglian | Kind::Tencent => valid_id(id, |b| b.is_ascii_digit()),
        Kind::Aliyun => valid_id(id, |b| b.is_ascii_alphanumeric() || b == b'_'),
    };
    let template_rule = match kind {
        Kind::Ronglian | Kind::Tencent => "digits",
        Kind::Aliyun => "a TemplateCode like SMS_154950909",
    };
    let named = a
        .templates
        .iter()
        .map(|(t, id)| (format!("templates.{t}"), id));
    let code = a
        .code_template
        .iter()
        .map(|id| ("code_template".to_owned(), id));
    let params = a.params.keys().map(|id| (format!("params.{id}"), id));
    for (k, id) in named.chain(code).chain(params) {
        if !template_ok(id) {
            return Err(ConfigError::new(
                key(&k),
                format!("must be this account's template id: {template_rule}, up to 32 characters"),
            ));
        }
    }
    if a.code_template.is_none() && a.templates.is_empty() {
        return Err(ConfigError::new(
            key("code_template"),
            "an account needs code_template or templates (purpose or message name → template id)",
        ));
    }
    let ms = |k: &str, v: Option<u64>, default: Duration| match v {
        Some(v) => millis(&key(k), v),
        None => Ok(default),
    };
    Ok(AccountSettings {
        name: name.to_owned(),
        kind,
        base_url,
        rate_per_sec: match a.rate_per_sec {
            Some(v) => nonzero(&key("rate_per_sec"), v)?,
            None => defaults.rate_per_sec,
        },
        burst: match a.burst {
            Some(v) => nonzero(&key("burst"), v)?,
            None => defaults.burst,
        },
        timeout: ms("timeout_ms", a.timeout_ms, defaults.timeout)?,
        connect_timeout: ms(
            "connect_timeout_ms",
            a.connect_timeout_ms,
            defaults.connect_timeout,
        )?,
        sign_name,
        region: a
            .region
            .clone()
            .unwrap_or_else(|| "ap-guangzhou".to_owned()),
        app_id,
        code_template: a.code_template.clone(),
        templates: a.templates.clone(),
        params: a.params.clone(),
        legacy: false,
    })
}

fn route(name: &str, r: &RawRoute, accounts: &[AccountSettings]) -> Result<Route, ConfigError> {
    let key = format!("routing.{name}");
    let known = |n: &String| {
        if accounts.iter().any(|a| &a.name == n) {
            Ok(())
        } else {
            Err(ConfigError::new(
                key.clone(),
                format!("names {n:?}, which is no [providers.<name>] account"),
            ))
        }
    };
    match (&r.order, &r.weights) {
        (Some(order), None) if !order.is_empty() => {
            order.iter().try_for_each(known)?;
            Ok(Route::Ordered(order.clone()))
        }
        (None, Some(weights)) if weights.values().any(|w| *w > 0) => {
            weights.keys().try_for_each(known)?;
            Ok(Route::Weighted(
                weights.iter().map(|(n, w)| (n.clone(), *w)).collect(),
            ))
        }
        _ => Err(ConfigError::new(
            key,
            "needs either order = [\"a\", \"b\"] or weights = { a = 3, b = 1 } (not both, not empty)",
        )),
    }
}

fn valid_id(id: &str, allowed: impl Fn(u8) -> bool) -> bool {
    !id.is_empty() && id.len() <= 32 && id.bytes().all(allowed)
}

fn url(key: &str, value: &str) -> Result<reqwest::Url, ConfigError> {
    let parsed =
        reqwest::Url::parse(value.trim()).map_err(|e| ConfigError::new(key, format!("{e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(ConfigError::new(key, "must be an http(s) URL with a host"));
    }
    Ok(parsed)
}

fn nonzero(key: &str, v: u64) -> Result<NonZeroU32, ConfigError> {
    u32::try_from(v)
        .ok()
        .and_then(NonZeroU32::new)
        .ok_or_else(|| {
            ConfigError::new(key, format!("must be between 1 and {}, got {v}", u32::MAX))
        })
}

fn secs(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if (1..=86_400).contains(&v) {
        Ok(Duration::from_secs(v))
    } else {
        Err(ConfigError::new(
            key,
            format!("must be between 1 and 86400, got {v}"),
        ))
    }
}

fn millis(key: &str, v: u64) -> Result<Duration, ConfigError> {
    if (1..=86_400_000).contains(&v) {
        Ok(Duration::from_millis(v))
    } else {
        Err(ConfigError::new(
            key,
            format!("must be between 1 and 86400000, got {v}"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Defaults<'static> {
        Defaults {
            legacy_base_url: "https://app.cloopen.com:8883",
            timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(3),
            rate_per_sec: NonZeroU32::new(100).unwrap(),
            burst: NonZeroU32::new(20).unwrap(),
            code_template: "1",
        }
    }

    fn failover() -> RawFailover {
        RawFailover {
            error_window_secs: 10,
            error_threshold: 5,
            cool_down_secs: 30,
            probes: 3,
        }
    }

    fn parse(toml_text: &str) -> Result<ProviderAccounts, ConfigError> {
        #[derive(Deserialize)]
        struct Doc {
            #[serde(default)]
            providers: BTreeMap<String, RawAccount>,
            #[serde(default)]
            routing: BTreeMap<String, RawRoute>,
        }
        let doc: Doc = toml::from_str(toml_text).unwrap();
        from_raw(&doc.providers, &doc.routing, &failover(), defaults())
    }

    #[test]
    fn without_providers_the_provider_section_is_one_account_named_ronglian() {
        let p = parse("").unwrap();
        assert_eq!(p.accounts.len(), 1);
        let a = p.primary();
        assert!(a.legacy && a.name == "ronglian" && a.kind == Kind::Ronglian);
        assert_eq!(a.code_template.as_deref(), Some("1"));
    }

    #[test]
    fn each_mistake_names_its_key() {
        let cases = [
            (
                "[providers.a]\nkind = \"ronglian\"\ncode_template = \"1\"\n[providers.b]\nkind = \"ronglian\"\ncode_template = \"1\"",
                "routing.default",
            ),
            (
                "[providers.a]\nkind = \"ronglian\"\ncode_template = \"1\"\n[routing.default]\norder = [\"a\", \"zz\"]",
                "routing.default",
            ),
            (
                "[providers.a]\nkind = \"sinch\"\ncode_template = \"1\"",
                "providers.a.kind",
            ),
            (
                "[providers.t]\nkind = \"tencent\"\nsign_name = \"s\"\ncode_template = \"1\"",
                "providers.t.app_id",
            ),
            (
                "[providers.t]\nkind = \"aliyun\"\ncode_template = \"SMS_1\"",
                "providers.t.sign_name",
            ),
            (
                "[providers.t]\nkind = \"aliyun\"\nsign_name = \"s\"\ncode_template = \"SMS-1\"",
                "providers.t.code_template",
            ),
            (
                "[providers.r]\nkind = \"ronglian\"\ntemplates = { login = \"abc\" }",
                "providers.r.templates.login",
            ),
            (
                "[providers.r]\nkind = \"ronglian\"",
                "providers.r.code_template",
            ),
            (
                "[providers.R]\nkind = \"ronglian\"\ncode_template = \"1\"",
                "providers.R",
            ),
            (
                "[providers.r]\nkind = \"ronglian\"\ncode_template = \"1\"\n[routing.default]\norder = [\"r\"]\nweights = { r = 1 }",
                "routing.default",
            ),
            ("[routing.default]\norder = [\"r\"]", "routing"),
        ];
        for (text, key) in cases {
            let e = parse(text).expect_err(text);
            assert_eq!(e.key, key, "{text}: {e}");
        }
    }

    #[test]
    fn credentials_come_from_their_variables_and_a_missing_one_is_named() {
        let p = parse("[providers.tc-1]\nkind = \"tencent\"\napp_id = \"1400000000\"\nsign_name = \"s\"\ncode_template = \"1\"").unwrap();
        let a = &p.accounts[0];
        let mut secrets = Secrets::default();
        secrets
            .providers
            .insert("SMSQ_PROVIDER_TC_1_SECRET_ID".into(), Secret::new("AKIDx"));
        let e = a.credentials(&secrets).unwrap_err();
        assert_eq!(e.key, "SMSQ_PROVIDER_TC_1_SECRET_KEY");
        secrets
            .providers
            .insert("SMSQ_PROVIDER_TC_1_SECRET_KEY".into(), Secret::new("k"));
        assert!(matches!(
            a.credentials(&secrets).unwrap(),
            Credentials::Tencent { ref secret_id, .. } if secret_id == "AKIDx"
        ));
    }
}
