//! Webhooks to the app, tested against a receiver that checks every signature on its own
//! (HMAC-SHA256 over `<t>.<body>`, not smsq's code), that is down at first, then answers
//! 500s, then takes them: every event arrives, signed; a slow endpoint does not slow sending.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use smsq::config::Settings;
use smsq::domain::Secret;

use crate::common::{eventually, fake_options, settings, spawn_app, spawn_fake, wait_for_status};

const SECRET: &str = "whsec-test-0123456789abcdef";

#[derive(Default)]
struct Received {
    events: Vec<serde_json::Value>,
    bad_signatures: usize,
    refused: usize,
    /// Answer 500 to this many requests, from the first.
    fail_first: usize,
}

/// The receiver: refuses the first `fail_first` requests with a 500, waits `slow` before
/// each answer, and keeps every event whose signature it verified.
async fn receiver(port: u16, fail_first: usize, slow: Duration) -> Arc<Mutex<Received>> {
    receiver_task(port, fail_first, slow).await.0
}

/// The same, with the task that serves it (abort it: the receiver is down).
async fn receiver_task(
    port: u16,
    fail_first: usize,
    slow: Duration,
) -> (Arc<Mutex<Received>>, tokio::task::JoinHandle<()>) {
    let got = Arc::new(Mutex::new(Received {
        fail_first,
        ..Received::default()
    }));
    let state = got.clone();
    let hook = move |headers: HeaderMap, body: Bytes| {
        let got = state.clone();
        async move {
            tokio::time::sleep(slow).await;
            let header = headers
                .get("smsq-signature")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let (t, v1) = header
                .split_once(",v1=")
                .map(|(t, v)| (t.trim_start_matches("t=").to_owned(), v.to_owned()))
                .unwrap_or_default();
            let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
            mac.update(format!("{t}.").as_bytes());
            mac.update(&body);
            let expected: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let fresh = t
                .parse::<i64>()
                .is_ok_and(|t| (t - chrono::Utc::now().timestamp()).abs() < 300);
            let mut got = got.lock().unwrap();
            if expected != v1 || !fresh {
                got.bad_signatures += 1;
                return StatusCode::UNAUTHORIZED;
            }
            if got.refused < got.fail_first {
                got.refused += 1;
                return StatusCode::INTERNAL_SERVER_ERROR;
            }
            got.events.push(serde_json::from_slice(&body).unwrap());
            StatusCode::NO_CONTENT
        }
    };
    let app = axum::Router::new().route("/hook", axum::routing::post(hook));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (got, task)
}

fn with_endpoint(s: Settings, port: u16) -> Settings {
    with_endpoint_aged(s, port, 86_400)
}

fn with_endpoint_aged(mut s: Settings, port: u16, max_age_secs: u64) -> Settings {
    let mut raw = smsq::config::RawConfig::default();
    raw.webhooks.max_age_secs = max_age_secs;
    raw.webhooks.endpoint.push(smsq::config::RawEndpoint {
        name: "app".into(),
        url: format!("http://127.0.0.1:{port}/hook"),
        events: vec!["*".into()],
    });
    raw.webhooks.timeout_ms = 2000;
    s.webhooks = smsq::config::WebhookSettings::from_raw(&raw.webhooks).unwrap();
    s.secrets
        .webhook_secrets
        .insert("SMSQ_WEBHOOK_SECRET_APP".into(), Secret::new(SECRET));
    s
}

