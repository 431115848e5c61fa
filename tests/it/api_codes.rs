//! `POST /v1/codes`, captchas, messages and job lookup, through HTTP against real Redis.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde_json::json;
use smsq::domain::Hasher;
use smsq::domain::Secret;
use smsq::domain::Shard;

use crate::common::{App, SECRET, logs, settings, spawn_app};

/// A code request that must be refused with 429 `error` and a `Retry-After` of at most
/// `max_retry_after` seconds, leaving Redis exactly as it was.
async fn assert_refused(app: &App, body: serde_json::Value, error: &str, max_retry_after: u64) {
    let before = app.dump().await;
    let response = app.post("/v1/codes", body.clone()).await;
    assert_eq!(response.status().as_u16(), 429, "{body}");
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=max_retry_after).contains(&retry_after),
        "Retry-After {retry_after}"
    );
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"], error);
    assert_eq!(app.dump().await, before, "a rejected request changed Redis");
}

#[tokio::test]
async fn a_code_request_queues_one_job_and_stores_only_a_hash() {
    let app = spawn_app(settings(|c| c.code.length = 10)).await;
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "+86 138-0013-8000", "purpose": "login"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["resend_after"], 60);
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    assert_eq!(job_id.len(), 32);

    let mut redis = app.redis().await;
    let keys = app.store.keys(Shard::FIRST);
    assert_eq!(app.backlog().await, 1);
    let code = app.otp(&job_id).await.expect("otp key holds the code");
    assert_eq!(code.len(), 10);
    let record: std::collections::HashMap<String, String> = redis
        .hgetall(keys.code("login", "13800138000"))
        .await
        .unwrap();
    assert_eq!(record["job"], job_id);
    assert_eq!(record["attempts"], "5");
    let hasher = Hasher::new(Secret::new(SECRET));
    assert_eq!(
        record["hash"].len(),
        32,
        "a 128-bit tag, not the whole HMAC"
    );
    assert!(hasher.matches_code("code:login:13800138000", &code, &record["hash"]));
    let ttl: i64 = redis.ttl(keys.code("login", "13800138000")).await.unwrap();
    assert!((295..=300).contains(&ttl), "code ttl {ttl}");
    // Listed under its number (the index holds the id's 16 bytes, packed by the API).
    let to = smsq::domain::Mobile::parse("13800138000").unwrap();
    let listed = app.records.jobs_of(&to, 50).await.unwrap();
    assert_eq!(
        listed.iter().map(|j| j.id.as_str()).collect::<Vec<_>>(),
        [job_id.as_str()]
    );

    // The plain code is nowhere in Redis (the code record holds it sealed), nor in any log line.
    let holders: Vec<String> = app
        .all_stored_text()
        .await
        .into_iter()
        .filter(|(_, text)| crate::common::holds_code(text, &code))
        .map(|(key, _)| key)
        .collect();
    assert!(holders.is_empty(), "plain code stored in {holders:?}");
    let sealed = app.sealed_otp(&job_id).await.expect("sealed code");
    assert!(
        sealed.starts_with("s1.") && !sealed.contains(&code),
        "{sealed}"
    );
    assert!(
        !crate::common::holds_code(&logs(), &code),
        "the code appeared in a log line"
    );
    assert!(
        logs().contains(&job_id),
        "logging is captured (sanity check)"
    );

    let (status, job) = app.get(&format!("/v1/jobs/{job_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(job["status"], "queued");
    assert_eq!(job["mobile"], "138****8000");
    assert_eq!(job["attempts"], 0);
    assert!(job["created_at"].as_str().unwrap().ends_with('Z'));
    for field in [
        "id",
        "provider_status",
        "provider_message_id",
        "last_error",
        "updated_at",
    ] {
        assert!(job.get(field).is_some(), "job lookup lacks {field}");
    }
}

#[tokio::test]
async fn mobile_inputs_are_normalised_or_rejected() {
    let app = spawn_app(settings(|_| {})).await;
    let accepted = [
        ("13800138000", "13800138000"),
        ("+8613900139000", "13900139000"),
        ("86 150 0015 0000", "15000150000"),
        ("199-0019-9000", "19900199000"),
    ];
    for (input, normalised) in accepted {
        let (status, body) = app.call("/v1/codes", json!({"mobile": input})).await;
        assert_eq!(status, 202, "{input}: {body}");
        let exists: bool = app
            .redis()
            .await
            .exists(app.store.keys(Shard::FIRST).code("default", normalised))
            .await
            .unwrap();
        assert!(exists, "{input} was not stored as {normalised}");
    }
    for input in [
        "",
        "1380013800",
        "12800138000",
        "+1 2025550123",
        "abc",
        "138001380000",
        "+86 128 0013 8000",
    ] {
        let (status, body) = app.call("/v1/codes", json!({"mobile": input})).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_mobile")),
            "{input}"
        );
    }
}

