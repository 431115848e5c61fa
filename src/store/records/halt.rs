//! The operators' kill switch (`smsq pause` / `smsq resume`, the admin API, the dashboard)
//! and the trail of who paused and resumed sending, and of the provider's own pauses.

use std::collections::HashMap;

use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use serde::Serialize;

use super::Records;
use crate::store::StoreError;
use crate::store::script::script;

script! {
    /// Pauses or resumes every worker's sends, and records who and why.
    struct HaltCall<'a> = include_str!("halt.lua");
    keys { halt, audit }
    argv { action: &'a str, by: &'a str, reason: &'a str, now: i64, until_ms: i64 }
}

/// Sending paused by an operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Halt {
    pub by: String,
    pub reason: String,
    pub since_ms: i64,
    /// `null`: until someone resumes.
    pub until_ms: Option<i64>,
}

/// One line of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditEntry {
    /// `pause`, `resume`, `provider_pause` or `guard_lift`.
    pub action: String,
    pub by: String,
    pub reason: String,
    pub until_ms: Option<i64>,
    pub ts_ms: i64,
}

impl Records {
    /// Stops every worker's sends (jobs wait; no attempt is used) until `until_ms`, or until
    /// resumed. A pause in force is replaced (its new reason and end).
    pub async fn pause_sending(
        &self,
        by: &str,
        reason: &str,
        now_ms: i64,
        until_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        self.halt_call("pause", by, reason, now_ms, until_ms.unwrap_or(0))
            .await
            .map(drop)
    }

    /// True if sending was paused by an operator (and now is not).
    pub async fn resume_sending(&self, by: &str, now_ms: i64) -> Result<bool, StoreError> {
        Ok(self.halt_call("resume", by, "", now_ms, 0).await? == 1)
    }

    async fn halt_call(
        &self,
        action: &str,
        by: &str,
        reason: &str,
        now: i64,
        until_ms: i64,
    ) -> Result<i64, StoreError> {
        HaltCall {
            halt: self.fleet().halt(),
            audit: self.fleet().audit(),
            action,
            by,
            reason,
            now,
            until_ms,
        }
        .call(&mut self.conn())
        .await
    }

    /// The operator's pause in force, if any.
    pub async fn halted(&self) -> Result<Option<Halt>, StoreError> {
        let h: HashMap<String, String> = self.conn().hgetall(self.fleet().halt()).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let ms = |k: &str| h.get(k).and_then(|v| v.parse::<i64>().ok());
        Ok(Some(Halt {
            by: h.get("by").cloned().unwrap_or_default(),
            reason: h.get("reason").cloned().unwrap_or_default(),
            since_ms: ms("since_ms").unwrap_or(0),
            until_ms: ms("until_ms").filter(|u| *u > 0),
        }))
    }

    /// The newest `n` entries of the trail, newest first.
    pub async fn audit_trail(&self, n: usize) -> Result<Vec<AuditEntry>, StoreError> {
        let reply: StreamRangeReply = self
            .conn()
            .xrevrange_count(self.fleet().audit(), "+", "-", n)
            .await?;
        Ok(reply
            .ids
            .into_iter()
            .map(|e| {
                let text = |k: &str| e.get::<String>(k).unwrap_or_default();
                AuditEntry {
                    action: text("action"),
                    by: text("by"),
                    reason: text("reason"),
                    until_ms: text("until_ms").parse().ok().filter(|u| *u > 0),
                    ts_ms: text("ts").parse().unwrap_or(0),
                }
            })
            .collect())
    }
}
