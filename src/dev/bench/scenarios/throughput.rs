//! Enqueue, drain, end-to-end latency and memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinSet;

use crate::config::ProviderSettings;
use crate::dev::bench::harness::{fake_messages, issue_codes, mobile};
use crate::dev::bench::load::{MakeRequest, closed_loop, open_loop, percentile};
use crate::dev::bench::procs::{cpu, peak_rss};
use crate::dev::bench::{Bench, BenchError, Row};
use crate::provider::{Client, TemplateSms};

/// How many sends per second the provider stand-in takes from our own client, 200 at a time:
/// the ceiling of every drain figure.
pub async fn provider_ceiling(bench: &mut Bench) -> Result<(), BenchError> {
    let (_fake, base) = bench.fake(0).await?;
    let settings = ProviderSettings {
        base_url: base,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(1),
    };
    let account = bench.app.settings().secrets.ronglian()?;
    let client = Arc::new(Client::new(&settings, account)?);
    let run = bench.sizes.run;
    let own_cpu = cpu(std::process::id());
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for lane in 0..200u64 {
        let client = client.clone();
        tasks.spawn(async move {
            let (mut n, mut ok) = (lane, 0u64);
            let datas = vec!["x".to_owned()];
            while started.elapsed() < run {
                let to = mobile(n);
                let sms = TemplateSms {
                    to: &to,
                    template_id: "1",
                    datas: &datas,
                    req_id: None,
                };
                ok += u64::from(client.send(&sms).await.is_ok());
                n += 200;
            }
            ok
        });
    }
    let mut ok = 0;
    while let Some(n) = tasks.join_next().await {
        ok += n.unwrap_or(0);
    }
    let rate = ok as f64 / started.elapsed().as_secs_f64();
    // This process did nothing else meanwhile: its CPU is the client's alone.
    let floor =
        cpu(std::process::id()).saturating_sub(own_cpu).as_micros() as f64 / ok.max(1) as f64;
    bench.row(Row {
        scenario: "provider stand-in",
        figure: "sends/s it takes (`smsq fake-provider`, 0 ms, our client × 200)".into(),
        value: rate,
        unit: "/s",
        ceiling: None,
        ceiling_is: "",
    });
    bench.row(Row {
        scenario: "floor",
        figure: "client CPU per send: a bare sign-and-POST to the stand-in (no Redis, no logs)"
            .into(),
        value: floor,
        unit: "µs",
        ceiling: None,
        ceiling_is: "",
    });
    bench.set_provider_ceiling(rate);
    bench.set_client_floor_us(floor);
    Ok(())
}

fn issue_code() -> impl Fn(&str) -> MakeRequest {
    |base: &str| {
        let url = format!("{base}/v1/codes");
        Arc::new(move |http: &reqwest::Client, n: u64| {
            http.post(&url)
                .json(&serde_json::json!({"mobile": mobile(n), "purpose": "bench"}))
        })
    }
}

