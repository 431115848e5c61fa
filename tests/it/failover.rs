//! Several provider accounts: Tencent and Aliyun through the simulator, routing, and the
//! failover rules, each attacked the way an outage or a refusal really comes.

use std::time::Duration;

use serde_json::json;
use smsq::config::{RawAccount, RawConfig, RawRoute};
use smsq::dev::fake::{FAKE_TENCENT_APP_ID, FakeHandle, Outage};
use smsq::provider::Kind;

use crate::common::{
    App, eventually, fake_options, history, settings, spawn_app, spawn_fake, wait_for_status,
};

fn account(kind: &str, base_url: &str) -> RawAccount {
    RawAccount {
        kind: kind.into(),
        base_url: Some(base_url.into()),
        rate_per_sec: None,
        burst: None,
        timeout_ms: None,
        connect_timeout_ms: None,
        sign_name: (kind != "ronglian").then(|| "smsq测试".into()),
        region: None,
        app_id: (kind == "tencent").then(|| FAKE_TENCENT_APP_ID.into()),
        code_template: Some(match kind {
            "aliyun" => "SMS_154950909".into(),
            "tencent" => "1234567".into(),
            _ => "1".into(),
        }),
        templates: Default::default(),
        params: Default::default(),
    }
}

fn order(names: &[&str]) -> RawRoute {
    RawRoute {
        order: Some(names.iter().map(|n| (*n).to_owned()).collect()),
        weights: None,
    }
}

/// A simulator that knows every test template.
async fn fake() -> FakeHandle {
    let mut opts = fake_options();
    opts.templates = ["1", "1234567", "SMS_154950909", "7", "77"]
        .map(String::from)
        .to_vec();
    spawn_fake(opts).await
}

/// `rl` (Ronglian) first, then `tc` (Tencent), both at the simulator.
fn two_accounts(fake: &FakeHandle, tweak: impl FnOnce(&mut RawConfig)) -> smsq::config::Settings {
    let url = fake.base_url();
    settings(|c| {
        c.providers.insert("rl".into(), account("ronglian", &url));
        c.providers.insert("tc".into(), account("tencent", &url));
        c.routing.insert("default".into(), order(&["rl", "tc"]));
        c.failover.cool_down_secs = 60;
        tweak(c);
    })
}

async fn issue(app: &App, mobile: &str) -> String {
    let (status, body) = app
        .call("/v1/codes", json!({"mobile": mobile, "purpose": "login"}))
        .await;
    assert_eq!(status, 202, "{body}");
    body["job_id"].as_str().unwrap().to_owned()
}

/// The accounts each step of a job's history went through (`-` for none).
async fn via(app: &App, job_id: &str) -> Vec<String> {
    let id = smsq::domain::JobId::parse(job_id).unwrap();
    app.records
        .events_of(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| {
            format!(
                "{}:{}",
                e.status.as_str(),
                e.provider.as_deref().unwrap_or("-")
            )
        })
        .collect()
}