fn types_of(events: &[serde_json::Value], job: &str) -> Vec<String> {
    let mut t: Vec<String> = events
        .iter()
        .filter(|e| e["job_id"] == job)
        .map(|e| e["type"].as_str().unwrap_or("").to_owned())
        .collect();
    t.sort();
    t.dedup();
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_arrives_signed_through_an_outage_and_500s() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let app = spawn_app(with_endpoint(settings(|c| c.retry.max_attempts = 3), port)).await;
    let mut opts = fake_options();
    opts.answer_first = vec!["160000".into(); 3];
    opts.report_url = Some(format!(
        "{}/v1/provider/ronglian/reports/{}",
        app.base,
        crate::common::REPORTS_TOKEN
    ));
    opts.report_delay_ms = 20;
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 1);

    // The receiver is down while all of this happens.
    let (_, a) = app
        .call("/v1/codes", json!({"mobile": "13800138501"}))
        .await;
    let dead = a["job_id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &dead, "dead").await;
    let issued = app
        .http
        .post(format!("{}/v1/codes", app.base))
        .header("x-request-id", "signup-b")
        .json(&json!({"mobile": "13800138502", "purpose": "login"}))
        .send()
        .await
        .unwrap();
    let code_job = issued.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for_status(&app, &code_job, "delivered").await;
    let code = fake
        .messages()
        .into_iter()
        .find(|m| m.req_id.as_deref() == Some(code_job.as_str()))
        .unwrap()
        .datas[0]
        .clone();
    let (_, verified) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13800138502", "purpose": "login", "code": code}),
        )
        .await;
    assert_eq!(verified["valid"], true);
    let message = app.queue_message("13800138503").await;
    wait_for_status(&app, &message, "delivered").await;

    // Up now, refusing the first three.
    let (got, task) = receiver_task(port, 3, Duration::ZERO).await;
    let all = eventually(
        Duration::from_secs(30),
        "every event at the receiver",
        || async {
            let events = got.lock().unwrap().events.clone();
            let complete = types_of(&events, &dead) == ["job.dead"]
                && types_of(&events, &code_job) == ["code.delivered", "code.sent", "code.verified"]
                && types_of(&events, &message) == ["message.delivered", "message.sent"];
            complete.then_some(events)
        },
    )
    .await;
    let (bad, refused) = {
        let got = got.lock().unwrap();
        (got.bad_signatures, got.refused)
    };
    assert_eq!(bad, 0);
    assert_eq!(refused, 3, "the 500s were retried");
    let sent = all.iter().find(|e| e["type"] == "code.sent").unwrap();
    assert_eq!(sent["mobile"], "138****8502");
    assert_eq!(sent["purpose"], "login");
    assert_eq!(sent["request_id"], "signup-b");
    assert_eq!(sent["provider_account"], "ronglian");
    assert!(sent["id"].as_str().unwrap().starts_with("evt_"));
    assert!(
        !crate::common::holds_code(&serde_json::to_string(&all).unwrap(), &code),
        "a code in a webhook"
    );
    drop(got);

    // Down again, events meanwhile, then back (a restart): those arrive too.
    task.abort();
    let _ = task.await;
    let later = app.queue_message("13800138504").await;
    wait_for_status(&app, &later, "delivered").await;
    let (again, _task) = receiver_task(port, 0, Duration::ZERO).await;
    eventually(
        Duration::from_secs(30),
        "the events from while it was down",
        || async {
            let events = again.lock().unwrap().events.clone();
            (types_of(&events, &later) == ["message.delivered", "message.sent"]).then_some(())
        },
    )
    .await;
    assert_eq!(again.lock().unwrap().bad_signatures, 0);

    let hooks = app.records.clone();
    let state = eventually(Duration::from_secs(10), "an empty backlog", || async {
        let s = hooks.endpoint_states(&["app"]).await.unwrap().remove(0);
        (s.backlog == 0).then_some(s)
    })
    .await;
    assert!(
        state.delivered >= 6 && state.failed_attempts >= 3,
        "{state:?}"
    );
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_endpoint_does_not_slow_sending() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let app = spawn_app(with_endpoint(settings(|_| {}), port)).await;
    let got = receiver(port, 0, Duration::from_secs(5)).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 8);
    let started = std::time::Instant::now();
    let ids = app.queue_messages(13800138600, 40).await;
    app.wait_all(&ids, "sent", Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(4),
        "40 sends took {took:?} behind an endpoint that takes 5 s per answer"
    );
    assert!(
        got.lock().unwrap().events.len() < 40,
        "the endpoint was slow, as meant"
    );
    stop.cancel();
}

