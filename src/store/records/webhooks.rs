//! The webhook queues as operators see them: each endpoint's backlog, dead deliveries and
//! counters (`smsq status`, `/metrics`, the dashboard), and replaying the dead
//! (`smsq webhooks replay`).

use redis::AsyncCommands;

use super::Records;
use crate::store::StoreError;
use crate::store::hooks::tries;
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
    /// Dead webhook deliveries of `endpoint` due again now (`ids` empty: all); how many moved.
    pub async fn replay_webhooks(
        &self,
        endpoint: &str,
        ids: &[String],
        now_ms: i64,
    ) -> Result<u64, StoreError> {
        let k = self.fleet();
        WebhookReplayCall {
            due: k.webhook(endpoint, "due"),
            tries: k.webhook(endpoint, "tries"),
            dead: k.webhook(endpoint, "dead"),
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
        if limit == 0 {
            return Ok(Vec::new());
        }
        let k = self.fleet();
        let dead: Vec<(String, f64)> = self
            .conn()
            .zrange_withscores(k.webhook(endpoint, "dead"), 0, limit as isize - 1)
            .await?;
        if dead.is_empty() {
            return Ok(Vec::new());
        }
        // Every payload and try count in one round trip, however many are dead.
        let ids: Vec<&str> = dead.iter().map(|(id, _)| id.as_str()).collect();
        let (payloads, tried): (Vec<Option<String>>, Vec<Option<String>>) = redis::pipe()
            .cmd("HMGET")
            .arg(k.webhook(endpoint, "ev"))
            .arg(&ids)
            .cmd("HMGET")
            .arg(k.webhook(endpoint, "tries"))
            .arg(&ids)
            .query_async(&mut self.conn())
            .await?;
        let mut out = Vec::with_capacity(dead.len());
        for (((id, at), payload), tried) in dead.into_iter().zip(payloads).zip(tried) {
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

    /// Each endpoint's queue: one pipelined round trip per endpoint.
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