#[tokio::test]
async fn resend_interval_answers_429_with_retry_after() {
    let app = spawn_app(settings(|_| {})).await;
    assert_eq!(
        app.status("/v1/codes", json!({"mobile": "13800138001"}))
            .await,
        202
    );
    assert_refused(
        &app,
        json!({"mobile": "13800138001"}),
        "resend_too_soon",
        60,
    )
    .await;
    // Another purpose is independent.
    assert_eq!(
        app.status(
            "/v1/codes",
            json!({"mobile": "13800138001", "purpose": "reset"})
        )
        .await,
        202
    );
}

/// A user asking again just after a Beijing midnight is still inside the window of the code
/// asked for just before it: the window is on the day's caps, and the new day's caps are a
/// new key, so yesterday's is read too (and lives long enough to be).
#[tokio::test]
async fn the_resend_window_holds_across_midnight() {
    use smsq::codes::{CodeError, CodeRequest};
    let app = spawn_app(settings(|_| {})).await;
    let codes = smsq::startup::Application::build((*app.settings).clone())
        .unwrap()
        .codes()
        .unwrap();
    let request = || CodeRequest {
        mobile: smsq::domain::Mobile::parse("13800138009").unwrap(),
        purpose: smsq::domain::Purpose::parse("login").unwrap(),
        client_ip: None,
        captcha: None,
        idempotency: None,
        request_id: None,
        channel: Default::default(),
    };
    // 2026-12-03 00:00 in Beijing.
    let midnight = 1_796_227_200_000;
    codes.issue_at(request(), midnight - 10_000).await.unwrap();

    let refused = codes.issue_at(request(), midnight + 10_000).await;
    match refused {
        Err(CodeError::ResendTooSoon { retry_after }) => {
            assert_eq!(retry_after.as_secs(), 40, "{retry_after:?}");
        }
        other => panic!("a second code 20 s after the first, across midnight: {other:?}"),
    }
    let mut redis = app.redis().await;
    let yesterday = app.store.keys(Shard::FIRST).caps("13800138009", "20261202");
    let ttl: i64 = redis.pttl(&yesterday).await.unwrap();
    assert!(
        (50_000..=70_000).contains(&ttl),
        "yesterday's caps outlive midnight by the interval: {ttl} ms"
    );
    assert!(
        codes.issue_at(request(), midnight + 51_000).await.is_ok(),
        "the window ended"
    );
}

#[tokio::test]
async fn hourly_and_daily_caps_per_mobile() {
    // Different purposes dodge the resend interval, so the per-mobile caps are what stops them.
    let app = spawn_app(settings(|c| {
        c.code.hourly_limit_per_mobile = 3;
        c.code.daily_limit_per_mobile = 10;
    }))
    .await;
    for p in ["a", "b", "c"] {
        assert_eq!(
            app.status("/v1/codes", json!({"mobile": "13800138002", "purpose": p}))
                .await,
            202
        );
    }
    assert_refused(
        &app,
        json!({"mobile": "13800138002", "purpose": "d"}),
        "hourly_limit",
        3600,
    )
    .await;

    let app = spawn_app(settings(|c| {
        c.code.hourly_limit_per_mobile = 10;
        c.code.daily_limit_per_mobile = 2;
    }))
    .await;
    for p in ["a", "b"] {
        assert_eq!(
            app.status("/v1/codes", json!({"mobile": "13800138003", "purpose": p}))
                .await,
            202
        );
    }
    assert_refused(
        &app,
        json!({"mobile": "13800138003", "purpose": "c"}),
        "daily_limit",
        86_400,
    )
    .await;
}

