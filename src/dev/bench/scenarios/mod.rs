//! The scenarios, each on an empty Redis with its own processes.

mod cluster;
mod failover;
mod fleet;
mod idle;
mod pumping;
mod retention;
mod soak;
mod throughput;

pub use soak::Soak;

use super::{Bench, BenchError};

/// Every scenario, or those named in `only`.
pub async fn run(bench: &mut Bench, only: &[String], soak: Soak) -> Result<(), BenchError> {
    eprintln!("smsq bench ({:?})", bench.sizes);
    let on = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if on("provider") {
        throughput::provider_ceiling(bench).await?;
    }
    if on("enqueue") {
        throughput::enqueue(bench).await?;
    }
    if on("drain0") {
        throughput::drain(bench, 0, 200).await?;
    }
    if on("drain100") {
        throughput::drain(bench, 100, 2000).await?;
    }
    if on("e2e") {
        throughput::end_to_end(bench).await?;
    }
    if on("limiter") {
        fleet::limiter(bench).await?;
    }
    if on("recovery") {
        fleet::recovery(bench).await?;
    }
    if on("memory") {
        throughput::memory(bench).await?;
    }
    if on("retention") {
        retention::retention(bench).await?;
    }
    if on("pumping") {
        pumping::pumping(bench).await?;
    }
    if on("failover") {
        failover::failover(bench).await?;
    }
    if on("idle") {
        idle::idle(bench).await?;
    }
    if on("cluster") {
        cluster::shards(bench).await?;
    }
    // Half an hour by default: only when asked for by name.
    if only.iter().any(|o| o == "soak") {
        soak::soak(bench, soak).await?;
    }
    Ok(())
}
