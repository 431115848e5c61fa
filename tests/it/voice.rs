//! Voice codes: Ronglian `VoiceVerify` through the simulator, its call result, the voice cap
//! and the quiet hours, each the way a real user or a caller abusing calls would hit them.

use serde_json::json;

use crate::common::{
    REPORTS_TOKEN, fake_options, settings, spawn_app, spawn_fake, spawn_worker, wait_for_status,
};

fn any_hour(c: &mut smsq::config::RawConfig) {
    c.code.voice_quiet_hours = String::new();
}

/// The simulator (reports after 20 ms, `undelivered_rate` of them undelivered, texts'
/// reports to the API) and a worker that tells the platform to post each call's result to
/// the API's own path.
async fn calling(
    app: &crate::common::App,
    undelivered_rate: f64,
) -> (
    smsq::dev::fake::FakeHandle,
    (
        tokio::task::JoinHandle<smsq::worker::Report>,
        tokio_util::sync::CancellationToken,
    ),
) {
    let mut opts = fake_options();
    opts.report_delay_ms = 20;
    opts.undelivered_rate = undelivered_rate;
    opts.report_url = Some(format!(
        "{}/v1/provider/ronglian/reports/{REPORTS_TOKEN}",
        app.base
    ));
    let fake = spawn_fake(opts).await;
    let mut worker = (*app.settings).clone();
    worker.code.voice.callback_base = Some(reqwest::Url::parse(&app.base).unwrap());
    let running = spawn_worker(&worker, &fake.base_url(), 4);
    (fake, running)
}

#[tokio::test]
async fn a_voice_code_is_called_reported_and_verifies_like_a_text() {
    let app = spawn_app(settings(any_hour)).await;
    let (fake, _worker) = calling(&app, 0.0).await;

    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138501", "purpose": "login", "channel": "voice"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job_id = body["job_id"].as_str().unwrap().to_owned();
    let job = wait_for_status(&app, &job_id, "delivered").await;
    assert_eq!(job["deliver_code"], "answered");
    let calls = fake.messages();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.template_id, "VoiceVerify");
    assert_eq!(
        call.req_id.as_deref(),
        Some(job_id.as_str()),
        "userData = job id"
    );
    assert_eq!(
        call.resp_url.as_deref(),
        Some(format!("{}/v1/provider/ronglian/voice/{REPORTS_TOKEN}", app.base).as_str())
    );
    assert_eq!(job["provider_message_id"], call.sms_message_sid.as_str());

    let (status, body) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13800138501", "purpose": "login", "code": call.datas[0]}),
        )
        .await;
    assert_eq!(
        (status, body["valid"].clone()),
        (200, json!(true)),
        "{body}"
    );

    // The platform's answer is the one it expects; a wrong token is a 404 like any route.
    let result = format!(
        "<?xml version=\"1.0\"?><Request><action>VoiceCode</action><number>13800138501</number>\
         <callSid>{}</callSid><state>0</state><duration>9</duration></Request>",
        call.sms_message_sid
    );
    let r = app
        .http
        .post(format!(
            "{}/v1/provider/ronglian/voice/{REPORTS_TOKEN}",
            app.base
        ))
        .header("content-type", "text/plain")
        .body(result.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("<statuscode>000000</statuscode>")
    );
    let r = app
        .http
        .post(format!("{}/v1/provider/ronglian/voice/wrong", app.base))
        .body(result)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test]
async fn an_unanswered_call_is_recorded_undelivered() {
    let app = spawn_app(settings(any_hour)).await;
    let (_fake, _worker) = calling(&app, 1.0).await;
    let (_, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138502", "channel": "voice"}),
        )
        .await;
    let job = wait_for_status(&app, body["job_id"].as_str().unwrap(), "undelivered").await;
    assert_eq!(job["deliver_code"], "not answered");
}

