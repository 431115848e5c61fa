//! Prometheus `/metrics` of the API and of a worker, parsed as Prometheus text; and what the
//! logs never contain.

use std::process::Stdio;
use std::time::Duration;

use serde_json::json;

use crate::common::{
    KillOnDrop, SECRET, TOKEN, child_env, eventually, fake_options, logs, settings, smsq_command,
    spawn_app, spawn_fake, wait_for_status,
};

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .expect("Prometheus text")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, label: Option<(&str, &str)>) -> f64 {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && label.is_none_or(|(k, v)| s.labels.get(k) == Some(v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Gauge(v) => v,
            prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no {name} {label:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_worker_metrics_count_what_happened() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let env = child_env(&app.settings, &fake.base_url());
    let (api_port, worker_port) = (free_port(), free_port());
    let api = KillOnDrop(
        smsq_command(None)
            .arg("api")
            .envs(env.clone())
            .env("SMSQ_API__LISTEN", format!("127.0.0.1:{api_port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{api_port}");
    let http = reqwest::Client::new();
    eventually(Duration::from_secs(10), "the API to answer", || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .ok()
            .map(drop)
    })
    .await;
    for mobile in ["13780000000", "13780000001", "13780000002", "13780000000"] {
        http.post(format!("{base}/v1/codes"))
            .json(&json!({"mobile": mobile}))
            .send()
            .await
            .unwrap();
    }
    http.post(format!("{base}/v1/codes/verify"))
        .json(&json!({"mobile": "13780000001", "code": "0000000"}))
        .send()
        .await
        .unwrap();
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let s = scrape(&text);
    assert_eq!(value(&s, "smsq_codes_issued_total", None), 3.0);
    assert_eq!(
        value(
            &s,
            "smsq_code_requests_refused_total",
            Some(("reason", "resend_too_soon"))
        ),
        1.0
    );
    assert_eq!(
        value(&s, "smsq_verifications_total", Some(("result", "mismatch"))),
        1.0
    );
    assert_eq!(value(&s, "smsq_backlog", None), 3.0);
    assert_eq!(value(&s, "smsq_shard_backlog", Some(("shard", "0"))), 3.0);
    assert_eq!(value(&s, "smsq_workers", Some(("state", "live"))), 0.0);

    let worker = KillOnDrop(
        smsq_command(None)
            .args(["worker", "--name", "metered"])
            .envs(env)
            .env(
                "SMSQ_WORKER__METRICS_LISTEN",
                format!("127.0.0.1:{worker_port}"),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    eventually(Duration::from_secs(15), "three codes sent", || async {
        (fake.messages().len() == 3).then_some(())
    })
    .await;
    let wbase = format!("http://127.0.0.1:{worker_port}");
    let s = eventually(Duration::from_secs(10), "the worker's metrics", || async {
        let text = http
            .get(format!("{wbase}/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let s = scrape(&text);
        (value(&s, "smsq_jobs_total", Some(("status", "sent"))) == 3.0).then_some(s)
    })
    .await;
    assert_eq!(value(&s, "smsq_backlog", None), 0.0);
    assert_eq!(value(&s, "smsq_workers", Some(("state", "live"))), 1.0);
    let calls = s
        .samples
        .iter()
        .find(|x| x.metric == "smsq_provider_call_seconds_count");
    assert!(calls.is_some(), "provider call histogram");
    for sample in &s.samples {
        for v in sample.labels.values() {
            assert!(!v.contains("1378000"), "a mobile as a label: {sample:?}");
        }
    }
    drop((api, worker));
}

fn free_port() -> u16 {
    smsq::dev::local_redis::LocalRedis::free_port().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_never_hold_a_code_a_secret_or_a_full_mobile() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let (_, issued) = app
        .call("/v1/codes", json!({"mobile": "13790000000"}))
        .await;
    let job_id = issued["job_id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &job_id, "sent").await;
    let code = fake.messages()[0].datas[0].clone();
    let (_, verified) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13790000000", "code": code}),
        )
        .await;
    assert_eq!(verified["valid"], true);
    stop.cancel();
    let logs = logs();
    assert!(logs.contains(&job_id), "the job's transitions are logged");
    assert!(logs.contains("job transition"), "one line per transition");
    assert!(
        !crate::common::holds_code(&logs, &code),
        "{code} in the logs"
    );
    for secret in [TOKEN, SECRET] {
        assert!(!logs.contains(secret), "{secret} in the logs");
    }
    // No full mainland mobile anywhere in this binary's logs, whichever test wrote them.
    let digits: Vec<char> = logs.chars().collect();
    for w in digits.windows(13) {
        let inner: String = w[1..12].iter().collect();
        let bounded = !w[0].is_ascii_alphanumeric() && !w[12].is_ascii_alphanumeric();
        if bounded && smsq::domain::Mobile::parse(&inner).is_ok() && inner.starts_with('1') {
            panic!("a full mobile in the logs: {inner}");
        }
    }
}
