//! What on-call runs: `smsq status` (one [`Snapshot`] of the queue, as text or JSON), the
//! dead-letter tools (`smsq dlq`) and the smoke test `smsq send`. Reading Redis is the store's
//! job; this module decides what the numbers mean and prints them.

pub mod dlq;
pub mod send;
mod snapshot;
pub mod status;

pub use snapshot::{
    ConsumerView, LimiterView, RetryView, SCRAPE_FRESH_FOR, Snapshot, SnapshotCache, StreamView,
    Throughput, Verdict,
};
