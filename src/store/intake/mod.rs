//! The API's store: issuing a code (the per-address caps, then one script), enqueueing a
//! message, checking codes and captchas, idempotency records, and the platform's delivery
//! reports and replies. Only `smsq api` holds one.

mod checks;
mod guard;
mod issue;
mod reports;
mod windows;

pub use checks::{CaptchaCheck, Verification};
pub(in crate::store) use guard::buckets;
pub use guard::{BudgetAlert, BudgetScope, BudgetWindow, GuardRefusal, Guarded, Trip, TripReason};
pub use issue::{Fallback, Idempotency, IpRefusal, IssueOutcome, NewCode, NewMessage};
pub use reports::ReportOutcome;
pub(in crate::store) use windows::windows;

caller_store! {
    /// The API's handle on Redis: the shared [`Store`](super::Store) and the steps
    /// only the API takes.
    Intake
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