#[tokio::test]
async fn tencent_and_aliyun_accounts_send_codes_that_verify() {
    let fake = fake().await;
    let url = fake.base_url();
    let app = spawn_app(settings(|c| {
        c.providers.insert("tc".into(), account("tencent", &url));
        c.providers.insert("ali".into(), account("aliyun", &url));
        c.routing.insert("default".into(), order(&["tc"]));
        c.routing.insert("register".into(), order(&["ali"]));
    }))
    .await;
    let (_worker, _stop) = app.spawn_worker(&url, 4);

    let login = issue(&app, "13800138301").await;
    let (status, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138302", "purpose": "register"}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let register = body["job_id"].as_str().unwrap().to_owned();
    let login_job = wait_for_status(&app, &login, "sent").await;
    let register_job = wait_for_status(&app, &register, "sent").await;

    let messages = fake.messages();
    let of = |to: &str| messages.iter().find(|m| m.to == to).expect("sent").clone();
    let (tc, ali) = (of("13800138301"), of("13800138302"));
    assert_eq!(
        (tc.kind.as_str(), tc.template_id.as_str()),
        ("tencent", "1234567")
    );
    assert_eq!(
        (ali.kind.as_str(), ali.template_id.as_str()),
        ("aliyun", "SMS_154950909")
    );
    assert_eq!(
        tc.datas.len(),
        2,
        "Tencent: every value, in order: {:?}",
        tc.datas
    );
    assert_eq!(
        ali.datas.len(),
        1,
        "Aliyun: the template's one variable, code: {:?}",
        ali.datas
    );
    assert_eq!(login_job["provider"], "tc");
    assert_eq!(register_job["provider"], "ali");
    assert_eq!(
        login_job["provider_message_id"],
        tc.sms_message_sid.as_str()
    );
    assert!(
        tc.sms_message_sid.starts_with("2019:"),
        "{}",
        tc.sms_message_sid
    );
    assert!(
        ali.sms_message_sid.ends_with("^0"),
        "{}",
        ali.sms_message_sid
    );
    assert_eq!(
        tc.req_id.as_deref(),
        Some(login.as_str()),
        "SessionContext = job id"
    );
    assert_eq!(
        ali.req_id.as_deref(),
        Some(register.as_str()),
        "OutId = job id"
    );

    for (mobile, purpose, sms) in [
        ("13800138301", "login", &tc),
        ("13800138302", "register", &ali),
    ] {
        let (status, body) = app
            .call(
                "/v1/codes/verify",
                json!({"mobile": mobile, "purpose": purpose, "code": sms.datas[0]}),
            )
            .await;
        assert_eq!(
            (status, body["valid"].clone()),
            (200, json!(true)),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_account_fault_moves_the_job_to_the_next_account_without_using_an_attempt() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |_| {})).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    // Ronglian says the balance is gone (111142), from now on.
    fake.set_outage(Kind::Ronglian, Outage::Account);

    let first = issue(&app, "13800138311").await;
    let job = wait_for_status(&app, &first, "sent").await;
    assert_eq!(job["attempts"], 1, "the move used no attempt: {job}");
    assert_eq!(job["provider"], "tc");
    assert_eq!(
        via(&app, &first).await,
        ["queued:-", "sending:-", "sending:rl", "sent:tc"]
    );
    let id = smsq::domain::JobId::parse(&first).unwrap();
    let events = app.records.events_of(&id).await.unwrap();
    assert!(
        events[2].error.contains("111142") && events[2].error.contains("moving to tc"),
        "{:?}",
        events[2]
    );

    // The circuit is open for the fleet: the next code goes straight to tc, no call to rl.
    let ronglian_calls = fake
        .messages()
        .iter()
        .filter(|m| m.kind == "ronglian")
        .count();
    assert_eq!(ronglian_calls, 0);
    let second = issue(&app, "13800138312").await;
    wait_for_status(&app, &second, "sent").await;
    assert_eq!(
        via(&app, &second).await,
        ["queued:-", "sending:-", "sent:tc"]
    );
    let circuit = circuit(&app, "rl").await;
    assert!(
        matches!(circuit.state, smsq::store::CircuitState::Open { .. }),
        "{circuit:?}"
    );
    assert!(circuit.reason.contains("111142"), "{circuit:?}");
}

/// An account's circuit, as the fleet shares it.
async fn circuit(app: &App, account: &str) -> smsq::store::Circuit {
    let read = smsq::store::CircuitOp::Read;
    let now = smsq::domain::now_ms();
    app.queue
        .circuit(account, read, &policy(), now)
        .await
        .unwrap()
}

/// Issues codes to fresh numbers (from `first` on), one at a time, each waited for until
/// sent, until `done` holds of one's record and `account`'s circuit after it.
async fn send_until(
    app: &App,
    account: &str,
    first: u64,
    what: &str,
    done: fn(&serde_json::Value, &smsq::store::Circuit) -> bool,
) {
    let mut n = first;
    eventually(Duration::from_secs(10), what, || {
        n += 1;
        let mobile = smsq::dev::bench::mobile(n);
        async move {
            let id = issue(app, &mobile).await;
            let job = wait_for_status(app, &id, "sent").await;
            done(&job, &circuit(app, account).await).then_some(())
        }
    })
    .await;
}

fn closed(_: &serde_json::Value, c: &smsq::store::Circuit) -> bool {
    c.state == smsq::store::CircuitState::Closed
}

fn policy() -> smsq::store::CircuitPolicy {
    smsq::store::CircuitPolicy {
        window: Duration::from_secs(10),
        threshold: 5,
        cool_down: Duration::from_secs(60),
        probes: 3,
    }
}

#[tokio::test]
async fn account_throttling_pauses_that_account_and_the_job_moves_on() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |_| {})).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    fake.set_outage(Kind::Ronglian, Outage::Throttle);

    let job_id = issue(&app, "13800138321").await;
    let job = wait_for_status(&app, &job_id, "sent").await;
    assert_eq!(
        (job["attempts"].clone(), job["provider"].clone()),
        (json!(1), json!("tc"))
    );
    let events = app
        .records
        .events_of(&smsq::domain::JobId::parse(&job_id).unwrap())
        .await
        .unwrap();
    assert!(events[2].error.contains("111111"), "{:?}", events[2]);
    // Only rl's sends are paused; the unnamed pause key is untouched.
    let mut redis = app.redis().await;
    let fleet = app.store.keys(smsq::domain::Shard::FIRST);
    let paused = |account| fleet.pause_of(account);
    let rl: Option<String> = redis::AsyncCommands::get(&mut redis, paused(Some("rl")))
        .await
        .unwrap();
    let tc: Option<String> = redis::AsyncCommands::get(&mut redis, paused(Some("tc")))
        .await
        .unwrap();
    let unnamed: Option<String> = redis::AsyncCommands::get(&mut redis, paused(None))
        .await
        .unwrap();
    assert!(rl.is_some_and(|p| p.contains("111111")));
    assert_eq!((tc, unnamed), (None, None));
}

