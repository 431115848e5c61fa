//! `smsq` as separate processes: two workers sharing a stream, SIGTERM during sends, and the
//! `smsq dev` demo.

use smsq::domain::Shard;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;

use crate::common::{
    child_env, eventually, fake_options, settings, signal, smsq_command, spawn_app, spawn_fake,
    spawn_worker_process, stdout_of_success, temp_dir, wait_exit,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_send_each_of_200_jobs_exactly_once() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let env = child_env(&app.settings, &fake.base_url());
    let mut a = spawn_worker_process(&env, "worker-a", &[]);
    let mut b = spawn_worker_process(&env, "worker-b", &[]);

    let mut ids = app.queue_messages(13500000000, 200).await;
    eventually(
        Duration::from_secs(30),
        "200 messages at the provider",
        || async { (fake.messages().len() >= 200).then_some(()) },
    )
    .await;
    let mut req_ids: Vec<String> = fake
        .messages()
        .into_iter()
        .map(|m| m.req_id.unwrap())
        .collect();
    assert_eq!(req_ids.len(), 200);
    req_ids.sort();
    req_ids.dedup();
    assert_eq!(req_ids.len(), 200, "a job was sent twice");
    ids.sort();
    assert_eq!(req_ids, ids);

    // Both consumers joined the one group.
    let mut redis = app.redis().await;
    let consumers: redis::streams::StreamInfoConsumersReply = redis
        .xinfo_consumers(app.store.keys(Shard::FIRST).jobs(), smsq::store::GROUP)
        .await
        .unwrap();
    let mut names: Vec<String> = consumers.consumers.into_iter().map(|c| c.name).collect();
    names.sort();
    assert_eq!(names, ["worker-a", "worker-b"]);
    eventually(
        Duration::from_secs(10),
        "every job record to say sent",
        || async {
            for id in &ids {
                if app.get(&format!("/v1/jobs/{id}")).await.1["status"] != "sent" {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;

    signal(&a, libc::SIGTERM);
    signal(&b, libc::SIGTERM);
    assert!(wait_exit(&mut a, Duration::from_secs(10)).success());
    assert!(wait_exit(&mut b, Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_sends_finish_and_exits_0() {
    let app = spawn_app(settings(|_| {})).await;
    let mut opts = fake_options();
    opts.delay_ms = 1500;
    let fake = spawn_fake(opts).await;
    let env = child_env(&app.settings, &fake.base_url());
    let mut worker = spawn_worker_process(
        &env,
        "draining",
        &[("SMSQ_WORKER__SHUTDOWN_GRACE_MS", "5000")],
    );

    let ids = app.queue_messages(13600000000, 6).await;
    app.wait_all(&ids, "sending", Duration::from_secs(10)).await;
    let sent_at = Instant::now();
    signal(&worker, libc::SIGTERM);
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut worker, Duration::from_secs(8)))
            .await
            .unwrap();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        sent_at.elapsed() < Duration::from_secs(5) + Duration::from_secs(3),
        "grace period exceeded"
    );
    for id in &ids {
        assert_eq!(
            app.get(&format!("/v1/jobs/{id}")).await.1["status"],
            "sent",
            "job {id}"
        );
    }
    assert_eq!(fake.messages().len(), 6);
    assert_eq!(app.backlog().await, 0);
}

#[test]
fn smsq_dev_sends_and_verifies_a_code_and_stops_on_sigint() {
    let dir = temp_dir("dev");
    // Nothing listens here, so `smsq dev` starts its own redis-server.
    let url = format!("redis+unix://{}/absent.sock", dir.display());
    let text = dev_demo(&[("SMSQ_REDIS__URL", url)]);
    assert!(text.contains("starting a private redis-server"), "{text}");
}

#[test]
fn smsq_dev_runs_on_a_private_cluster_with_shards() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let text = dev_demo(&[
        ("SMSQ_REDIS__URL", format!("redis://127.0.0.1:{port}")),
        ("SMSQ_REDIS__CLUSTER", "true".into()),
        ("SMSQ_REDIS__SHARDS", "6".into()),
    ]);
    assert!(text.contains("starting a private Redis Cluster"), "{text}");
}

/// Runs `smsq dev` with `env` through its demo, checks the demo's story, stops it with
/// SIGINT; returns what it printed.
fn dev_demo(env: &[(&str, String)]) -> String {
    let mut child = smsq_command(None)
        .arg("dev")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env("SMSQ_API__LISTEN", "127.0.0.1:0")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn smsq dev");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut output = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !output.iter().any(|l: &String| l.contains("Try next")) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => output.push(line),
            Err(_) => {
                let _ = child.kill();
                panic!("smsq dev did not finish its demo:\n{}", output.join("\n"));
            }
        }
    }
    let text = output.join("\n");
    let code = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("the code is "))
        .unwrap_or_else(|| panic!("no code printed:\n{text}"))
        .to_owned();
    assert_eq!(code.len(), 6);
    assert!(text.contains(&format!("\"code\": \"{code}\"")), "{text}");
    assert!(text.contains(r#"{"valid":true}"#), "{text}");
    assert!(
        text.contains("queued → sending → sent → delivered"),
        "{text}"
    );
    assert!(text.contains(r#""status":"delivered""#), "{text}");

    signal(&child, libc::SIGINT);
    let status = wait_exit(&mut child, Duration::from_secs(15));
    assert!(status.success(), "exit status {status:?}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("stopped")), "{rest:?}");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_provider_runs_as_a_process_with_the_account_from_the_environment() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let mut child = smsq_command(None)
        .args([
            "fake-provider",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--templates",
            "1,2",
        ])
        .env("RONGLIAN_ACCOUNT_SID", crate::common::SID)
        .env("RONGLIAN_AUTH_TOKEN", crate::common::TOKEN)
        .env("RONGLIAN_APP_ID", crate::common::APP_ID)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let client = crate::common::client(
        &format!("http://127.0.0.1:{port}"),
        crate::common::TOKEN,
        2000,
    );
    let sms = smsq::provider::TemplateSms {
        to: "13800138000",
        template_id: "2",
        datas: &[],
        req_id: None,
    };
    let accepted = eventually(
        Duration::from_secs(10),
        "the fake provider to answer",
        || async { client.send(&sms).await.ok() },
    )
    .await;
    assert_eq!(accepted.message_id.len(), 32);
    signal(&child, libc::SIGTERM);
    assert!(wait_exit(&mut child, Duration::from_secs(5)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smsq_send_and_smsq_job_use_the_same_path_as_the_api() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let env = child_env(&app.settings, &fake.base_url());
    let stdout = stdout_of_success(
        smsq_command(None)
            .args([
                "send",
                "+86 139 0013 9000",
                "--purpose",
                "smoke",
                "--no-follow",
            ])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str()))),
    );
    let job_id = stdout.split_whitespace().nth(2).unwrap().to_owned();
    assert!(stdout.contains("139****9000"), "{stdout}");
    assert!(
        !stdout.contains("13900139000"),
        "mobile not masked: {stdout}"
    );
    // Same rules as the API: a second send within the interval is refused.
    let again = smsq_command(None)
        .args(["send", "13900139000", "--purpose", "smoke", "--no-follow"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("recently"));

    let (_, job) = app.get(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(job["status"], "queued");
    let out = smsq_command(None)
        .args(["job", &job_id, "--json"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["job"]["status"], "queued");
    assert_eq!(shown["events"][0]["status"], "queued");
    let bad = smsq_command(None)
        .args(["send", "12345"])
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
}
