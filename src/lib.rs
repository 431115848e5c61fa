//! smsq: SMS verification codes for web apps, delivered through Chinese SMS providers: Ronglian
//! (容联云) TemplateSMS, Tencent Cloud SMS and Aliyun SMS accounts, with fleet-wide failover, and
//! voice codes through Ronglian `VoiceVerify`.
//!
//! Two processes share one Redis, or one Redis Cluster with the queue split into shards
//! (each atomic step on one shard's hash tag, so on one slot):
//!
//! * **`smsq api`** ([`api`]) — a web app's backend asks for a code; [`codes`] validates the
//!   number, enforces resend interval and caps, generates the code and, in one Lua script
//!   (through the API's store, [`store::Intake`]), stores its keyed hash and the sealed code
//!   (the code record), the job record and a stream entry. Verification counts the attempt in
//!   Redis before a constant-time comparison.
//! * **`smsq worker`** ([`worker`]) — a consumer group on the stream, through the worker's
//!   store ([`store::Queue`]); for each job it opens the code just before sending, calls the
//!   [`provider`] through the first healthy account of the job's route, and writes the
//!   outcome, drops the code and acks the entry in one script. Failures are classified once
//!   per kind ([`provider::classify`]) into retry, back off, pause the account, move to the
//!   next account, or give up. Every worker shares each account's send rate, pause and
//!   circuit through Redis, keeps a heartbeat, and reclaims the jobs of dead workers.
//!
//! Around them: [`startup`] wires both (the binary, `smsq dev` and the tests alike); the
//! operators' store ([`store::Records`]) and one [`snapshot`] of the queue feed [`ops`]
//! (what on-call runs: `smsq status`, `smsq dlq`, `smsq send`, which nothing else depends
//! on), the dashboard and [`metrics`] (what Prometheus scrapes); [`dev`] holds the demo, the
//! provider simulator and a private Redis.
//!
//! A job's life: `queued → sending → sent`, or `retrying → sending …`, ending `sent`,
//! `failed`, `dead`, `expired` or `superseded`. See docs/contract.md for the contract.

pub mod api;
pub mod captcha;
pub mod codes;
pub mod config;
pub mod dev;
pub mod domain;
pub mod metrics;
pub mod ops;
pub mod provider;
pub mod shutdown;
pub mod snapshot;
pub mod startup;
pub mod store;
pub mod tc3;
pub mod telemetry;
pub mod webhooks;
pub mod worker;
