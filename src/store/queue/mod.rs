//! The worker's store: reading and claiming the send stream, each attempt's transitions
//! (begin, settle, poison, promote), heartbeats and reaping, the fleet's send rate and the
//! provider's pause. Only `smsq worker` holds one.

mod attempt;
mod fleet;
mod rate;
mod stream;
mod transitions;

pub use attempt::{Begin, Fence, Outcome, ProviderFailure, Settled};
pub use rate::{Grant, Lease, RatePolicy};
pub use stream::Entry;

use super::Store;

/// The worker's handle on Redis: the shared [`Store`] and the steps only a worker takes.
#[derive(Clone)]
pub struct Queue {
    store: Store,
}

impl Queue {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Every store is the shared handle (connection, keys, shards) plus its own steps.
impl std::ops::Deref for Queue {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
pub(crate) const SCRIPTS: [super::script::Header; 9] = [
    transitions::BeginCall::HEADER,
    transitions::SettleCall::HEADER,
    transitions::PoisonCall::HEADER,
    transitions::PromoteCall::HEADER,
    rate::RateCall::HEADER,
    rate::PauseCall::HEADER,
    fleet::ReapCall::HEADER,
    fleet::TouchCall::HEADER,
    fleet::ClaimOwnCall::HEADER,
];