/// `POST /v1/codes` at saturation, then latency at half that load.
pub async fn enqueue(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let (api, base) = bench
        .api_logged(&[], &bench.dir().join("enqueue-api.log"))
        .await?;
    let run = bench.sizes.run;
    let health = format!("{base}/healthz");
    let ceiling: MakeRequest = Arc::new(move |http: &reqwest::Client, _| http.get(&health));
    let (generator, _) = closed_loop(64, run, 0, ceiling).await;
    let redis_pid = bench.redis.pid().unwrap_or(0);
    let (api_cpu, redis_cpu) = (cpu(api.pid()), cpu(redis_pid));
    let (codes, failed) = closed_loop(64, run, 0, issue_code()(&base)).await;
    let issued = (codes * run.as_secs_f64()).max(1.0);
    let per_code =
        |before: Duration, pid: u32| cpu(pid).saturating_sub(before).as_micros() as f64 / issued;
    let (api_us, redis_us) = (per_code(api_cpu, api.pid()), per_code(redis_cpu, redis_pid));
    bench.row(Row {
        scenario: "enqueue",
        figure: format!(
            "codes/s, `POST /v1/codes`, distinct mobiles, 64 connections ({failed} failed)"
        ),
        value: codes,
        unit: "/s",
        ceiling: Some(generator),
        ceiling_is: "generator on `GET /healthz`",
    });
    for (who, us) in [("API", api_us), ("Redis", redis_us)] {
        bench.row(Row {
            scenario: "enqueue",
            figure: format!("{who} CPU per code, at saturation"),
            value: us,
            unit: "µs",
            ceiling: None,
            ceiling_is: "",
        });
    }
    machine_hiccups(bench).await?;
    let half = codes / 2.0;
    bench.flush().await?;
    let (mut latencies, failed, _) = open_loop(half, run, 500_000_000, issue_code()(&base)).await;
    let label = format!("at half load ({half:.0}/s, {failed} failed)");
    let targets = [(50.0, "p50", None), (99.0, "p99", Some(2.0))];
    latency_rows(bench, "enqueue", &label, &mut latencies, &targets);
    // The same schedule straight to Redis, of a script that costs Redis what a code costs it:
    // what this Redis on this machine does to the tail at this load, without smsq.
    let (mut latencies, failed) = redis_alone(bench, half, run, redis_us).await?;
    let label = format!(
        "a bare script of {redis_us:.0} µs straight to Redis, same schedule, one connection ({failed} failed)"
    );
    let shapes = [(50.0, "p50", None), (99.0, "p99", None)];
    latency_rows(bench, "enqueue", &label, &mut latencies, &shapes);
    // The same schedule on `GET /healthz` (no Redis, no script): what the machine, the
    // generator and the HTTP stack alone add to the tail.
    let health = format!("{base}/healthz");
    let probe: MakeRequest = Arc::new(move |http: &reqwest::Client, _| http.get(&health));
    let (mut latencies, failed, _) = open_loop(half, run, 0, probe).await;
    let label = format!("`GET /healthz` on the same schedule ({failed} failed)");
    let shapes = [(50.0, "p50", None), (99.0, "p99", None)];
    latency_rows(bench, "enqueue", &label, &mut latencies, &shapes);
    Ok(())
}

/// An open loop at `rate` straight to Redis, one multiplexed connection as the API has, of a
/// Lua loop calibrated to cost Redis about `cost_us` per call: the latencies (µs, from each
/// call's due time) and how many failed.
async fn redis_alone(
    bench: &mut Bench,
    rate: f64,
    run: Duration,
    cost_us: f64,
) -> Result<(Vec<u64>, u64), BenchError> {
    let spin =
        redis::Script::new("local x = 0 for i = 1, tonumber(ARGV[1]) do x = x + i end return x");
    let mut conn = bench.conn().await?;
    // Calibrate: µs per call of a known loop, by Redis's own count.
    let (trial, calls) = (200_000u64, 50);
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await?;
    for _ in 0..calls {
        let _: i64 = spin.arg(trial).invoke_async(&mut conn).await?;
    }
    let stats = command_stats(&mut conn).await?;
    let per_trial = stats
        .iter()
        .find(|(name, _, _)| name == "evalsha")
        .map_or(0.0, |(_, calls, usec)| {
            *usec as f64 / (*calls).max(1) as f64
        });
    let loops = ((trial as f64) * cost_us / per_trial.max(1.0)).max(1.0) as u64;
    let total = (rate * run.as_secs_f64()) as u64;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut lanes = JoinSet::new();
    for _ in 0..64 {
        let (mut conn, next, spin) = (conn.clone(), next.clone(), spin.clone());
        lanes.spawn(async move {
            let mut done = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= total {
                    return done;
                }
                let due = start + Duration::from_secs_f64(i as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
                let ok: Result<i64, _> = spin.arg(loops).invoke_async(&mut conn).await;
                let latency = Instant::now().saturating_duration_since(due);
                done.push(ok.ok().map(|_| latency.as_micros() as u64));
            }
        });
    }
    let (mut latencies, mut failed) = (Vec::new(), 0);
    while let Some(lane) = lanes.join_next().await {
        for latency in lane.unwrap_or_default() {
            match latency {
                Some(us) => latencies.push(us),
                None => failed += 1,
            }
        }
    }
    Ok((latencies, failed))
}

