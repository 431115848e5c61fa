//! Everything smsq keeps in Redis, in one store per caller: [`Queue`] (the worker's),
//! [`Intake`] (the API's) and [`Records`] (the operators'), each over the shared [`Store`]
//! handle (one connection, one key layout). Multi-key steps are Lua scripts beside their only
//! caller (one round trip, atomic, one hash tag), called through typed structs
//! ([`script`]); the rest of the crate never builds a key or a command itself.

/// Declares a caller's store: the shared [`Store`] handle plus that caller's steps, which
/// are `impl`s in the caller's own module. Derefs to the handle for what every process uses.
macro_rules! caller_store {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            store: $crate::store::Store,
        }

        impl $name {
            pub fn new(store: $crate::store::Store) -> Self {
                Self { store }
            }
        }

        impl std::ops::Deref for $name {
            type Target = $crate::store::Store;
            fn deref(&self) -> &$crate::store::Store {
                &self.store
            }
        }
    };
}

mod conn;
mod consumers;
pub mod hooks;
pub mod intake;
mod keys;
mod layout;
pub mod queue;
pub mod records;
pub(crate) mod script;

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

pub use conn::Conn;
pub use consumers::ConsumerState;
pub use hooks::Hooks;
pub use intake::{
    BudgetAlert, BudgetScope, BudgetWindow, CaptchaCheck, Fallback, GuardRefusal, Guarded,
    Idempotency, Intake, IpRefusal, IssueOutcome, NewCode, NewMessage, ReportOutcome, Trip,
    TripReason, Verification,
};
pub use keys::{GROUP, Keys};
pub use layout::{Layout, LayoutError};
pub use queue::{
    Begin, Circuit, CircuitOp, CircuitPolicy, CircuitState, Entry, Fence, Grant, Lease, Outcome,
    Permit, ProviderFailure, Queue, RatePolicy, Settled,
};
pub use records::{BlockedPrefix, BudgetUse, DeadDelivery, EndpointState};
pub use records::{
    DeadLetter, JobFound, JobRecord, PENDING_SAMPLE, QueueState, Records, Replay, StatusEvent,
};

use crate::config::{RedisSettings, Settings};
use crate::domain::{Mobile, Shard, Shards};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from redis: {0}")]
    Reply(String),
}

impl StoreError {
    /// The stream or its consumer group does not exist (Redis restarted empty).
    pub fn is_missing_group(&self) -> bool {
        matches!(self, StoreError::Redis(e) if e.code() == Some("NOGROUP"))
    }

    /// Connection-level trouble (down, restarting, timed out, a cluster failing over), as
    /// opposed to a bug.
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::Redis(e) => {
                use redis::{ErrorKind, ServerErrorKind as S};
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || matches!(
                        e.kind(),
                        ErrorKind::ClusterConnectionNotFound
                            | ErrorKind::Server(
                                S::BusyLoading
                                    | S::TryAgain
                                    | S::ClusterDown
                                    | S::MasterDown
                                    | S::ReadOnly
                                    // The cluster client follows redirections a few times;
                                    // one that survives that is a topology still moving.
                                    | S::Moved
                                    | S::Ask
                            )
                    )
            }
            StoreError::Reply(_) => false,
        }
    }
}

/// The handle every store shares: a self-healing multiplexed connection (to one Redis or a
/// cluster) and the key layout of every shard. Cheap to clone; concurrent commands are
/// pipelined on one socket per node. It runs nothing of its own but what every process
/// needs (ping, the start-up checks, who is in the group); the steps are the stores'.
#[derive(Clone)]
pub struct Store {
    conn: Conn,
    /// One per shard, shard 0 first.
    keys: Arc<[Keys]>,
    shards: Shards,
    retention: Retention,
}

/// Caps and lifetimes applied to what the scripts write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    pub stream_maxlen: u64,
    pub events_keep_ms: u64,
    pub status_ttl_secs: u64,
    /// Dead letters kept at most (per shard); they also go after `status_ttl_secs`.
    pub dead_maxlen: u64,
    /// Deliveries of one entry without an outcome before `begin` dead-letters it.
    pub max_deliveries: u32,
}

impl Store {
    /// Connects lazily: the process starts even while Redis is down, commands fail fast with
    /// `redis.timeout_ms` and the manager reconnects in the background when Redis is back.
    pub fn connect(settings: &Settings) -> Result<Self, StoreError> {
        let retention = Retention {
            stream_maxlen: settings.stream.maxlen,
            events_keep_ms: settings.stream.events_keep_ms,
            status_ttl_secs: settings.status.ttl.as_secs(),
            dead_maxlen: settings.stream.dead_maxlen,
            max_deliveries: settings.worker.max_deliveries.get(),
        };
        let redis = &settings.redis;
        Ok(Self {
            conn: Conn::open(redis, redis.timeout)?,
            keys: redis
                .shards
                .all()
                .map(|shard| Keys::new(&redis.prefix, shard))
                .collect(),
            shards: redis.shards,
            retention,
        })
    }

    pub fn shards(&self) -> Shards {
        self.shards
    }

    /// The keys of one shard: those of the configured shards are made once; a shard past
    /// them (an older, larger layout being checked) gets its own, never another shard's.
    pub fn keys(&self, shard: Shard) -> Cow<'_, Keys> {
        match self.keys.get(shard.index()) {
            Some(keys) => Cow::Borrowed(keys),
            None => Cow::Owned(Keys::new(self.keys[0].prefix(), shard)),
        }
    }

    /// Shard 0, which also holds what the whole fleet shares: the rate, the pause, the
    /// published limit, the layout record.
    pub(crate) fn fleet(&self) -> &Keys {
        &self.keys[0]
    }

    /// The keys of a number's shard.
    pub(crate) fn of_mobile(&self, mobile: &Mobile) -> Cow<'_, Keys> {
        self.keys(self.shards.of_mobile(mobile))
    }

    pub(crate) fn conn(&self) -> Conn {
        self.conn.clone()
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

/// A connection of its own for blocking reads (`XREADGROUP … BLOCK`): on the shared
/// multiplexed socket a blocked read would hold up every command queued behind it, and the
/// usual response timeout would cut it short.
pub fn blocking_connection(settings: &RedisSettings, block: Duration) -> Result<Conn, StoreError> {
    Conn::open(settings, block + settings.timeout)
}

/// A provider's message id as a job record keeps it: `ib` and its 16 bytes for 32 lower-case
/// hex digits (Ronglian's smsMessageSid), else `i` and the id as it came; `("", [])` for none.
/// Packed here rather than in Lua, where it cost about 9 µs a call.
pub(crate) fn message_id_field(message_id: &str) -> (&'static str, Vec<u8>) {
    match crate::domain::packed_hex(message_id) {
        Some(packed) => ("ib", packed.to_vec()),
        None if message_id.is_empty() => ("", Vec::new()),
        None => ("i", message_id.as_bytes().to_vec()),
    }
}

/// Bulk replies from scripts are arrays of strings; read one field or say what was wrong.
pub(crate) fn field(reply: &[String], i: usize) -> Result<&str, StoreError> {
    reply
        .get(i)
        .map(String::as_str)
        .ok_or_else(|| StoreError::Reply(format!("missing field {i} in {reply:?}")))
}

/// A status as a script wrote it, or what was wrong with it.
pub(crate) fn parse_status(s: &str) -> Result<crate::domain::JobStatus, StoreError> {
    s.parse().map_err(StoreError::Reply)
}
