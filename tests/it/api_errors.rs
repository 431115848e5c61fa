//! Every error of the API, each with its status and `{"error", "message"}` body.

use smsq::domain::Shard;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use serde_json::json;
use smsq::domain::Secret;

use crate::common::{eventually, private_redis, settings, settings_on, spawn_app};

async fn raw(
    app: &crate::common::App,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let mut request = app
        .http
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .body(body);
    if let Some(ct) = content_type {
        request = request.header("content-type", ct);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("error body is not JSON: {text:?}"));
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "no message in {body}"
    );
    (status, body)
}

#[tokio::test]
async fn malformed_requests_get_precise_errors() {
    let app = spawn_app(settings(|_| {})).await;
    let json_ct = Some("application/json");
    // method, path, content type, body, expected status, expected error code
    type Case<'a> = (&'a str, &'a str, Option<&'a str>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\": ".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"[1, 2]".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"".to_vec(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            "/v1/codes",
            Some("text/plain"),
            b"{\"mobile\":\"13800138000\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/codes",
            None,
            b"{\"mobile\":\"13800138000\"}".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\": 13800138000}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\":\"13800138000\",\"phone\":\"x\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\":\"13800138000\",\"purpose\":\"Bad Purpose\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\":\"13800138000\",\"client_ip\":\"not-an-ip\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\":\"13800138000\",\"captcha\":\"AB12\"}".to_vec(),
            400,
            "invalid_captcha",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            b"{\"mobile\":\"1380013800\"}".to_vec(),
            400,
            "invalid_mobile",
        ),
        (
            "POST",
            "/v1/codes",
            json_ct,
            format!("{{\"mobile\":\"{}\"}}", "1".repeat(40_000)).into_bytes(),
            413,
            "payload_too_large",
        ),
        (
            "POST",
            "/v1/codes/verify",
            json_ct,
            b"{\"mobile\":\"13800138000\"}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/codes/verify",
            json_ct,
            b"{\"mobile\":\"13800138000\",\"code\":123456}".to_vec(),
            400,
            "invalid_request",
        ),
        ("GET", "/v1/nothing", None, vec![], 404, "not_found"),
        ("GET", "/", None, vec![], 404, "not_found"),
        ("GET", "/v1/codes", None, vec![], 405, "method_not_allowed"),
        (
            "DELETE",
            "/v1/codes/verify",
            None,
            vec![],
            405,
            "method_not_allowed",
        ),
    ];
    for (method, path, ct, body, status, error) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        let (got, answer) = raw(&app, method, path, ct, body).await;
        assert_eq!(
            (got, answer["error"].as_str()),
            (status, Some(error)),
            "{method} {path} {ct:?} {shown}"
        );
    }
    // Nothing of the above reached Redis.
    assert!(app.dump().await.is_empty());
}

#[tokio::test]
async fn bearer_tokens_are_required_when_configured() {
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![Secret::new("tok-a"), Secret::new("tok-b")];
    let app = spawn_app(s).await;
    let body = json!({"mobile": "13800138000"});
    let url = format!("{}/v1/codes", app.base);
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("tok-a"),
        Some("Basic dG9rLWE="),
    ] {
        let mut r = app.http.post(&url).json(&body);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        assert_eq!(
            response.json::<serde_json::Value>().await.unwrap()["error"],
            "unauthorized"
        );
    }
    let ok = app
        .http
        .post(&url)
        .bearer_auth("tok-b")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 202);
    // Health needs no token.
    assert_eq!(app.get("/healthz").await.0, 200);
    assert_eq!(app.get("/readyz").await.0, 200);
}

#[tokio::test]
async fn a_full_queue_answers_503_rather_than_dropping_jobs() {
    let app = spawn_app(settings(|c| c.stream.maxlen = 1000)).await;
    let mut redis = app.redis().await;
    let mut pipe = redis::pipe();
    for _ in 0..1000 {
        pipe.xadd(app.store.keys(Shard::FIRST).jobs(), "*", &[("job", "{}")])
            .ignore();
    }
    let () = pipe.query_async(&mut redis).await.unwrap();
    let (status, body) = app
        .call("/v1/codes", json!({"mobile": "13800138060"}))
        .await;
    assert_eq!((status, body["error"].as_str()), (503, Some("queue_full")));
    assert_eq!(app.backlog().await, 1000);
    assert!(
        !redis
            .exists::<_, bool>(app.store.keys(Shard::FIRST).code("default", "13800138060"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn redis_down_answers_503_quickly_and_recovers_by_itself() {
    let mut redis = private_redis();
    let app = spawn_app(settings_on(&redis.url(), |_| {})).await;
    assert_eq!(
        app.status("/v1/codes", json!({"mobile": "13800138070"}))
            .await,
        202
    );
    assert_eq!(app.get("/readyz").await.0, 200);

    redis.stop();
    for (path, body) in [
        ("/v1/codes", json!({"mobile": "13800138071"})),
        (
            "/v1/codes/verify",
            json!({"mobile": "13800138070", "code": "123456"}),
        ),
    ] {
        let started = Instant::now();
        let (status, answer) = app.call(path, body).await;
        assert_eq!(
            (status, answer["error"].as_str()),
            (503, Some("unavailable")),
            "{path}"
        );
        // Documented: about 2 × redis.timeout_ms (here 1.5 s). Without the deadline the
        // request would hang; 10 s tells the two apart on a loaded machine too.
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{path} took {:?}",
            started.elapsed()
        );
    }
    let (status, answer) = app.get("/readyz").await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (503, Some("unavailable"))
    );
    assert_eq!(
        app.get("/healthz").await.0,
        200,
        "the process itself is fine"
    );

    redis.restart().unwrap();
    eventually(Duration::from_secs(10), "the API to recover", || async {
        (app.status("/v1/codes", json!({"mobile": "13800138072"}))
            .await
            == 202)
            .then_some(())
    })
    .await;
    assert_eq!(app.get("/readyz").await.0, 200);
}
