//! The dashboard in a real browser: Debian's headless chromium, driven by playwright-core
//! (tests/browser/dashboard.mjs), against the API with real Redis and the fake provider.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde_json::json;
use smsq::domain::Secret;

use crate::common::{
    REPORTS_TOKEN, child_env, eventually, fake_options, history, settings, smsq_command, spawn_app,
    spawn_fake, temp_dir, wait_for_status,
};

const ADMIN_TOKEN: &str = "dashboard-token-0123456789";

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Chromium from Debian, playwright-core from npm: a clear failure when missing, never a skip.
fn browser_ready() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "\n\nthe dashboard tests need Debian's chromium: apt-get install -y chromium \
         (./test.sh and .ci/run install it)\n\n"
    );
    if !browser_dir().join("node_modules/playwright-core").exists() {
        let installed = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(browser_dir())
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()),
            "\n\nthe dashboard tests need node and `npm ci` in tests/browser\n\n"
        );
    }
}

/// Runs one phase of the browser script; panics with its output if it fails.
fn browse(base: &str, phase: &str, vars: &[(&str, String)]) {
    let out = Command::new("node")
        .arg(browser_dir().join("dashboard.mjs"))
        .env("SMSQ_URL", base)
        .env("SMSQ_TOKEN", ADMIN_TOKEN)
        .env("PHASE", phase)
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .expect("node runs");
    assert!(
        out.status.success(),
        "browser phase {phase}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn bearer() -> reqwest::Client {
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {ADMIN_TOKEN}")).unwrap();
    headers.insert(AUTHORIZATION, value);
    reqwest::Client::builder()
        .default_headers(headers)
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_queue_finds_jobs_and_replays_dead_letters() {
    browser_ready();
    let mut s = settings(|c| c.retry.max_attempts = 1);
    s.secrets.api_tokens = vec![Secret::new(ADMIN_TOKEN)];
    s.secrets.admin_tokens = vec![Secret::new(ADMIN_TOKEN)];
    let mut app = spawn_app(s).await;
    app.http = bearer();
    let mut opts = fake_options();
    opts.answer_first = vec!["160000".into()];
    opts.report_url = Some(format!(
        "{}/v1/provider/ronglian/reports/{REPORTS_TOKEN}",
        app.base
    ));
    opts.report_delay_ms = 20;
    let fake = spawn_fake(opts).await;

    // A dead letter (the fake's first answer is a system error, one attempt allowed) and a
    // code that reached the handset.
    let dead_job = app.queue_message("13820000000").await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    wait_for_status(&app, &dead_job, "dead").await;
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13820000001"}))
        .await;
    let code_job = issued["job_id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &code_job, "delivered").await;
    stop.cancel();
    worker.await.unwrap();
    let code = fake.messages()[0].datas[0].clone();
    // A backlog, as `smsq status --json` sees it.
    app.queue_messages(13820000010, 3).await;
    let out = smsq_command(None)
        .args(["status", "--json"])
        .envs(child_env(&app.settings, &fake.base_url()))
        .output()
        .unwrap();
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let backlog = status["stream"]["backlog"].to_string();
    assert_eq!(backlog, "3");

    let dir = temp_dir("dashboard");
    let html = dir.join("pages.html");
    let vars = [
        ("EXPECT_BACKLOG", backlog),
        ("JOB_ID", code_job.clone()),
        ("MOBILE", "13820000001".to_owned()),
        ("MASKED", "138****0001".to_owned()),
        ("DEAD_JOB", dead_job.clone()),
        ("HTML_OUT", html.display().to_string()),
    ];
    let run = {
        let base = app.base.clone();
        move |phase: &'static str, extra: Vec<(&'static str, String)>| {
            let mut all = vars.to_vec();
            all.extend(extra);
            browse(&base, phase, &all);
        }
    };
    tokio::task::spawn_blocking({
        let run = run.clone();
        move || run("before", Vec::new())
    })
    .await
    .unwrap();

    // What the pages held: never a full number, never the code.
    let pages = std::fs::read_to_string(&html).unwrap();
    assert!(pages.contains("138****0001"), "the masked number is shown");
    for secret in ["13820000001", "13820000000", code.as_str(), ADMIN_TOKEN] {
        assert!(!pages.contains(secret), "{secret} reached the page");
    }

    // The replayed job is sent once a worker runs again, and the page shows it. Its history,
    // not its status: the fake's delivery report turns `sent` into `delivered` 20 ms later,
    // quicker than a poll may look.
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    eventually(
        Duration::from_secs(10),
        "the replayed job to be sent",
        || async {
            let seen = history(&app, &dead_job).await;
            let replayed = ["dead", "replayed", "sending", "sent"];
            seen.windows(4).any(|w| w == replayed).then_some(())
        },
    )
    .await;
    let shot = dir.join("dashboard.png");
    let screenshot = shot.display().to_string();
    tokio::task::spawn_blocking(move || run("after", vec![("SCREENSHOT", screenshot)]))
        .await
        .unwrap();
    stop.cancel();
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 10_000,
        "a screenshot was taken"
    );
    if let Ok(keep) = std::env::var("SMSQ_KEEP_SCREENSHOT") {
        std::fs::copy(&shot, keep).unwrap();
    }
}

#[tokio::test]
async fn admin_actions_need_a_session_and_its_csrf_token() {
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![Secret::new(ADMIN_TOKEN)];
    s.secrets.admin_tokens = vec![Secret::new(ADMIN_TOKEN)];
    let app = spawn_app(s).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let url = |p: &str| format!("{}{p}", app.base);
    let anonymous = http.get(url("/v1/admin/status")).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    let wrong = http
        .post(url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("token=nope")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.headers()["location"], "/dashboard?login=failed");
    assert!(wrong.headers().get("set-cookie").is_none());

    let login = http
        .post(url("/dashboard/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={ADMIN_TOKEN}"))
        .send()
        .await
        .unwrap();
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
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
    let purge = |token: Option<&str>| {
        let mut r = http
            .post(url("/v1/admin/dead/purge"))
            .header("cookie", &session);
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    assert_eq!(purge(None).await.unwrap().status(), 403, "no CSRF token");
    assert_eq!(
        purge(Some("forged")).await.unwrap().status(),
        403,
        "a wrong one"
    );
    assert_eq!(purge(Some(&csrf)).await.unwrap().status(), 200);
    // A tampered cookie is no session.
    let tampered = session.replacen('.', "9.", 1);
    let status = http
        .get(url("/v1/admin/status"))
        .header("cookie", tampered)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 401);
}
