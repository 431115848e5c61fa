//! Configuration: `worker.toml` plus `SMSQ_<SECTION>__<KEY>` overrides, parsed once at start into
//! validated [`Settings`]. Secrets come only from the environment.
//!
//! Two stages: a serde mirror of the file ([`RawConfig`], laid over the shipped defaults) and
//! the validated [`Settings`] with durations, non-zero counts and parsed addresses. Every error
//! names the key it is about, so the binary can exit 2 with a message an operator can act on.

mod raw;
mod secrets;
mod settings;

pub use raw::*;
pub use secrets::{RonglianAccount, Secrets, mask_url_password};
pub use settings::*;

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
}
