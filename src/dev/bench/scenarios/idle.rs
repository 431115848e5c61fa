//! An idle fleet: 8 workers on 16 shards of one Redis with nothing to send. What Redis spends
//! on their reads while idle, and how long a lone job waits for one of them to notice it.

use std::time::{Duration, Instant};

use chrono::Utc;

use crate::dev::bench::harness::{fake_messages, mobile};
use crate::dev::bench::procs::cpu;
use crate::dev::bench::{Bench, BenchError, Row};
use crate::domain::{Mobile, TemplateId};
use crate::startup::Application;
use crate::store::Records;

const WORKERS: usize = 8;
const SHARDS: u64 = 16;

pub async fn idle(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let url = bench.redis.url();
    let app = Application::build(bench.settings_on(&url, false, SHARDS)?)?;
    let codes = app.codes()?;
    let (_fake, base) = bench.fake(0).await?;
    let shards = SHARDS.to_string();
    let env = [("SMSQ_REDIS__SHARDS", shards.as_str())];
    let _workers: Vec<_> = (0..WORKERS)
        .map(|i| bench.worker(&format!("idle-{i}"), 200, &base, &env))
        .collect::<Result<_, _>>()?;
    wait_for_workers(&app, WORKERS).await?;
    // Settled in: every worker past its start-up reads.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let redis_pid = bench.redis.pid().unwrap_or(0);
    let window = bench.sizes.idle_window;
    let mut conn = bench.conn().await?;
    let () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut conn)
        .await?;
    let before = cpu(redis_pid);
    tokio::time::sleep(window).await;
    let used = cpu(redis_pid).saturating_sub(before);
    let commands = super::throughput::command_stats(&mut conn).await?;
    let scenario = "idle fleet, 8 workers, 16 shards";
    bench.row(Row {
        scenario,
        figure: format!("redis-server CPU while idle ({} s)", window.as_secs()),
        value: used.as_secs_f64() * 1000.0 / window.as_secs_f64(),
        unit: "ms/s",
        ceiling: None,
        ceiling_is: "",
    });

    let seconds = window.as_secs_f64();
    for (name, calls, usec) in commands.iter().take(6) {
        bench.row(Row {
            scenario,
            figure: format!(
                "redis `{name}` while idle: {:.0} calls/s, µs of Redis per s",
                *calls as f64 / seconds
            ),
            value: *usec as f64 / seconds,
            unit: "µs/s",
            ceiling: None,
            ceiling_is: "",
        });
    }

    // Lone jobs, one at a time, at moments unrelated to any worker's polling.
    let template = TemplateId::parse("1").map_err(|e| BenchError::Stuck(e.to_string()))?;
    let jobs = bench.sizes.idle_jobs;
    let mut waits = Vec::new();
    for i in 0..jobs {
        let to = mobile(900_000 + i);
        let started = Utc::now().timestamp_micros();
        let request = crate::codes::MessageRequest {
            to: Mobile::parse(&to).map_err(|_| BenchError::Stuck("bad mobile".into()))?,
            template_id: template.clone(),
            datas: vec!["idle".into()],
            idempotency: None,
            request_id: None,
        };
        codes
            .enqueue_message(request)
            .await
            .map_err(|e| BenchError::Stuck(format!("enqueue: {e}")))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let received = loop {
            let messages = fake_messages(&base).await?;
            if let Some(m) = messages.iter().find(|m| m.to == to) {
                break m.received_us;
            }
            if Instant::now() > deadline {
                return Err(BenchError::Stuck(format!("the idle fleet never sent {to}")));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        };
        waits.push((received - started) as f64 / 1000.0);
        // 37 ms apart: no multiple of a 10 ms poll.
        tokio::time::sleep(Duration::from_millis(37)).await;
    }
    waits.sort_by(f64::total_cmp);
    let at = |q: f64| waits[((waits.len() - 1) as f64 * q) as usize];
    for (figure, value) in [("median", at(0.5)), ("max", at(1.0))] {
        bench.row(Row {
            scenario,
            figure: format!("a lone job, enqueue → provider, {figure} of {jobs}"),
            value,
            unit: "ms",
            ceiling: None,
            ceiling_is: "",
        });
    }
    Ok(())
}

async fn wait_for_workers(app: &Application, n: usize) -> Result<(), BenchError> {
    let records = Records::new(app.store().clone());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = records.inspect(0).await?;
        if state.consumers.iter().filter(|c| c.alive).count() >= n {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(BenchError::Stuck(format!("{n} workers did not start")));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
