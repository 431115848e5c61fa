//! `smsq guard list` / `smsq guard lift <prefix>`: what the fleet guards hold, and ending a
//! prefix's hold.

use crate::config::Settings;
use crate::domain::{NumberPrefix, now_ms};
use crate::snapshot::GuardView;
use crate::store::{Records, StoreError};

pub async fn list(store: &Records, settings: &Settings, json: bool) -> Result<String, StoreError> {
    let now = now_ms();
    let view = GuardView::new(
        &settings.guard,
        &store.budget_use(now).await?,
        store.blocked_prefixes(now).await?,
    );
    if json {
        return Ok(serde_json::to_string_pretty(&view).unwrap_or_default());
    }
    let mut out = String::from("budgets (this Beijing hour / day)\n");
    for b in &view.budgets {
        let scope = b.purpose.as_deref().unwrap_or("all purposes");
        let limit = b
            .limit
            .map_or("no budget".to_owned(), |l| format!("of {l}"));
        out.push_str(&format!(
            "  {:<7} {scope:<20} {:>8} {limit}\n",
            b.window, b.used
        ));
    }
    if view.blocked.is_empty() {
        out.push_str("no number prefix is held\n");
        return Ok(out);
    }
    out.push_str("number prefixes held (`smsq guard lift <prefix>` ends one)\n");
    for b in &view.blocked {
        let left = humantime::format_duration(std::time::Duration::from_secs(
            ((b.until_ms - now).max(0) / 1000) as u64,
        ));
        out.push_str(&format!(
            "  {}  {:<7} {:<10} {} of {} recent codes  {left} left\n",
            b.prefix, b.action, b.reason, b.prefix_codes, b.fleet_codes
        ));
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum LiftError {
    #[error(transparent)]
    Prefix(#[from] crate::domain::InvalidPrefix),
    #[error(transparent)]
    Store(#[from] StoreError),
}

pub async fn lift(store: &Records, settings: &Settings, prefix: &str) -> Result<String, LiftError> {
    let prefix = NumberPrefix::parse(prefix)?;
    let window = settings
        .guard
        .prefix
        .as_ref()
        .map_or(std::time::Duration::from_secs(600), |p| p.window);
    let held = store
        .lift_prefix(&prefix, window, &super::pause::operator(), now_ms())
        .await?;
    Ok(if held {
        format!("prefix {prefix} lifted: codes to it are issued again, its recent counts forgotten")
    } else {
        format!("prefix {prefix} was not held; its recent counts are forgotten")
    })
}
