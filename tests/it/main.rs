//! Integration tests: one binary, one real `redis-server` (started by the harness on a unix
//! socket), one key prefix per test, the project's own fake provider over loopback.

mod common;

mod api_captcha;
mod api_codes;
mod api_errors;
mod bench;
mod captcha_vendors;
mod chaos;
mod cli;
mod cluster;
mod config;
mod consumer;
mod dashboard;
mod django;
mod export;
mod failover;
mod fleet;
mod fuzz;
mod guard;
mod hardening;
mod integration;
mod metrics;
mod openapi;
mod ops;
mod pause;
mod protocol;
mod provider;
mod provider_sdks;
mod recovery;
mod reports;
mod secrecy;
mod shards;
mod soak;
mod test_numbers;
mod verify;
mod voice;
mod webhooks;
mod worker;
