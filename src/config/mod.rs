//! Configuration: `worker.toml` plus `SMSQ_<SECTION>__<KEY>` overrides, parsed once at start into
//! validated [`Settings`]. Secrets come only from the environment.
//!
//! Two stages: a serde mirror of the file ([`RawConfig`], laid over the shipped defaults) and
//! the validated [`Settings`] with durations, non-zero counts and parsed addresses. Every error
//! names the key it is about, so the binary can exit 2 with a message an operator can act on.

mod guard;
mod providers;
mod raw;
mod secrets;
mod settings;
mod webhooks;

pub use guard::{Budget, Budgets, GuardAction, GuardSettings, PrefixGuard};
pub use providers::{
    AccountSettings, Credentials, FailoverSettings, ProviderAccounts, RawAccount, RawFailover,
    RawRoute, Route,
};
pub use raw::*;
pub use secrets::{CaptchaSecrets, RonglianAccount, Secrets, mask_url_password};
pub use settings::*;
pub use webhooks::{Endpoint, WebhookSettings};

/// A configuration problem, always about one key (or one environment variable).
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {key}: {message}")]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_worker_toml_holds_every_key() {
        let raw: RawConfig = toml::from_str(SHIPPED).expect("worker.toml parses");
        Settings::from_raw(&raw, Secrets::default()).expect("and validates");
    }

    mod overrides {
        use super::*;
        use proptest::prelude::*;
        use std::collections::HashMap;

        /// Keys of the shipped file, as `SMSQ_<SECTION>__<KEY>`, with their TOML type.
        fn keys() -> Vec<(String, String, &'static str)> {
            let table: toml::Table = toml::from_str(SHIPPED).expect("worker.toml parses");
            let mut out = Vec::new();
            for (section, v) in &table {
                let Some(keys) = v.as_table() else { continue };
                for (key, value) in keys {
                    let kind = match value {
                        toml::Value::Integer(_) => "int",
                        toml::Value::Boolean(_) => "bool",
                        _ => "string",
                    };
                    let var = format!("SMSQ_{}__{}", section.to_uppercase(), key.to_uppercase());
                    out.push((var, format!("{section}.{key}"), kind));
                }
            }
            out
        }

        proptest! {
            /// Any value for any key, or any made-up variable: a configuration or an error that
            /// names the key, never a panic.
            #[test]
            fn any_override_is_taken_or_refused_by_name(
                pick in any::<prop::sample::Index>(),
                value in "\\PC{0,30}",
                stray in "SMSQ_[A-Z_]{1,12}__[A-Z_]{1,12}",
            ) {
                let all = keys();
                let (var, key, _) = &all[pick.index(all.len())];
                let env = HashMap::from([(var.clone(), value.clone())]);
                if let Err(e) = RawConfig::load(None, &env)
                    .and_then(|raw| Settings::from_raw(&raw, Secrets::default()))
                {
                    prop_assert!(e.key == *var || e.key == *key, "{} named for {}", e.key, var);
                }
                let env = HashMap::from([(stray.clone(), value)]);
                let _ = RawConfig::load(None, &env);
            }

            /// A value of the key's own type round-trips: what was set is what is read.
            #[test]
            fn typed_overrides_round_trip(pick in any::<prop::sample::Index>(), n in 0u32..100_000, b in any::<bool>()) {
                let all = keys();
                let (var, key, kind) = &all[pick.index(all.len())];
                let text = match *kind {
                    "int" => n.to_string(),
                    "bool" => b.to_string(),
                    _ => "round-trip".to_owned(),
                };
                let env = HashMap::from([(var.clone(), text.clone())]);
                if let Ok(raw) = RawConfig::load(None, &env) {
                    let doc: toml::Table = toml::from_str(&toml::to_string(&raw).unwrap()).unwrap();
                    let (section, name) = key.split_once('.').unwrap();
                    let read = &doc[section][name];
                    let shown = match read {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    prop_assert_eq!(shown, text, "{}", var);
                }
            }
        }
    }
}
