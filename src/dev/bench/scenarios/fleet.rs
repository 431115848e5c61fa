//! The fleet: the shared rate limit across four workers, and recovery after `kill -9`.

use std::time::{Duration, Instant};

use crate::dev::bench::harness::fake_messages;
use crate::dev::bench::{Bench, BenchError, Row, busiest_second};
use crate::domain::Shard;
use crate::store::GROUP;

/// Four worker processes, 200/s and burst 20 for the fleet.
pub async fn limiter(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let run = bench.sizes.limiter_run;
    let n = (200.0 * run.as_secs_f64() * 1.5) as u64 + 100;
    bench.prefill(0, n).await?;
    let (_fake, base) = bench.fake(0).await?;
    let limit = [
        ("SMSQ_WORKER__RATE_PER_SEC", "200"),
        ("SMSQ_WORKER__BURST", "20"),
    ];
    let workers: Vec<_> = (0..4)
        .map(|i| bench.worker(&format!("limited-{i}"), 64, &base, &limit))
        .collect::<Result<_, _>>()?;
    tokio::time::sleep(run).await;
    drop(workers);
    let times: Vec<i64> = fake_messages(&base)
        .await?
        .iter()
        .map(|m| m.received_us)
        .collect();
    let (Some(first), Some(last)) = (times.iter().min(), times.iter().max()) else {
        return Err(BenchError::Stuck("the limited workers sent nothing".into()));
    };
    let rate = (times.len() - 1) as f64 / ((last - first) as f64 / 1e6);
    bench.row(Row {
        scenario: "limiter",
        figure: format!(
            "achieved rate, 4 workers, 200/s burst 20, {} s",
            run.as_secs()
        ),
        value: rate,
        unit: "/s",
        ceiling: Some(200.0),
        ceiling_is: "configured",
    });
    bench.row(Row {
        scenario: "limiter",
        figure: "most sends in any 1 s window".into(),
        value: busiest_second(&times) as f64,
        unit: "",
        ceiling: Some(220.0),
        ceiling_is: "rate + burst",
    });
    Ok(())
}

/// A worker with sends in flight is killed; another, already running, takes over.
pub async fn recovery(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let n = bench.sizes.in_flight;
    // A provider slow enough that all of them are in flight at once (shipped rate: 100/s).
    let (_fake, base) = bench.fake(1000).await?;
    let mut victim = bench.worker("victim", n as usize, &base, &[])?;
    bench.prefill(0, n).await?;
    let started = Instant::now();
    loop {
        // NOGROUP until the victim has created the group.
        let pending: Result<redis::streams::StreamPendingReply, _> = redis::cmd("XPENDING")
            .arg(bench.app.store().keys(Shard::FIRST).jobs())
            .arg(GROUP)
            .query_async(&mut bench.conn().await?)
            .await;
        if pending.is_ok_and(|p| p.count() as u64 >= n) {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(BenchError::Stuck(
                "the victim never had them all in flight".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let _survivor = bench.worker("survivor", 64, &base, &[])?;
    victim.kill9();
    let recovered = bench.drained(Duration::from_secs(60)).await?;
    bench.row(Row {
        scenario: "recovery",
        figure: format!(
            "`kill -9` with {n} sends in flight → all sent (shipped defaults, 1 s provider)"
        ),
        value: recovered.as_secs_f64(),
        unit: "s",
        ceiling: Some(5.0),
        ceiling_is: "target",
    });
    Ok(())
}