/// A number's caps are one hash per Beijing day: `d` for the day, one `h<hh>` field per hour.
/// A ring that waits out the hour finds a fresh hour field, never a fresh day: the day's
/// count is the same key's `d`. (The hour turning is stood in for by its field going, as a
/// new hour's field starts empty.)
#[tokio::test]
async fn the_days_cap_holds_when_the_hour_turns() {
    let app = spawn_app(settings(|c| {
        c.code.hourly_limit_per_mobile = 2;
        c.code.daily_limit_per_mobile = 3;
    }))
    .await;
    let mobile = "13800138004";
    for p in ["a", "b"] {
        let body = json!({"mobile": mobile, "purpose": p});
        assert_eq!(app.status("/v1/codes", body).await, 202);
    }
    let third = json!({"mobile": mobile, "purpose": "c"});
    assert_refused(&app, third.clone(), "hourly_limit", 3600).await;

    let mut redis = app.redis().await;
    let pattern = app.store.keys(Shard::FIRST).caps(mobile, "*");
    let caps: Vec<String> = redis.keys(pattern).await.unwrap();
    assert_eq!(caps.len(), 1, "one caps key per number and day: {caps:?}");
    let fields: HashMap<String, u64> = redis.hgetall(&caps[0]).await.unwrap();
    assert_eq!(fields.get("d"), Some(&2), "{fields:?}");
    let hour: Vec<&String> = fields.keys().filter(|f| f.starts_with('h')).collect();
    assert_eq!(hour.len(), 1, "{fields:?}");
    let ttl: i64 = redis.pttl(&caps[0]).await.unwrap();
    assert!(
        (1..=86_400_000).contains(&ttl),
        "caps live until the day ends: {ttl}"
    );
    let _: () = redis.hdel(&caps[0], hour[0]).await.unwrap();

    assert_eq!(app.status("/v1/codes", third).await, 202, "a new hour");
    let fourth = json!({"mobile": mobile, "purpose": "d"});
    assert_refused(&app, fourth, "daily_limit", 86_400).await;
}

#[tokio::test]
async fn per_ip_cap_counts_only_issued_codes() {
    let app = spawn_app(settings(|c| c.code.hourly_limit_per_ip = 2)).await;
    let ip = "203.0.113.7";
    assert_eq!(
        app.status(
            "/v1/codes",
            json!({"mobile": "13800138010", "client_ip": ip})
        )
        .await,
        202
    );
    // Refused for resend: must not use up the IP's allowance.
    assert_eq!(
        app.status(
            "/v1/codes",
            json!({"mobile": "13800138010", "client_ip": ip})
        )
        .await,
        429
    );
    assert_eq!(
        app.status(
            "/v1/codes",
            json!({"mobile": "13800138011", "client_ip": ip})
        )
        .await,
        202
    );
    assert_refused(
        &app,
        json!({"mobile": "13800138012", "client_ip": ip}),
        "ip_limit",
        3600,
    )
    .await;
    // Another IP is independent.
    assert_eq!(
        app.status(
            "/v1/codes",
            json!({"mobile": "13800138012", "client_ip": "2001:db8::1"})
        )
        .await,
        202
    );
}

#[tokio::test]
async fn fifty_simultaneous_requests_issue_exactly_one_code() {
    let app = spawn_app(settings(|_| {})).await;
    let requests = (0..50).map(|_| app.post("/v1/codes", json!({"mobile": "13800138020"})));
    let statuses: Vec<u16> = futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        49,
        "{statuses:?}"
    );
    let mut redis = app.redis().await;
    assert_eq!(app.backlog().await, 1);
    let codes: Vec<String> = redis
        .keys(format!("{{{}:0}}:code:*", app.prefix()))
        .await
        .unwrap();
    assert_eq!(codes.len(), 1);
    let sealed: Option<String> = redis.hget(&codes[0], "o").await.unwrap();
    assert!(sealed.is_some_and(|s| s.starts_with("s1.")));
}

#[tokio::test]
async fn messages_are_validated_and_queued() {
    let app = spawn_app(settings(|_| {})).await;
    let (status, body) = app
        .call(
            "/v1/messages",
            json!({"to": "13800138050", "template_id": "2", "datas": ["order 42", "shipped"]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap();
    let (_, job) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "queued");
    assert_eq!(job["kind"], "message");

    let bad = [
        (json!({"to": "123", "template_id": "2"}), "invalid_mobile"),
        (
            json!({"to": "13800138050", "template_id": "abc"}),
            "invalid_request",
        ),
        (
            json!({"to": "13800138050", "template_id": "2", "datas": [1, 2]}),
            "invalid_request",
        ),
        (json!({"to": "13800138050"}), "invalid_request"),
        (
            json!({"to": "13800138050", "template_id": "2", "datas": ["x".repeat(501)]}),
            "invalid_request",
        ),
    ];
    for (body, error) in bad {
        let (status, answer) = app.call("/v1/messages", body.clone()).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (400, Some(error)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn unknown_and_malformed_job_ids_are_404() {
    let app = spawn_app(settings(|_| {})).await;
    assert_eq!(
        app.get("/v1/jobs/0123456789abcdef0123456789abcdef").await.0,
        404
    );
    let (status, body) = app.get("/v1/jobs/..%2F..%2Fetc").await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
}