/// Past `webhooks.max_age_secs` a delivery is dead: counted, in the verdict, listed, and
/// delivered when replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_retried_past_its_age_is_dead_until_replayed() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let app = spawn_app(with_endpoint_aged(settings(|_| {}), port, 2)).await;
    let got = receiver(port, usize::MAX, Duration::ZERO).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let id = app.queue_message("13800138700").await;
    wait_for_status(&app, &id, "sent").await;
    let dead = eventually(Duration::from_secs(15), "the delivery dead", || async {
        let d = app.records.dead_deliveries("app", 10).await.unwrap();
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(dead[0].payload["type"], "message.sent");
    assert_eq!(dead[0].payload["job_id"], id.as_str());
    assert!(dead[0].tries >= 2, "{:?}", dead[0]);
    let snapshot = smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    assert_eq!(snapshot.verdict.status.as_str(), "degraded");
    assert!(
        snapshot
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("webhook endpoint app"))
    );
    let listed = smsq::ops::webhooks::list(&app.records, &app.settings, 10, false)
        .await
        .unwrap();
    assert!(listed.contains("message.sent"), "{listed}");

    got.lock().unwrap().fail_first = 0;
    let replayed = smsq::ops::webhooks::replay(&app.records, &app.settings, "app", &[])
        .await
        .unwrap();
    assert!(replayed.starts_with('1'), "{replayed}");
    eventually(Duration::from_secs(10), "the replayed delivery", || async {
        let events = got.lock().unwrap().events.clone();
        (types_of(&events, &id) == ["message.sent"]).then_some(())
    })
    .await;
    let state = app
        .records
        .endpoint_states(&["app"])
        .await
        .unwrap()
        .remove(0);
    assert_eq!(state.dead, 0, "{state:?}");
    stop.cancel();
}

/// The README's snippets, as they are there, run on a real delivery's signature and on
/// forged ones: the app developer's copy works.
#[test]
fn the_readme_verification_snippets_take_a_real_signature_and_refuse_forgeries() {
    let python = crate::common::readme_snippet("python", "def verify(");
    let node = crate::common::readme_snippet("js", "function verify(");
    let body = r#"{"id":"evt_0_1-0","type":"code.sent","mobile":"138****8000"}"#;
    let now = chrono::Utc::now().timestamp();
    let good = smsq::webhooks::signature(SECRET, now, body.as_bytes());
    let stale = smsq::webhooks::signature(SECRET, now - 3600, body.as_bytes());
    let forged = smsq::webhooks::signature("not-the-secret-0123456789", now, body.as_bytes());
    let cases = [
        (good.as_str(), body, "True"),
        (
            good.as_str(),
            r#"{"id":"evt_0_1-0","type":"code.verified"}"#,
            "False",
        ),
        (stale.as_str(), body, "False"),
        (forged.as_str(), body, "False"),
        ("v1=deadbeef", body, "False"),
    ];
    let py = crate::openapi::python_tool("python");
    for (header, body, want) in cases {
        let driver = format!(
            "{python}\nimport sys\nprint(verify(sys.argv[1], sys.argv[2], sys.argv[3].encode()))"
        );
        let out = std::process::Command::new(&py)
            .args(["-c", &driver, SECRET, header, body])
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            said.trim(),
            want,
            "python on {header}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let driver = format!(
            "{node}\nconst [s, h, b] = process.argv.slice(1);\nconsole.log(verify(s, h, Buffer.from(b)) ? 'True' : 'False');"
        );
        let out = std::process::Command::new("node")
            .args(["-e", &driver, SECRET, header, body])
            .output()
            .expect("node (./test.sh installs it)");
        let said = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            said.trim(),
            want,
            "node on {header}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
