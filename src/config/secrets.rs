//! Secrets: read only from the environment, never from a file, never printed whole.

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
    /// The secret path segment of the delivery-report callback; unset = reports refused.
    pub reports_token: Option<Secret>,
}

impl Secrets {
    pub fn from_env(env: &HashMap<String, String>) -> Self {
        let get = |k: &str| env.get(k).filter(|v| !v.is_empty()).cloned();
        Self {
            account_sid: get("RONGLIAN_ACCOUNT_SID"),
            auth_token: get("RONGLIAN_AUTH_TOKEN").map(Secret::new),
            app_id: get("RONGLIAN_APP_ID"),
            secret: get("SMSQ_SECRET").map(Secret::new),
            reports_token: get("SMSQ_REPORTS_TOKEN").map(Secret::new),
            api_tokens: get("SMSQ_API_TOKENS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(Secret::new)
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// Which secrets are set, for `smsq config`: ids shortened, everything else hidden.
    pub fn summary(&self) -> [(&'static str, String); 6] {
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
                "SMSQ_REPORTS_TOKEN",
                match self.reports_token {
                    Some(_) => "set (hidden)".to_owned(),
                    None => "not set (delivery reports refused)".to_owned(),
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
