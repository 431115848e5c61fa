//! Secrets: read from the environment, or from the files `<NAME>_FILE` variables name; never
//! from the configuration file, never printed whole.

use std::collections::HashMap;

use super::ConfigError;
use crate::domain::Secret;

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
    /// Bearer tokens of the admin API and the dashboard login; empty means both are off.
    pub admin_tokens: Vec<Secret>,
    /// The secret path segment of the delivery-report callback; unset = reports refused.
    pub reports_token: Option<Secret>,
    /// Bearer token `/metrics` asks for; unset = `/metrics` is open (see the README).
    pub metrics_token: Option<Secret>,
    /// Each webhook endpoint's signing secret, by its variable (`SMSQ_WEBHOOK_SECRET_<NAME>`).
    pub webhook_secrets: std::collections::BTreeMap<String, Secret>,
    /// `SMSQ_TEST_NUMBERS`: numbers with a fixed code (QA, app-store review), by their 11
    /// digits: exempt from caps and captchas, never sent to the provider.
    pub test_numbers: std::collections::BTreeMap<String, Secret>,
    /// The captcha vendor's credentials (`captcha.provider` other than `builtin`).
    pub captcha: CaptchaSecrets,
    /// Each named provider account's credentials, by variable (`SMSQ_PROVIDER_<NAME>_<FIELD>`).
    pub providers: std::collections::BTreeMap<String, Secret>,
}

/// `SMSQ_CAPTCHA_SECRET`: Turnstile's or hCaptcha's secret key, GeeTest's captcha_key, or
/// Tencent Captcha's AppSecretKey. `SMSQ_CAPTCHA_SECRET_ID` / `SMSQ_CAPTCHA_SECRET_KEY`: the
/// Tencent Cloud API key pair that signs `DescribeCaptchaResult` (TC3-HMAC-SHA256).
#[derive(Debug, Clone, Default)]
pub struct CaptchaSecrets {
    pub secret: Option<Secret>,
    pub secret_id: Option<String>,
    pub secret_key: Option<Secret>,
}

/// The shortest bearer token accepted: anything shorter is guessable by a patient client.
pub const MIN_TOKEN_CHARS: usize = 16;

impl Secrets {
    /// The secrets of `env`, each from its variable or from the file its `<NAME>_FILE`
    /// names (how Docker and Kubernetes hand secrets over). Both set, an unreadable file, or
    /// a token list that cannot be what the operator meant is an error.
    pub fn from_env(env: &HashMap<String, String>) -> Result<Self, ConfigError> {
        let get = |k: &str| from_env_or_file(env, k);
        Ok(Self {
            account_sid: get("RONGLIAN_ACCOUNT_SID")?,
            auth_token: get("RONGLIAN_AUTH_TOKEN")?.map(Secret::new),
            app_id: get("RONGLIAN_APP_ID")?,
            secret: get("SMSQ_SECRET")?.map(Secret::new),
            reports_token: get("SMSQ_REPORTS_TOKEN")?.map(Secret::new),
            metrics_token: match get("SMSQ_METRICS_TOKEN")? {
                Some(t) => token_list("SMSQ_METRICS_TOKEN", &t)?.into_iter().next(),
                None => None,
            },
            api_tokens: match get("SMSQ_API_TOKENS")? {
                Some(list) => token_list("SMSQ_API_TOKENS", &list)?,
                None => Vec::new(),
            },
            admin_tokens: match get("SMSQ_ADMIN_TOKENS")? {
                Some(list) => token_list("SMSQ_ADMIN_TOKENS", &list)?,
                None => Vec::new(),
            },
            webhook_secrets: prefixed(env, "SMSQ_WEBHOOK_SECRET_")?,
            providers: prefixed(env, "SMSQ_PROVIDER_")?,
            test_numbers: match get("SMSQ_TEST_NUMBERS")? {
                Some(list) => test_numbers(&list)?,
                None => Default::default(),
            },
            captcha: CaptchaSecrets {
                secret: get("SMSQ_CAPTCHA_SECRET")?.map(Secret::new),
                secret_id: get("SMSQ_CAPTCHA_SECRET_ID")?,
                secret_key: get("SMSQ_CAPTCHA_SECRET_KEY")?.map(Secret::new),
            },
        })
    }

    /// The fixed code of a test number, if it is one.
    pub fn test_code(&self, mobile: &crate::domain::Mobile) -> Option<&Secret> {
        self.test_numbers.get(mobile.as_str())
    }