/// A caller who asks for call after call to one number (a phone-bombing harassment a
/// voice channel invites) meets the voice cap, across purposes, while texts go on.
#[tokio::test]
async fn calls_to_one_number_are_capped_per_day_and_texts_still_go() {
    let app = spawn_app(settings(|c| {
        any_hour(c);
        c.code.voice_daily_limit_per_mobile = 2;
    }))
    .await;
    let mut answers = Vec::new();
    for purpose in ["login", "register", "reset"] {
        let r = app
            .post(
                "/v1/codes",
                json!({"mobile": "13800138503", "purpose": purpose, "channel": "voice"}),
            )
            .await;
        let status = r.status().as_u16();
        let retry = r
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: serde_json::Value = r.json().await.unwrap();
        answers.push((
            status,
            body["error"].as_str().unwrap_or("").to_owned(),
            retry,
        ));
    }
    assert_eq!((answers[0].0, answers[1].0), (202, 202), "{answers:?}");
    assert_eq!(
        (answers[2].0, answers[2].1.as_str()),
        (429, "voice_daily_limit"),
        "{answers:?}"
    );
    let retry: u64 = answers[2].2.as_deref().unwrap().parse().unwrap();
    assert!(
        (1..=86_400).contains(&retry),
        "until the Beijing day ends: {retry}"
    );
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138503", "purpose": "other"}),
        )
        .await;
    assert_eq!(status, 202, "a text is not a call: {body}");
}

#[tokio::test]
async fn no_calls_in_the_quiet_hours_and_none_without_a_ronglian_account() {
    // Quiet from a minute ago to two minutes from now, Beijing time: whenever the test runs.
    let now = chrono::Utc::now().with_timezone(&smsq::domain::beijing());
    let minute = |m: i64| {
        let t = now + chrono::Duration::minutes(m);
        t.format("%H:%M").to_string()
    };
    let quiet = format!("{}-{}", minute(-1), minute(2));
    let app = spawn_app(settings(|c| c.code.voice_quiet_hours = quiet.clone())).await;
    let r = app
        .post(
            "/v1/codes",
            json!({"mobile": "13800138504", "channel": "voice"}),
        )
        .await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=180).contains(&retry),
        "until the quiet hours end: {retry}"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "voice_quiet_hours");
    // A text goes whatever the hour.
    assert_eq!(
        app.status("/v1/codes", json!({"mobile": "13800138504"}))
            .await,
        202
    );

    // A route with no Ronglian account cannot call.
    let app = spawn_app(settings(|c| {
        any_hour(c);
        let mut tc = smsq::config::RawAccount {
            kind: "tencent".into(),
            base_url: Some("http://127.0.0.1:9".into()),
            rate_per_sec: None,
            burst: None,
            timeout_ms: None,
            connect_timeout_ms: None,
            sign_name: Some("s".into()),
            region: None,
            app_id: Some("1400000000".into()),
            code_template: Some("1".into()),
            templates: Default::default(),
            params: Default::default(),
        };
        tc.code_template = Some("1234567".into());
        c.providers.insert("tc".into(), tc);
    }))
    .await;
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138505", "channel": "voice"}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (422, Some("voice_unavailable")),
        "{body}"
    );
}

fn fallback(c: &mut smsq::config::RawConfig) {
    any_hour(c);
    c.code.fallback = "voice".into();
}

