//! The soak (`bench/soak`, or `smsq bench --only soak`): codes at a steady rate for a long
//! time, as an operator runs smsq — an API, two workers and `smsq dev`, each a process of its
//! own at the shipped log level, logging to a file, nobody scraping `/metrics` — against the
//! fake provider with faults and delivery reports. Every code the fake receives is verified
//! through the API. Each process's resident memory is sampled; the table gives its growth
//! and slope over the last third of the run, which must be flat once warm.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::dev::bench::harness::{fake_messages_since, mobile, wait_listening};
use crate::dev::bench::load::{client, open_loop};
use crate::dev::bench::procs::{Proc, rss};
use crate::dev::bench::{Bench, BenchError, Row};
use crate::dev::local_redis::LocalRedis;

/// The soak's length and rate (`--soak-secs`, `--soak-rate`).
#[derive(Debug, Clone, Copy)]
pub struct Soak {
    pub run: Duration,
    pub rate: f64,
}

/// One process's resident memory over the run: (seconds since start, bytes).
struct Samples {
    name: &'static str,
    pid: u32,
    points: Vec<(f64, u64)>,
}

pub async fn soak(bench: &mut Bench, soak: Soak) -> Result<(), BenchError> {
    bench.flush().await?;
    let logs = bench.dir().join("soak-logs");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::Io("soak log dir", e))?;
    let reports_token = "soak-reports-0123456789abcdef";
    let (api, api_base) = bench
        .api_logged(
            &[("SMSQ_REPORTS_TOKEN", reports_token)],
            &logs.join("api.log"),
        )
        .await?;
    let report_url = format!("{api_base}/v1/provider/ronglian/reports/{reports_token}");
    let faults = [
        "--error-rate",
        "0.02",
        "--http500-rate",
        "0.01",
        "--garbage-rate",
        "0.005",
        "--drop-rate",
        "0.005",
        "--report-url",
        &report_url,
        "--keep",
        "20000",
    ];
    let (_fake, fake_base) = bench.fake_with(&faults).await?;
    // The fleet's rate is not what is soaked: leave it room above the offered rate.
    let rate = ((soak.rate * 2.0) as u64).max(100).to_string();
    let extra = [("SMSQ_WORKER__RATE_PER_SEC", rate.as_str())];
    let w1 = bench.worker_logged("soak-1", &fake_base, &extra, &logs.join("worker-1.log"))?;
    let w2 = bench.worker_logged("soak-2", &fake_base, &extra, &logs.join("worker-2.log"))?;
    let (dev, dev_base, dev_token) = dev_process(bench, &logs).await?;

    let mut samples = vec![
        Samples::new("api", &api),
        Samples::new("worker 1", &w1),
        Samples::new("worker 2", &w2),
        Samples::new("smsq dev", &dev),
    ];
    let started = Instant::now();
    let verified = Arc::new(AtomicU64::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let verifier = tokio::spawn(verify_all(
        fake_base.clone(),
        api_base.clone(),
        verified.clone(),
        stop.clone(),
    ));
    let issue = issue_codes(&api_base, None);
    let issue_dev = issue_codes(&dev_base, Some(dev_token));
    let (first, dev_first) = (50_000_000, 60_000_000);
    let load = tokio::spawn(open_loop(soak.rate, soak.run, first, issue));
    let dev_load = tokio::spawn(open_loop(soak.rate, soak.run, dev_first, issue_dev));
    let every = (soak.run / 60).clamp(Duration::from_millis(500), Duration::from_secs(10));
    while !load.is_finished() {
        for s in &mut samples {
            s.take(started);
        }
        tokio::time::sleep(every).await;
    }
    for s in &mut samples {
        s.take(started);
    }
    let (issued, failed, _) = load
        .await
        .map_err(|e| BenchError::Stuck(format!("soak load: {e}")))?;
    let (dev_issued, dev_failed, _) = dev_load
        .await
        .map_err(|e| BenchError::Stuck(format!("soak dev load: {e}")))?;
    // The last codes are verified too, before the counts are read.
    let tail = Instant::now();
    while verified.load(Ordering::Relaxed) < issued.len() as u64
        && tail.elapsed() < Duration::from_secs(15)
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.cancel();
    let _ = verifier.await;
    eprintln!(
        "  soak: {} codes issued ({failed} refused), {} verified; smsq dev: {} issued ({dev_failed} refused); logs in {}",
        issued.len(),
        verified.load(Ordering::Relaxed),
        dev_issued.len(),
        logs.display()
    );
    let minutes = soak.run.as_secs_f64() / 60.0;
    bench.row(Row {
        scenario: "soak",
        figure: format!(
            "codes verified of those issued ({:.1} min at {:.0}/s, unscraped, `info` logs to files)",
            minutes, soak.rate
        ),
        value: verified.load(Ordering::Relaxed) as f64 / issued.len().max(1) as f64 * 100.0,
        unit: "%",
        ceiling: Some(100.0),
        ceiling_is: "all",
    });
    for s in &samples {
        s.rows(bench, soak.run);
    }
    drop((api, w1, w2, dev));
    Ok(())
}

