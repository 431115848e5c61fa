//! Each endpoint's delivery queue: add (once per event), lease what is due, done, retry or
//! dead, replay, and what operators read.

use super::Hooks;
use crate::store::StoreError;
use crate::store::script::script;

script! {
    /// One event for one endpoint, at most once.
    struct AddCall<'a> = include_str!("add.lua");
    keys { due, events, tries }
    argv { event_id: &'a str, payload: &'a str, now: i64 }
}

script! {
    /// What is due now, leased to the caller.
    struct LeaseCall = include_str!("lease.lua");
    keys { due, events, tries }
    argv { now: i64, lease_ms: u64, count: usize }
}

script! {
    /// Delivered: gone, counted.
    struct DoneCall<'a> = include_str!("done.lua");
    keys { due, events, tries, stats }
    argv { event_id: &'a str }
}

script! {
    /// Failed: due again later, or dead.
    struct RetryCall<'a> = include_str!("retry.lua");
    keys { due, events, tries, stats, dead }
    argv { event_id: &'a str, now: i64, next_due: String, tried: String, dead_ttl_ms: u64 }
}

/// A delivery leased to this dispatcher: its payload and how it has gone so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leased {
    pub event_id: String,
    pub payload: String,
    /// Attempts already made.
    pub tries: u32,
    /// When the event was queued for this endpoint (ms): the retry budget counts from it.
    pub first_ms: i64,
}

/// `<tries>:<first ms>`, as the scripts keep it.
pub(crate) fn tries(text: &str) -> Result<(u32, i64), StoreError> {
    text.split_once(':')
        .and_then(|(n, first)| Some((n.parse().ok()?, first.parse().ok()?)))
        .ok_or_else(|| StoreError::Reply(format!("webhook tries {text:?}")))
}

struct Queue3 {
    due: String,
    events: String,
    tries: String,
}

impl Hooks {
    fn wh(&self, endpoint: &str) -> Queue3 {
        let k = self.fleet();
        Queue3 {
            due: k.webhook(endpoint, "due"),
            events: k.webhook(endpoint, "ev"),
            tries: k.webhook(endpoint, "tries"),
        }
    }

    /// Queues `payload` for `endpoint` unless this event is queued there already.
    pub async fn add_delivery(
        &self,
        endpoint: &str,
        event_id: &str,
        payload: &str,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let q = self.wh(endpoint);
        let added: i64 = AddCall {
            due: q.due,
            events: q.events,
            tries: q.tries,
            event_id,
            payload,
            now: now_ms,
        }
        .call(&mut self.conn())
        .await?;
        Ok(added == 1)
    }

    pub async fn lease(
        &self,
        endpoint: &str,
        now_ms: i64,
        lease_ms: u64,
        count: usize,
    ) -> Result<Vec<Leased>, StoreError> {
        let q = self.wh(endpoint);
        let reply: Vec<String> = LeaseCall {
            due: q.due,
            events: q.events,
            tries: q.tries,
            now: now_ms,
            lease_ms,
            count,
        }
        .call(&mut self.conn())
        .await?;
        reply
            .chunks(3)
            .map(|c| match c {
                [id, payload, tried] => {
                    let (tries, first_ms) = tries(tried)?;
                    Ok(Leased {
                        event_id: id.clone(),
                        payload: payload.clone(),
                        tries,
                        first_ms,
                    })
                }
                other => Err(StoreError::Reply(format!("webhook lease {other:?}"))),
            })
            .collect()
    }

    pub async fn delivered(&self, endpoint: &str, event_id: &str) -> Result<(), StoreError> {
        let q = self.wh(endpoint);
        let _: i64 = DoneCall {
            due: q.due,
            events: q.events,
            tries: q.tries,
            stats: self.fleet().webhook(endpoint, "stats"),
            event_id,
        }
        .call(&mut self.conn())
        .await?;
        Ok(())
    }

    /// An attempt failed: due again at `next_due_ms`, or dead (`None`). True if dead.
    pub async fn failed(
        &self,
        endpoint: &str,
        leased: &Leased,
        now_ms: i64,
        next_due_ms: Option<i64>,
    ) -> Result<bool, StoreError> {
        let q = self.wh(endpoint);
        let outcome: String = RetryCall {
            due: q.due,
            events: q.events,
            tries: q.tries,
            stats: self.fleet().webhook(endpoint, "stats"),
            dead: self.fleet().webhook(endpoint, "dead"),
            event_id: &leased.event_id,
            now: now_ms,
            next_due: next_due_ms.map(|d| d.to_string()).unwrap_or_default(),
            tried: format!("{}:{}", leased.tries + 1, leased.first_ms),
            dead_ttl_ms: self.retention.status_ttl_secs * 1000,
        }
        .call(&mut self.conn())
        .await?;
        Ok(outcome == "dead")
    }
}
