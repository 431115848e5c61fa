//! A fuzzer nobody here wrote: schemathesis (PyPI, installed into a venv by `./test.sh`)
//! against a live API, worker and fake provider, with the OpenAPI document as its only
//! guide. Pass: no 5xx, every answer in its documented status, content type, headers and
//! schema, refused what the document refuses; and afterwards nothing in the logs that must
//! not be there (a code, a token, a panic).

use smsq::domain::Secret;
use std::process::Command;

use crate::common::{REPORTS_TOKEN, SECRET, fake_options, logs, settings, spawn_app, spawn_fake};

const APP_TOKEN: &str = "fuzz-app-token-0123456789";
const ADMIN_TOKEN: &str = "fuzz-admin-token-0123456789";

fn schemathesis() -> String {
    crate::openapi::python_tool("schemathesis")
}

/// One bounded run over the operations `filter` selects, with `token`.
fn run(base: &str, token: &str, filter: &[&str], examples: u32) -> (bool, String) {
    let out = Command::new(schemathesis())
        .arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {token}")])
        // Every check but one: a schema-valid request may still be refused for what it
        // means (a wrong captcha, a code too soon, a number over its cap), which the
        // document says with the refusal's own code.
        .args([
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        ])
        .args(["--max-examples", &examples.to_string(), "--workers", "2"])
        .args(["--suppress-health-check", "filter_too_much,too_slow"])
        .args(["--request-timeout", "10", "--seed", "20261201"])
        .args(filter)
        .env("NO_COLOR", "1")
        .output()
        .expect("schemathesis runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let mut s = settings(|c| {
        // Generous caps, so the fuzzer reaches past them, and a captcha it may send.
        c.code.hourly_limit_per_ip = 100_000;
        c.code.hourly_limit_per_network = 100_000;
    });
    s.secrets.api_tokens = vec![Secret::new(APP_TOKEN)];
    s.secrets.admin_tokens = vec![Secret::new(ADMIN_TOKEN)];
    let app = spawn_app(s).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 8);
    let base = app.base.clone();

    let (app_ok, app_run) = tokio::task::spawn_blocking({
        let base = base.clone();
        move || {
            run(
                &base,
                APP_TOKEN,
                &["--exclude-path-regex", "^/v1/admin"],
                40,
            )
        }
    })
    .await
    .unwrap();
    let (admin_ok, admin_run) = tokio::task::spawn_blocking(move || {
        run(
            &base,
            ADMIN_TOKEN,
            &["--include-path-regex", "^/v1/admin"],
            25,
        )
    })
    .await
    .unwrap();
    stop.cancel();
    assert!(app_ok, "schemathesis, app routes:\n{app_run}");
    assert!(admin_ok, "schemathesis, admin routes:\n{admin_run}");

    // It did reach the API's logic: codes went out to the provider.
    let sent = fake.messages();
    assert!(!sent.is_empty(), "no code reached the provider:\n{app_run}");
    let logged = logs();
    for sms in &sent {
        // `000000` is also the provider's success status, which the logs do carry.
        if let Some(code) = sms.datas.first().filter(|c| c.len() >= 4 && *c != "000000") {
            // A value of its own only: a job id (hex, `00…` on shard 0) may begin with a
            // code's digits, and `job_id=006546…` is no leak of the code 006546.
            assert!(
                !crate::common::holds_code(&logged, code),
                "a code in the logs: {code}"
            );
        }
    }
    for secret in [APP_TOKEN, ADMIN_TOKEN, REPORTS_TOKEN, SECRET] {
        assert!(!logged.contains(secret), "a secret in the logs");
    }
    assert!(!logged.contains("panicked"), "a panic in the logs");
}
