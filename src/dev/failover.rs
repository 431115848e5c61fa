//! The failover scenario (issue 19 item 7), run by `bench/run --only failover` and by a test:
//! a steady flow of codes through the API while the primary account goes down at a given
//! moment and comes back later. It talks HTTP only (the API, the simulator's `/_fake/outage`
//! and `/_fake/messages`), so the test and the bench drive real worker processes alike.
//!
//! It reports whether every code was sent exactly once (by one account or the other), the
//! failover time (primary down → first send through the backup), the extra latency of the
//! codes in flight at that moment, and how long after the primary's recovery traffic came back
//! to it (the cool-down and the probes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::dev::bench::mobile;
use crate::dev::fake::FakeMessage;

#[derive(Debug, Clone)]
pub struct FailoverSizes {
    /// Codes per second through the API.
    pub rate: f64,
    /// Healthy flow before the outage, the outage, and the flow after it.
    pub before: Duration,
    pub outage: Duration,
    pub after: Duration,
    /// `http500`, `account`, `throttle` or `hang`: how the primary goes down.
    pub fault: &'static str,
    /// The kinds of the primary and the backup account (one simulator serves both).
    pub primary: &'static str,
    pub backup: &'static str,
    /// Numbers from here on (distinct from other scenarios' and tests').
    pub first_number: u64,
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct FailoverResult {
    pub issued: u64,
    /// Jobs the simulator received exactly once, more than once, never.
    pub sent_once: u64,
    pub sent_twice: u64,
    pub never_sent: u64,
    pub by_primary: u64,
    pub by_backup: u64,
    /// Primary down → the first send through the backup.
    pub failover_ms: Option<u64>,
    /// Issue → send, median, of the codes issued before the outage.
    pub baseline_p50_ms: u64,
    /// The slowest issue → send of the codes in flight when the primary went down (issued
    /// from a second before it until the first send through the backup), and of all codes.
    pub in_flight_max_ms: u64,
    pub max_ms: u64,
    /// Primary back → the first send through it again.
    pub recovery_ms: Option<u64>,
    /// Of the codes issued from one second after the first send through the recovered
    /// primary on, the share it sent.
    pub back_on_primary_percent: f64,
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn outage(http: &reqwest::Client, fake: &str, kind: &str, fault: &str) -> Result<(), String> {
    let r = http
        .post(format!("{fake}/_fake/outage"))
        .json(&serde_json::json!({"kind": kind, "fault": fault}))
        .send()
        .await
        .map_err(|e| format!("setting the outage: {}", e.without_url()))?;
    match r.status().is_success() {
        true => Ok(()),
        false => Err(format!("the simulator refused the outage: {}", r.status())),
    }
}

async fn messages(http: &reqwest::Client, fake: &str) -> Result<Vec<FakeMessage>, String> {
    http.get(format!("{fake}/_fake/messages"))
        .send()
        .await
        .map_err(|e| e.without_url().to_string())?
        .json()
        .await
        .map_err(|e| e.without_url().to_string())
}

/// Runs the scenario against the API at `api` and the simulator at `fake`.
pub async fn run(api: &str, fake: &str, sizes: &FailoverSizes) -> Result<FailoverResult, String> {
    let http = reqwest::Client::new();
    let total = sizes.before + sizes.outage + sizes.after;
    let every = Duration::from_secs_f64(1.0 / sizes.rate.max(0.1));
    let started = Instant::now();
    let (mut down_us, mut up_us) = (None, None);
    let mut issued: Vec<(String, i64)> = Vec::new();
    let mut n = 0u64;
    while started.elapsed() < total {
        let at = started.elapsed();
        if down_us.is_none() && at >= sizes.before {
            outage(&http, fake, sizes.primary, sizes.fault).await?;
            down_us = Some(now_us());
        }
        if up_us.is_none() && at >= sizes.before + sizes.outage {
            outage(&http, fake, sizes.primary, "none").await?;
            up_us = Some(now_us());
        }
        let body =
            serde_json::json!({"mobile": mobile(sizes.first_number + n), "purpose": "login"});
        let t = now_us();
        let r = http
            .post(format!("{api}/v1/codes"))
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("issuing: {}", e.without_url()))?;
        let status = r.status();
        let answer: serde_json::Value = r.json().await.map_err(|e| e.without_url().to_string())?;
        let Some(id) = answer["job_id"].as_str() else {
            return Err(format!("the API answered {status}: {answer}"));
        };
        issued.push((id.to_owned(), t));
        n += 1;
        let next = every * n as u32;
        if let Some(wait) = next.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
    }
    let (Some(down), Some(up)) = (down_us, up_us) else {
        return Err("the run ended before the outage did".to_owned());
    };
    // Every code reaches the simulator within the retry policy's reach, or never does.
    let deadline = Instant::now() + Duration::from_secs(30);
    let sent = loop {
        let sent = messages(&http, fake).await?;
        let mut by_job: HashMap<String, Vec<FakeMessage>> = HashMap::new();
        for m in sent {
            if let Some(id) = m.req_id.clone() {
                by_job.entry(id).or_default().push(m);
            }
        }
        if issued.iter().all(|(id, _)| by_job.contains_key(id)) || Instant::now() > deadline {
            break by_job;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    Ok(summarise(&issued, &sent, sizes, down, up))
}

fn summarise(
    issued: &[(String, i64)],
    sent: &HashMap<String, Vec<FakeMessage>>,
    sizes: &FailoverSizes,
    down: i64,
    up: i64,
) -> FailoverResult {
    let mut r = FailoverResult {
        issued: issued.len() as u64,
        ..Default::default()
    };
    let first_after = |kind: &str, since: i64| {
        sent.values()
            .flatten()
            .filter(|m| m.kind == kind && m.received_us >= since)
            .map(|m| m.received_us)
            .min()
    };
    let backup_first = first_after(sizes.backup, down);
    let primary_back = first_after(sizes.primary, up);
    r.failover_ms = backup_first.map(|t| ((t - down) / 1000) as u64);
    r.recovery_ms = primary_back.map(|t| ((t - up) / 1000) as u64);
    let mut baseline = Vec::new();
    let (mut after_back, mut after_back_primary) = (0u64, 0u64);
    for (id, at) in issued {
        let Some(got) = sent.get(id) else {
            r.never_sent += 1;
            continue;
        };
        match got.len() {
            1 => r.sent_once += 1,
            _ => r.sent_twice += 1,
        }
        let m = &got[0];
        if m.kind == sizes.primary {
            r.by_primary += 1;
        } else {
            r.by_backup += 1;
        }
        let latency = ((m.received_us - at).max(0) / 1000) as u64;
        r.max_ms = r.max_ms.max(latency);
        if m.received_us < down {
            baseline.push(latency);
        }
        let in_flight_until = backup_first.unwrap_or(up);
        if *at >= down - 1_000_000 && *at <= in_flight_until {
            r.in_flight_max_ms = r.in_flight_max_ms.max(latency);
        }
        if let Some(back) = primary_back
            && *at >= back + 1_000_000
        {
            after_back += 1;
            after_back_primary += u64::from(m.kind == sizes.primary);
        }
    }
    baseline.sort_unstable();
    r.baseline_p50_ms = baseline.get(baseline.len() / 2).copied().unwrap_or(0);
    r.back_on_primary_percent = 100.0 * after_back_primary as f64 / after_back.max(1) as f64;
    r
}
