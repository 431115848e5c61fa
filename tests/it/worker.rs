//! The worker pool in-process: end to end through HTTP, superseded and expired jobs, poison
//! entries, retries and dead letters, reclaiming what a crashed consumer left.

use smsq::domain::Shard;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use smsq::store::GROUP;

use crate::common::{
    eventually, fake_options, history, settings, spawn_app, spawn_fake, wait_for_status,
};

#[tokio::test]
async fn the_code_the_provider_received_is_the_one_that_verifies() {
    let app = spawn_app(settings(|c| c.code.length = 10)).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 4);

    let (_, issued) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138200", "purpose": "login"}),
        )
        .await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    let job = wait_for_status(&app, &job_id, "sent").await;

    let messages = fake.messages();
    assert_eq!(messages.len(), 1);
    let sms = &messages[0];
    assert_eq!(sms.to, "13800138200");
    assert_eq!(sms.template_id, "1");
    assert_eq!(sms.datas.len(), 2);
    assert_eq!(sms.datas[1], "5", "validity in minutes");
    assert_eq!(sms.req_id.as_deref(), Some(job_id.as_str()));
    let code = sms.datas[0].clone();
    assert_eq!(code.len(), 10);

    assert_eq!(job["provider_message_id"], sms.sms_message_sid.as_str());
    assert_eq!(job["provider_status"], "000000");
    assert_eq!(job["attempts"], 1);
    assert_eq!(history(&app, &job_id).await, ["queued", "sending", "sent"]);

    // After the send: no stream entry, no sealed code, no plain code anywhere in Redis.
    let mut redis = app.redis().await;
    assert_eq!(app.backlog().await, 0);
    assert_eq!(app.otp(&job_id).await, None);
    let holders: Vec<_> = app
        .all_stored_text()
        .await
        .into_iter()
        .filter(|(_, t)| crate::common::holds_code(t, &code))
        .collect();
    assert!(holders.is_empty(), "plain code left in {holders:?}");
    let pending: redis::streams::StreamPendingReply = redis
        .xpending(app.store.keys(Shard::FIRST).jobs(), GROUP)
        .await
        .unwrap();
    assert_eq!(pending.count(), 0);

    let (_, verified) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13800138200", "purpose": "login", "code": code}),
        )
        .await;
    assert_eq!(verified, json!({"valid": true}));
    assert!(
        !crate::common::holds_code(&crate::common::logs(), &code),
        "the code appeared in a log line"
    );
    stop.cancel();
}

/// A rolling upgrade: a code the previous build issued keeps its sealed code in an `otp` key
/// of its own. A worker of this build still sends that code (and the right one), instead of
/// finding the code record without one and ending the job `expired`.
#[tokio::test]
async fn a_code_issued_by_the_previous_layout_is_still_sent() {
    let app = spawn_app(settings(|_| {})).await;
    let (job_id, code) = issued_by_the_previous_layout(&app, "13800138209").await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    wait_for_status(&app, &job_id, "sent").await;
    stop.cancel();
    assert_eq!(fake.messages()[0].datas[0], code);
}

/// A code issued through the API, then stored as the previous build stored it: the sealed
/// code in `otp:<job>`, none in the record. Its job id and its code.
async fn issued_by_the_previous_layout(app: &crate::common::App, mobile: &str) -> (String, String) {
    let (_, issued) = app.call("/v1/codes", json!({"mobile": mobile})).await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    let code = app.otp(&job_id).await.expect("sealed");
    let keys = app.store.keys(Shard::FIRST);
    let record = app.code_record_of(&job_id).await.expect("code record");
    let mut redis = app.redis().await;
    let sealed: String = redis.hget(&record, "o").await.unwrap();
    let _: () = redis.hdel(&record, "o").await.unwrap();
    let _: () = redis
        .pset_ex(keys.legacy_otp(&job_id), sealed, 300_000)
        .await
        .unwrap();
    (job_id, code)
}

/// The same, for a code of the previous layout that died before the upgrade: `smsq dlq
/// replay` puts it back (reading `otp:<job>` as `begin` does), and it is sent.
#[tokio::test]
async fn a_dead_code_of_the_previous_layout_is_still_replayed_and_sent() {
    let app = spawn_app(settings(|c| c.retry.max_attempts = 1)).await;
    let (job_id, code) = issued_by_the_previous_layout(&app, "13800138210").await;
    let mut failing = fake_options();
    failing.error_rate = 1.0;
    let down = spawn_fake(failing).await;
    let (worker, stop) = app.spawn_worker(&down.base_url(), 1);
    wait_for_status(&app, &job_id, "dead").await;
    stop.cancel();
    let _ = worker.await;

    let done = smsq::ops::dlq::replay(&app.records, std::slice::from_ref(&job_id), false)
        .await
        .unwrap();
    assert_eq!(done.replayed, 1, "{}", done.report);
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 1);
    wait_for_status(&app, &job_id, "sent").await;
    stop.cancel();
    assert_eq!(fake.messages()[0].datas[0], code);
}

#[tokio::test]
async fn a_reissued_code_supersedes_the_unsent_one() {
    let app = spawn_app(settings(|_| {})).await;
    let (_, first) = app
        .call("/v1/codes", json!({"mobile": "13800138201"}))
        .await;
    app.end_resend_window("default", "13800138201").await;
    let (_, second) = app
        .call("/v1/codes", json!({"mobile": "13800138201"}))
        .await;
    let (first, second) = (
        first["job_id"].as_str().unwrap(),
        second["job_id"].as_str().unwrap(),
    );
    let second_code = app.otp(second).await.unwrap();
    assert_eq!(
        app.otp(first).await,
        None,
        "the old plain code is dropped at once"
    );

    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    wait_for_status(&app, second, "sent").await;
    wait_for_status(&app, first, "superseded").await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 1, "an old code is never sent");
    assert_eq!(messages[0].datas[0], second_code);
    assert_eq!(history(&app, first).await, ["queued", "superseded"]);
    stop.cancel();
}

