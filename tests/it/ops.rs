//! What on-call runs: `smsq status` against a seeded queue, `smsq dlq`, `smsq send`,
//! Prometheus `/metrics`, and what the logs never contain.

use redis::AsyncCommands;
use serde_json::json;
use smsq::domain::Shard;
use smsq::store::GROUP;

use crate::common::{
    App, child_env, fake_options, history, settings, smsq_command, spawn_app, spawn_fake,
    wait_for_status,
};

/// Runs `smsq ARGS` against the test's Redis and prefix; (exit code, stdout, stderr).
fn smsq(app: &App, provider: &str, args: &[&str]) -> (i32, String, String) {
    let out = smsq_command(None)
        .args(args)
        .envs(child_env(&app.settings, provider))
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_a_seeded_queue_exactly_as_json_and_as_text() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    // Four sent, by a worker that then stops cleanly (and leaves the group).
    let sent = app.queue_messages(13750000000, 4).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    for id in &sent {
        wait_for_status(&app, id, "sent").await;
    }
    stop.cancel();
    worker.await.unwrap();
    // A backlog of five: one delivered to a live consumer, two to a dead one, two unread.
    app.queue_messages(13750000010, 5).await;
    let mut redis = app.redis().await;
    let keys = app.store.keys(Shard::FIRST);
    let _: () = redis
        .set_ex(keys.heartbeat("alive-1"), "{}", 60)
        .await
        .unwrap();
    for (consumer, count) in [("alive-1", 1), ("ghost", 2)] {
        let opts = redis::streams::StreamReadOptions::default()
            .group(GROUP, consumer)
            .count(count);
        let _: redis::streams::StreamReadReply = redis
            .xread_options(&[keys.jobs()], &[">"], &opts)
            .await
            .unwrap();
    }
    // Two retries waiting, the next due in a minute; one dead letter.
    let due = smsq::domain::now_ms() + 60_000;
    let _: () = redis.zadd(keys.retry(), "{\"a\":1}", due).await.unwrap();
    let _: () = redis
        .zadd(keys.retry(), "{\"b\":2}", due + 1000)
        .await
        .unwrap();
    let _: String = redis
        .xadd(
            keys.dead(),
            "*",
            &[("job", "{}"), ("error", "seeded"), ("attempts", "5")],
        )
        .await
        .unwrap();

    let (code, out, err) = smsq(&app, &fake.base_url(), &["status", "--json"]);
    assert_eq!(code, 0, "{err}");
    let s: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(s["stream"]["backlog"], 5);
    assert_eq!(s["stream"]["lag"], 2);
    assert_eq!(s["stream"]["pending"], 3);
    assert!(s["stream"]["oldest_pending_age_ms"].as_u64().unwrap() < 60_000);
    let consumers = s["consumers"].as_array().unwrap();
    assert_eq!(consumers.len(), 2, "{consumers:?}");
    assert_eq!(
        (
            consumers[0]["name"].as_str(),
            consumers[0]["alive"].as_bool(),
            consumers[0]["pending"].as_u64()
        ),
        (Some("alive-1"), Some(true), Some(1))
    );
    assert_eq!(
        (
            consumers[1]["name"].as_str(),
            consumers[1]["alive"].as_bool(),
            consumers[1]["pending"].as_u64()
        ),
        (Some("ghost"), Some(false), Some(2))
    );
    assert_eq!(consumers[1]["max_deliveries"], 1);
    assert_eq!(s["retries"]["waiting"], 2);
    let next_due = s["retries"]["next_due_in_ms"].as_i64().unwrap();
    assert!((50_000..=60_000).contains(&next_due), "{next_due}");
    assert_eq!(s["dead_letters"], 1);
    // Nine job records made (four sent, five queued), all within the retention.
    assert_eq!(s["redis"]["retained_jobs"], 9, "{}", s["redis"]);
    assert_eq!(s["throughput"]["last_hour"]["sent"], 4);
    assert!(s["throughput"]["sent_per_sec_1m"].as_f64().unwrap() > 0.0);
    assert_eq!(s["limiter"]["rate_per_sec"], 100);
    assert_eq!(s["limiter"]["burst"], 20);
    assert_eq!(s["verdict"]["status"], "degraded");
    assert_eq!(
        s["verdict"]["reasons"][0],
        "2 job(s) pending at dead workers"
    );

    let (code, text, _) = smsq(&app, &fake.base_url(), &["status"]);
    assert_eq!(code, 0);
    for shown in [
        "smsq status: degraded: 2 job(s) pending at dead workers",
        "backlog 5   lag 2   pending 3",
        "retries    2 waiting",
        "dead       1 dead letter(s)",
        "limiter    100/s burst 20",
        "last hour  sent 4   failed 0",
        "workers    1 live, 1 dead",
    ] {
        assert!(text.contains(shown), "{shown:?} not in:\n{text}");
    }
    assert!(
        text.lines()
            .any(|l| l.contains("ghost") && l.contains("dead") && l.contains(" 2 ")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_replay_sends_a_dead_job_again_and_never_a_stale_code() {
    let app = spawn_app(settings(|c| c.retry.max_attempts = 1)).await;
    let mut broken = fake_options();
    broken.error_rate = 1.0;
    let broken = spawn_fake(broken).await;
    let message = app.queue_message("13760000000").await;
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13760000001"}))
        .await;
    let code_job = issued["job_id"].as_str().unwrap().to_owned();
    let (worker, stop) = app.spawn_worker(&broken.base_url(), 2);
    wait_for_status(&app, &message, "dead").await;
    wait_for_status(&app, &code_job, "dead").await;
    stop.cancel();
    worker.await.unwrap();

    let healthy = spawn_fake(fake_options()).await;
    let (code, list, _) = smsq(&app, &healthy.base_url(), &["dlq", "list"]);
    assert_eq!(code, 0);
    assert!(list.starts_with("2 dead letter(s)"), "{list}");
    assert!(
        list.contains("137****0000") && !list.contains("13760000000"),
        "{list}"
    );

    // The code job's code is gone (expired, as far as smsq can tell): refused.
    let mut redis = app.redis().await;
    let _: () = redis
        .del(app.store.keys(Shard::FIRST).code("default", "13760000001"))
        .await
        .unwrap();
    let (code, out, _) = smsq(&app, &healthy.base_url(), &["dlq", "replay", &code_job]);
    assert_eq!(code, 1);
    assert!(
        out.contains("refused job") && out.contains("stale code is never sent"),
        "{out}"
    );

    let (code, out, _) = smsq(&app, &healthy.base_url(), &["dlq", "replay", &message]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("1 replayed, 0 refused, 0 not found"), "{out}");
    let (_worker, stop) = app.spawn_worker(&healthy.base_url(), 2);
    let job = wait_for_status(&app, &message, "sent").await;
    stop.cancel();
    assert_eq!(job["attempts"], 1, "a fresh attempt budget");
    let h = history(&app, &message).await;
    assert_eq!(
        h[h.len() - 4..],
        ["dead", "replayed", "sending", "sent"],
        "{h:?}"
    );
    // Twice is harmless.
    let (code, out, _) = smsq(&app, &healthy.base_url(), &["dlq", "replay", &message]);
    assert_eq!(code, 1);
    assert!(out.contains("0 replayed, 0 refused, 1 not found"), "{out}");

    let (code, out, _) = smsq(&app, &healthy.base_url(), &["dlq", "purge"]);
    assert_eq!(code, 2);
    assert!(out.contains("1 dead letter(s) would be deleted"), "{out}");
    let (code, out, _) = smsq(&app, &healthy.base_url(), &["dlq", "purge", "--yes"]);
    assert_eq!((code, out.trim()), (0, "purged 1 dead letter(s)"));
    let (_, list, _) = smsq(&app, &healthy.base_url(), &["dlq", "list", "--json"]);
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list["total"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsq_send_follows_the_code_to_sent() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let (code, out, err) = smsq(
        &app,
        &fake.base_url(),
        &["send", "13770000000", "--purpose", "smoke"],
    );
    stop.cancel();
    worker.await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    let steps: Vec<&str> = out.lines().collect();
    assert!(
        steps[0].contains("issued job") && steps[0].contains("137****0000"),
        "{out}"
    );
    for (line, status) in steps[1..].iter().zip(["queued", "sending", "sent"]) {
        assert!(
            line.trim_start().starts_with('+') && line.contains(status),
            "{out}"
        );
    }
    assert!(!out.contains("13770000000"), "mobile not masked: {out}");
    // No worker: it says so and exits 1 when the wait runs out.
    let (code, _, err) = smsq(
        &app,
        &fake.base_url(),
        &["send", "13770000001", "--timeout-secs", "1"],
    );
    assert_eq!(code, 1);
    assert!(err.contains("is a worker running?"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_redraws_what_changed_until_interrupted() {
    use std::io::Read;
    use std::time::{Duration, Instant};

    let app = spawn_app(settings(|_| {})).await;
    let mut child = crate::common::KillOnDrop(
        smsq_command(None)
            .args(["status", "--watch"])
            .envs(child_env(&app.settings, "http://127.0.0.1:9"))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let mut stdout = child.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                break;
            }
        }
    });
    // Screens are separated by "clear screen, cursor home".
    let mut seen = String::new();
    let mut wait_for = |wanted: &str| {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let screens: Vec<&str> = seen.split("\x1b[2J\x1b[H").collect();
            if screens
                .iter()
                .skip(1)
                .any(|s| s.contains(wanted) && s.contains("Ctrl-C to stop"))
            {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(bytes) => seen.push_str(&String::from_utf8_lossy(&bytes)),
                Err(_) => panic!("no screen with {wanted:?}:\n{seen}"),
            }
        }
    };
    wait_for("backlog 0 ");
    app.queue_message("13790000000").await;
    wait_for("backlog 1 ");
    crate::common::signal(&child.0, libc::SIGINT);
    let status = crate::common::wait_exit(&mut child.0, Duration::from_secs(5));
    assert!(status.success(), "{status:?}");
}
