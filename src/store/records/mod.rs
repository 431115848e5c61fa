//! The operators' store: the queue's state for `smsq status` and the dashboard, job records
//! and their history, dead letters and replay, and the dashboard's logged-out sessions. The
//! API (for `GET /v1/jobs/{id}` and `/v1/admin`) and the on-call CLI hold one.

mod dead;
mod inspect;
mod jobs;
mod replay;
mod sessions;

pub use dead::{DeadLetter, Replay};
pub use inspect::{PENDING_SAMPLE, QueueState};
pub use jobs::{JobFound, JobRecord, StatusEvent};
pub use replay::{ReplayOutcome, Replayed};

use super::Store;

/// The operators' handle on Redis: the shared [`Store`] and what operators read and undo.
#[derive(Clone)]
pub struct Records {
    store: Store,
}

impl Records {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Every store is the shared handle (connection, keys, shards) plus its own steps.
impl std::ops::Deref for Records {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
pub(crate) const SCRIPTS: [super::script::Header; 1] = [dead::ReplayCall::HEADER];