#[tokio::test]
async fn a_code_that_expired_in_the_queue_is_not_sent() {
    let app = spawn_app(settings(|c| c.code.ttl_secs = 1)).await;
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13800138202"}))
        .await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    eventually(Duration::from_secs(5), "the code to expire", || async {
        app.otp(&job_id).await.is_none().then_some(())
    })
    .await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    wait_for_status(&app, &job_id, "expired").await;
    assert!(fake.messages().is_empty());
    assert_eq!(app.backlog().await, 0);
    stop.cancel();
}

#[tokio::test]
async fn a_poison_entry_is_dead_lettered_and_the_pool_goes_on() {
    let app = spawn_app(settings(|_| {})).await;
    let mut redis = app.redis().await;
    let keys = app.store.keys(Shard::FIRST);
    let _: String = redis
        .xadd(keys.jobs(), "*", &[("job", "{not json")])
        .await
        .unwrap();
    let _: String = redis
        .xadd(keys.jobs(), "*", &[("other", "field")])
        .await
        .unwrap();
    let _: String = redis
        .xadd(
            keys.jobs(),
            "*",
            &[("job", r#"{"id":"x","kind":"code","to":"1"}"#)],
        )
        .await
        .unwrap();
    let msg_id = app.queue_message("13800138203").await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    wait_for_status(&app, &msg_id, "sent").await;

    let dead: redis::streams::StreamRangeReply = redis.xrange_all(keys.dead()).await.unwrap();
    assert_eq!(dead.ids.len(), 3);
    let errors: Vec<String> = dead.ids.iter().map(|e| e.get("error").unwrap()).collect();
    assert!(errors[0].contains("invalid job payload"), "{errors:?}");
    assert!(errors[1].contains("no `job` field"), "{errors:?}");
    assert!(errors[2].contains("invalid job payload"), "{errors:?}");
    assert_eq!(
        app.backlog().await,
        0,
        "poison entries are acked and deleted"
    );
    stop.cancel();
}

#[tokio::test]
async fn transient_failures_are_retried_until_attempts_run_out_then_dead_lettered() {
    let app = spawn_app(settings(|c| c.retry.max_attempts = 3)).await;
    let mut opts = fake_options();
    opts.error_rate = 1.0;
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13800138204"}))
        .await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    let job = wait_for_status(&app, &job_id, "dead").await;
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["provider_status"], "160000");
    assert!(job["last_error"].as_str().unwrap().contains("160000"));
    assert_eq!(
        history(&app, &job_id).await,
        [
            "queued", "sending", "retrying", "sending", "retrying", "sending", "dead"
        ]
    );
    let mut redis = app.redis().await;
    let dead: redis::streams::StreamRangeReply = redis
        .xrange_all(app.store.keys(Shard::FIRST).dead())
        .await
        .unwrap();
    assert_eq!(dead.ids.len(), 1);
    let payload: String = dead.ids[0].get("job").unwrap();
    assert!(payload.contains(&job_id));
    assert_eq!(dead.ids[0].get::<String>("attempts").as_deref(), Some("3"));
    // The unsent code stays for `smsq dlq replay`, never past the code's own expiry.
    let code_key = app.code_record_of(&job_id).await.expect("the code record");
    assert!(
        app.sealed_otp(&job_id).await.is_some(),
        "the sealed code is kept"
    );
    let ttl: i64 = redis.pttl(&code_key).await.unwrap();
    assert!((1..=300_000).contains(&ttl), "code record ttl {ttl}");
    assert_eq!(
        redis
            .zcard::<_, usize>(app.store.keys(Shard::FIRST).retry())
            .await
            .unwrap(),
        0
    );
    stop.cancel();
}

#[tokio::test]
async fn flaky_provider_still_delivers_every_job_once() {
    let app = spawn_app(settings(|c| c.retry.max_attempts = 10)).await;
    let mut opts = fake_options();
    opts.error_rate = 0.3;
    opts.http500_rate = 0.2;
    opts.seed = Some(7);
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 8);
    let ids = app.queue_messages(13900130000, 20).await;
    let mut retried = 0;
    for id in &ids {
        let job = wait_for_status(&app, id, "sent").await;
        if job["attempts"].as_u64().unwrap() > 1 {
            retried += 1;
        }
    }
    assert!(
        retried > 0,
        "the fault injection did not trigger (seeded: it must)"
    );
    let messages = fake.messages();
    assert_eq!(messages.len(), 20);
    let mut req_ids: Vec<_> = messages.iter().map(|m| m.req_id.clone().unwrap()).collect();
    req_ids.sort();
    req_ids.dedup();
    assert_eq!(req_ids.len(), 20, "each job sent exactly once");
    stop.cancel();
}

#[tokio::test]
async fn a_permanent_provider_error_fails_the_job_at_once() {
    let app = spawn_app(settings(|c| c.code.template_id = "77".into())).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13800138205"}))
        .await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    let job = wait_for_status(&app, &job_id, "failed").await;
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["provider_status"], "160032");
    assert_eq!(app.otp(&job_id).await, None);
    stop.cancel();
}
