//! `smsq export` follows a running fleet: every job that finished is one line, across a
//! restart of the follower (a `kill -9` mid-run, and a graceful stop), none missing, none
//! twice; and a follower that fell behind the events' retention says so instead of silently
//! skipping jobs.

use std::collections::HashMap;
use std::process::{Child, Stdio};
use std::time::Duration;

use crate::common::{
    child_env, eventually, fake_options, settings, signal, smsq_command, spawn_app, spawn_fake,
    temp_dir, wait_exit,
};

fn follower(env: &[(String, String)], out: &std::path::Path) -> Child {
    smsq_command(None)
        .args(["export", "--settle", "0s", "--out"])
        .arg(out)
        .envs(env.iter().cloned())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

/// How often each job id appears in the export file.
fn lines_per_job(out: &std::path::Path) -> HashMap<String, usize> {
    let text = std::fs::read_to_string(out).unwrap_or_default();
    let mut seen = HashMap::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("every line is JSON");
        let id = v["job"]["id"].as_str().expect("a job id").to_owned();
        assert_eq!(v["job"]["status"], "sent", "{line}");
        assert!(
            v["history"].as_array().is_some_and(|h| h.len() >= 3),
            "{line}"
        );
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_follows_a_running_fleet_across_restarts_without_missing_or_repeating() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 8);
    let env = child_env(&app.settings, &fake.base_url());
    let out = temp_dir("export").join("jobs.jsonl");

    let mut ids = Vec::new();
    let mut child = follower(&env, &out);
    ids.extend(app.queue_messages(13_740_000_000, 60).await);
    // Killed mid-run, while jobs are still finishing: it resumes from its file.
    eventually(Duration::from_secs(20), "some lines exported", || async {
        (!lines_per_job(&out).is_empty()).then_some(())
    })
    .await;
    signal(&child, libc::SIGKILL);
    wait_exit(&mut child, Duration::from_secs(5));
    ids.extend(app.queue_messages(13_740_000_100, 60).await);
    let mut child = follower(&env, &out);
    ids.extend(app.queue_messages(13_740_000_200, 60).await);
    eventually(Duration::from_secs(30), "every job exported", || async {
        (lines_per_job(&out).len() >= ids.len()).then_some(())
    })
    .await;
    // A graceful stop, more jobs, a restart: still one line each.
    signal(&child, libc::SIGTERM);
    assert!(wait_exit(&mut child, Duration::from_secs(10)).success());
    ids.extend(app.queue_messages(13_740_000_300, 30).await);
    let mut child = follower(&env, &out);
    eventually(
        Duration::from_secs(30),
        "the last jobs exported",
        || async { (lines_per_job(&out).len() >= ids.len()).then_some(()) },
    )
    .await;
    signal(&child, libc::SIGTERM);
    wait_exit(&mut child, Duration::from_secs(10));

    let seen = lines_per_job(&out);
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "exported more than once: {twice:?}");
    let missing: Vec<_> = ids.iter().filter(|id| !seen.contains_key(*id)).collect();
    assert!(missing.is_empty(), "never exported: {missing:?}");
    assert_eq!(seen.len(), ids.len());
}

/// A follower whose cursor is older than what the events stream still keeps stops with an
/// error that says so (and what to do), rather than skipping the jobs in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_behind_the_events_retention_says_so() {
    let app = spawn_app(settings(|c| c.stream.events_retention_secs = 1)).await;
    let env = child_env(&app.settings, "http://127.0.0.1:9");
    let out = temp_dir("export-gap").join("jobs.jsonl");
    app.queue_message("13740000900").await;
    let first = app.oldest_event().await.expect("the job's event").id;
    // The file says the follower got to the first event; then more than the retention passes
    // with traffic, and the stream trims past it.
    std::fs::write(
        &out,
        format!("{{\"event\":\"0/{first}\",\"job\":{{\"id\":\"x\",\"status\":\"sent\"}},\"history\":[1,2,3]}}\n"),
    )
    .unwrap();
    app.queue_until_trimmed(&first, 13_740_001_000).await;
    let done = smsq_command(None)
        .args(["export", "--settle", "0s", "--out"])
        .arg(&out)
        .envs(env.iter().cloned())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&done.stderr);
    assert_eq!(done.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("no longer holds the events after") && stderr.contains("--accept-gap"),
        "{stderr}"
    );
}
