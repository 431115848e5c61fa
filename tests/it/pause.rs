//! The operators' kill switch (issue 18 item 6): `smsq pause` stops every worker process's
//! sends (jobs wait, no attempt is used) until `smsq resume`; the admin API does the same;
//! the trail says who and why; with `api.while_paused = "refuse"` new codes get 503 paused.

use std::time::Duration;

use serde_json::json;
use smsq::domain::Secret;

use crate::common::{
    KillOnDrop, child_env, eventually, fake_options, settings, smsq_command, spawn_app, spawn_fake,
    spawn_worker_process, stdout_of_success,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_stops_two_worker_processes_until_resume_and_no_attempt_is_used() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let env = child_env(&app.settings, &fake.base_url());
    let _a = KillOnDrop(spawn_worker_process(&env, "pause-a", &[]));
    let _b = KillOnDrop(spawn_worker_process(&env, "pause-b", &[]));
    let cli = |args: &[&str]| {
        stdout_of_success(
            smsq_command(None)
                .args(args)
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .env("USER", "oncall"),
        )
    };
    // Both workers are up (they joined the group) before the switch.
    eventually(
        Duration::from_secs(10),
        "two workers in the group",
        || async {
            let s = app.records.inspect(0).await.ok()?;
            (s.consumers.iter().filter(|c| c.alive).count() == 2).then_some(())
        },
    )
    .await;
    let said = cli(&["pause", "--reason", "incident 42"]);
    assert!(said.contains("sending paused"), "{said}");

    let ids = app.queue_messages(13600000000, 20).await;
    // Every job was taken by a worker, and none went out: they wait for a slot that the
    // paused rate never hands out.
    eventually(
        Duration::from_secs(10),
        "all 20 taken by the workers",
        || async {
            let s = app.records.inspect(0).await.ok()?;
            (s.pending == 20).then_some(())
        },
    )
    .await;
    let snapshot = smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    let halt = snapshot.halt.clone().expect("the pause in the snapshot");
    assert_eq!(halt.reason, "incident 42");
    assert!(halt.by.starts_with("cli:oncall@"), "{}", halt.by);
    assert!(
        snapshot
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("incident 42"))
    );
    assert_eq!(snapshot.audit[0].action, "pause");
    assert_eq!(fake.messages().len(), 0, "a paused fleet sent");
    for id in &ids {
        let (_, job) = app.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(
            (job["status"].as_str(), job["attempts"].as_u64()),
            (Some("queued"), Some(0))
        );
    }

    let said = cli(&["resume"]);
    assert!(said.contains("resumed"), "{said}");
    app.wait_all(&ids, "sent", Duration::from_secs(15)).await;
    assert_eq!(fake.messages().len(), 20);
    for id in &ids {
        let (_, job) = app.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(job["attempts"], 1, "the pause used an attempt: {job}");
    }
    let trail = app.records.audit_trail(5).await.unwrap();
    assert_eq!(
        (trail[0].action.as_str(), trail[1].action.as_str()),
        ("resume", "pause")
    );
    assert!(cli(&["status"]).contains("audit"));
}

#[tokio::test]
async fn the_admin_api_pauses_and_while_paused_refuse_answers_503_paused() {
    const ADMIN: &str = "pause-admin-token-0123456789";
    let mut s = settings(|c| c.api.while_paused = "refuse".into());
    s.secrets.admin_tokens = vec![Secret::new(ADMIN)];
    let app = spawn_app(s).await;
    let admin = |path: &str, body: serde_json::Value| {
        app.http
            .post(format!("{}{path}", app.base))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
    };
    let r = admin(
        "/v1/admin/pause",
        json!({"reason": "provider incident", "for_secs": 600}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["halt"]["by"], "admin token");
    assert!(body["halt"]["until_ms"].as_i64().is_some());
    let refused = eventually(
        Duration::from_secs(5),
        "503 paused for new codes",
        || async {
            let (status, body) = app
                .call("/v1/codes", json!({"mobile": "13600100001"}))
                .await;
            (status == 503).then_some(body)
        },
    )
    .await;
    assert_eq!(refused["error"], "paused");
    let (status, body) = app
        .call(
            "/v1/messages",
            json!({"to": "13600100002", "template_id": "1"}),
        )
        .await;
    assert_eq!((status, body["error"].as_str()), (503, Some("paused")));

    let r = admin("/v1/admin/resume", json!({})).await.unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["resumed"],
        true
    );
    eventually(Duration::from_secs(5), "codes taken again", || async {
        let (status, _) = app
            .call("/v1/codes", json!({"mobile": "13600100003"}))
            .await;
        (status == 202).then_some(())
    })
    .await;
    let r = admin("/v1/admin/resume", json!({})).await.unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["resumed"],
        false
    );
}

#[tokio::test]
async fn a_timed_pause_ends_by_itself() {
    let app = spawn_app(settings(|_| {})).await;
    let now = smsq::domain::now_ms();
    app.records
        .pause_sending("test", "a short one", now, Some(now + 1500))
        .await
        .unwrap();
    assert!(app.records.halted().await.unwrap().is_some());
    eventually(Duration::from_secs(5), "the pause to end", || async {
        app.records.halted().await.unwrap().is_none().then_some(())
    })
    .await;
}

/// The kill switch is an admin action: a forged page that makes a logged-in operator's
/// browser post to it (no `X-CSRF-Token`, or a wrong one) pauses nothing; an app token,
/// or none, is refused.
#[tokio::test]
async fn pausing_from_a_dashboard_session_needs_its_csrf_token() {
    const ADMIN: &str = "pause-csrf-admin-0123456789";
    const APP: &str = "pause-csrf-app-token-0123456789";
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![Secret::new(APP)];
    s.secrets.admin_tokens = vec![Secret::new(ADMIN)];
    let app = spawn_app(s).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", app.base);
    let login = http
        .post(url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN}"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    let session = cookie.split(';').next().unwrap().to_owned();
    let csrf: serde_json::Value = http
        .get(url("/v1/admin/session"))
        .header("cookie", &session)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let csrf = csrf["csrf"].as_str().unwrap().to_owned();
    let pause = |token: Option<&str>| {
        let mut r = http
            .post(url("/v1/admin/pause"))
            .header("cookie", &session)
            .json(&json!({"reason": "forged"}));
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    assert_eq!(pause(None).await.unwrap().status(), 403, "no CSRF token");
    assert_eq!(
        pause(Some("forged")).await.unwrap().status(),
        403,
        "a wrong one"
    );
    let with_app_token = http
        .post(url("/v1/admin/pause"))
        .bearer_auth(APP)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        with_app_token.status(),
        401,
        "the app's token is not an admin token"
    );
    let anonymous = http
        .post(url("/v1/admin/pause"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    assert!(
        app.records.halted().await.unwrap().is_none(),
        "a refused request paused"
    );
    assert_eq!(pause(Some(&csrf)).await.unwrap().status(), 200);
    let halt = app.records.halted().await.unwrap().expect("paused");
    assert_eq!(halt.by, "dashboard session");
}