impl Samples {
    fn new(name: &'static str, proc: &Proc) -> Self {
        Self {
            name,
            pid: proc.pid(),
            points: Vec::new(),
        }
    }

    fn take(&mut self, started: Instant) {
        let bytes = rss(self.pid);
        if bytes > 0 {
            self.points.push((started.elapsed().as_secs_f64(), bytes));
        }
    }

    /// Growth over the last third, and the least-squares slope over it scaled to 10 minutes.
    fn rows(&self, bench: &mut Bench, run: Duration) {
        let from = run.as_secs_f64() * 2.0 / 3.0;
        let last: Vec<(f64, u64)> = self
            .points
            .iter()
            .copied()
            .filter(|p| p.0 >= from)
            .collect();
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let (Some(first), Some(end)) = (last.first(), last.last()) else {
            return;
        };
        let peak = self.points.iter().map(|p| p.1).max().unwrap_or(0);
        bench.row(Row {
            scenario: "soak",
            figure: format!(
                "{} RSS at the end (peak {:.1} MB, {:.1} MB at the start of the last third)",
                self.name,
                mib(peak as f64),
                mib(first.1 as f64)
            ),
            value: mib(end.1 as f64),
            unit: "MB",
            ceiling: None,
            ceiling_is: "",
        });
        let per_10_min = slope(&last) * 600.0;
        bench.row(Row {
            scenario: "soak",
            figure: format!("{} RSS slope over the last third, per 10 min", self.name),
            // A shrinking process reads as flat: the table's ratios need a positive value.
            value: mib(per_10_min).max(0.001),
            unit: "MB",
            ceiling: Some(1.0),
            ceiling_is: "target",
        });
    }
}

/// Least-squares slope of `points`, bytes per second.
pub fn slope(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mx = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for (x, y) in points {
        num += (x - mx) * (*y as f64 - my);
        den += (x - mx) * (x - mx);
    }
    if den == 0.0 { 0.0 } else { num / den }
}

fn issue_codes(base: &str, token: Option<String>) -> crate::dev::bench::load::MakeRequest {
    let url = format!("{base}/v1/codes");
    Arc::new(move |http: &reqwest::Client, n: u64| {
        let req = http
            .post(&url)
            .json(&serde_json::json!({"mobile": mobile(n), "purpose": "login"}));
        match &token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    })
}

/// Verifies every code the fake receives, through the API, until `stop`.
async fn verify_all(
    fake: String,
    api: String,
    verified: Arc<AtomicU64>,
    stop: tokio_util::sync::CancellationToken,
) {
    let http = client(16);
    let url = format!("{api}/v1/codes/verify");
    let mut since = 0;
    while !stop.is_cancelled() {
        let messages = fake_messages_since(&fake, since).await.unwrap_or_default();
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        since = messages.iter().map(|m| m.seq + 1).max().unwrap_or(since);
        let checks = messages.into_iter().map(|m| {
            let (http, url) = (http.clone(), url.clone());
            async move {
                let code = m.datas.first().cloned().unwrap_or_default();
                let body = serde_json::json!({"mobile": m.to, "purpose": "login", "code": code});
                let answer: Option<serde_json::Value> =
                    match http.post(&url).json(&body).send().await {
                        Ok(r) => r.json().await.ok(),
                        Err(_) => None,
                    };
                answer.is_some_and(|a| a["valid"] == true)
            }
        });
        let results = futures_util::future::join_all(checks).await;
        let ok = results.into_iter().filter(|v| *v).count();
        verified.fetch_add(ok as u64, Ordering::Relaxed);
    }
}

/// `smsq dev` on the bench's Redis (its own prefix), its API on a free port, as a newcomer
/// runs it: one process holding the API, a worker and the fake.
async fn dev_process(
    bench: &Bench,
    logs: &std::path::Path,
) -> Result<(Proc, String, String), BenchError> {
    let port = LocalRedis::free_port().map_err(|e| BenchError::Io("free port", e))?;
    let token = "soak-dev-token-0123456789abcdef".to_owned();
    let mut env: HashMap<String, String> = bench.env().clone();
    env.insert("SMSQ_REDIS__PREFIX".into(), "soakdev".into());
    env.insert("SMSQ_API__LISTEN".into(), format!("127.0.0.1:{port}"));
    env.insert("SMSQ_API_TOKENS".into(), token.clone());
    env.insert("SMSQ_WORKER__RATE_PER_SEC".into(), "1000".into());
    let proc = Proc::smsq_logged(&["dev"], &env, &logs.join("dev.log"))
        .map_err(|e| BenchError::Io("smsq dev", e))?;
    let base = format!("http://127.0.0.1:{port}");
    wait_listening(&format!("{base}/readyz"), Duration::from_secs(60)).await?;
    Ok((proc, base, token))
}
