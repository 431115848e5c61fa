//! `[webhooks]`: the endpoints the workers POST events to, and how they deliver.

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

use super::ConfigError;
use super::raw::RawWebhooks;
use crate::domain::EventFilter;

#[derive(Debug, Clone)]
pub struct WebhookSettings {
    pub endpoints: Vec<Endpoint>,
    /// A delivery is retried this long after the event, then dead.
    pub max_age: Duration,
    pub timeout: Duration,
    /// Per endpoint, in each worker process.
    pub rate_per_sec: NonZeroU32,
    pub concurrency: NonZeroUsize,
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `[a-z0-9_-]{1,32}`: in keys, metrics and the secret's variable name.
    pub name: String,
    pub url: reqwest::Url,
    pub events: EventFilter,
}

impl Endpoint {
    /// The variable its secret comes from.
    pub fn secret_var(&self) -> String {
        format!(
            "SMSQ_WEBHOOK_SECRET_{}",
            self.name.to_uppercase().replace('-', "_")
        )
    }
}

impl WebhookSettings {
    pub fn from_raw(raw: &RawWebhooks) -> Result<Self, ConfigError> {
        let ranged = |key: &str, v: u64, min: u64, max: u64| {
            if (min..=max).contains(&v) {
                Ok(v)
            } else {
                Err(ConfigError::new(key, format!("must be {min}-{max}")))
            }
        };
        let mut endpoints = Vec::new();
        for (i, e) in raw.endpoint.iter().enumerate() {
            let key = |field: &str| format!("webhooks.endpoint[{i}].{field}");
            let named = (1..=32).contains(&e.name.len())
                && e.name.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                });
            if !named {
                return Err(ConfigError::new(key("name"), "must be 1-32 of [a-z0-9_-]"));
            }
            if endpoints.iter().any(|x: &Endpoint| x.name == e.name) {
                return Err(ConfigError::new(
                    key("name"),
                    format!("{:?} is used twice", e.name),
                ));
            }
            let url = reqwest::Url::parse(&e.url)
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                .ok_or_else(|| ConfigError::new(key("url"), "must be an http(s) URL"))?;
            let events =
                EventFilter::parse(&e.events).map_err(|m| ConfigError::new(key("events"), m))?;
            endpoints.push(Endpoint {
                name: e.name.clone(),
                url,
                events,
            });
        }
        Ok(Self {
            endpoints,
            max_age: Duration::from_secs(ranged(
                "webhooks.max_age_secs",
                raw.max_age_secs,
                1,
                7 * 86_400,
            )?),
            timeout: Duration::from_millis(ranged(
                "webhooks.timeout_ms",
                raw.timeout_ms,
                100,
                60_000,
            )?),
            rate_per_sec: NonZeroU32::new(ranged(
                "webhooks.rate_per_sec",
                raw.rate_per_sec,
                1,
                10_000,
            )? as u32)
            .expect("ranged from 1"),
            concurrency: NonZeroUsize::new(ranged(
                "webhooks.concurrency",
                raw.concurrency,
                1,
                1_000,
            )? as usize)
            .expect("ranged from 1"),
        })
    }
}
