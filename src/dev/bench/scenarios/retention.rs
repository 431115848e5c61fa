//! What a finished code job leaves in Redis (issue: retention a Redis bill can afford).
//!
//! Codes are issued and sent at the shipped defaults (API and worker as users start them,
//! delivery reports pushed by the simulator), then every key is weighed with `MEMORY USAGE`
//! and sorted by kind and by how long it lives. A kind that lives for the record's retention
//! (`status.ttl_secs`) counts in full; one that lives shorter counts for its share of it (a
//! code record of 5 minutes costs a finished job 5 / 10,080 of its bytes over 7 days). So the
//! figure is what Redis holds in a steady state per job of the retention: memory = rate ×
//! `status.ttl_secs` × the figure.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::dev::bench::harness::issue_codes;
use crate::dev::bench::{Bench, BenchError, Row};

/// One kind of key: how many, their bytes, and the longest TTL seen (ms; -1 = none).
#[derive(Debug, Clone, Copy)]
struct Kind {
    keys: u64,
    bytes: u64,
    ttl_ms: i64,
}

impl Default for Kind {
    fn default() -> Self {
        Self {
            keys: 0,
            bytes: 0,
            ttl_ms: -1,
        }
    }
}

pub async fn retention(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let logs = bench.dir().join("retention");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::Io("retention log dir", e))?;
    let n: u64 = if bench.sizes.backlog < 10_000 {
        1_000
    } else {
        10_000
    };
    let token = "retention-reports-0123456789abcdef";
    let (_api, api) = bench
        .api_logged(&[("SMSQ_REPORTS_TOKEN", token)], &logs.join("api.log"))
        .await?;
    let report_url = format!("{api}/v1/provider/ronglian/reports/{token}");
    let (_fake, fake) = bench
        .fake_with(&["--report-url", &report_url, "--report-delay-ms", "50"])
        .await?;
    let _worker = bench.worker_logged(
        "retention",
        &fake,
        &[("SMSQ_WORKER__RATE_PER_SEC", "5000")],
        &logs.join("worker.log"),
    )?;
    bench.wait_for_workers(1, Duration::from_secs(30)).await?;
    let before = bench.used_memory().await?;
    let refused = issue_codes(&bench.codes, 80_000_000, n).await?;
    if refused > 0 {
        return Err(BenchError::Stuck(format!("{refused} of {n} codes refused")));
    }
    let delivered = wait_delivered(bench, n, Duration::from_secs(120)).await?;
    let ttl_ms = bench.app.settings().status.ttl.as_millis() as i64;
    let mut kinds = weigh(bench).await?;
    // The events stream has no TTL: it keeps `stream.events_retention_secs` of events.
    if let Some(events) = kinds.get_mut("events") {
        events.ttl_ms = bench.app.settings().stream.events_keep_ms as i64;
    }
    let after = bench.used_memory().await?;

    let mut whole = 0.0;
    for (name, k) in &kinds {
        // The share of the record's retention this kind lives: a key with no TTL (a stream,
        // a shared counter) is kept for all of it.
        let share = if k.ttl_ms < 0 || k.ttl_ms >= ttl_ms {
            1.0
        } else {
            k.ttl_ms as f64 / ttl_ms as f64
        };
        let per_job = k.bytes as f64 / n as f64;
        whole += per_job * share;
        bench.row(Row {
            scenario: "retention",
            figure: format!(
                "`{name}`: {} keys, {} B each, lives {}, bytes per job × share of the retention",
                k.keys,
                k.bytes / k.keys.max(1),
                lives(k.ttl_ms)
            ),
            value: per_job * share,
            unit: "B",
            ceiling: None,
            ceiling_is: "",
        });
    }
    bench.row(Row {
        scenario: "retention",
        figure: format!(
            "Redis bytes per finished code job over its whole retention ({n} codes, {delivered} delivered; history included)"
        ),
        value: whole,
        unit: "B",
        ceiling: Some(400.0),
        ceiling_is: "target",
    });
    bench.row(Row {
        scenario: "retention",
        figure: format!(
            "`INFO memory` growth per finished code job, short-lived keys still there ({n} codes)"
        ),
        value: after.saturating_sub(before) as f64 / n as f64,
        unit: "B",
        ceiling: None,
        ceiling_is: "",
    });
    Ok(())
}

fn lives(ttl_ms: i64) -> String {
    match ttl_ms {
        t if t < 0 => "always (shared)".to_owned(),
        t if t >= 86_400_000 => format!("{:.0} d", t as f64 / 86_400_000.0),
        t if t >= 3_600_000 => format!("{:.0} h", t as f64 / 3_600_000.0),
        t => format!("{:.0} s", t as f64 / 1000.0),
    }
}

/// Waits until `n` jobs were reported delivered (the per-minute outcome counts).
async fn wait_delivered(bench: &Bench, n: u64, within: Duration) -> Result<u64, BenchError> {
    let started = Instant::now();
    let mut conn = bench.conn().await?;
    loop {
        let mut delivered = 0;
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg("*:stats:*")
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            for key in keys {
                let d: Option<u64> = redis::cmd("HGET")
                    .arg(&key)
                    .arg("delivered")
                    .query_async(&mut conn)
                    .await?;
                delivered += d.unwrap_or(0);
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        if delivered >= n {
            return Ok(delivered);
        }
        if started.elapsed() > within {
            return Err(BenchError::Stuck(format!(
                "only {delivered} of {n} codes delivered within {within:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every key, weighed (`MEMORY USAGE … SAMPLES 0`: exact) and sorted by kind.
async fn weigh(bench: &Bench) -> Result<BTreeMap<String, Kind>, BenchError> {
    let mut conn = bench.conn().await?;
    let mut kinds: BTreeMap<String, Kind> = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for key in &keys {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0);
            pipe.cmd("PTTL").arg(key);
        }
        let answers: Vec<Option<i64>> = pipe.query_async(&mut conn).await?;
        for (key, pair) in keys.iter().zip(answers.chunks(2)) {
            let kind = kinds.entry(kind_of(key)).or_default();
            kind.keys += 1;
            kind.bytes += pair[0].unwrap_or(0).max(0) as u64;
            kind.ttl_ms = kind.ttl_ms.max(pair[1].unwrap_or(-1));
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(kinds)
}

/// `{bench:0}:job:<id>` → `job`, `{bench:ip:…}:…` → `ip`, `bench:captcha:…` → `captcha`.
fn kind_of(key: &str) -> String {
    let rest = match key.find("}:") {
        Some(at) if key.starts_with('{') => {
            if key[1..at].contains(":ip:") {
                return "ip".to_owned();
            }
            &key[at + 2..]
        }
        _ => key.split_once(':').map(|(_, r)| r).unwrap_or(key),
    };
    rest.split(':').next().unwrap_or(rest).to_owned()
}

#[cfg(test)]
mod tests {
    use super::kind_of;

    #[test]
    fn keys_are_sorted_by_their_kind() {
        assert_eq!(kind_of("{bench:0}:job:ab12"), "job");
        assert_eq!(kind_of("{bench:3}:sid:x:138"), "sid");
        assert_eq!(kind_of("{bench:0}:events"), "events");
        assert_eq!(kind_of("{bench:ip:1.2.3.0/24}:1.2.3.4:2026"), "ip");
        assert_eq!(kind_of("bench:captcha:x"), "captcha");
    }
}
