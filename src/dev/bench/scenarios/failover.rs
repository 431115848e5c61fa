//! The failover scenario at the shipped defaults (logs included): two worker processes, a
//! Ronglian primary and a Tencent backup at the simulator, a steady flow of codes, and the
//! primary answering 5xx from a given moment (see `dev::failover`).

use std::collections::HashMap;
use std::time::Duration;

use crate::dev::bench::procs::Proc;
use crate::dev::bench::{Bench, BenchError, Row};
use crate::dev::failover::{self, FailoverSizes};
use crate::dev::fake::{FAKE_TENCENT_APP_ID, FAKE_TENCENT_SECRET_ID, FAKE_TENCENT_SECRET_KEY};

pub async fn failover(bench: &mut Bench) -> Result<(), BenchError> {
    bench.flush().await?;
    let logs = bench.dir().join("failover");
    std::fs::create_dir_all(&logs).map_err(|e| BenchError::Io("failover log dir", e))?;
    let quick = bench.sizes.backlog < 10_000;
    let (_fake, fake) = bench.fake_with(&["--templates", "1,1234567"]).await?;
    // The shipped [failover] (30 s cool-down, 3 probes), the quick run's shorter.
    let cool_down = if quick { 3 } else { 30 };
    let config = logs.join("worker.toml");
    let toml = format!(
        "[providers.rl]\nkind = \"ronglian\"\nbase_url = \"{fake}\"\ncode_template = \"1\"\n\n\
         [providers.tc]\nkind = \"tencent\"\nbase_url = \"{fake}\"\napp_id = \"{FAKE_TENCENT_APP_ID}\"\n\
         sign_name = \"smsq\"\ncode_template = \"1234567\"\n\n\
         [routing.default]\norder = [\"rl\", \"tc\"]\n\n\
         [failover]\nerror_window_secs = 10\nerror_threshold = 5\ncool_down_secs = {cool_down}\nprobes = 3\n"
    );
    std::fs::write(&config, toml).map_err(|e| BenchError::Io("failover config", e))?;
    let (_api, api) = bench.api_logged(&[], &logs.join("api.log")).await?;
    let mut env: HashMap<String, String> = bench.env().clone();
    for (k, v) in [
        ("SMSQ_PROVIDER_RL_ACCOUNT_SID", "RONGLIAN_ACCOUNT_SID"),
        ("SMSQ_PROVIDER_RL_AUTH_TOKEN", "RONGLIAN_AUTH_TOKEN"),
        ("SMSQ_PROVIDER_RL_APP_ID", "RONGLIAN_APP_ID"),
    ] {
        let value = env.get(v).cloned().unwrap_or_default();
        env.insert(k.to_owned(), value);
    }
    env.insert(
        "SMSQ_PROVIDER_TC_SECRET_ID".into(),
        FAKE_TENCENT_SECRET_ID.into(),
    );
    env.insert(
        "SMSQ_PROVIDER_TC_SECRET_KEY".into(),
        FAKE_TENCENT_SECRET_KEY.into(),
    );
    let config_arg = config.display().to_string();
    let mut workers = Vec::new();
    for name in ["failover-a", "failover-b"] {
        let log = logs.join(format!("{name}.log"));
        let args = ["--config", config_arg.as_str(), "worker", "--name", name];
        workers
            .push(Proc::smsq_logged(&args, &env, &log).map_err(|e| BenchError::Io("worker", e))?);
    }
    let sizes = FailoverSizes {
        rate: if quick { 50.0 } else { 100.0 },
        before: Duration::from_secs(3),
        outage: Duration::from_secs(if quick { 3 } else { 10 }),
        after: Duration::from_secs(cool_down + 5),
        fault: "http500",
        primary: "ronglian",
        backup: "tencent",
        first_number: 70_000,
    };
    // Both workers are up before the flow starts.
    bench.wait_for_workers(2, Duration::from_secs(10)).await?;
    let r = failover::run(&api, &fake, &sizes)
        .await
        .map_err(BenchError::Stuck)?;
    drop(workers);
    eprintln!("  failover: {r:?}");
    bench.row(Row {
        scenario: "failover",
        figure: format!(
            "codes sent exactly once, of {} ({} by the primary, {} by the backup)",
            r.issued, r.by_primary, r.by_backup
        ),
        value: r.sent_once as f64,
        unit: "codes",
        ceiling: Some(r.issued as f64),
        ceiling_is: "issued",
    });
    bench.row(Row {
        scenario: "failover",
        figure: "primary down (5xx) → first send through the backup".into(),
        value: r.failover_ms.unwrap_or(u64::MAX) as f64,
        unit: "ms",
        ceiling: None,
        ceiling_is: "",
    });
    bench.row(Row {
        scenario: "failover",
        figure: format!(
            "slowest code in flight at that moment (issue → send; p50 before: {} ms)",
            r.baseline_p50_ms
        ),
        value: r.in_flight_max_ms as f64,
        unit: "ms",
        ceiling: None,
        ceiling_is: "",
    });
    bench.row(Row {
        scenario: "failover",
        figure: format!(
            "primary back → traffic through it again (cool-down {cool_down} s, probes); then {:.0} % on it",
            r.back_on_primary_percent
        ),
        value: r.recovery_ms.unwrap_or(u64::MAX) as f64,
        unit: "ms",
        ceiling: None,
        ceiling_is: "",
    });
    Ok(())
}
