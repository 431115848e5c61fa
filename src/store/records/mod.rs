//! The operators' store: the queue's state for `smsq status` and the dashboard, job records
//! and their history, dead letters and replay, and the dashboard's logged-out sessions. The
//! API (for `GET /v1/jobs/{id}` and `/v1/admin`) and the on-call CLI hold one.

mod dead;
mod export;
mod guard;
mod halt;
mod inspect;
mod jobs;
mod replay;
mod sessions;
mod webhooks;

pub use dead::{DeadLetter, DeadLetterView, Replay};
pub use export::{Event, StreamCounts};
pub use guard::{BlockedPrefix, BudgetUse};
pub use halt::{AuditEntry, Halt};
pub use inspect::{PENDING_SAMPLE, QueueState};
pub use jobs::{JobFound, JobRecord, StatusEvent};
pub(crate) use jobs::{Stored, as_text};
pub use replay::{ReplayOutcome, Replayed};
pub use webhooks::{DeadDelivery, EndpointState};

caller_store! {
    /// The operators' handle on Redis: the shared [`Store`](super::Store) and what
    /// operators read and undo.
    Records
}

#[cfg(test)]
pub(crate) const SCRIPTS: [super::script::Header; 3] = [
    dead::ReplayCall::HEADER,
    webhooks::WebhookReplayCall::HEADER,
    halt::HaltCall::HEADER,
];
