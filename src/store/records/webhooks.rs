//! The webhook queues as operators see them: each endpoint's backlog, dead deliveries and
//! counters (`smsq status`, `/metrics`, the dashboard), and replaying the dead
//! (`smsq webhooks replay`).

use redis::AsyncCommands;

use super::Records;
use crate::store::StoreError;
use crate::store::hooks::{Hooks, tries};
use crate::store::script::script;

script! {
    /// Dead deliveries due again.
    struct WebhookReplayCall<'a> = include_str!("webhook_replay.lua");
    keys { due, tries, dead }
    argv { now: i64 }
    rest { event_ids: &'a [String] }
}

/// A delivery given up on.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DeadDelivery {
    pub event_id: String,
    pub dead_at_ms: i64,
    pub tries: u32,
    /// The event as it would be sent.
    pub payload: serde_json::Value,
}

/// One endpoint's queue, for `smsq status`, `/metrics` and the dashboard.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EndpointState {
    pub endpoint: String,
    /// Waiting for delivery (due now, later, or in flight).
    pub backlog: u64,
    pub dead: u64,
    pub delivered: u64,
    pub failed_attempts: u64,
}

impl Records {
    /// The queue of `endpoint` under the hooks' keys.
    fn hooks(&self) -> Hooks {
        Hooks::new(crate::store::Store::clone(self))
    }

    /// Dead webhook deliveries of `endpoint` due again now (`ids` empty: all); how many moved.
    pub async fn replay_webhooks(
        &self,
        endpoint: &str,
        ids: &[String],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let q = self.hooks().wh(endpoint);
        WebhookReplayCall {
            due: q.due,
            tries: q.tries,
            dead: self.fleet().webhook(endpoint, "dead"),
            now: now_ms,
            event_ids: ids,
        }
        .call(&mut self.conn())
        .await
    }

    /// The oldest `limit` dead deliveries of `endpoint`.
    pub async fn dead_deliveries(
        &self,
        endpoint: &str,
        limit: usize,
    ) -> Result<Vec<DeadDelivery>, StoreError> {
        let q = self.hooks().wh(endpoint);
        let dead: Vec<(String, f64)> = self
            .conn()
            .zrange_withscores(
                self.fleet().webhook(endpoint, "dead"),
                0,
                limit as isize - 1,
            )
            .await?;
        let mut out = Vec::with_capacity(dead.len());
        for (id, at) in dead {
            let (payload, tried): (Option<String>, Option<String>) = redis::pipe()
                .hget(&q.events, &id)
                .hget(&q.tries, &id)
                .query_async(&mut self.conn())
                .await?;
            let payload = payload
                .and_then(|p| serde_json::from_str(&p).ok())
                .unwrap_or(serde_json::Value::Null);
            let tries = tried.as_deref().map(tries).transpose()?.map_or(0, |t| t.0);
            out.push(DeadDelivery {
                event_id: id,
                dead_at_ms: at as i64,
                tries,
                payload,
            });
        }
        Ok(out)
    }

    /// Each endpoint's queue: two round trips per endpoint.
    pub async fn endpoint_states(
        &self,
        endpoints: &[&str],
    ) -> Result<Vec<EndpointState>, StoreError> {
        let mut out = Vec::new();
        for name in endpoints {
            let k = self.fleet();
            let (backlog, dead, stats): (u64, u64, std::collections::HashMap<String, u64>) =
                redis::pipe()
                    .zcard(k.webhook(name, "due"))
                    .zcard(k.webhook(name, "dead"))
                    .hgetall(k.webhook(name, "stats"))
                    .query_async(&mut self.conn())
                    .await?;
            out.push(EndpointState {
                endpoint: name.to_string(),
                backlog,
                dead,
                delivered: stats.get("delivered").copied().unwrap_or(0),
                failed_attempts: stats.get("failed_attempts").copied().unwrap_or(0),
            });
        }
        Ok(out)
    }
}