/// `code.fallback = "voice"`: the text is reported undelivered, so the same code is called
/// out, once.
#[tokio::test]
async fn an_undelivered_text_is_called_once_with_the_same_code() {
    let app = spawn_app(settings(fallback)).await;
    let (fake, _worker) = calling(&app, 1.0).await;

    let (_, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138511", "purpose": "login"}),
        )
        .await;
    let text = body["job_id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &text, "undelivered").await;
    // The call is a job of its own, found by the number.
    let call = crate::common::eventually(
        std::time::Duration::from_secs(10),
        "the fallback call to end",
        || async {
            let m = fake.messages();
            let call = m.iter().find(|m| m.template_id == "VoiceVerify")?.clone();
            let id = call.req_id.clone()?;
            let job = crate::common::status_of(&app, &id).await;
            (job["status"] == "undelivered").then_some((call, id))
        },
    )
    .await;
    let messages = fake.messages();
    assert_eq!(
        messages.len(),
        2,
        "the text and one call, no more: {messages:?}"
    );
    assert_eq!(messages[0].datas[0], call.0.datas[0], "the same code");
    assert_ne!(call.1, text);
    // The payload carries no request id: the call's record takes the text's.
    let (text_job, call_job) = (
        crate::common::status_of(&app, &text).await,
        crate::common::status_of(&app, &call.1).await,
    );
    assert!(text_job["request_id"].is_string(), "{text_job}");
    assert_eq!(call_job["request_id"], text_job["request_id"], "{call_job}");
    let id = smsq::domain::JobId::parse(&text).unwrap();
    let record = app.records.job(&id).await.unwrap().unwrap();
    assert_eq!(record.job.status.as_str(), "undelivered");
    // No sealed code left behind once the call ended.
    assert_eq!(app.sealed_otp(&text).await, None);
    assert_eq!(app.sealed_otp(&call.1).await, None);
    let (status, body) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13800138511", "purpose": "login", "code": call.0.datas[0]}),
        )
        .await;
    assert_eq!(
        (status, body["valid"].clone()),
        (200, json!(true)),
        "{body}"
    );
}

/// `code.fallback = "voice"`: asked again after the resend interval, the user gets the same
/// code by a call instead of a new text; the next resend is a new text.
#[tokio::test]
async fn a_resend_after_the_interval_calls_with_the_same_code_once() {
    let app = spawn_app(settings(|c| {
        fallback(c);
        c.code.resend_interval_secs = 1;
    }))
    .await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    let ask = || {
        app.call(
            "/v1/codes",
            json!({"mobile": "13800138512", "purpose": "login"}),
        )
    };
    let (_, first) = ask().await;
    let text = first["job_id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &text, "sent").await;
    // As if a delivery report had made the number's caps today (they would end at midnight):
    // the resend that falls back writes its window there, so they must then last as long.
    let mut redis = app.redis().await;
    let pattern = app
        .store
        .keys(smsq::domain::Shard::FIRST)
        .caps("13800138512", "*");
    let caps: Vec<String> = redis::AsyncCommands::keys(&mut redis, pattern)
        .await
        .unwrap();
    let _: () = redis::AsyncCommands::pexpire(&mut redis, &caps[0], 4000)
        .await
        .unwrap();
    let again = || async {
        let (status, body) = ask().await;
        (status == 202).then_some(body)
    };
    let called = crate::common::eventually(
        std::time::Duration::from_secs(5),
        "the resend interval to pass",
        again,
    )
    .await;
    assert_eq!(called["channel"], "voice", "{called}");
    let ttl: i64 = redis::AsyncCommands::pttl(&mut redis, &caps[0])
        .await
        .unwrap();
    assert!(
        ttl > 4000,
        "the caps outlive the window written on them: {ttl} ms"
    );
    let call = called["job_id"].as_str().unwrap().to_owned();
    wait_for_status(&app, &call, "sent").await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1].template_id, "VoiceVerify");
    assert_eq!(messages[1].datas[0], messages[0].datas[0], "the same code");

    let third = crate::common::eventually(
        std::time::Duration::from_secs(5),
        "the resend interval to pass again",
        again,
    )
    .await;
    assert_eq!(third.get("channel"), None, "a new text this time: {third}");
    let new = third["job_id"].as_str().unwrap();
    wait_for_status(&app, new, "sent").await;
    let messages = fake.messages();
    assert_eq!(messages.len(), 3);
    assert_ne!(messages[2].datas[0], messages[0].datas[0], "a new code");
    // The old code is replaced: it no longer verifies.
    let (_, body) = app
        .call(
            "/v1/codes/verify",
            json!({"mobile": "13800138512", "purpose": "login", "code": messages[0].datas[0]}),
        )
        .await;
    assert_eq!(body["valid"], json!(false));
}