    /// The signing secret of a webhook endpoint (the workers need it; the API does not).
    pub fn webhook_secret(&self, endpoint: &super::Endpoint) -> Result<Secret, ConfigError> {
        let var = endpoint.secret_var();
        let secret = self.webhook_secrets.get(&var).ok_or_else(|| {
            ConfigError::new(
                var.clone(),
                format!(
                    "webhook endpoint {:?} needs its signing secret",
                    endpoint.name
                ),
            )
        })?;
        if secret.expose().chars().count() < MIN_TOKEN_CHARS {
            return Err(ConfigError::new(
                var,
                format!("must be at least {MIN_TOKEN_CHARS} characters"),
            ));
        }
        Ok(secret.clone())
    }

    /// Which secrets are set, for `smsq config`: ids shortened, everything else hidden.
    pub fn summary(&self) -> [(&'static str, String); 12] {
        let shown = |set: bool| if set { "set (hidden)" } else { "not set" }.to_owned();
        let id = |id: &Option<String>| id.as_deref().map_or("not set".to_owned(), mask_id);
        let tokens = match self.api_tokens.len() {
            0 => "not set (API open to anyone who can reach it)".to_owned(),
            n => format!("{n} token(s), hidden"),
        };
        [
            ("RONGLIAN_ACCOUNT_SID", id(&self.account_sid)),
            ("RONGLIAN_AUTH_TOKEN", shown(self.auth_token.is_some())),
            ("RONGLIAN_APP_ID", id(&self.app_id)),
            ("SMSQ_SECRET", shown(self.secret.is_some())),
            ("SMSQ_API_TOKENS", tokens),
            (
                "SMSQ_ADMIN_TOKENS",
                match self.admin_tokens.len() {
                    0 => "not set (admin API and dashboard off)".to_owned(),
                    n => format!("{n} token(s), hidden"),
                },
            ),
            (
                "SMSQ_REPORTS_TOKEN",
                match self.reports_token {
                    Some(_) => "set (hidden)".to_owned(),
                    None => "not set (delivery reports refused)".to_owned(),
                },
            ),
            (
                "SMSQ_METRICS_TOKEN",
                match self.metrics_token {
                    Some(_) => "set (hidden)".to_owned(),
                    None => "not set (/metrics needs no token)".to_owned(),
                },
            ),
            ("SMSQ_CAPTCHA_SECRET", shown(self.captcha.secret.is_some())),
            ("SMSQ_CAPTCHA_SECRET_ID", id(&self.captcha.secret_id)),
            (
                "SMSQ_PROVIDER_*",
                match self.providers.len() {
                    0 => "not set".to_owned(),
                    n => {
                        let names: Vec<&str> = self.providers.keys().map(String::as_str).collect();
                        format!("{n} set (hidden): {}", names.join(", "))
                    }
                },
            ),
            (
                "SMSQ_TEST_NUMBERS",
                match self.test_numbers.len() {
                    0 => "not set".to_owned(),
                    n => format!("{n} number(s), codes hidden"),
                },
            ),
        ]
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
            Some(s) if s.expose().len() >= 16 => Ok(s.clone()),
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

/// `redis://user:pass@host` → `redis://user:***@host`: a Redis password may sit in the URL.
pub fn mask_url_password(url: &str) -> String {
    if url.contains(',') {
        // Cluster seed nodes.
        return url
            .split(',')
            .map(mask_url_password)
            .collect::<Vec<_>>()
            .join(",");
    }
    let Ok(mut parsed) = reqwest::Url::parse(url) else {
        // Not a URL we can take apart: show none of it if it might hold a password.
        return if url.contains('@') || url.to_ascii_lowercase().contains("pass") {
            "(unparsable url, hidden)".to_owned()
        } else {
            url.to_owned()
        };
    };
    let mut changed = false;
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
        changed = true;
    }
    // redis-rs also takes the password as a query parameter (`?pass=` for unix sockets,
    // `?password=`); a user name alone in the userinfo is not secret.
    let secret_param =
        |k: &str| k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password");
    if parsed.query_pairs().any(|(k, _)| secret_param(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if secret_param(&k) {
                    "***".to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        parsed.to_string()
    } else {
        url.to_owned()
    }
}

/// `name` from the environment, or from the file `<name>_FILE` names (one trailing newline
/// dropped, as `echo` and most secret stores leave one). Never both: which one would win is
/// a guess nobody should have to make.
/// `13800000000=123456,13900000000=654321`: each a mainland number and its code (digits; the
/// length `code.length` wants is checked with the settings).
fn test_numbers(list: &str) -> Result<std::collections::BTreeMap<String, Secret>, ConfigError> {
    let bad = |m: String| ConfigError::new("SMSQ_TEST_NUMBERS", m);
    let mut out = std::collections::BTreeMap::new();
    for pair in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (number, code) = pair
            .split_once('=')
            .ok_or_else(|| bad("each entry is <number>=<code>".into()))?;
        let mobile = crate::domain::Mobile::parse(number)
            .map_err(|_| bad("a number that is not a mainland mobile".into()))?;
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "the code of {} must be digits",
                mobile.masked()
            )));
        }
        out.insert(mobile.as_str().to_owned(), Secret::new(code));
    }
    Ok(out)
}

