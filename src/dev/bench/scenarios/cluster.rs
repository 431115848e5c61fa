//! Past one Redis: the same queue on a private three-master Redis Cluster at 1, 2 and 4
//! shards. Enqueue runs the API's script from 64 lanes in this process; the drain is two
//! worker processes against the instant fake provider. On a 2-core machine the three nodes,
//! the two workers, the fake and this process share the cores, so this measures what sharding
//! costs and how the work spreads, not how far it scales on real hosts.

use std::time::{Duration, Instant};

use crate::dev::bench::harness::{drained, fake_messages, prefill};
use crate::dev::bench::{Bench, BenchError, Row};
use crate::dev::local_cluster::LocalCluster;
use crate::startup::Application;

pub async fn shards(bench: &mut Bench) -> Result<(), BenchError> {
    let dir = std::env::temp_dir().join(format!("smsq-bench-cluster-{}", std::process::id()));
    let dir2 = dir.clone();
    let cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&dir2, 3, 0))
        .await
        .map_err(|e| BenchError::Stuck(format!("starting the cluster: {e}")))??;
    let result = run(bench, &cluster).await;
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run(bench: &mut Bench, cluster: &LocalCluster) -> Result<(), BenchError> {
    let n = bench.sizes.backlog;
    let url = cluster.url();
    for shards in [1u64, 2, 4] {
        cluster.flush()?;
        let app = Application::build(bench.settings_on(&url, true, shards)?)?;
        let codes = app.codes()?;
        let started = Instant::now();
        prefill(&codes, 0, n).await?;
        let enqueue = n as f64 / started.elapsed().as_secs_f64();

        let (_fake, base) = bench.fake(0).await?;
        let shards_text = shards.to_string();
        let env = [
            ("SMSQ_REDIS__URL", url.as_str()),
            ("SMSQ_REDIS__CLUSTER", "true"),
            ("SMSQ_REDIS__SHARDS", shards_text.as_str()),
            ("SMSQ_WORKER__RATE_PER_SEC", "1000000"),
            ("SMSQ_WORKER__BURST", "100000"),
        ];
        let _a = bench.worker("cluster-a", 200, &base, &env)?;
        let _b = bench.worker("cluster-b", 200, &base, &env)?;
        drained(app.store(), Duration::from_secs(600)).await?;
        let received: Vec<i64> = fake_messages(&base)
            .await?
            .iter()
            .map(|m| m.received_us)
            .collect();
        let span = match (received.iter().min(), received.iter().max()) {
            (Some(f), Some(l)) if l > f => (l - f) as f64 / 1e6,
            _ => return Err(BenchError::Stuck("nothing reached the provider".into())),
        };
        let drain = (received.len() - 1) as f64 / span;
        let nodes = nodes_used(cluster, &app);
        let scenario = "cluster, 3 masters";
        bench.row(Row {
            scenario,
            figure: format!("enqueue jobs/s, {shards} shard(s) on {nodes} node(s), 64 lanes"),
            value: enqueue,
            unit: "/s",
            ceiling: None,
            ceiling_is: "",
        });
        bench.row(Row {
            scenario,
            figure: format!("drain sends/s, {shards} shard(s), 2 workers × 200"),
            value: drain,
            unit: "/s",
            ceiling: None,
            ceiling_is: "",
        });
    }
    Ok(())
}

/// How many nodes the shards' streams are on.
fn nodes_used(cluster: &LocalCluster, app: &Application) -> usize {
    let store = app.store();
    let nodes: std::collections::BTreeSet<usize> = store
        .shards()
        .all()
        .filter_map(|shard| cluster.node_holding(&store.keys(shard).jobs()))
        .collect();
    nodes.len()
}