/// What the machine alone does to a busy Redis, in the same run: a bare `SET` flood (4
/// connections, one command in flight on each, as the API's requests come) counted per
/// 100 ms. On a virtual machine whose host takes
/// the CPU back now and then, the slowest windows are a fraction of the median, and any
/// Redis near half its capacity queues for that long: the enqueue tail cannot be shorter.
async fn machine_hiccups(bench: &mut Bench) -> Result<(), BenchError> {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    const WINDOW: Duration = Duration::from_millis(100);
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut flood = JoinSet::new();
    for lane in 0..4u64 {
        let mut conn = bench.conn().await?;
        let (done, stop) = (done.clone(), stop.clone());
        flood.spawn(async move {
            let key = format!("hiccup:{lane}");
            while !stop.load(Ordering::Relaxed) {
                let sent: Result<(), _> = redis::cmd("SET")
                    .arg(&key)
                    .arg(lane)
                    .query_async(&mut conn)
                    .await;
                if sent.is_err() {
                    return;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        });
    }
    let mut rates = Vec::new();
    let mut tick = tokio::time::interval(WINDOW);
    tick.tick().await;
    let (mut last, mut at) = (done.load(Ordering::Relaxed), Instant::now());
    let started = Instant::now();
    while started.elapsed() < bench.sizes.run {
        tick.tick().await;
        let (now, then) = (done.load(Ordering::Relaxed), at.elapsed().as_secs_f64());
        rates.push(((now - last) as f64 / then) as u64);
        (last, at) = (now, Instant::now());
    }
    stop.store(true, Ordering::Relaxed);
    while flood.join_next().await.is_some() {}
    bench.flush().await?;
    let median = percentile(&mut rates, 50.0).max(1);
    let slowest = rates.iter().min().copied().unwrap_or(0);
    let under_half = rates.iter().filter(|r| **r * 2 < median).count();
    bench.row(Row {
        scenario: "enqueue",
        figure: format!(
            "machine: a bare Redis `SET` flood's slowest 100 ms vs its median ({under_half} of {} windows under half; median {median}/s)",
            rates.len()
        ),
        value: slowest as f64 / median as f64,
        unit: "×",
        ceiling: None,
        ceiling_is: "",
    });
    Ok(())
}

/// One worker draining a backlog from a provider answering in `delay_ms`.
pub async fn drain(bench: &mut Bench, delay_ms: u64, concurrency: usize) -> Result<(), BenchError> {
    bench.flush().await?;
    let n = bench.sizes.backlog;
    bench.prefill(0, n).await?;
    let (_fake, base) = bench.fake(delay_ms).await?;
    let redis_pid = bench.redis.pid().unwrap_or(0);
    let redis_cpu = cpu(redis_pid);
    let c = concurrency.to_string();
    let extra = [
        ("SMSQ_WORKER__RATE_PER_SEC", "1000000"),
        ("SMSQ_WORKER__BURST", "100000"),
        ("SMSQ_WORKER__CONCURRENCY", c.as_str()),
    ];
    // As users run it: the shipped log level, its lines going to a file.
    let log = bench.dir().join(format!("drain-{delay_ms}ms.log"));
    let mut conn = bench.conn().await?;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await?;
    let worker = bench.worker_logged("drain", &base, &extra, &log)?;
    bench.drained(Duration::from_secs(600)).await?;
    let commands = command_stats(&mut conn).await?;
    let (worker_cpu, rss) = (cpu(worker.pid()), peak_rss(worker.pid()));
    let redis_cpu = cpu(redis_pid).saturating_sub(redis_cpu);
    let received: Vec<i64> = fake_messages(&base)
        .await?
        .iter()
        .map(|m| m.received_us)
        .collect();
    let (first, last) = (received.iter().min(), received.iter().max());
    let span = match (first, last) {
        (Some(f), Some(l)) if l > f => (l - f) as f64 / 1e6,
        _ => return Err(BenchError::Stuck("nothing reached the provider".into())),
    };
    let rate = (received.len() - 1) as f64 / span;
    let scenario = if delay_ms == 0 {
        "drain, 0 ms provider"
    } else {
        "drain, 100 ms provider"
    };
    let ceiling = if delay_ms == 0 {
        // Measured by the `provider` scenario, when it ran.
        Some(bench.provider_ceiling()).filter(|c| *c > 0.0)
    } else {
        // Little's law: concurrency / latency.
        Some(concurrency as f64 / (delay_ms as f64 / 1000.0))
    };
    bench.row(Row {
        scenario,
        figure: format!("sends/s, 1 worker, concurrency {concurrency}, {n} queued"),
        value: rate,
        unit: "/s",
        ceiling,
        ceiling_is: if delay_ms == 0 {
            "provider stand-in"
        } else {
            "Little's law"
        },
    });
    let per_send = |d: Duration| d.as_micros() as f64 / n as f64;
    let target = if delay_ms == 0 { 35.0 } else { 40.0 };
    bench.row(Row {
        scenario,
        figure: "worker CPU per send (shipped log level, logging to a file)".into(),
        value: per_send(worker_cpu),
        unit: "µs",
        ceiling: Some(target),
        ceiling_is: "target",
    });
    if let Some(floor) = bench.client_floor_us() {
        bench.row(Row {
            scenario,
            figure: "worker CPU per send, against the floor".into(),
            value: per_send(worker_cpu),
            unit: "µs",
            ceiling: Some(floor),
            ceiling_is: "floor: bare sign-and-POST, same run",
        });
    }
    bench.row(Row {
        scenario,
        figure: "redis-server CPU per send".into(),
        value: per_send(redis_cpu),
        unit: "µs",
        ceiling: (delay_ms == 0).then_some(20.0),
        ceiling_is: "target",
    });
    // Where Redis's time goes, by command (a script's own commands counted under their names,
    // and in its EVALSHA too), most expensive first.
    if delay_ms == 0 {
        for (name, calls, usec) in commands.iter().take(8) {
            bench.row(Row {
                scenario,
                figure: format!(
                    "redis `{name}`: {:.2} calls per send, µs per send",
                    *calls as f64 / n as f64
                ),
                value: *usec as f64 / n as f64,
                unit: "µs",
                ceiling: None,
                ceiling_is: "",
            });
        }
    }
    // At least 20,000 entries: /proc counts CPU in 10 ms ticks.
    let floor = redis_floor(bench, n.max(20_000)).await?;
    bench.row(Row {
        scenario,
        figure: "redis-server CPU per send, against the floor".into(),
        value: per_send(redis_cpu),
        unit: "µs",
        ceiling: Some(floor),
        ceiling_is: "floor: bare XREADGROUP + XACK per entry, same run",
    });
    bench.row(Row {
        scenario,
        figure: "worker peak RSS".into(),
        value: rss as f64 / 1_048_576.0,
        unit: "MB",
        ceiling: (delay_ms > 0).then_some(64.0),
        ceiling_is: "target",
    });
    Ok(())
}

/// `INFO commandstats`: (command, calls, µs), most µs first.
pub(super) async fn command_stats(
    conn: &mut redis::aio::MultiplexedConnection,
) -> Result<Vec<(String, u64, u64)>, BenchError> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await?;
    let mut stats: Vec<(String, u64, u64)> = info
        .lines()
        .filter_map(|line| {
            let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let field = |key: &str| {
                rest.split(',')
                    .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            Some((name.to_owned(), field("calls")?, field("usec")?))
        })
        .collect();
    stats.sort_by_key(|s| std::cmp::Reverse(s.2));
    Ok(stats)
}

/// What Redis cannot avoid per send: `n` entries the size of a job's payload read by
/// `XREADGROUP … COUNT 200` and acknowledged one `XACK` each (pipelined per batch), µs of
/// redis-server CPU per entry. Filling the stream is not counted.
async fn redis_floor(bench: &Bench, n: u64) -> Result<f64, BenchError> {
    let mut conn = bench.conn().await?;
    let key = "bench-floor";
    let payload = "x".repeat(250);
    let mut left = n;
    while left > 0 {
        let batch = left.min(1000);
        let mut pipe = redis::pipe();
        for _ in 0..batch {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("job")
                .arg(&payload)
                .ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
        left -= batch;
    }
    let () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("floor")
        .arg("0")
        .query_async(&mut conn)
        .await?;
    let redis_pid = bench.redis.pid().unwrap_or(0);
    let before = cpu(redis_pid);
    let mut read = 0u64;
    loop {
        let reply: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg("floor")
            .arg("c")
            .arg("COUNT")
            .arg(200)
            .arg("STREAMS")
            .arg(key)
            .arg(">")
            .query_async(&mut conn)
            .await?;
        let ids: Vec<String> = reply
            .keys
            .into_iter()
            .flat_map(|k| k.ids.into_iter().map(|e| e.id))
            .collect();
        if ids.is_empty() {
            break;
        }
        read += ids.len() as u64;
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("XACK").arg(key).arg("floor").arg(id).ignore();
        }
        let () = pipe.query_async(&mut conn).await?;
    }
    let used = cpu(redis_pid).saturating_sub(before);
    let () = redis::cmd("DEL").arg(key).query_async(&mut conn).await?;
    Ok(used.as_micros() as f64 / read.max(1) as f64)
}

/// Codes at a steady rate through the API, a worker sending them: request start → the
/// provider receiving the SMS, both on the wall clock in µs (same host).
pub async fn end_to_end(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let (_fake, provider) = bench.fake(0).await?;
    let (_api, base) = bench
        .api_logged(&[], &bench.dir().join("e2e-api.log"))
        .await?;
    let _worker = bench.worker_logged(
        "e2e",
        &provider,
        &[
            ("SMSQ_WORKER__RATE_PER_SEC", "100000"),
            ("SMSQ_WORKER__CONCURRENCY", "200"),
        ],
        &bench.dir().join("e2e-worker.log"),
    )?;
    bench.wait_for_workers(1, Duration::from_secs(30)).await?;
    let rate = bench.sizes.e2e_rate;
    let (_, failed, starts) = open_loop(rate, bench.sizes.run, 0, issue_code()(&base)).await;
    bench.drained(Duration::from_secs(60)).await?;
    let received = fake_messages(&provider).await?;
    let sent_at: std::collections::HashMap<String, i64> =
        starts.into_iter().map(|(n, at)| (mobile(n), at)).collect();
    let mut latencies: Vec<u64> = received
        .iter()
        .filter_map(|m| Some((m.received_us - sent_at.get(&m.to)?).max(0) as u64))
        .collect();
    let label = format!("at {rate:.0} codes/s ({failed} failed), enqueue → provider");
    let targets = [
        (50.0, "p50", None),
        (99.0, "p99", Some(2.0)),
        (99.9, "p99.9", Some(5.0)),
    ];
    latency_rows(bench, "end to end", &label, &mut latencies, &targets);
    Ok(())
}

/// One row per percentile of `latencies` (µs), in ms, each with its target if it has one.
fn latency_rows(
    bench: &mut Bench,
    scenario: &'static str,
    label: &str,
    latencies: &mut [u64],
    targets: &[(f64, &str, Option<f64>)],
) {
    for (p, name, target) in targets {
        bench.row(Row {
            scenario,
            figure: format!("{name} {label}"),
            value: percentile(latencies, *p) as f64 / 1000.0,
            unit: "ms",
            ceiling: *target,
            ceiling_is: "target",
        });
    }
}

/// Redis memory per queued code job: everything one issued, unsent code keeps.
pub async fn memory(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let n = bench.sizes.backlog;
    let before = bench.used_memory().await?;
    // A refusal (the queue full) is not counted: the figure divides by what was queued.
    issue_codes(&bench.codes, 0, n).await?;
    let queued = bench.backlog().await?;
    let after = bench.used_memory().await?;
    bench.row(Row {
        scenario: "memory",
        figure: format!("Redis bytes per queued code job ({queued} queued)"),
        value: after.saturating_sub(before) as f64 / queued.max(1) as f64,
        unit: "B",
        ceiling: Some(1024.0),
        ceiling_is: "target",
    });
    Ok(())
}