/// Every `SMSQ_WEBHOOK_SECRET_<NAME>` (or its `_FILE`) in `env`.
/// Every secret whose variable starts with `prefix` (by its name without `_FILE`). A `__`
/// marks a configuration override (`SMSQ_PROVIDER__TIMEOUT_MS`), not a secret.
fn prefixed(
    env: &HashMap<String, String>,
    prefix: &str,
) -> Result<std::collections::BTreeMap<String, Secret>, ConfigError> {
    let mut out = std::collections::BTreeMap::new();
    for key in env.keys() {
        let Some(name) = key.strip_prefix(prefix) else {
            continue;
        };
        if key.contains("__") {
            continue;
        }
        let var = format!("{prefix}{}", name.strip_suffix("_FILE").unwrap_or(name));
        if let Some(value) = from_env_or_file(env, &var)? {
            out.insert(var, Secret::new(value));
        }
    }
    Ok(out)
}

fn from_env_or_file(
    env: &HashMap<String, String>,
    name: &str,
) -> Result<Option<String>, ConfigError> {
    let direct = env.get(name).filter(|v| !v.is_empty());
    let file_var = format!("{name}_FILE");
    let path = env.get(&file_var).filter(|v| !v.is_empty());
    match (direct, path) {
        (Some(_), Some(_)) => Err(ConfigError::new(
            file_var,
            format!("{name} is set too: set one of them"),
        )),
        (Some(v), None) => Ok(Some(v.clone())),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::new(file_var.clone(), format!("cannot read {path}: {e}"))
            })?;
            let value = text
                .strip_suffix('\n')
                .map(|t| t.strip_suffix('\r').unwrap_or(t))
                .unwrap_or(&text);
            Ok((!value.is_empty()).then(|| value.to_owned()))
        }
        (None, None) => Ok(None),
    }
}

/// A comma-separated token list. Set but empty (only spaces or commas) would silently turn
/// authentication off, so it is refused, as is a token too short to resist guessing; the
/// message never shows a token.
fn token_list(var: &'static str, list: &str) -> Result<Vec<Secret>, ConfigError> {
    let tokens: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .collect();
    if tokens.is_empty() {
        return Err(ConfigError::new(
            var,
            "is set but holds no token (only spaces or commas); unset it to run without authentication",
        ));
    }
    for (i, t) in tokens.iter().enumerate() {
        let chars = t.chars().count();
        if chars < MIN_TOKEN_CHARS {
            return Err(ConfigError::new(
                var,
                format!(
                    "token {} of {} has {chars} characters; tokens need at least {MIN_TOKEN_CHARS}",
                    i + 1,
                    tokens.len()
                ),
            ));
        }
    }
    Ok(tokens.into_iter().map(Secret::new).collect())
}

