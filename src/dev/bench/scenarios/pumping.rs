//! The pumping scenario at the shipped defaults (logs included): a ring walking 20 号段 from
//! 5,000 IPv4 addresses in 2,000 /24s and 500 IPv6 addresses in 50 /64s, never verifying,
//! among 2,000 real users who mostly verify (see `dev::pumping`).

use std::time::Duration;

use crate::dev::bench::harness::fake_messages;
use crate::dev::bench::{Bench, BenchError, Row};
use crate::dev::pumping::{self, PumpingSizes};

pub async fn pumping(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let logs = bench.dir().join("pumping");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::Io("pumping log dir", e))?;
    let sizes = if bench.sizes.backlog < 10_000 {
        PumpingSizes::quick()
    } else {
        PumpingSizes::full()
    };
    // The shipped budgets: the harness turns them off for the throughput scenarios.
    let shipped = [
        ("SMSQ_GUARD__HOURLY_BUDGET", "10000"),
        ("SMSQ_GUARD__DAILY_BUDGET", "100000"),
    ];
    let (_api, api) = bench.api_logged(&shipped, &logs.join("api.log")).await?;
    let (_fake, fake) = bench.fake(0).await?;
    let _worker = bench.worker_logged("pumping", &fake, &shipped, &logs.join("worker.log"))?;
    let mut r = pumping::run(&api, &fake, sizes)
        .await
        .map_err(|e| BenchError::Stuck(e.to_string()))?;
    bench.drained(Duration::from_secs(60)).await?;
    r.bot_sms = pumping::count_bot_sms(&fake_messages(&fake).await?, &sizes);
    eprintln!("  pumping: {r:?}");
    let share = |n: u64, of: u64| 100.0 * n as f64 / of.max(1) as f64;
    bench.row(Row {
        scenario: "pumping",
        figure: format!(
            "SMS to the ring's numbers, of {} requests in {} prefixes",
            r.bot_requests, sizes.bot_prefixes
        ),
        value: r.bot_sms as f64,
        unit: "SMS",
        ceiling: Some(r.bot_requests as f64 * 0.05),
        ceiling_is: "target (5 %)",
    });
    bench.row(Row {
        scenario: "pumping",
        figure: format!(
            "real users refused (not resend_too_soon), of {}",
            r.real_requests
        ),
        value: share(r.real_refused, r.real_requests),
        unit: "%",
        ceiling: Some(1.0),
        ceiling_is: "target",
    });
    bench.row(Row {
        scenario: "pumping",
        figure: "real users who verified their code".into(),
        value: share(r.real_verified, r.real_requests),
        unit: "%",
        ceiling: Some(100.0 * sizes.verifying),
        ceiling_is: "who try",
    });
    Ok(())
}
