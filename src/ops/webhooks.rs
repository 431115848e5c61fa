//! `smsq webhooks list / replay`: how each endpoint's deliveries stand, and the dead ones
//! sent again.

use std::fmt::Write as _;

use crate::config::{ConfigError, Settings};
use crate::domain::now_ms;
use crate::store::{Records, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WebhooksError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Config(#[from] ConfigError),
}

fn names(settings: &Settings) -> Vec<&str> {
    settings
        .webhooks
        .endpoints
        .iter()
        .map(|e| e.name.as_str())
        .collect()
}

pub async fn list(
    store: &Records,
    settings: &Settings,
    limit: usize,
    json: bool,
) -> Result<String, WebhooksError> {
    let names = names(settings);
    if names.is_empty() {
        return Ok("no webhook endpoints configured ([[webhooks.endpoint]])".to_owned());
    }
    let states = store.endpoint_states(&names).await?;
    let mut dead = Vec::new();
    for name in &names {
        dead.push((name.to_string(), store.dead_deliveries(name, limit).await?));
    }
    if json {
        let dead: serde_json::Map<String, serde_json::Value> = dead
            .into_iter()
            .map(|(n, d)| (n, serde_json::json!(d)))
            .collect();
        let doc = serde_json::json!({"endpoints": states, "dead": dead});
        return Ok(serde_json::to_string_pretty(&doc).unwrap_or_default());
    }
    let mut out = String::new();
    for s in &states {
        let _ = writeln!(
            out,
            "{}: {} waiting, {} dead, {} delivered, {} failed attempt(s)",
            s.endpoint, s.backlog, s.dead, s.delivered, s.failed_attempts
        );
    }
    for (name, letters) in &dead {
        for d in letters {
            let kind = d.payload["type"].as_str().unwrap_or("?");
            let job = d.payload["job_id"].as_str().unwrap_or("?");
            let _ = writeln!(
                out,
                "  dead {name} {}  {kind} job {job} after {} attempt(s)",
                d.event_id, d.tries
            );
        }
    }
    Ok(out.trim_end().to_owned())
}

/// `ids` empty: every dead delivery of `endpoint`.
pub async fn replay(
    store: &Records,
    settings: &Settings,
    endpoint: &str,
    ids: &[String],
) -> Result<String, WebhooksError> {
    if !names(settings).contains(&endpoint) {
        return Err(ConfigError::new(
            "ENDPOINT",
            format!("no webhook endpoint named {endpoint:?}"),
        )
        .into());
    }
    let moved = store.replay_webhooks(endpoint, ids, now_ms()).await?;
    Ok(format!(
        "{moved} dead deliver(ies) of {endpoint} due again now"
    ))
}
