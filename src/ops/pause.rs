//! `smsq pause` / `smsq resume`: the operators' kill switch, from the command line.

use std::time::Duration;

use crate::domain::now_ms;
use crate::store::{Records, StoreError};

/// Who is at the keyboard, for the trail: `cli:<user>@<host>`.
pub fn operator() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".to_owned());
    format!("cli:{user}@{}", crate::telemetry::hostname())
}

pub async fn pause(
    store: &Records,
    reason: &str,
    for_: Option<Duration>,
) -> Result<String, StoreError> {
    let now = now_ms();
    let until = for_.map(|d| now + d.as_millis() as i64);
    store.pause_sending(&operator(), reason, now, until).await?;
    Ok(match for_ {
        Some(d) => format!(
            "sending paused for {} ({reason}); `smsq resume` ends it sooner",
            humantime::format_duration(d)
        ),
        None => format!("sending paused until `smsq resume` ({reason})"),
    })
}

pub async fn resume(store: &Records) -> Result<String, StoreError> {
    Ok(if store.resume_sending(&operator(), now_ms()).await? {
        "sending resumed".to_owned()
    } else {
        "sending was not paused by an operator".to_owned()
    })
}
