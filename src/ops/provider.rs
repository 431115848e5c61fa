//! `smsq provider list | disable NAME | enable NAME`: the accounts, their circuits, and an
//! operator's switch that every worker obeys within a refresh (half a second).

use serde::Serialize;

use crate::config::{ProviderAccounts, Route, Settings};
use crate::domain::now_ms;
use crate::store::{Circuit, CircuitOp, CircuitPolicy, CircuitState, Records, StoreError};

/// One account as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct AccountView {
    pub name: String,
    pub kind: String,
    pub rate_per_sec: u32,
    pub burst: u32,
    /// `closed`, `open` or `half-open`.
    pub circuit: String,
    /// When an open circuit lets probes through (Unix ms).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_until_ms: Option<i64>,
    pub disabled: bool,
    /// Why it last opened.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Its place in the default route (1 = primary), or its weight there.
    pub route: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider account {0:?} (see `smsq provider list`)")]
    Unknown(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub fn policy(accounts: &ProviderAccounts) -> CircuitPolicy {
    let f = &accounts.failover;
    CircuitPolicy {
        window: f.error_window,
        threshold: f.error_threshold.get(),
        cool_down: f.cool_down,
        probes: f.probes.get(),
    }
}

/// Every account with its circuit, in the configuration's order.
pub async fn accounts(
    store: &Records,
    settings: &Settings,
) -> Result<Vec<AccountView>, StoreError> {
    let p = &settings.providers;
    let mut out = Vec::new();
    for a in &p.accounts {
        let c = store
            .circuit(&a.name, CircuitOp::Read, &policy(p), now_ms())
            .await?;
        out.push(view(p, a, &c));
    }
    Ok(out)
}

fn view(p: &ProviderAccounts, a: &crate::config::AccountSettings, c: &Circuit) -> AccountView {
    let route = match p.route("default") {
        Route::Ordered(names) => names
            .iter()
            .position(|n| *n == a.name)
            .map_or("not in the default route".to_owned(), |i| {
                format!("#{}", i + 1)
            }),
        Route::Weighted(weights) => weights
            .iter()
            .find(|(n, _)| *n == a.name)
            .map_or("not in the default route".to_owned(), |(_, w)| {
                format!("weight {w}")
            }),
    };
    AccountView {
        name: a.name.clone(),
        kind: a.kind.as_str().to_owned(),
        rate_per_sec: a.rate_per_sec.get(),
        burst: a.burst.get(),
        circuit: c.state.as_str().to_owned(),
        open_until_ms: match c.state {
            CircuitState::Open { until_ms } => Some(until_ms),
            _ => None,
        },
        disabled: c.disabled,
        reason: c.reason.clone(),
        route,
    }
}

pub async fn list(store: &Records, settings: &Settings, json: bool) -> Result<String, StoreError> {
    let views = accounts(store, settings).await?;
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
            "{:<12} {:<8} {:>6}/s burst {:<4} {:<8} {state}",
            v.name, v.kind, v.rate_per_sec, v.burst, v.route
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
