//! smsq on a real Redis Cluster (private nodes on loopback ports, joined with
//! `redis-cli --cluster create`): the whole flow over six shards with two worker processes,
//! one of them killed mid-run; and a master killed under load with replicas standing by.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;
use smsq::config::{RawConfig, Settings};
use smsq::dev::fake::FakeHandle;
use smsq::dev::local_cluster::LocalCluster;

use smsq::ops::dlq;

use crate::common::{
    App, KillOnDrop, REPORTS_TOKEN, child_env, eventually, fake_options, history, private_cluster,
    settings_on, signal, smsq_command, spawn_app, spawn_fake, spawn_worker_process,
};

/// Settings on `cluster` with `shards` shards under the default prefix (the cluster is this
/// test's alone). With the prefix `smsq`, the tags `{smsq:0}` … `{smsq:5}` hash to slots on
/// all three masters of an evenly split cluster (see README "Past one machine").
fn on_cluster(cluster: &LocalCluster, shards: u64, tweak: impl FnOnce(&mut RawConfig)) -> Settings {
    settings_on(&cluster.url(), |c| {
        c.redis.cluster = true;
        c.redis.shards = shards;
        c.redis.prefix = "smsq".into();
        c.redis.timeout_ms = 1000;
        c.code.hourly_limit_per_ip = 10_000;
        tweak(c);
    })
}

/// Issues a code to each of `count` numbers and a message to each of `count` others.
async fn enqueue(app: &App, first: u64, count: u64) -> (Vec<(String, String)>, Vec<String>) {
    let mut codes = Vec::new();
    for n in first..first + count {
        let mobile = smsq::dev::bench::mobile(n);
        let (status, body) = app.call("/v1/codes", json!({"mobile": mobile})).await;
        assert_eq!(status, 202, "{body}");
        codes.push((mobile, body["job_id"].as_str().expect("job_id").to_owned()));
    }
    let messages = app.queue_messages(13_900_000_000 + first, count).await;
    (codes, messages)
}

/// Every job ends `sent`, with exactly one `sent` in its history, and the provider got each
/// `reqId` exactly once.
async fn assert_each_sent_once(app: &App, fake: &FakeHandle, ids: &[String]) {
    app.wait_all(ids, "sent", Duration::from_secs(30)).await;
    for id in ids {
        let sent = history(app, id).await;
        assert_eq!(
            sent.iter().filter(|s| *s == "sent").count(),
            1,
            "{id}: {sent:?}"
        );
    }
    let mut by_req: BTreeMap<String, usize> = BTreeMap::new();
    for m in fake.messages() {
        *by_req.entry(m.req_id.unwrap_or_default()).or_default() += 1;
    }
    let wanted: BTreeSet<&String> = ids.iter().collect();
    let got: BTreeSet<&String> = by_req.keys().collect();
    assert_eq!(got, wanted, "the provider got other messages than the jobs");
    assert!(
        by_req.values().all(|n| *n == 1),
        "a message went twice: {by_req:?}"
    );
}

