//! Domain types, parsed once at the edge: a [`Mobile`] is always a valid mainland number, a
//! [`Purpose`] and [`TemplateId`] are always well formed, a [`JobId`] is always 32 hex digits.

mod code;
mod entry_id;
mod event;
mod ids;
mod job;
mod mobile;
mod net;
mod sealed;
mod secret;
mod shard;
mod text;

pub use code::{Code, Hasher};
pub(crate) use code::{hex, packed_hex};
pub use entry_id::EntryId;
pub use event::{EventFilter, EventType};
pub use ids::{CaptchaId, JobId, RequestId};
pub use job::{Channel, Job, JobKind, JobStatus};
pub use mobile::{InvalidMobile, InvalidPrefix, Mobile, NumberPrefix};
pub use net::ClientNet;
pub use sealed::{CodeSealer, OpenError, SealedCode};
pub use secret::Secret;
pub use shard::{InvalidShards, Shard, Shards};
pub use text::{InvalidText, Purpose, TemplateId};

/// Milliseconds since the Unix epoch, the unit of every timestamp smsq stores.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Microseconds since the Unix epoch, for latencies measured across processes.
pub fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// China has one time zone and no daylight saving: days and hours for caps are counted in it.
pub fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("UTC+8 is a valid offset")
}