#[tokio::test]
async fn a_number_level_refusal_is_not_sent_through_another_account() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |_| {})).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    // 160042 "invalid number" and 160040 "daily limit for this number": the number's, not
    // the account's. Another account would only spend money on the same refusal.
    for (mobile, code) in [("13800138331", "160042"), ("13800138332", "160040")] {
        fake.set_outage(Kind::Ronglian, Outage::Code(code.into()));
        let job_id = issue(&app, mobile).await;
        let job = wait_for_status(&app, &job_id, "failed").await;
        assert_eq!(job["provider_status"], code);
        assert_eq!(job["provider"], "rl");
        assert_eq!(
            via(&app, &job_id).await,
            ["queued:-", "sending:-", "failed:rl"]
        );
    }
    assert!(
        fake.messages().iter().all(|m| m.kind != "tencent"),
        "nothing went through tc"
    );
}

#[tokio::test]
async fn an_unknown_outcome_is_retried_on_the_same_account_first_then_elsewhere() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |c| {
        c.providers.get_mut("rl").unwrap().timeout_ms = Some(300);
        // The transient errors alone must not open the circuit here: the pin is the rule.
        c.failover.error_threshold = 100;
    }))
    .await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    // rl reads every request and never answers: the SMS may or may not have gone out.
    fake.set_outage(Kind::Ronglian, Outage::Hang);

    let job_id = issue(&app, "13800138341").await;
    let job = wait_for_status(&app, &job_id, "sent").await;
    assert_eq!(
        via(&app, &job_id).await,
        [
            "queued:-",
            "sending:-",
            "retrying:rl",
            "sending:-",
            "retrying:rl",
            "sending:-",
            "sent:tc"
        ],
        "the retry goes to rl again with the same request id, and only then elsewhere"
    );
    assert_eq!(job["attempts"], 3);
    assert_eq!(job["provider"], "tc");
}

#[tokio::test]
async fn after_the_cool_down_probes_close_the_circuit_and_traffic_returns() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |c| {
        c.failover.cool_down_secs = 1;
        c.failover.probes = 2;
    }))
    .await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    fake.set_outage(Kind::Ronglian, Outage::Http500);
    // Five transient errors within the window open rl's circuit; each of those jobs retries.
    let mut jobs = Vec::new();
    for n in 0..6 {
        jobs.push(issue(&app, &smsq::dev::bench::mobile(37_000 + n)).await);
    }
    for id in &jobs {
        wait_for_status(&app, id, "sent").await;
    }
    eventually(Duration::from_secs(5), "rl's circuit open", || async {
        let c = circuit(&app, "rl").await;
        matches!(c.state, smsq::store::CircuitState::Open { .. }).then_some(())
    })
    .await;
    let sent_by = |kind: &str| fake.messages().iter().filter(|m| m.kind == kind).count();
    assert_eq!((sent_by("ronglian"), sent_by("tencent")), (0, 6));

    // rl recovers. After the cool-down two probes go through it; when both went through it
    // closes, and takes the traffic again.
    fake.set_outage(Kind::Ronglian, Outage::None);
    send_until(&app, "rl", 38_000, "rl's circuit closed again", closed).await;
    let probed = fake
        .messages()
        .iter()
        .filter(|m| m.kind == "ronglian")
        .count();
    assert_eq!(
        probed, 2,
        "exactly the probes went through rl before it closed"
    );
    let mut back = Vec::new();
    for n in 0..3 {
        back.push(issue(&app, &smsq::dev::bench::mobile(38_500 + n)).await);
    }
    for id in &back {
        let job = wait_for_status(&app, id, "sent").await;
        assert_eq!(
            job["provider"], "rl",
            "closed again: the primary takes the traffic"
        );
    }
    assert_eq!(history(&app, &back[0]).await, ["queued", "sending", "sent"]);
}

