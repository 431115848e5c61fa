//! One attempt at a job as the worker sees it: what `begin` decided, the fence that makes
//! the attempt's outcome count only while it owns the job, and the outcomes it can settle on.

use crate::domain::{JobStatus, RequestId, SealedCode};

/// What `begin` decided.
#[derive(Debug)]
pub enum Begin {
    /// Marked `sending`. For code jobs, the sealed code, read just now from the code record;
    /// the request id the job record keeps (`rid`), when the request had one.
    Send {
        sealed: Option<SealedCode>,
        request_id: Option<RequestId>,
    },
    /// Ended now without a send (`superseded`, `expired`); acked.
    Skipped(JobStatus),
    /// Already in this terminal status (a reclaimed or replayed entry); only acked.
    Finished(JobStatus),
    /// A later attempt already happened (the job is in this status): this entry's attempt
    /// ended in a retry, or a later one began, by a worker taken for dead that woke up.
    /// Only acked: sending it would start a second line of attempts.
    Overtaken(JobStatus),
    /// Delivered this many times without an outcome: dead-lettered (a poison pill).
    Poisoned(u32),
}

/// One attempt at a job: the consumer that began it, and a token of this attempt alone.
/// `begin` records the token on the job as its owner. `settle` writes an outcome only for
/// the attempt the job names, except that a `sent` from any attempt is always written (the
/// provider did accept it). It acks the entry only while the entry is still pending with
/// this consumer. So a worker that was frozen mid-send, taken for dead and overtaken by
/// another cannot write over what happened to the job, nor ack an entry that is now the
/// other worker's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub(super) consumer: String,
    pub(super) token: String,
}

impl Fence {
    /// A fresh attempt by `consumer`.
    pub fn new(consumer: &str) -> Self {
        let token: [u8; 8] = rand::random();
        Self {
            consumer: consumer.to_owned(),
            token: crate::domain::hex(&token),
        }
    }
}

/// What `settle` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The job's status now: the outcome's, or an earlier terminal one that stands.
    Status(JobStatus),
    /// Another attempt owns the job now (this one's worker was taken for dead): this
    /// attempt's failure was not written.
    Stale,
}

/// Why a provider call did not end in `sent`, as recorded on the job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderFailure {
    /// Human-readable: the provider's code, our reading of it and its message.
    pub error: String,
    /// The provider's status code (`172001` for network errors, as the SDKs report them).
    pub provider_status: String,
}

/// How attempt `n` of a job settled: exactly one of these is recorded, with the ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The provider accepted the message (`000000`, or `160054` for a reqId it already had).
    Sent {
        provider_status: String,
        message_id: String,
    },
    /// A permanent provider error: no retry can succeed.
    Failed(ProviderFailure),
    /// A transient failure: the next attempt is due at this time (Unix ms).
    RetryAt(i64, ProviderFailure),
    /// `retry.max_attempts` calls failed; the job is copied to the dead letters.
    Dead(ProviderFailure),
    /// The next attempt would come after the code's expiry.
    Expired(ProviderFailure),
}

impl Outcome {
    pub fn status(&self) -> JobStatus {
        match self {
            Outcome::Sent { .. } => JobStatus::Sent,
            Outcome::Failed(_) => JobStatus::Failed,
            Outcome::RetryAt(..) => JobStatus::Retrying,
            Outcome::Dead(_) => JobStatus::Dead,
            Outcome::Expired(_) => JobStatus::Expired,
        }
    }
}
