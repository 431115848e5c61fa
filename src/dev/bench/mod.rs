//! `smsq bench [--quick]` (run by `bench/run`): starts its own `redis-server` (unix socket, no
//! persistence), the fake provider, the API and workers as separate processes on loopback,
//! runs each scenario on an empty Redis, and prints one markdown table, each figure next to
//! the ceiling measured in the same run (or the target), and writes the raw numbers as JSON.
//!
//! The load generator is in this process ([`load`]); its ceiling is measured against the
//! API's `/healthz` in the same run, so a figure close to it would say "the generator is the
//! bottleneck", not "smsq is".

mod harness;
mod load;
mod procs;
mod scenarios;

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

pub use harness::{Bench, mobile};

/// How big each scenario is.
#[derive(Debug, Clone, Copy)]
pub struct Sizes {
    pub backlog: u64,
    pub run: Duration,
    pub e2e_rate: f64,
    pub limiter_run: Duration,
    pub in_flight: u64,
    /// The idle fleet: how long its Redis CPU is watched, and the lone jobs sent after.
    pub idle_window: Duration,
    pub idle_jobs: u64,
}

impl Sizes {
    pub fn full() -> Self {
        Self {
            backlog: 100_000,
            run: Duration::from_secs(10),
            e2e_rate: 1000.0,
            limiter_run: Duration::from_secs(30),
            in_flight: 100,
            idle_window: Duration::from_secs(10),
            idle_jobs: 40,
        }
    }

    /// The same scenarios, small: under a minute, even in a debug build.
    pub fn quick() -> Self {
        Self {
            backlog: 2_000,
            run: Duration::from_millis(1500),
            e2e_rate: 200.0,
            limiter_run: Duration::from_secs(3),
            in_flight: 100,
            idle_window: Duration::from_secs(2),
            idle_jobs: 10,
        }
    }
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchOptions {
    /// The same scenarios, small (under a minute).
    #[arg(long)]
    pub quick: bool,
    /// Only these scenarios (comma-separated: provider, enqueue, drain0, drain100, e2e,
    /// limiter, recovery, memory, retention, pumping, failover, idle, cluster, soak); the drain ceiling needs
    /// `provider`. The
    /// soak runs only when named (`bench/soak`).
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// The soak's length, in seconds.
    #[arg(long, default_value_t = 1800)]
    pub soak_secs: u64,
    /// The soak's rate of `POST /v1/codes`, per second (to the API, and the same to `smsq dev`).
    #[arg(long, default_value_t = 300.0)]
    pub soak_rate: f64,
    /// Run the soak's API, workers and `smsq dev` from this build of smsq instead of this
    /// one: an A/B of two builds in one harness.
    #[arg(long, hide = true)]
    pub exe: Option<PathBuf>,
    /// Where to write the raw numbers (default: bench/results.json, or
    /// bench/results-quick.json with --quick).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub value: f64,
    pub unit: &'static str,
    /// The ceiling measured in the same run, or the target.
    pub ceiling: Option<f64>,
    pub ceiling_is: &'static str,
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    #[error(transparent)]
    LocalRedis(#[from] crate::dev::local_redis::LocalRedisError),
    #[error(transparent)]
    Startup(#[from] crate::startup::StartupError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Client(#[from] crate::provider::ClientError),
    #[error("redis: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Stuck(String),
}

/// Runs every scenario and prints the table.
pub async fn run(opts: BenchOptions) -> Result<Vec<Row>, BenchError> {
    procs::raise_open_files();
    if let Some(exe) = &opts.exe {
        procs::set_exe(exe.clone());
    }
    crate::provider::install_crypto();
    let sizes = if opts.quick {
        Sizes::quick()
    } else {
        Sizes::full()
    };
    let mut bench = Bench::start(sizes).await?;
    let soak = scenarios::Soak {
        run: Duration::from_secs(opts.soak_secs),
        rate: opts.soak_rate,
    };
    scenarios::run(&mut bench, &opts.only, soak).await?;
    let rows = bench.rows().to_vec();
    println!("{}", table(&rows));
    let path = opts.json.unwrap_or_else(|| {
        PathBuf::from(if opts.quick {
            "bench/results-quick.json"
        } else {
            "bench/results.json"
        })
    });
    let doc = serde_json::json!({"quick": opts.quick, "rows": rows});
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| BenchError::Io("creating the results dir", e))?;
    }
    std::fs::write(
        &path,
        serde_json::to_string_pretty(&doc).unwrap_or_default(),
    )
    .map_err(|e| BenchError::Io("writing the results", e))?;
    println!("raw numbers: {}", path.display());
    Ok(rows)
}

/// The markdown table.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| scenario | figure | value | ceiling (same run) or target | ratio |\n|---|---|---:|---|---:|\n",
    );
    for r in rows {
        let (ceiling, ratio) = match r.ceiling {
            Some(c) => (
                format!("{} ({})", number(c, r.unit), r.ceiling_is),
                format!("{:.2}", r.value / c),
            ),
            None => ("—".to_owned(), "—".to_owned()),
        };
        out.push_str(&format!(
            "| {} | {} | {} | {ceiling} | {ratio} |\n",
            r.scenario,
            r.figure,
            number(r.value, r.unit)
        ));
    }
    out
}

fn number(v: f64, unit: &str) -> String {
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    format!("{v:.digits$} {unit}")
}

/// The most of `times_us` (µs) in any one-second window.
pub fn busiest_second(times_us: &[i64]) -> usize {
    let mut times = times_us.to_vec();
    times.sort_unstable();
    let mut start = 0;
    let mut best = 0;
    for end in 0..times.len() {
        while times[end] - times[start] >= 1_000_000 {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}
