//! The worker's store: reading and claiming the send stream, each attempt's transitions
//! (begin, settle, poison, promote), heartbeats and reaping, the fleet's send rate and the
//! provider's pause. Only `smsq worker` holds one.

mod attempt;
mod circuit;
mod fleet;
mod rate;
mod stream;
mod transitions;

pub use attempt::{Begin, Fence, Outcome, ProviderFailure, Settled};
pub use circuit::{Circuit, CircuitOp, CircuitPolicy, CircuitState, Permit};
pub use rate::{Grant, Lease, RatePolicy};
pub use stream::Entry;

caller_store! {
    /// The worker's handle on Redis: the shared [`Store`](super::Store) and the steps
    /// only a worker takes.
    Queue
}

#[cfg(test)]
pub(crate) const SCRIPTS: [super::script::Header; 11] = [
    transitions::BeginCall::HEADER,
    transitions::SettleCall::HEADER,
    transitions::HopCall::HEADER,
    circuit::CircuitCall::HEADER,
    transitions::PoisonCall::HEADER,
    transitions::PromoteCall::HEADER,
    rate::RateCall::HEADER,
    rate::PauseCall::HEADER,
    fleet::ReapCall::HEADER,
    fleet::TouchCall::HEADER,
    fleet::ClaimOwnCall::HEADER,
];
