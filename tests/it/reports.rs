//! Delivery reports: pushed by the fake like the platform (JSON and XML), matched to their
//! jobs, refused when wrong, idempotent, and not lost when faster than our `sent` write.

use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use smsq::dev::fake::ReportFormat;
use smsq::domain::{Shard, now_ms};
use smsq::store::{Outcome, blocking_connection};

use crate::common::{
    App, REPORTS_TOKEN, fake_options, history, settings, spawn_app, spawn_fake, wait_for_status,
};

fn report_url(app: &App) -> String {
    format!("{}/v1/provider/ronglian/reports/{REPORTS_TOKEN}", app.base)
}

async fn push(app: &App, token: &str, body: String) -> (u16, serde_json::Value) {
    let response = app
        .http
        .post(format!("{}/v1/provider/ronglian/reports/{token}", app.base))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// A Ronglian report, which echoes the `reqId` smsq sent (the job id; "" for none).
fn report(sid: &str, mobile: &str, status: &str, req_id: &str) -> String {
    json!({"Request": {"action": "SMSArrived", "smsType": "1", "content": sid, "fromNum": mobile,
        "deliverCode": if status == "0" { "DELIVRD" } else { "UNDELIV" },
        "recvTime": "20261124120000", "status": status, "reqId": req_id}})
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_and_xml_reports_mark_sent_jobs_delivered_or_undelivered() {
    let app = spawn_app(settings(|_| {})).await;
    for (format, undelivered, mobile, wanted) in [
        (ReportFormat::Json, 0.0, "13810000000", "delivered"),
        (ReportFormat::Xml, 1.0, "13810000001", "undelivered"),
    ] {
        let mut opts = fake_options();
        opts.report_url = Some(report_url(&app));
        opts.report_format = format;
        opts.undelivered_rate = undelivered;
        opts.report_delay_ms = 50;
        let fake = spawn_fake(opts).await;
        let (worker, stop) = app.spawn_worker(&fake.base_url(), 2);
        let id = app.queue_message(mobile).await;
        let job = wait_for_status(&app, &id, wanted).await;
        stop.cancel();
        worker.await.unwrap();
        let code = if wanted == "delivered" {
            "DELIVRD"
        } else {
            "UNDELIV"
        };
        assert_eq!(job["deliver_code"], code, "{job}");
        assert!(
            job["delivered_at"].as_str().unwrap().ends_with('Z'),
            "{job}"
        );
        assert_eq!(
            job["provider_message_id"],
            fake.messages()[0].sms_message_sid.as_str()
        );
        assert_eq!(
            history(&app, &id).await,
            ["queued", "sending", "sent", wanted]
        );
    }
}

#[tokio::test]
async fn wrong_tokens_unknown_ids_malformed_bodies_and_duplicates() {
    let app = spawn_app(settings(|_| {})).await;
    let body = report("0123456789abcdef0123456789abcdef", "13810000002", "0", "");
    let (status, wrong) = push(&app, "not-the-token", body.clone()).await;
    let (_, unknown_route) = app.get("/v1/nothing-here").await;
    assert_eq!(
        (status, &wrong),
        (404, &unknown_route),
        "a wrong token looks like no route"
    );

    smsq::metrics::install();
    let (status, answer) = push(&app, REPORTS_TOKEN, body.clone()).await;
    assert_eq!(
        (status, answer["received"].as_str()),
        (200, Some("unmatched"))
    );
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    let counted = metrics.text().await.unwrap();
    assert!(
        counted.contains(r#"smsq_delivery_reports_total{result="unmatched"}"#),
        "unknown reports are counted:\n{counted}"
    );
    let (status, answer) = push(&app, REPORTS_TOKEN, "<html>".into()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_report"))
    );
    let (status, answer) = push(&app, REPORTS_TOKEN, r#"{"Request":{"smsType":"1"}}"#.into()).await;
    assert_eq!(
        (status, answer["error"].as_str()),
        (400, Some("invalid_report")),
        "{answer}"
    );

    // A user's reply goes to the events stream, by number.
    let reply = json!({"Request": {"action": "SMSArrived", "smsType": "0", "content": "TD",
        "fromNum": "13810000003"}});
    let (status, answer) = push(&app, REPORTS_TOKEN, reply.to_string()).await;
    assert_eq!(
        (status, answer["received"].as_str()),
        (200, Some("inbound"))
    );
    let events: redis::streams::StreamRangeReply = app
        .redis()
        .await
        .xrange_all(app.store.keys(Shard::FIRST).events())
        .await
        .unwrap();
    let inbound = events
        .ids
        .iter()
        .find(|e| e.get::<String>("status").as_deref() == Some("inbound"));
    assert_eq!(
        inbound.and_then(|e| e.get::<String>("mobile")).as_deref(),
        Some("13810000003")
    );

    // A duplicate of a report that was applied changes nothing.
    let (fake_opts, id) = (fake_options(), app.queue_message("13810000004").await);
    let fake = spawn_fake(fake_opts).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    wait_for_status(&app, &id, "sent").await;
    stop.cancel();
    worker.await.unwrap();
    let sid = fake.messages()[0].sms_message_sid.clone();
    let (_, first) = push(&app, REPORTS_TOKEN, report(&sid, "13810000004", "0", &id)).await;
    assert_eq!(first["received"], "delivered");
    let before = (
        app.get(&format!("/v1/jobs/{id}")).await.1,
        history(&app, &id).await,
    );
    for status in ["0", "1"] {
        let (code, again) = push(
            &app,
            REPORTS_TOKEN,
            report(&sid, "13810000004", status, &id),
        )
        .await;
        assert_eq!((code, again["received"].as_str()), (200, Some("duplicate")));
    }
    let after = (
        app.get(&format!("/v1/jobs/{id}")).await.1,
        history(&app, &id).await,
    );
    assert_eq!(
        before, after,
        "a duplicate (or a later contrary report) changes nothing"
    );
    // A report naming the job, for the right message id but another number, is not this
    // job's; nor one for this number with another message id.
    let (_, other) = push(&app, REPORTS_TOKEN, report(&sid, "13810000005", "0", &id)).await;
    assert_eq!(other["received"], "unmatched");
    let forged = "00000000000000000000000000000000";
    let (_, other) = push(&app, REPORTS_TOKEN, report(forged, "13810000004", "1", &id)).await;
    assert_eq!(other["received"], "unmatched");
}

#[tokio::test]
async fn a_report_that_beats_the_sent_write_is_applied_by_it() {
    let app = spawn_app(settings(|_| {})).await;
    let id = app.queue_message("13810000006").await;
    // Take the entry as a worker would, up to the provider's answer.
    app.queue.ensure_group().await.unwrap();
    let mut conn = blocking_connection(&app.settings.redis, Duration::ZERO).unwrap();
    let read = app.queue.read(&mut conn, Shard::FIRST, "racer", 1, None);
    let entry = read.await.unwrap().remove(0);
    let job = entry.job.clone().unwrap();
    let fence = smsq::store::Fence::new("racer");
    app.queue
        .begin(&entry, &job, &fence, now_ms())
        .await
        .unwrap();
    // The platform is faster than our status write.
    let sid = "fedcba9876543210fedcba9876543210";
    let (status, early) = push(&app, REPORTS_TOKEN, report(sid, "13810000006", "0", &id)).await;
    assert_eq!(
        (status, early["received"].as_str()),
        (200, Some("unmatched"))
    );
    let sent = Outcome::Sent {
        provider_status: "000000".into(),
        message_id: sid.into(),
    };
    app.queue
        .settle(&entry, &job, &fence, 1, &sent, "ronglian", 0, now_ms())
        .await
        .unwrap();
    let (_, record) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(record["status"], "delivered", "{record}");
    assert_eq!(
        history(&app, &id).await,
        ["queued", "sending", "sent", "delivered"]
    );
}

/// A job sent by a build before the compact record (long field names, `hist` with Unix ms,
/// the report index, the sorted set per number) is still read whole after the upgrade, and
/// its report still finds it, through the index it left.
#[tokio::test]
async fn a_record_of_the_old_layout_still_reads_and_takes_its_report() {
    let app = spawn_app(settings(|_| {})).await;
    let (id, mobile, sid) = (
        "00c0ffee00c0ffee00c0ffee00c0ffee",
        "13810000007",
        "abcdefabcdefabcdefabcdefabcdef12",
    );
    let keys = app.store.keys(Shard::FIRST);
    let t = now_ms() - 5_000;
    let hist = format!(
        "{t}\x1fqueued\x1f0\x1f\x1e{}\x1fsending\x1f1\x1f\x1e{}\x1fsent\x1f1\x1f\x1fronglian",
        t + 100,
        t + 200
    );
    let mut redis = app.redis().await;
    let old: [(&str, String); 12] = [
        ("id", id.into()),
        ("status", "sent".into()),
        ("attempts", "1".into()),
        ("kind", "code".into()),
        ("mobile", "138****0007".into()),
        ("purpose", "login".into()),
        ("created_ms", t.to_string()),
        ("updated_ms", (t + 200).to_string()),
        ("hist", hist),
        ("provider_status", "000000".into()),
        ("provider_message_id", sid.into()),
        ("provider", "ronglian".into()),
    ];
    let _: () = redis.hset_multiple(keys.job(id), &old).await.unwrap();
    let _: () = redis.set(keys.sid(sid, mobile), id).await.unwrap();
    let _: () = redis
        .zadd(keys.by_mobile_before(mobile), id, t)
        .await
        .unwrap();

    let (status, answer) = push(&app, REPORTS_TOKEN, report(sid, mobile, "0", id)).await;
    assert_eq!(
        (status, answer["received"].as_str()),
        (200, Some("delivered"))
    );
    let (_, record) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(record["status"], "delivered", "{record}");
    assert_eq!(record["mobile"], "138****0007", "{record}");
    assert_eq!(record["provider_message_id"], sid, "{record}");
    assert_eq!(record["provider"], "ronglian", "{record}");
    assert_eq!(record["deliver_code"], "DELIVRD", "{record}");
    assert_eq!(
        history(&app, id).await,
        ["queued", "sending", "sent", "delivered"]
    );
    let to = smsq::domain::Mobile::parse(mobile).unwrap();
    let found = app.records.jobs_of(&to, 50).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, id);
}
