//! The fleet guards (issue 18 item 4), attacked the way a pumping ring would: one 号段 walked
//! from thousands of addresses, numbers that never verify, a flood past the budgets, and the
//! same over many shards. Ordinary traffic spread over many prefixes must never trip them.

use std::time::Duration;

use serde_json::json;
use smsq::config::RawConfig;
use smsq::domain::{CaptchaId, Hasher, Secret};

use crate::common::{App, SECRET, logs, settings, smsq_command, spawn_app, stdout_of_success};

/// `POST /v1/codes` from an address of its own (so the per-address caps never decide).
async fn issue(app: &App, mobile: &str, n: u64) -> (u16, String) {
    let ip = format!("10.{}.{}.7", (n / 250) % 250, n % 250);
    issue_with(app, json!({"mobile": mobile, "client_ip": ip})).await
}

async fn issue_with(app: &App, body: serde_json::Value) -> (u16, String) {
    let (status, body) = app.call("/v1/codes", body).await;
    (status, body["error"].as_str().unwrap_or("").to_owned())
}

/// An answer's `Retry-After`, in seconds.
fn retry_after(r: &reqwest::Response) -> u64 {
    r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// A solved captcha: one the test knows the answer of, stored as the API stores them.
async fn solved_captcha(app: &App) -> (String, &'static str) {
    let id = CaptchaId::generate();
    let hasher = Hasher::new(Secret::new(SECRET));
    app.intake
        .put_captcha(
            &id,
            &hasher.hash(&format!("captcha:{id}"), "AB12"),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    (id.to_string(), "AB12")
}

/// Walks `count` consecutive numbers of `prefix`, each from its own address; the answers.
async fn walk(app: &App, prefix: &str, count: u64) -> Vec<(u16, String)> {
    let mut out = Vec::new();
    for i in 0..count {
        out.push(issue(app, &format!("{prefix}{i:04}"), i).await);
    }
    out
}

fn accepted(answers: &[(u16, String)]) -> usize {
    answers.iter().filter(|(s, _)| *s == 202).count()
}

/// The prefixes the guard holds now.
async fn prefixes_held(app: &App) -> Vec<smsq::store::BlockedPrefix> {
    app.records
        .blocked_prefixes(smsq::domain::now_ms())
        .await
        .unwrap()
}

async fn snapshot(app: &App) -> smsq::snapshot::Snapshot {
    smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap()
}

fn cli(app: &App, args: &[&str]) -> String {
    let mut cmd = smsq_command(None);
    cmd.args(args)
        .env("SMSQ_REDIS__URL", &app.settings.redis.url)
        .env("SMSQ_REDIS__PREFIX", &app.settings.redis.prefix)
        .env(
            "SMSQ_REDIS__SHARDS",
            app.settings.redis.shards.count().to_string(),
        )
        .env("SMSQ_SECRET", SECRET)
        .env("USER", "oncall");
    stdout_of_success(&mut cmd)
}

#[tokio::test]
async fn a_ring_walking_one_prefix_from_many_addresses_is_held_after_twenty_codes() {
    smsq::metrics::install();
    let app = spawn_app(settings(|_| {})).await;
    // Shipped defaults: 20 codes, then the prefix needs a captcha for 12 h.
    let answers = walk(&app, "1380013", 60).await;
    assert_eq!(accepted(&answers), 20, "{answers:?}");
    assert!(answers[..20].iter().all(|(s, _)| *s == 202));
    assert!(
        answers[20..]
            .iter()
            .all(|a| *a == (403, "captcha_required".to_owned())),
        "{answers:?}"
    );
    // A person in that prefix who solves the captcha still gets a code; other prefixes are
    // untouched.
    let (id, answer) = solved_captcha(&app).await;
    let body = json!({"mobile": "13800139999", "captcha_id": id, "captcha": answer});
    assert_eq!(issue_with(&app, body).await.0, 202);
    assert_eq!(issue(&app, "13900130001", 1).await.0, 202);

    // One log line for the decision, with the prefix and why, and no number in it.
    let line = logs()
        .lines()
        .find(|l| l.contains("number prefix tripped") && l.contains("1380013"))
        .map(str::to_owned)
        .expect("the decision is logged");
    assert!(
        line.contains("reason=\"share\"") || line.contains("reason=share"),
        "{line}"
    );
    assert!(
        !line.contains("13800130"),
        "a number in the guard's line: {line}"
    );

    let held = prefixes_held(&app).await;
    assert_eq!(held.len(), 1, "{held:?}");
    assert_eq!(
        (
            held[0].prefix.as_str(),
            held[0].action.as_str(),
            held[0].reason.as_str()
        ),
        ("1380013", "captcha", "share")
    );
    let snapshot = snapshot(&app).await;
    assert!(
        snapshot
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("1380013")),
        "{:?}",
        snapshot.verdict
    );
    // The recorder is the test process's, shared by every test: the counter is there, and
    // the gauge is set from this snapshot.
    let metrics = smsq::metrics::render(Some(&snapshot));
    assert!(metrics.contains("smsq_guard_blocked_prefixes"), "{metrics}");
    assert!(
        metrics.contains(r#"smsq_guard_decisions_total{guard="prefix",action="trip"}"#),
        "{metrics}"
    );

    // On-call sees it and lifts it; the trail says who.
    let listed = cli(&app, &["guard", "list"]);
    assert!(
        listed.contains("1380013") && listed.contains("share"),
        "{listed}"
    );
    let lifted = cli(&app, &["guard", "lift", "1380013"]);
    assert!(lifted.contains("lifted"), "{lifted}");
    assert_eq!(issue(&app, "13800138888", 2).await.0, 202);
    assert!(prefixes_held(&app).await.is_empty());
    let trail = app.records.audit_trail(5).await.unwrap();
    assert_eq!(trail[0].action, "guard_lift");
    assert!(trail[0].by.starts_with("cli:oncall@"), "{:?}", trail[0]);
}

#[tokio::test]
async fn numbers_spread_over_many_prefixes_never_trip_it() {
    let app = spawn_app(settings(|_| {})).await;
    for n in 0..1_000u64 {
        let (status, error) = issue(&app, &smsq::dev::bench::mobile(n), n).await;
        assert_eq!(status, 202, "code {n}: {error}");
    }
    assert!(prefixes_held(&app).await.is_empty());
}

#[tokio::test]
async fn a_blocked_prefix_is_refused_for_its_period_even_with_a_captcha() {
    let app = spawn_app(settings(|c: &mut RawConfig| {
        c.guard.prefix_action = "block".into();
        c.guard.prefix_min_codes = 5;
    }))
    .await;
    let answers = walk(&app, "1500000", 8).await;
    assert_eq!(accepted(&answers), 5, "{answers:?}");
    let r = app
        .post(
            "/v1/codes",
            json!({"mobile": "15000009999", "client_ip": "10.9.9.9"}),
        )
        .await;
    assert_eq!(r.status().as_u16(), 429);
    let after = retry_after(&r);
    assert!((43_000..=43_200).contains(&after), "Retry-After {after}");
    let (id, answer) = solved_captcha(&app).await;
    let body = json!({"mobile": "15000009998", "captcha_id": id, "captcha": answer});
    assert_eq!(
        issue_with(&app, body).await,
        (429, "prefix_blocked".to_owned())
    );
}

#[tokio::test]
async fn a_prefix_whose_codes_are_never_verified_is_tripped_on_conversion() {
    // The share rule is off (100 %): only conversion can trip a prefix here.
    let app = spawn_app(settings(|c: &mut RawConfig| {
        c.guard.prefix_max_share_percent = 100;
        c.guard.prefix_min_codes = 10;
    }))
    .await;
    let verify = |mobile: String, code: String| {
        let app = &app;
        async move {
            let (_, v) = app
                .call("/v1/codes/verify", json!({"mobile": mobile, "code": code}))
                .await;
            assert_eq!(v["valid"], true, "{v}");
        }
    };
    // Real users over many prefixes, and 12 in one prefix: every code verified.
    let mut users: Vec<String> = (0..30).map(smsq::dev::bench::mobile).collect();
    users.extend((0..12).map(|i| format!("1370013{i:04}")));
    for (n, mobile) in users.iter().enumerate() {
        let (status, body) = app
            .call(
                "/v1/codes",
                json!({"mobile": mobile, "client_ip": format!("10.1.{n}.1")}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        let code = app.otp(body["job_id"].as_str().unwrap()).await.unwrap();
        verify(mobile.clone(), code).await;
    }
    // A ring's prefix: nobody ever verifies. After 10 codes it is held.
    let answers = walk(&app, "1360000", 15).await;
    assert_eq!(accepted(&answers), 10, "{answers:?}");
    let held = prefixes_held(&app).await;
    assert_eq!(held.len(), 1, "only the unverified prefix: {held:?}");
    assert_eq!(
        (held[0].prefix.as_str(), held[0].reason.as_str()),
        ("1360000", "conversion")
    );
}

#[tokio::test]
async fn budgets_alert_at_their_soft_threshold_then_hold_and_a_purpose_has_its_own() {
    let app = spawn_app(settings(|c: &mut RawConfig| {
        c.guard.hourly_budget = 20;
        c.guard.soft_percent = 50;
        c.guard.budget_action = "refuse".into();
        c.guard.purpose.insert(
            "signup".into(),
            smsq::config::RawPurposeBudget {
                hourly_budget: 5,
                daily_budget: 0,
            },
        );
    }))
    .await;
    let mut n = 0u64;
    let mut next = |purpose: &str| {
        n += 1;
        json!({"mobile": smsq::dev::bench::mobile(n), "purpose": purpose, "client_ip": format!("10.2.{n}.1")})
    };
    for _ in 0..5 {
        assert_eq!(issue_with(&app, next("signup")).await.0, 202);
    }
    assert_eq!(
        issue_with(&app, next("signup")).await,
        (429, "budget_exhausted".to_owned()),
        "the purpose's own budget"
    );
    for _ in 0..15 {
        assert_eq!(issue_with(&app, next("login")).await.0, 202);
    }
    let r = app.post("/v1/codes", next("login")).await;
    assert_eq!(r.status().as_u16(), 429);
    let after = retry_after(&r);
    assert!((1..=3600).contains(&after), "Retry-After {after}");
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "budget_exhausted");

    // The soft threshold (10 of 20) was said once, by one line.
    assert!(
        logs().contains("budget soft threshold reached"),
        "no soft-threshold line"
    );
    let snapshot = snapshot(&app).await;
    let hourly = &snapshot.guard.budgets[0];
    assert_eq!(
        (hourly.window, hourly.used, hourly.limit),
        ("hourly", 20, Some(20))
    );
    assert!(
        snapshot
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("hourly budget used up")),
        "{:?}",
        snapshot.verdict
    );
}

#[tokio::test]
async fn a_used_up_budget_with_the_captcha_action_lets_a_solved_captcha_through() {
    let app = spawn_app(settings(|c: &mut RawConfig| c.guard.hourly_budget = 3)).await;
    for n in 0..3 {
        assert_eq!(issue(&app, &smsq::dev::bench::mobile(n), n).await.0, 202);
    }
    assert_eq!(
        issue(&app, &smsq::dev::bench::mobile(3), 3).await,
        (403, "captcha_required".to_owned())
    );
    let (id, answer) = solved_captcha(&app).await;
    let body = json!({"mobile": smsq::dev::bench::mobile(4), "captcha_id": id, "captcha": answer});
    assert_eq!(issue_with(&app, body).await.0, 202);
}

#[tokio::test]
async fn on_four_shards_each_shard_holds_its_share_and_the_fleet_total_holds() {
    let app = spawn_app(settings(|c: &mut RawConfig| {
        c.redis.shards = 4;
        c.guard.hourly_budget = 40;
        c.guard.budget_action = "refuse".into();
    }))
    .await;
    let mut per_shard = [0usize; 4];
    let shards = app.settings.redis.shards;
    for n in 0..200u64 {
        let mobile = smsq::dev::bench::mobile(n);
        if issue(&app, &mobile, n).await.0 == 202 {
            let m = smsq::domain::Mobile::parse(&mobile).unwrap();
            per_shard[shards.of_mobile(&m).index()] += 1;
        }
    }
    assert_eq!(per_shard, [10; 4], "each shard's share of 40 is 10");
    let snapshot = snapshot(&app).await;
    assert_eq!(snapshot.guard.budgets[0].used, 40, "summed over the shards");

    // The prefix guard too: 20 codes over 4 shards is 5 a shard.
    let app = spawn_app(settings(|c: &mut RawConfig| c.redis.shards = 4)).await;
    let answers = walk(&app, "1880000", 80).await;
    let got = accepted(&answers);
    assert!(
        (16..=20).contains(&got),
        "{got} codes to one walked prefix over 4 shards"
    );
}

#[tokio::test]
async fn test_numbers_are_neither_counted_nor_held() {
    let mut s = settings(|c: &mut RawConfig| {
        c.guard.prefix_min_codes = 3;
        c.guard.hourly_budget = 3;
        c.guard.budget_action = "refuse".into();
    });
    s.secrets
        .test_numbers
        .insert("13800139999".into(), Secret::new("135790"));
    let app = spawn_app(s).await;
    assert_eq!(accepted(&walk(&app, "1380013", 10).await), 3);
    for _ in 0..5 {
        assert_eq!(
            issue(&app, "13800139999", 77).await.0,
            202,
            "the test number"
        );
    }
    let snapshot = snapshot(&app).await;
    assert_eq!(
        snapshot.guard.budgets[0].used, 3,
        "test numbers are not counted"
    );
}

/// The pumping scenario, a twentieth of it (`bench/run` runs it full): a ring walking 20 prefixes from
/// thousands of addresses, never verifying, among real users who mostly verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pumping_ring_gets_a_few_sms_per_prefix_and_real_users_get_theirs() {
    use smsq::dev::pumping::{PumpingSizes, count_bot_sms, run};
    let app = spawn_app(settings(|_| {})).await;
    let fake = crate::common::spawn_fake(crate::common::fake_options()).await;
    let (_worker, _stop) = app.spawn_worker(&fake.base_url(), 64);
    let sizes = PumpingSizes::quick();
    let mut result = run(&app.base, &fake.base_url(), sizes).await.unwrap();
    crate::common::eventually(Duration::from_secs(30), "the queue drained", || async {
        (app.backlog().await == 0).then_some(())
    })
    .await;
    result.bot_sms = count_bot_sms(&fake.messages(), &sizes);
    eprintln!("pumping (small): {result:?}");
    let per_prefix = u64::from(app.settings.guard.prefix.as_ref().unwrap().min_codes.get());
    assert!(
        result.bot_sms <= sizes.bot_prefixes * per_prefix,
        "{} SMS reached the provider for the ring: {result:?}",
        result.bot_sms
    );
    assert!(
        result.real_refused * 100 <= result.real_requests,
        "{} of {} real users refused: {result:?}",
        result.real_refused,
        result.real_requests
    );
    assert!(
        result.real_verified as f64 >= 0.7 * result.real_requests as f64,
        "only {} of {} real users verified: {result:?}",
        result.real_verified,
        result.real_requests
    );
}

/// A flood makes the guard's window counts (the budgets' hour and day, the prefixes'
/// window) and must not leave one of them for ever: Redis would keep the attacker's counts
/// until an operator noticed. Issuing counts without reading a TTL first, so each key gets
/// its TTL from the code that makes it, in the same script; this checks every one has it.
#[tokio::test]
async fn every_window_count_a_flood_makes_expires_with_its_window() {
    let app = spawn_app(settings(|c: &mut RawConfig| {
        c.guard.hourly_budget = 1_000;
        c.guard.daily_budget = 1_000;
    }))
    .await;
    for n in 0..40u64 {
        let purpose = if n % 2 == 0 { "login" } else { "signup" };
        let body = json!({"mobile": smsq::dev::bench::mobile(n), "purpose": purpose, "client_ip": format!("10.3.{n}.1")});
        assert_eq!(issue_with(&app, body).await.0, 202, "code {n}");
    }
    let mut conn = app.redis().await;
    let pattern = format!("{{{}:*}}:guard:*", app.prefix());
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    let window = |kind: &str| keys.iter().filter(|k| k.contains(kind)).count();
    // The hour's and the day's budget keys, and the prefix guard's current window.
    assert!(window(":guard:budget:") >= 2, "{keys:?}");
    assert!(window(":guard:prefixes:") >= 1, "{keys:?}");
    for key in &keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(
            ttl > 0 && ttl <= 2 * 86_400_000,
            "{key} would outlive its window (PTTL {ttl} ms)"
        );
    }
}
