//! `smsq provider list | disable NAME | enable NAME`: the accounts, their circuits, and an
//! operator's switch that every worker obeys within a refresh (half a second).

use crate::config::Settings;
use crate::domain::now_ms;
use crate::snapshot::{accounts, policy};
use crate::store::{CircuitOp, Records, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider account {0:?} (see `smsq provider list`)")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn list(store: &Records, settings: &Settings, json: bool) -> Result<String, StoreError> {
    let views = accounts(store, settings, now_ms()).await?;
    if json {
        return Ok(serde_json::to_string_pretty(&views).unwrap_or_default());
    }
    let now = now_ms();
    let mut out = String::new();
    for v in views {
        let state = match (v.disabled, v.open_until_ms) {
            (true, _) => "DISABLED".to_owned(),
            (false, Some(until)) => format!(
                "open, probes in {}",
                humantime::format_duration(std::time::Duration::from_secs(
                    ((until - now).max(0) / 1000) as u64
                ))
            ),
            (false, None) => v.circuit.clone(),
        };
        out.push_str(&format!(
            "{:<12} {:<8} {:>6}/s burst {:<4} {:<8} {state}, {} recent error(s)",
            v.name, v.kind, v.rate_per_sec, v.burst, v.route, v.recent_errors
        ));
        if !v.reason.is_empty() {
            out.push_str(&format!("  ({})", v.reason));
        }
        out.push('\n');
    }
    Ok(out.trim_end().to_owned())
}

/// Turns an account off (`enable = false`) or on for the whole fleet, in the audit trail.
pub async fn switch(
    store: &Records,
    settings: &Settings,
    name: &str,
    enable: bool,
) -> Result<String, ProviderError> {
    let p = &settings.providers;
    if p.account(name).is_none() {
        return Err(ProviderError::Unknown(name.to_owned()));
    }
    let by = super::pause::operator();
    let op = match enable {
        true => CircuitOp::Enable { by: &by },
        false => CircuitOp::Disable { by: &by },
    };
    store.circuit(name, op, &policy(p), now_ms()).await?;
    Ok(match enable {
        true => format!("account {name} enabled: workers send through it again"),
        false => format!("account {name} disabled: workers route around it within a second"),
    })
}