#[tokio::test]
async fn a_message_template_is_mapped_per_account() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |c| {
        c.providers
            .get_mut("tc")
            .unwrap()
            .templates
            .insert("7".into(), "77".into());
    }))
    .await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    fake.set_outage(Kind::Ronglian, Outage::Account);
    let (status, body) = app
        .call(
            "/v1/messages",
            json!({"to": "13800138361", "template_id": "7", "datas": ["a"]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["job_id"].as_str().unwrap();
    wait_for_status(&app, id, "sent").await;
    let m = fake
        .messages()
        .into_iter()
        .find(|m| m.to == "13800138361")
        .unwrap();
    assert_eq!((m.kind.as_str(), m.template_id.as_str()), ("tencent", "77"));
}

#[tokio::test]
async fn tencent_and_aliyun_delivery_reports_reach_their_jobs_and_are_answered_their_way() {
    let app = spawn_app(settings(|c| {
        c.providers
            .insert("tc".into(), account("tencent", "http://127.0.0.1:9"));
        c.providers
            .insert("ali".into(), account("aliyun", "http://127.0.0.1:9"));
        c.routing.insert("default".into(), order(&["tc"]));
        c.routing.insert("register".into(), order(&["ali"]));
    }))
    .await;
    let token = crate::common::REPORTS_TOKEN;
    let mut opts = fake_options();
    opts.templates = ["1234567", "SMS_154950909"].map(String::from).to_vec();
    opts.tencent_report_url = Some(format!("{}/v1/provider/tc/reports/{token}", app.base));
    opts.aliyun_report_url = Some(format!("{}/v1/provider/ali/reports/{token}", app.base));
    opts.undelivered_rate = 0.0;
    opts.report_delay_ms = 50;
    let fake = spawn_fake(opts).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);

    let login = issue(&app, "13800138371").await;
    let (_, body) = app
        .call(
            "/v1/codes",
            json!({"mobile": "13800138372", "purpose": "register"}),
        )
        .await;
    let register = body["job_id"].as_str().unwrap().to_owned();
    for id in [&login, &register] {
        let job = wait_for_status(&app, id, "delivered").await;
        assert!(
            job["deliver_code"] == "DELIVRD" || job["deliver_code"] == "DELIVERED",
            "{job}"
        );
    }

    // Each vendor's answer is the one it expects; a report of another vendor's shape, or to an
    // account that does not exist, is refused.
    let post = |path: String, body: serde_json::Value| {
        let http = app.http.clone();
        async move { http.post(path).json(&body).send().await.unwrap() }
    };
    let tc_report = json!([{"user_receive_time": "2026-12-01 10:00:00", "nationcode": "86",
        "mobile": "13800138371", "report_status": "SUCCESS", "errmsg": "DELIVRD", "sid": "2019:1"}]);
    let r = post(
        format!("{}/v1/provider/tc/reports/{token}", app.base),
        tc_report.clone(),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap(),
        json!({"result": 0, "errmsg": "OK"})
    );
    let r = post(
        format!("{}/v1/provider/ali/reports/{token}", app.base),
        tc_report.clone(),
    )
    .await;
    assert_eq!(r.status(), 400, "a Tencent body is not an Aliyun report");
    let r = post(
        format!("{}/v1/provider/nope/reports/{token}", app.base),
        tc_report.clone(),
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = post(
        format!("{}/v1/provider/tc/reports/wrong-token", app.base),
        tc_report,
    )
    .await;
    assert_eq!(r.status(), 404);
    let ali_report = json!([{"phone_number": "13800138372", "report_time": "2026-12-01 10:00:00",
        "success": true, "err_code": "DELIVERED", "biz_id": "1^0", "out_id": ""}]);
    let r = post(
        format!("{}/v1/provider/ali/reports/{token}", app.base),
        ali_report,
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["code"], 0);
}

/// `[providers]`, `[routing]` and `[failover]` for worker processes: `rl` then `tc`, both at
/// the simulator.
fn accounts_toml(fake: &str, cool_down_secs: u64) -> String {
    format!(
        r#"
[providers.rl]
kind = "ronglian"
base_url = "{fake}"
code_template = "1"

[providers.tc]
kind = "tencent"
base_url = "{fake}"
app_id = "{FAKE_TENCENT_APP_ID}"
sign_name = "smsq测试"
code_template = "1234567"

[routing.default]
order = ["rl", "tc"]

[failover]
error_window_secs = 10
error_threshold = 5
cool_down_secs = {cool_down_secs}
probes = 2
"#
    )
}

/// A steady flow across two worker processes; the primary answers 5xx from a given moment,
/// then recovers. Every code is sent exactly once, by one account or the other, none waits
/// long, and after the cool-down the primary takes the traffic again.
#[tokio::test]
async fn a_steady_flow_survives_the_primary_going_down_across_two_worker_processes() {
    let fake = fake().await;
    let cool_down = 2;
    let app = spawn_app(two_accounts(&fake, |c| {
        c.failover.cool_down_secs = cool_down;
        c.failover.probes = 2;
    }))
    .await;
    let dir = crate::common::temp_dir("failover");
    let config = dir.join("worker.toml");
    std::fs::write(&config, accounts_toml(&fake.base_url(), cool_down)).unwrap();
    let mut env = crate::common::child_env(&app.settings, &fake.base_url());
    for (k, v) in crate::common::provider_secrets() {
        env.push((k, v.expose().to_owned()));
    }
    env.push(("SMSQ_RETRY__BASE_MS".into(), "100".into()));
    env.push(("SMSQ_RETRY__MAX_MS".into(), "400".into()));
    let workers: Vec<_> = ["fo-a", "fo-b"]
        .iter()
        .map(|name| {
            let mut cmd = crate::common::smsq_command(Some(&config));
            cmd.args(["worker", "--name", name, "--concurrency", "16"])
                .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            crate::common::KillOnDrop(cmd.spawn().expect("spawn smsq worker"))
        })
        .collect();
    eventually(Duration::from_secs(10), "two live workers", || async {
        let s = app.records.inspect(0).await.unwrap();
        (s.consumers.iter().filter(|c| c.alive).count() == 2).then_some(())
    })
    .await;

    let sizes = smsq::dev::failover::FailoverSizes {
        rate: 40.0,
        before: Duration::from_secs(2),
        outage: Duration::from_secs(3),
        after: Duration::from_secs(cool_down + 4),
        fault: "http500",
        primary: "ronglian",
        backup: "tencent",
        first_number: 60_000,
    };
    let r = smsq::dev::failover::run(&app.base, &fake.base_url(), &sizes)
        .await
        .unwrap();
    eprintln!("{r:?}");
    assert!(r.issued >= 300, "{r:?}");
    assert_eq!(
        (r.sent_once, r.sent_twice, r.never_sent),
        (r.issued, 0, 0),
        "{r:?}"
    );
    assert!(r.by_backup > 0 && r.by_primary > 0, "{r:?}");
    // Measured here: failover in ~100-300 ms (the first 5xx, a 50-100 ms backoff, then tc);
    // the bounds leave room for a loaded CI box.
    let failover = r.failover_ms.expect("something went through tc");
    assert!(failover < 1_500, "failover took {failover} ms: {r:?}");
    assert!(r.in_flight_max_ms < 3_000, "{r:?}");
    // Back after the cool-down (from when the circuit opened, before the outage ended).
    let recovery = r.recovery_ms.expect("traffic came back to rl");
    assert!(recovery <= (cool_down * 1000) + 1_500, "{r:?}");
    assert!(r.back_on_primary_percent >= 95.0, "{r:?}");
    drop(workers);
}

/// `smsq provider disable|enable|list` and `smsq status`: the switch holds for the fleet, is
/// in the trail, and the verdict says so.
#[tokio::test]
async fn an_operator_disables_an_account_and_the_fleet_routes_around_it() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |_| {})).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    let dir = crate::common::temp_dir("provider-cli");
    let config = dir.join("worker.toml");
    std::fs::write(&config, accounts_toml(&fake.base_url(), 60)).unwrap();
    let cli = |args: &[&str]| {
        let mut cmd = crate::common::smsq_command(Some(&config));
        cmd.args(args)
            .envs(crate::common::child_env(&app.settings, &fake.base_url()))
            .env("USER", "oncall");
        crate::common::stdout_of_success(&mut cmd)
    };

    let said = cli(&["provider", "disable", "rl"]);
    assert!(said.contains("rl disabled"), "{said}");
    let listed: serde_json::Value =
        serde_json::from_str(&cli(&["provider", "list", "--json"])).unwrap();
    assert_eq!(listed[0]["name"], "rl");
    assert_eq!(listed[0]["disabled"], true);
    assert_eq!(listed[1]["disabled"], false);
    // Within the workers' refresh (half a second) the fleet routes around it.
    send_until(&app, "rl", 39_000, "codes through tc", |job, _| {
        job["provider"] == "tc"
    })
    .await;
    let status = cli(&["status"]);
    assert!(
        status.contains("provider   rl (ronglian") && status.contains("DISABLED"),
        "{status}"
    );
    assert!(
        status.contains("provider account rl is disabled"),
        "{status}"
    );
    assert!(status.contains("recent error(s)"), "{status}");
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "smsq_provider_disabled{account=\"rl\"} 1",
        "smsq_provider_circuit{account=\"tc\"} 0",
        "smsq_provider_recent_errors{account=\"rl\"} 0",
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
    let trail = app.records.audit_trail(5).await.unwrap();
    assert!(
        trail
            .iter()
            .any(|a| a.action == "provider_disable" && a.by.contains("oncall")),
        "{trail:?}"
    );

    assert!(cli(&["provider", "enable", "rl"]).contains("rl enabled"));
    let back = |job: &serde_json::Value, _: &_| job["provider"] == "rl";
    send_until(&app, "rl", 39_500, "codes through rl again", back).await;
    let mut cmd = crate::common::smsq_command(Some(&config));
    let out = cmd
        .args(["provider", "disable", "nope"])
        .envs(crate::common::child_env(&app.settings, &fake.base_url()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no provider account \"nope\""));
}

