//! What operators and app developers expect of a service (issue 20 item 5): an `x-request-id`
//! that joins the app's logs to smsq's, and probes on the worker's own listener.

use std::time::Duration;

use serde_json::json;

use crate::common::{
    eventually, fake_options, logs, private_redis, settings, settings_on, spawn_app, spawn_fake,
    spawn_worker, wait_for_status,
};

fn request_id_of(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("every answer carries x-request-id")
        .to_owned()
}

#[tokio::test]
async fn a_request_id_goes_from_the_request_to_the_job_and_every_log_line() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    let post = |path: &str, id: Option<&str>, body: serde_json::Value| {
        let mut r = app.http.post(format!("{}{path}", app.base)).json(&body);
        if let Some(id) = id {
            r = r.header("x-request-id", id);
        }
        r.send()
    };

    let r = post(
        "/v1/codes",
        Some("signup-7f3a.1"),
        json!({"mobile": "13800138301"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(
        request_id_of(&r),
        "signup-7f3a.1",
        "the caller's id comes back"
    );
    let job_id = r.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = wait_for_status(&app, &job_id, "sent").await;
    assert_eq!(job["request_id"], "signup-7f3a.1", "{job}");
    // The API's line for the request and the worker's lines for its job both carry it.
    let joined = |needle: &str| {
        logs()
            .lines()
            .filter(|l| l.contains("request_id=signup-7f3a.1") && l.contains(needle))
            .count()
    };
    eventually(Duration::from_secs(5), "the worker's sent line", || async {
        (joined("status=sent") > 0).then_some(())
    })
    .await;
    assert!(joined("code issued") > 0, "the API's line");

    let r = post(
        "/v1/messages",
        Some("order-42"),
        json!({"to": "13800138302", "template_id": "9"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let id = r.json::<serde_json::Value>().await.unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, record) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(record["request_id"], "order-42");

    // None, or one that is not safe to log as it is: a fresh one, on errors as well.
    let r = post("/v1/codes", None, json!({"mobile": "123"}))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let made = request_id_of(&r);
    assert!(
        made.len() == 32 && made.bytes().all(|b| b.is_ascii_hexdigit()),
        "{made}"
    );
    for bad in ["has spaces in it", "quote\"d", &"x".repeat(129)] {
        let r = post("/v1/codes", Some(bad), json!({"mobile": "123"}))
            .await
            .unwrap();
        let given = request_id_of(&r);
        assert_ne!(given, bad);
        assert_eq!(given.len(), 32, "{given}");
    }
    assert!(!logs().contains("request_id=has spaces"));
    stop.cancel();
}

#[tokio::test]
async fn a_worker_answers_livez_and_readyz_on_its_own_listener() {
    let mut redis = private_redis();
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let s = settings_on(&redis.url(), |c| {
        c.worker.metrics_listen = format!("127.0.0.1:{port}");
    });
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = spawn_worker(&s, &fake.base_url(), 2);
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let url = format!("http://127.0.0.1:{port}{path}");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.ok()?;
            Some(r.status().as_u16())
        }
    };
    eventually(Duration::from_secs(10), "the worker ready", || async {
        (get("/readyz").await == Some(200)).then_some(())
    })
    .await;
    assert_eq!(get("/livez").await, Some(200));
    // Redis gone: alive, not ready; back: ready again.
    redis.stop();
    eventually(
        Duration::from_secs(10),
        "not ready without Redis",
        || async { (get("/readyz").await == Some(503)).then_some(()) },
    )
    .await;
    assert_eq!(get("/livez").await, Some(200));
    redis.restart().unwrap();
    eventually(
        Duration::from_secs(15),
        "ready once Redis is back",
        || async { (get("/readyz").await == Some(200)).then_some(()) },
    )
    .await;
    stop.cancel();
}

#[tokio::test]
async fn the_api_answers_livez() {
    let app = spawn_app(settings(|_| {})).await;
    let (status, body) = app.get("/livez").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
}