/// The nodes that hold the queue's send streams.
fn nodes_with_streams(cluster: &LocalCluster, shards: u64) -> BTreeSet<usize> {
    (0..shards)
        .filter_map(|shard| cluster.node_holding(&format!("{{smsq:{shard}}}:jobs")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_and_messages_flow_over_six_shards_and_survive_a_killed_worker() {
    let cluster = tokio::task::spawn_blocking(|| private_cluster(3, 0))
        .await
        .expect("cluster");
    let app = spawn_app(on_cluster(&cluster, 6, |_| {})).await;
    let mut opts = fake_options();
    opts.delay_ms = 50;
    let fake = spawn_fake(opts).await;
    let env = child_env(&app.settings, &fake.base_url());
    let mut a = KillOnDrop(spawn_worker_process(&env, "worker-a", &[]));
    let _b = KillOnDrop(spawn_worker_process(&env, "worker-b", &[]));

    let (codes, messages) = enqueue(&app, 0, 60).await;
    let mut ids: Vec<String> = codes.iter().map(|(_, id)| id.clone()).collect();
    ids.extend(messages);
    // Mid-run: some sent, most not.
    eventually(Duration::from_secs(20), "the first sends", || async {
        (fake.messages().len() >= 10).then_some(())
    })
    .await;
    signal(&a.0, libc::SIGKILL);
    let _ = a.0.wait();
    assert!(
        fake.messages().len() < ids.len(),
        "the run was over before the kill"
    );

    assert_each_sent_once(&app, &fake, &ids).await;
    // Each code arrives as sent and verifies once.
    let texts: BTreeMap<String, String> = fake
        .messages()
        .into_iter()
        .map(|m| (m.to, m.datas.first().cloned().unwrap_or_default()))
        .collect();
    for (mobile, _) in &codes {
        let code = &texts[mobile];
        let (status, body) = app
            .call("/v1/codes/verify", json!({"mobile": mobile, "code": code}))
            .await;
        assert_eq!((status, &body["valid"]), (200, &json!(true)), "{mobile}");
    }
    // The queue is empty on every shard, as the CLI (a cluster client too) reads it, and
    // the shards' streams sit on all three masters.
    let out = smsq_command(None)
        .args(["status", "--json"])
        .envs(child_env(&app.settings, &fake.base_url()))
        .output()
        .expect("smsq status");
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let stream = &status["stream"];
    assert_eq!(
        stream["shards"].as_array().map(Vec::len),
        Some(6),
        "{status}"
    );
    assert_eq!(
        (
            &stream["backlog"],
            &stream["pending"],
            &status["retries"]["waiting"]
        ),
        (&json!(0), &json!(0), &json!(0)),
        "{status}"
    );
    let live: Vec<&serde_json::Value> = status["consumers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["alive"] == json!(true))
        .map(|c| &c["name"])
        .collect();
    assert_eq!(live, [&json!("worker-b")], "{status}");
    assert_eq!(
        nodes_with_streams(&cluster, 6),
        BTreeSet::from([0, 1, 2]),
        "shards should spread over every master"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_gives_503_only_while_it_lasts_and_loses_no_job() {
    let mut cluster = tokio::task::spawn_blocking(|| private_cluster(3, 1))
        .await
        .expect("cluster");
    let app = spawn_app(on_cluster(&cluster, 6, |_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let env = child_env(&app.settings, &fake.base_url());
    let _worker = KillOnDrop(spawn_worker_process(&env, "worker", &[]));

    let (codes, mut ids) = enqueue(&app, 1_000, 20).await;
    ids.extend(codes.into_iter().map(|(_, id)| id));
    // Node 0 is a master (`--cluster create` makes the first nodes masters). Redis
    // replicates asynchronously: a write the master acknowledged in its last milliseconds can
    // die with it (README "Past one machine"), so the kill waits until the replica has all.
    assert!(cluster.is_master(0));
    eventually(
        Duration::from_secs(5),
        "the replica to catch up",
        || async { cluster.replicas_caught_up(0).then_some(()) },
    )
    .await;
    cluster.kill(0);
    let killed = Instant::now();
    // Keep issuing while the replica takes over: every answer is 202 or 503, never another.
    let (mut unavailable, mut accepted) = (Vec::new(), Vec::new());
    let mut n = 13920000000u64;
    let recovered = loop {
        let (status, body) = app
            .call(
                "/v1/messages",
                json!({"to": n.to_string(), "template_id": "1", "datas": []}),
            )
            .await;
        n += 1;
        match status {
            202 => {
                ids.push(body["job_id"].as_str().expect("job_id").to_owned());
                accepted.push(killed.elapsed());
            }
            503 => unavailable.push(killed.elapsed()),
            other => panic!(
                "answer {other} during the failover: {body}\n{}",
                crate::common::logs()
                    .lines()
                    .filter(|l| l.contains("storage error"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
        }
        // Over when a replica has taken the dead master's slots and every node agrees.
        let masters = (1..cluster.len()).filter(|&i| cluster.is_master(i)).count();
        let healthy = masters == 3 && (1..cluster.len()).all(|i| cluster.state_ok(i));
        if healthy && status == 202 && killed.elapsed() > Duration::from_millis(500) {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no failover within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let first_503 = unavailable.first().copied().unwrap_or_default();
    let last_503 = unavailable.last().copied().unwrap_or_default();
    let accepted_meanwhile = accepted
        .iter()
        .filter(|t| **t > first_503 && **t < last_503)
        .count();
    println!(
        "failover: healthy again {recovered:?} after the kill; {} answers were 503, from {first_503:?} to {last_503:?}; {accepted_meanwhile} accepted in between",
        unavailable.len(),
    );
    // After the failover every request succeeds.
    let after = app.queue_messages(13930000000, 10).await;
    ids.extend(after);
    assert!(
        unavailable.iter().all(|t| *t <= recovered),
        "503 after the cluster was healthy again"
    );
    // Numbers on the other masters' shards kept being served meanwhile.
    assert!(
        accepted_meanwhile > 0,
        "nothing was accepted during the failover"
    );
    assert_each_sent_once(&app, &fake, &ids).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_dead_letters_replays_and_delivery_reports_run_on_a_cluster() {
    let cluster = tokio::task::spawn_blocking(|| private_cluster(3, 0))
        .await
        .expect("cluster");
    let app = spawn_app(on_cluster(&cluster, 6, |c| c.retry.max_attempts = 2)).await;
    // Twelve numbers: jobs on most of the six shards, so on every master.
    let ids = app.queue_messages(13940000000, 12).await;
    let mut broken = fake_options();
    broken.error_rate = 1.0;
    let broken = spawn_fake(broken).await;
    let (worker, stop) = app.spawn_worker(&broken.base_url(), 4);
    app.wait_all(&ids, "dead", Duration::from_secs(20)).await;
    stop.cancel();
    worker.await.expect("worker");

    let mut healthy = fake_options();
    healthy.report_url = Some(format!(
        "{}/v1/provider/ronglian/reports/{REPORTS_TOKEN}",
        app.base
    ));
    healthy.report_delay_ms = 20;
    let healthy = spawn_fake(healthy).await;
    let (_worker, stop) = app.spawn_worker(&healthy.base_url(), 4);
    let replayed = dlq::replay(&app.records, &[], true).await.expect("replay");
    assert_eq!(replayed.replayed, 12, "{}", replayed.report);
    app.wait_all(&ids, "delivered", Duration::from_secs(20))
        .await;
    for id in &ids {
        assert_eq!(
            history(&app, id).await,
            [
                "queued",
                "sending",
                "retrying",
                "sending",
                "dead",
                "replayed",
                "sending",
                "sent",
                "delivered"
            ],
            "{id}"
        );
    }
    assert_eq!(app.records.dead_letter_count().await.expect("count"), 0);
    stop.cancel();
}