/// With one account there is nowhere to fail over to: an open circuit holds nothing back
/// (jobs retry as before) and closes again once sends go through.
#[tokio::test]
async fn a_lone_account_keeps_sending_while_its_circuit_is_open_and_it_closes_after() {
    let fake = fake().await;
    let app = spawn_app(settings(|c| {
        c.failover.cool_down_secs = 1;
        c.failover.probes = 2;
    }))
    .await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    fake.set_outage(Kind::Ronglian, Outage::Http500);
    let mut jobs = Vec::new();
    for n in 0..6 {
        jobs.push(issue(&app, &smsq::dev::bench::mobile(41_000 + n)).await);
    }
    eventually(Duration::from_secs(5), "the circuit open", || async {
        let open = matches!(
            circuit(&app, "ronglian").await.state,
            smsq::store::CircuitState::Open { .. }
        );
        open.then_some(())
    })
    .await;
    fake.set_outage(Kind::Ronglian, Outage::None);
    for id in &jobs {
        wait_for_status(&app, id, "sent").await;
    }
    send_until(&app, "ronglian", 42_000, "the circuit closed", closed).await;
}

/// The app names a message template (`order_shipped`); each account maps it to its own id,
/// and an account that does not is not on that message's way. A name nobody maps is refused.
#[tokio::test]
async fn a_named_message_template_goes_through_the_accounts_that_map_it() {
    let fake = fake().await;
    let app = spawn_app(two_accounts(&fake, |c| {
        let tc = c.providers.get_mut("tc").unwrap();
        tc.templates.insert("order_shipped".into(), "77".into());
    }))
    .await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 4);
    let (status, body) = app
        .call(
            "/v1/messages",
            json!({"to": "13800138391", "template_id": "order_shipped", "datas": ["42"]}),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let job = wait_for_status(&app, body["job_id"].as_str().unwrap(), "sent").await;
    assert_eq!(
        job["provider"], "tc",
        "rl, first on the route, has no order_shipped"
    );
    let m = fake
        .messages()
        .into_iter()
        .find(|m| m.to == "13800138391")
        .unwrap();
    assert_eq!((m.kind.as_str(), m.template_id.as_str()), ("tencent", "77"));

    let (status, body) = app
        .call(
            "/v1/messages",
            json!({"to": "13800138392", "template_id": "no_such_one", "datas": []}),
        )
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("no_such_one"),
        "{body}"
    );
}
