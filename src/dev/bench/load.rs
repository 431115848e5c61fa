//! A small HTTP load generator: closed loop (N connections as fast as they go) for
//! throughput, open loop (a fixed rate, whatever the answers) for latency. Latencies are
//! measured with the monotonic clock, in µs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

/// Builds the n-th request (n is unique across the run).
pub type MakeRequest = Arc<dyn Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder + Send + Sync>;

pub fn client(connections: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// `connections` requests in flight at all times for `run`; returns (ok answers per
/// second, failed answers).
pub async fn closed_loop(
    connections: usize,
    run: Duration,
    first: u64,
    make: MakeRequest,
) -> (f64, u64) {
    let http = client(connections);
    let next = Arc::new(AtomicU64::new(first));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for _ in 0..connections {
        let (http, next, make) = (http.clone(), next.clone(), make.clone());
        let (ok, failed) = (ok.clone(), failed.clone());
        tasks.spawn(async move {
            while started.elapsed() < run {
                let n = next.fetch_add(1, Ordering::Relaxed);
                match make(&http, n).send().await {
                    Ok(r) if r.status().is_success() => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let secs = started.elapsed().as_secs_f64();
    (
        ok.load(Ordering::Relaxed) as f64 / secs,
        failed.load(Ordering::Relaxed),
    )
}

/// Requests on a fixed schedule, one every `1 / rate` s for `run`, sent by 64 connections:
/// request `i` is due at `start + i / rate`. Its latency counts from when it was sent, or
/// from when it was due if it went out more than 2 ms late: a server that falls behind
/// shows up in the latencies instead of hiding (no coordinated omission), while the
/// timer's own millisecond rounding does not. Returns the latencies of the successful
/// ones (µs), the failures, and each request's send time (n, Unix µs).
pub async fn open_loop(
    rate: f64,
    run: Duration,
    first: u64,
    make: MakeRequest,
) -> (Vec<u64>, u64, Vec<(u64, i64)>) {
    const CONNECTIONS: usize = 64;
    let http = client(CONNECTIONS);
    let total = (rate * run.as_secs_f64()) as u64;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let start_us = crate::domain::now_us();
    let mut tasks = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let (http, make, next) = (http.clone(), make.clone(), next.clone());
        tasks.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return done;
                }
                let offset = Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until((start + offset).into()).await;
                let late = start.elapsed().saturating_sub(offset);
                let from = if late > Duration::from_millis(2) {
                    offset
                } else {
                    start.elapsed()
                };
                let sent_us = start_us + from.as_micros() as i64;
                let ok =
                    matches!(make(&http, first + i).send().await, Ok(r) if r.status().is_success());
                let latency = (start.elapsed().saturating_sub(from)).as_micros() as u64;
                done.push((first + i, sent_us, ok.then_some(latency)));
            }
        });
    }
    let (mut latencies, mut failed, mut due) = (Vec::new(), 0, Vec::new());
    while let Some(lane) = tasks.join_next().await {
        for (n, due_us, latency) in lane.unwrap_or_default() {
            match latency {
                Some(us) => {
                    latencies.push(us);
                    due.push((n, due_us));
                }
                None => failed += 1,
            }
        }
    }
    (latencies, failed, due)
}

/// The `p`-th percentile (0–100) of `values`, sorted in place.
pub fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    let rank = ((p / 100.0) * (values.len() - 1) as f64).round() as usize;
    values[rank.min(values.len() - 1)]
}
