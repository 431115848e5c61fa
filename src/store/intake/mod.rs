//! The API's store: issuing a code (the per-address caps, then one script), enqueueing a
//! message, checking codes and captchas, idempotency records, and the platform's delivery
//! reports and replies. Only `smsq api` holds one.

mod checks;
mod issue;
mod reports;
mod windows;

pub use checks::{CaptchaCheck, Verification};
pub use issue::{Idempotency, IpRefusal, IssueOutcome, NewCode, NewMessage};
pub use reports::ReportOutcome;

use super::Store;

/// The API's handle on Redis: the shared [`Store`] and the steps only the API takes.
#[derive(Clone)]
pub struct Intake {
    store: Store,
}

impl Intake {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

/// Every store is the shared handle (connection, keys, shards) plus its own steps.
impl std::ops::Deref for Intake {
    type Target = Store;
    fn deref(&self) -> &Store {
        &self.store
    }
}

#[cfg(test)]
pub(crate) const SCRIPTS: [super::script::Header; 7] = [
    issue::IpReserveCall::HEADER,
    issue::IpReleaseCall::HEADER,
    issue::IssueCodeCall::HEADER,
    issue::EnqueueMessageCall::HEADER,
    checks::VerifyCall::HEADER,
    checks::ConsumeCall::HEADER,
    reports::ReportCall::HEADER,
];
