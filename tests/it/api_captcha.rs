//! `Idempotency-Key` replays and image captchas on `POST /v1/codes`.

use smsq::domain::Shard;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use smsq::domain::{Hasher, Secret};

use crate::common::{SECRET, settings, spawn_app};

#[tokio::test]
async fn idempotency_key_replays_the_first_answer_and_rejects_another_body() {
    let app = spawn_app(settings(|_| {})).await;
    let send = |body: serde_json::Value, key: &'static str| {
        app.http
            .post(format!("{}/v1/codes", app.base))
            .header("Idempotency-Key", key)
            .json(&body)
    };
    let first = send(json!({"mobile": "13800138030"}), "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 202);
    let first: serde_json::Value = first.json().await.unwrap();
    let again = send(json!({"mobile": "13800138030"}), "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.status().as_u16(),
        202,
        "a retried request is not a resend"
    );
    assert_eq!(again.json::<serde_json::Value>().await.unwrap(), first);
    assert_eq!(app.backlog().await, 1);

    let other = send(json!({"mobile": "13800138031"}), "k-1")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 422);
    assert_eq!(
        other.json::<serde_json::Value>().await.unwrap()["error"],
        "idempotency_conflict"
    );

    // Messages have their own keys.
    let msg = app
        .http
        .post(format!("{}/v1/messages", app.base))
        .header("Idempotency-Key", "k-1")
        .json(&json!({"to": "13800138030", "template_id": "1", "datas": ["x"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(msg.status().as_u16(), 202);
}

#[tokio::test]
async fn captcha_is_required_when_configured_and_used_once() {
    let app = spawn_app(settings(|c| c.captcha.required = true)).await;
    let (status, body) = app
        .call("/v1/codes", json!({"mobile": "13800138040"}))
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_captcha"))
    );

    // A real captcha from the API: a PNG, and an answer stored only as a keyed hash.
    let (status, captcha) = app.call("/v1/captchas", json!({})).await;
    assert_eq!(status, 201);
    assert!(
        captcha["image"]
            .as_str()
            .unwrap()
            .starts_with("data:image/png;base64,")
    );
    assert_eq!(captcha["expires_in"], 300);
    let id = captcha["captcha_id"].as_str().unwrap().to_owned();
    let key = app.store.keys(Shard::FIRST).captcha(&id);
    let stored: String = app.redis().await.get(&key).await.unwrap();
    assert_eq!(stored.len(), 64, "a keyed hash, not the answer");

    // Wrong answer: 400, and the captcha is gone.
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138040", "captcha_id": id, "captcha": "ZZZZ"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_captcha"))
    );
    assert!(!app.redis().await.exists::<_, bool>(&key).await.unwrap());

    // A captcha whose answer the test knows, stored the way the API stores them.
    let hasher = Hasher::new(Secret::new(SECRET));
    let known = "0123456789abcdef0123456789abcdef";
    app.intake
        .put_captcha(
            &smsq::domain::CaptchaId::parse(known).unwrap(),
            &hasher.hash(&format!("captcha:{known}"), "AB12"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138040", "captcha_id": known, "captcha": " ab12 "}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    // An id we never issued is refused without a lookup.
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138042", "captcha_id": "../x", "captcha": "AB12"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_captcha"))
    );
    // Used once: the same answer again is refused.
    let (status, _) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138041", "captcha_id": known, "captcha": "AB12"}),
        )
        .await;
    assert_eq!(status, 400);
}
