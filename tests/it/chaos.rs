//! Issue 17, item 4: the recorded statuses stay true through everything at once. 2,000 jobs;
//! three worker processes randomly frozen (`SIGSTOP` past their heartbeat, then `SIGCONT`)
//! and killed (`kill -9`, then started again); Redis killed and restarted once from its AOF;
//! the provider answering errors, 500s, garbage and dropped connections, slowly. Afterwards
//! every job is finished, and each job's status agrees with the fake provider's own log:
//! `sent` exactly when the provider accepted a request for it, and never two acceptances for
//! one job (the provider de-duplicates by reqId, which smsq keeps across attempts).

use std::collections::HashMap;
use std::process::Child;
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use smsq::dev::local_redis::{Listen, LocalRedis};

use crate::common::{
    KillOnDrop, child_env, eventually, fake_options, settings_on, signal, spawn_app, spawn_fake,
    spawn_worker_process, temp_dir,
};

const JOBS: u64 = 2000;

fn worker(env: &[(String, String)], n: usize, generation: u32) -> KillOnDrop {
    let extra = [
        ("SMSQ_WORKER__HEARTBEAT_MS", "200"),
        ("SMSQ_WORKER__CLAIM_IDLE_MS", "3000"),
        // 2,000 jobs take ~13 s at this rate: the chaos below hits a fleet in full flow.
        ("SMSQ_WORKER__RATE_PER_SEC", "150"),
        ("SMSQ_WORKER__BURST", "20"),
        ("SMSQ_WORKER__MAX_DELIVERIES", "8"),
        ("SMSQ_WORKER__SHUTDOWN_GRACE_MS", "1000"),
    ];
    KillOnDrop(spawn_worker_process(
        env,
        &format!("chaos-{n}-{generation}"),
        &extra,
    ))
}

fn child(w: &KillOnDrop) -> &Child {
    &w.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statuses_agree_with_the_provider_through_stalls_kills_and_a_redis_restart() {
    let dir = temp_dir("chaos");
    let mut redis = tokio::task::spawn_blocking(move || {
        let extra = ["--appendonly", "yes", "--appendfsync", "always"]
            .map(str::to_owned)
            .to_vec();
        LocalRedis::start_with(&dir, Listen::Unix(dir.join("redis.sock")), extra)
    })
    .await
    .unwrap()
    .expect("redis-server with an AOF");
    let settings = settings_on(&redis.url(), |c| {
        c.retry.max_attempts = 12;
        c.retry.base_ms = 50;
        c.retry.max_ms = 400;
    });
    let app = spawn_app(settings).await;
    let mut opts = fake_options();
    opts.error_rate = 0.03;
    opts.http500_rate = 0.03;
    opts.garbage_rate = 0.02;
    opts.drop_rate = 0.02;
    // Some answers are final refusals: a stale worker's refusal must not stand over the
    // rescuer's accepted send. Slow answers keep sends in flight when a worker freezes.
    opts.reject_rate = 0.1;
    opts.delay_ms = 250;
    opts.seed = Some(17);
    let fake = spawn_fake(opts).await;
    let env = child_env(&app.settings, &fake.base_url());

    let ids = app.queue_messages(13900000000, JOBS).await;
    let mut workers: Vec<KillOnDrop> = (0..3).map(|n| worker(&env, n, 0)).collect();
    let mut generation = 1;
    let mut rng = rand::rngs::StdRng::seed_from_u64(4);
    let started = Instant::now();
    let mut restarted = false;
    let (mut stops, mut kills) = (0, 0);
    while started.elapsed() < Duration::from_secs(12) {
        let n = rng.random_range(0..workers.len());
        if rng.random_range(0..4) == 0 {
            // A crash: the process is gone; a new one takes its place.
            workers[n] = worker(&env, n, generation);
            generation += 1;
            kills += 1;
        } else {
            // A stall past the heartbeat's TTL (3 × 200 ms): the others take it for dead.
            signal(child(&workers[n]), libc::SIGSTOP);
            tokio::time::sleep(Duration::from_millis(rng.random_range(700..1500))).await;
            signal(child(&workers[n]), libc::SIGCONT);
            stops += 1;
        }
        if !restarted && started.elapsed() > Duration::from_secs(5) {
            let waiting = app.backlog().await;
            assert!(
                waiting > 100,
                "only {waiting} jobs left when Redis goes down"
            );
            redis = tokio::task::spawn_blocking(move || {
                redis.restart().expect("redis restarts from its AOF");
                redis
            })
            .await
            .unwrap();
            restarted = true;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(100..400))).await;
    }
    assert!(
        restarted && stops > 0 && kills > 0,
        "{stops} stops, {kills} kills"
    );

    // Calm: every job reaches its end.
    let terminal = ["sent", "failed", "dead", "expired", "superseded"];
    let statuses: HashMap<String, String> =
        eventually(Duration::from_secs(90), "every job to finish", || async {
            let mut all = HashMap::new();
            for id in &ids {
                let (code, job) = app.get(&format!("/v1/jobs/{id}")).await;
                let status = job["status"].as_str().unwrap_or("").to_owned();
                if code != 200 || !terminal.contains(&status.as_str()) {
                    return None;
                }
                all.insert(id.clone(), status);
            }
            Some(all)
        })
        .await;
    drop(workers);

    let mut accepted: HashMap<String, usize> = HashMap::new();
    for m in fake.messages() {
        *accepted.entry(m.req_id.unwrap_or_default()).or_default() += 1;
    }
    let mut wrong = Vec::new();
    for id in &ids {
        let status = statuses[id].as_str();
        let times = accepted.get(id).copied().unwrap_or(0);
        if (status == "sent") != (times > 0) || times > 1 {
            wrong.push(format!("{id}: {status}, accepted {times}×"));
        }
    }
    let sent = statuses.values().filter(|s| *s == "sent").count();
    assert!(
        wrong.is_empty(),
        "{} of {JOBS} disagree with the provider ({sent} sent, {stops} stops, {kills} kills): {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    // About 10 % are refused for good by the fake; the rest must get through.
    assert!(sent as u64 > JOBS * 8 / 10, "only {sent} sent");
}
