//! What on-call runs: `smsq status` (one [`crate::snapshot::Snapshot`] of the queue, as text or JSON), the
//! dead-letter tools (`smsq dlq`) and the smoke test `smsq send`. Reading Redis is the store's
//! job; this module decides what the numbers mean and prints them.

pub mod dlq;
pub mod export;
pub mod guard;
pub mod pause;
pub mod provider;
pub mod send;
pub mod status;
pub mod webhooks;
