//! The webhook dispatcher's store: the events streams read through a consumer group of its
//! own, and per endpoint a delivery queue (`{<prefix>:wh:<name>}`: `due` by time, the
//! payloads, each one's tries, the dead ones, counters). Only `smsq worker` holds one, and
//! only when endpoints are configured.

mod deliveries;
mod events;

pub use deliveries::Leased;
pub(crate) use deliveries::tries;
pub use events::EventEntry;

caller_store! {
    /// The webhook dispatcher's handle on Redis: the shared [`Store`](super::Store) and the
    /// steps only the dispatcher (and `smsq webhooks`) take.
    Hooks
}

/// The consumer group the dispatchers share on each shard's events stream.
pub const EVENTS_GROUP: &str = "webhooks";

#[cfg(test)]
pub(crate) const SCRIPTS: [super::script::Header; 4] = [
    deliveries::AddCall::HEADER,
    deliveries::LeaseCall::HEADER,
    deliveries::DoneCall::HEADER,
    deliveries::RetryCall::HEADER,
];
