//! `POST /v1/codes/verify`: single use, attempts counted first, purposes independent.

use redis::AsyncCommands;
use serde_json::json;
use smsq::domain::Shard;

use crate::common::{App, settings, spawn_app};

async fn issue(app: &App, mobile: &str, purpose: &str) -> String {
    let (status, body) = app
        .call("/v1/codes", json!({"mobile": mobile, "purpose": purpose}))
        .await;
    assert_eq!(status, 202, "{body}");
    app.otp(body["job_id"].as_str().unwrap())
        .await
        .expect("otp")
}

async fn verify(app: &App, mobile: &str, purpose: &str, code: &str) -> serde_json::Value {
    let (status, body) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": mobile, "purpose": purpose, "code": code}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn wrong(code: &str) -> String {
    // Same length, certainly different.
    code.chars()
        .map(|c| {
            if c == '9' {
                '0'
            } else {
                char::from(c as u8 + 1)
            }
        })
        .collect()
}

#[tokio::test]
async fn a_right_code_verifies_once() {
    let app = spawn_app(settings(|_| {})).await;
    let code = issue(&app, "13800138100", "login").await;
    assert_eq!(
        verify(&app, "+86 138 0013 8100", "login", &code).await,
        json!({"valid": true})
    );
    assert_eq!(
        verify(&app, "13800138100", "login", &code).await,
        json!({"valid": false, "reason": "expired", "attempts_left": 0})
    );
    // Consumed means gone from Redis.
    let exists: bool = app
        .redis()
        .await
        .exists(app.store.keys(Shard::FIRST).code("login", "13800138100"))
        .await
        .unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn wrong_codes_count_down_and_the_last_attempt_burns_the_code() {
    let app = spawn_app(settings(|c| c.code.max_verify_attempts = 3)).await;
    let code = issue(&app, "13800138101", "login").await;
    let bad = wrong(&code);
    assert_eq!(
        verify(&app, "13800138101", "login", &bad).await,
        json!({"valid": false, "reason": "mismatch", "attempts_left": 2})
    );
    assert_eq!(
        verify(&app, "13800138101", "login", "garbage").await["attempts_left"],
        1
    );
    assert_eq!(
        verify(&app, "13800138101", "login", &bad).await,
        json!({"valid": false, "reason": "too_many_attempts", "attempts_left": 0})
    );
    // Even the right code fails now.
    assert_eq!(
        verify(&app, "13800138101", "login", &code).await["valid"],
        false
    );
}

#[tokio::test]
async fn the_last_allowed_attempt_may_still_be_right() {
    let app = spawn_app(settings(|c| c.code.max_verify_attempts = 2)).await;
    let code = issue(&app, "13800138102", "login").await;
    assert_eq!(
        verify(&app, "13800138102", "login", &wrong(&code)).await["attempts_left"],
        1
    );
    assert_eq!(
        verify(&app, "13800138102", "login", &code).await,
        json!({"valid": true})
    );
    assert_eq!(
        verify(&app, "13800138102", "login", &code).await["reason"],
        "expired"
    );
}

#[tokio::test]
async fn unknown_used_and_expired_codes_answer_alike() {
    let app = spawn_app(settings(|_| {})).await;
    let unknown = verify(&app, "13800138103", "login", "123456").await;
    let code = issue(&app, "13800138104", "login").await;
    verify(&app, "13800138104", "login", &code).await;
    let used = verify(&app, "13800138104", "login", &code).await;
    let code = issue(&app, "13800138105", "login").await;
    let _: () = app
        .redis()
        .await
        .del(app.store.keys(Shard::FIRST).code("login", "13800138105"))
        .await
        .unwrap();
    let expired = verify(&app, "13800138105", "login", &code).await;
    assert_eq!(unknown, used);
    assert_eq!(used, expired);
}

#[tokio::test]
async fn purposes_are_independent() {
    let app = spawn_app(settings(|_| {})).await;
    let login = issue(&app, "13800138106", "login").await;
    let reset = issue(&app, "13800138106", "reset").await;
    if login != reset {
        assert_eq!(
            verify(&app, "13800138106", "reset", &login).await["reason"],
            "mismatch"
        );
    }
    assert_eq!(
        verify(&app, "13800138106", "login", &login).await["valid"],
        true
    );
    assert_eq!(
        verify(&app, "13800138106", "reset", &reset).await["valid"],
        true
    );
}

#[tokio::test]
async fn concurrent_right_guesses_verify_exactly_once() {
    let app = spawn_app(settings(|c| c.code.max_verify_attempts = 10)).await;
    let code = issue(&app, "13800138107", "login").await;
    let tries = (0..8).map(|_| verify(&app, "13800138107", "login", &code));
    let answers = futures_util::future::join_all(tries).await;
    assert_eq!(
        answers.iter().filter(|a| a["valid"] == true).count(),
        1,
        "{answers:?}"
    );
}

#[tokio::test]
async fn a_new_code_replaces_the_old_one() {
    let app = spawn_app(settings(|c| c.code.resend_interval_secs = 1)).await;
    let first = issue(&app, "13800138108", "login").await;
    app.end_resend_window("login", "13800138108").await;
    let second = issue(&app, "13800138108", "login").await;
    if first != second {
        assert_eq!(
            verify(&app, "13800138108", "login", &first).await["reason"],
            "mismatch"
        );
    }
    assert_eq!(
        verify(&app, "13800138108", "login", &second).await["valid"],
        true
    );
}

/// A code record an earlier build wrote holds the whole HMAC (64 hex digits) where this one
/// keeps a 128-bit tag: it still verifies, once, and a wrong code still counts against it.
#[tokio::test]
async fn a_code_stored_with_the_whole_hash_by_an_earlier_build_still_verifies() {
    let app = spawn_app(settings(|_| {})).await;
    let (mobile, purpose) = ("13800138112", "login");
    let code = issue(&app, mobile, purpose).await;
    let hasher = smsq::domain::Hasher::new(smsq::domain::Secret::new(crate::common::SECRET));
    let whole = hasher.hash(&format!("code:{purpose}:{mobile}"), &code);
    let key = app.store.keys(Shard::FIRST).code(purpose, mobile);
    let _: () = app.redis().await.hset(&key, "hash", &whole).await.unwrap();

    let body = verify(&app, mobile, purpose, &wrong(&code)).await;
    assert_eq!(body["reason"], "mismatch", "{body}");
    assert_eq!(verify(&app, mobile, purpose, &code).await["valid"], true);
    assert_eq!(
        verify(&app, mobile, purpose, &code).await["valid"],
        false,
        "single use"
    );
}