/// Account and app ids are not secrets, but there is no reason to print them whole.
fn mask_id(id: &str) -> String {
    let head: String = id.chars().take(4).collect();
    format!("{head}**** ({} chars)", id.chars().count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_endpoint_needs_its_own_long_enough_secret() {
        let raw: crate::config::RawWebhooks = toml::from_str(
            "max_age_secs = 60\ntimeout_ms = 1000\nrate_per_sec = 1\nconcurrency = 1\n\
             [[endpoint]]\nname = \"app-1\"\nurl = \"https://app.example/hook\"\n",
        )
        .unwrap();
        let settings = crate::config::WebhookSettings::from_raw(&raw).unwrap();
        let endpoint = &settings.endpoints[0];
        assert_eq!(endpoint.secret_var(), "SMSQ_WEBHOOK_SECRET_APP_1");
        let with = |pairs: &[(&str, &str)]| {
            let env: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Secrets::from_env(&env).unwrap().webhook_secret(endpoint)
        };
        let missing = with(&[]).unwrap_err();
        assert_eq!(missing.key, "SMSQ_WEBHOOK_SECRET_APP_1");
        assert!(with(&[("SMSQ_WEBHOOK_SECRET_APP_1", "short")]).is_err());
        let long = "whsec-0123456789abcdef";
        assert_eq!(
            with(&[("SMSQ_WEBHOOK_SECRET_APP_1", long)])
                .unwrap()
                .expose(),
            long
        );
        assert!(
            with(&[("SMSQ_WEBHOOK_SECRET_OTHER", long)]).is_err(),
            "another endpoint's"
        );
    }

    #[test]
    fn every_form_of_a_redis_password_is_masked() {
        for (url, shown) in [
            ("redis://:hunter2@h:6379/0", "redis://:***@h:6379/0"),
            ("redis://app:hunter2@h:6379", "redis://app:***@h:6379"),
            (
                "redis+unix:///run/r.sock?db=1&pass=hunter2",
                "redis+unix:///run/r.sock?db=1&pass=***",
            ),
            (
                "redis://h:6379/?password=hunter2",
                "redis://h:6379/?password=***",
            ),
            (
                "redis://h:6379/?PassWord=hunter2&protocol=resp3",
                "redis://h:6379/?PassWord=***&protocol=resp3",
            ),
            (
                "redis://a:x1@h1:7000,redis://a:x2@h2:7001",
                "redis://a:***@h1:7000,redis://a:***@h2:7001",
            ),
            ("redis://127.0.0.1:6379", "redis://127.0.0.1:6379"),
            ("not a url with pass=hunter2", "(unparsable url, hidden)"),
        ] {
            let masked = mask_url_password(url);
            assert_eq!(masked, shown, "{url}");
            assert!(
                !masked.contains("hunter2") && !masked.contains("x1"),
                "{masked}"
            );
        }
    }

    #[test]
    fn a_token_list_that_cannot_be_meant_refuses_to_start() {
        let env = |v: &str| HashMap::from([("SMSQ_API_TOKENS".to_owned(), v.to_owned())]);
        for blank in [" ", ",", " , ,", ",,,"] {
            let e = Secrets::from_env(&env(blank)).unwrap_err();
            assert_eq!(e.key, "SMSQ_API_TOKENS");
            assert!(e.message.contains("holds no token"), "{}", e.message);
        }
        let e = Secrets::from_env(&env("0123456789abcdef, short-one")).unwrap_err();
        assert!(
            e.message.contains("token 2 of 2 has 9 characters"),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains("short-one"),
            "the message shows no token"
        );
        let ok = Secrets::from_env(&env(" 0123456789abcdef , fedcba9876543210,")).unwrap();
        assert_eq!(ok.api_tokens.len(), 2);
        assert!(
            Secrets::from_env(&HashMap::new())
                .unwrap()
                .api_tokens
                .is_empty()
        );
    }

    #[test]
    fn secrets_come_from_files_too_but_never_from_both() {
        let dir = std::env::temp_dir().join(format!("smsq-secret-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("secret");
        std::fs::write(&file, "from-a-file-0123456789\n").unwrap();
        let path = file.display().to_string();
        let env = HashMap::from([("SMSQ_SECRET_FILE".to_owned(), path.clone())]);
        let s = Secrets::from_env(&env).unwrap();
        assert_eq!(s.secret.unwrap().expose(), "from-a-file-0123456789");

        std::fs::write(
            dir.join("tokens"),
            "app-token-0123456789,app-token-9876543210\r\n",
        )
        .unwrap();
        let tokens = dir.join("tokens").display().to_string();
        let env = HashMap::from([("SMSQ_API_TOKENS_FILE".to_owned(), tokens)]);
        assert_eq!(Secrets::from_env(&env).unwrap().api_tokens.len(), 2);

        let both = HashMap::from([
            ("SMSQ_SECRET_FILE".to_owned(), path),
            ("SMSQ_SECRET".to_owned(), "also-set-0123456789".to_owned()),
        ]);
        let e = Secrets::from_env(&both).unwrap_err();
        assert_eq!(e.key, "SMSQ_SECRET_FILE");
        assert!(
            e.message.contains("SMSQ_SECRET is set too"),
            "{}",
            e.message
        );
        assert!(
            !e.message.contains("also-set"),
            "the message shows no secret"
        );

        let missing = HashMap::from([(
            "RONGLIAN_AUTH_TOKEN_FILE".to_owned(),
            dir.join("nope").display().to_string(),
        )]);
        let e = Secrets::from_env(&missing).unwrap_err();
        assert_eq!(e.key, "RONGLIAN_AUTH_TOKEN_FILE");
        assert!(e.message.contains("cannot read"), "{}", e.message);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
