//! Test numbers (issue 18 item 5): a fixed code, exempt from caps and captchas, never sent to
//! the provider, marked on the job record.

use std::collections::HashMap;

use serde_json::json;
use smsq::config::{RawConfig, Secrets, Settings};
use smsq::domain::Secret;

use crate::common::{fake_options, settings, spawn_app, spawn_fake, wait_for_status};

#[tokio::test]
async fn a_test_number_gets_its_fixed_code_past_every_cap_and_never_reaches_the_provider() {
    let mut s = settings(|c| {
        c.captcha.required = true;
        c.code.hourly_limit_per_mobile = 1;
        c.code.hourly_limit_per_ip = 1;
    });
    s.secrets
        .test_numbers
        .insert("13800000001".into(), Secret::new("246810"));
    let app = spawn_app(s).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = app
            .call(
                "/v1/codes",
                json!({"mobile": "+86 138 0000 0001", "client_ip": "198.51.100.1"}),
            )
            .await;
        assert_eq!(status, 202, "no resend window, cap or captcha: {body}");
        ids.push(body["job_id"].as_str().unwrap().to_owned());
    }
    let last = wait_for_status(&app, ids.last().unwrap(), "sent").await;
    assert_eq!(
        (last["test"].as_bool(), last["provider_status"].as_str()),
        (Some(true), Some("test"))
    );
    for id in &ids {
        let job = crate::common::eventually(
            std::time::Duration::from_secs(10),
            "each one ended",
            || async {
                let (_, job) = app.get(&format!("/v1/jobs/{id}")).await;
                matches!(job["status"].as_str(), Some("sent" | "superseded")).then_some(job)
            },
        )
        .await;
        assert_eq!(job["test"], true, "{job}");
    }
    assert!(
        fake.messages().is_empty(),
        "a test number's code went to the provider"
    );
    let (_, answer) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13800000001", "code": "246810"}),
        )
        .await;
    assert_eq!(answer["valid"], true, "{answer}");
    // Everyone else still needs the captcha.
    let (status, body) = app
        .call("/v1/codes", json!({"mobile": "13800000002"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_captcha"))
    );
    stop.cancel();
}

#[test]
fn test_numbers_must_be_mainland_numbers_with_codes_of_the_configured_length() {
    let load = |value: &str| {
        let env = HashMap::from([("SMSQ_TEST_NUMBERS".to_owned(), value.to_owned())]);
        Secrets::from_env(&env).and_then(|s| Settings::from_raw(&RawConfig::default(), s))
    };
    assert!(load("13800000001=123456, 13900000002=654321").is_ok());
    for bad in [
        "13800000001=12345",
        "13800000001",
        "12345=123456",
        "13800000001=12a456",
    ] {
        let e = load(bad).err().unwrap_or_else(|| panic!("{bad} was taken"));
        assert_eq!(e.key, "SMSQ_TEST_NUMBERS", "{bad}");
        assert!(
            !e.message.contains("123456"),
            "the error shows a code: {}",
            e.message
        );
    }
}
