//! The worker through faults: a crashed consumer's entries, replays, shutdown, a Redis
//! restart, a provider that lies or hangs.

use smsq::domain::Shard;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use smsq::store::GROUP;

use crate::common::{
    eventually, fake_options, history, settings, spawn_app, spawn_fake, status_of, wait_for_status,
};

#[tokio::test]
async fn a_job_left_pending_by_a_crashed_consumer_is_reclaimed_without_using_an_attempt() {
    let app = spawn_app(settings(|c| c.worker.claim_idle_ms = 200)).await;
    app.queue.ensure_group().await.unwrap();
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13800138206"}))
        .await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    // A consumer takes the entry and dies before doing anything with it.
    let mut redis = app.redis().await;
    let taken: redis::streams::StreamReadReply = redis
        .xread_options(
            &[app.store.keys(Shard::FIRST).jobs()],
            &[">"],
            &redis::streams::StreamReadOptions::default()
                .group(GROUP, "crashed-worker")
                .count(10),
        )
        .await
        .unwrap();
    assert_eq!(taken.keys[0].ids.len(), 1);

    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let job = wait_for_status(&app, &job_id, "sent").await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(fake.messages().len(), 1);
    stop.cancel();
}

#[tokio::test]
async fn a_replayed_entry_never_overwrites_a_terminal_status() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let job_id = app.queue_message("13800138207").await;
    wait_for_status(&app, &job_id, "sent").await;
    // The same payload shows up again (a duplicate XADD, a reclaim race).
    let payload = json!({"id": job_id, "kind": "message", "to": "13800138207", "purpose": null,
        "template_id": "1", "datas": [], "attempt": 0, "created_ms": 1, "expires_ms": null});
    let mut redis = app.redis().await;
    let _: String = redis
        .xadd(
            app.store.keys(Shard::FIRST).jobs(),
            "*",
            &[("job", payload.to_string())],
        )
        .await
        .unwrap();
    eventually(
        Duration::from_secs(5),
        "the replayed entry to be acked",
        || async {
            let n: usize = app
                .redis()
                .await
                .xlen(app.store.keys(Shard::FIRST).jobs())
                .await
                .unwrap();
            (n == 0).then_some(())
        },
    )
    .await;
    assert_eq!(status_of(&app, &job_id).await["status"], "sent");
    assert_eq!(fake.messages().len(), 1);
    assert_eq!(history(&app, &job_id).await, ["queued", "sending", "sent"]);
    stop.cancel();
}

#[tokio::test]
async fn stopping_drains_in_flight_sends() {
    let app = spawn_app(settings(|_| {})).await;
    let mut opts = fake_options();
    opts.delay_ms = 500;
    let fake = spawn_fake(opts).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 8);
    let ids = app.queue_messages(13700130000, 5).await;
    for id in &ids {
        wait_for_status(&app, id, "sending").await;
    }
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(6), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.abandoned, 0);
    assert_eq!(report.handled, 5);
    for id in &ids {
        assert_eq!(status_of(&app, id).await["status"], "sent");
    }
}

#[tokio::test]
async fn the_worker_rides_out_a_redis_restart() {
    let mut redis = crate::common::private_redis();
    let app = spawn_app(crate::common::settings_on(&redis.url(), |_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    let m_id = app.queue_message("13800138300").await;
    wait_for_status(&app, &m_id, "sent").await;

    // Redis goes away (and, without persistence, comes back empty).
    redis.stop();
    let (status, _) = app
        .call(
            "/v1/messages",
            json!({"to": "13800138300", "template_id": "1"}),
        )
        .await;
    assert_eq!(status, 503, "redis is down");
    redis.restart().unwrap();
    let job_id = eventually(
        Duration::from_secs(10),
        "the API to accept again",
        || async {
            let (status, m) = app
                .call(
                    "/v1/messages",
                    json!({"to": "13800138301", "template_id": "1"}),
                )
                .await;
            (status == 202).then(|| m["job_id"].as_str().unwrap().to_owned())
        },
    )
    .await;
    wait_for_status(&app, &job_id, "sent").await;
    assert_eq!(fake.messages().len(), 2);
    stop.cancel();
    let report = tokio::time::timeout(Duration::from_secs(6), worker)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(report.abandoned, 0);
}

#[tokio::test]
async fn a_lying_provider_is_retried_under_the_same_req_id() {
    let app = spawn_app(settings(|c| c.retry.max_attempts = 2)).await;
    let mut opts = fake_options();
    opts.garbage_rate = 1.0;
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let m_id = app.queue_message("13800138302").await;
    let job = wait_for_status(&app, &m_id, "dead").await;
    assert_eq!(job["provider_status"], "172003");
    assert_eq!(job["attempts"], 2);
    stop.cancel();
}

#[tokio::test]
async fn a_hanging_provider_times_out_and_is_retried_then_dead_lettered() {
    let app = spawn_app(settings(|c| {
        c.retry.max_attempts = 2;
        c.provider.timeout_ms = 200;
    }))
    .await;
    let mut opts = fake_options();
    opts.delay_ms = 5000;
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let m_id = app.queue_message("13800138303").await;
    let job = wait_for_status(&app, &m_id, "dead").await;
    assert_eq!(job["provider_status"], "172001");
    assert!(
        job["last_error"].as_str().unwrap().contains("Timeout"),
        "{job}"
    );
    assert_eq!(job["attempts"], 2);
    stop.cancel();
}
