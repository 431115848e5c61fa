//! The provider accounts as operators see them: each one's kind, rate, place in the route
//! and circuit (`smsq provider list`, `smsq status`, the dashboard, the gauges).

use serde::Serialize;

use crate::config::{ProviderAccounts, Route, Settings};
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
    /// Transient errors (5xx, timeouts) in the current window (`failover.error_window_secs`):
    /// at `failover.error_threshold` the circuit opens.
    pub recent_errors: u32,
    /// Its place in the default route (1 = primary), or its weight there.
    pub route: String,
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
    now_ms: i64,
) -> Result<Vec<AccountView>, StoreError> {
    let p = &settings.providers;
    let mut out = Vec::new();
    for a in &p.accounts {
        let c = store
            .circuit(&a.name, CircuitOp::Read, &policy(p), now_ms)
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
        recent_errors: c.recent_errors,
        route,
    }
}
