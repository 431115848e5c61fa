//! Issue 17's smaller defects, each reproduced the way it was found: framework rejections
//! that answered `text/plain`, bearer schemes in another case, token lists that could not be
//! meant, and ANSI colour in logs written to a pipe.

use std::io::Read;
use std::time::{Duration, Instant};

use smsq::domain::Secret;

use crate::common::{settings, smsq_command, spawn_app, wait_exit};

const ADMIN: &str = "admin-token-0123456789";

/// Every answer below must be the README's `{"error","message"}` with a JSON content type.
async fn assert_json_error(response: reqwest::Response, status: u16, code: &str, what: &str) {
    assert_eq!(response.status().as_u16(), status, "{what}");
    let ct = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let text = response.text().await.unwrap();
    assert!(ct.starts_with("application/json"), "{what}: {ct} {text:?}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["error"], code, "{what}: {body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
}

#[tokio::test]
async fn framework_rejections_answer_the_documented_json_error() {
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![Secret::new(ADMIN)];
    s.secrets.admin_tokens = vec![Secret::new(ADMIN)];
    let app = spawn_app(s).await;
    let url = |p: &str| format!("{}{p}", app.base);
    // A missing query field of an admin route.
    let r = app
        .http
        .get(url("/v1/admin/jobs"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "invalid_request", "admin jobs without ?mobile=").await;
    // Bad JSON and a wrong content type on an admin action.
    let r = app
        .http
        .post(url("/v1/admin/dead/replay"))
        .bearer_auth(ADMIN)
        .header("content-type", "application/json")
        .body("{\"ids\": ")
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "invalid_json", "admin replay with broken JSON").await;
    let r = app
        .http
        .post(url("/v1/admin/dead/replay"))
        .bearer_auth(ADMIN)
        .header("content-type", "text/plain")
        .body("ids=1")
        .send()
        .await
        .unwrap();
    assert_json_error(r, 415, "unsupported_media_type", "admin replay as text").await;
    // JSON sent to the login form.
    let r = app
        .http
        .post(url("/dashboard/login"))
        .json(&serde_json::json!({"token": ADMIN}))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 415, "unsupported_media_type", "JSON to the login form").await;
    // A path parameter the route cannot take, and an unknown route.
    let r = app
        .http
        .get(url("/v1/admin/jobs/not-a-job"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert!(status == 400 || status == 404, "{status}");
    let r = app.http.get(url("/nowhere")).send().await.unwrap();
    assert_json_error(r, 404, "not_found", "unknown route").await;
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let mut s = settings(|_| {});
    s.secrets.api_tokens = vec![Secret::new(ADMIN)];
    s.secrets.admin_tokens = vec![Secret::new(ADMIN)];
    let app = spawn_app(s).await;
    let body = serde_json::json!({"mobile": "13800138001"});
    for (n, scheme) in ["bearer", "BEARER", "Bearer", "bEaReR"].iter().enumerate() {
        let mobile = format!("1380013810{n}");
        let r = app
            .http
            .post(format!("{}/v1/codes", app.base))
            .header("authorization", format!("{scheme} {ADMIN}"))
            .json(&serde_json::json!({"mobile": mobile}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202, "{scheme}");
        let r = app
            .http
            .get(format!("{}/v1/admin/status", app.base))
            .header("authorization", format!("{scheme} {ADMIN}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{scheme} on admin");
    }
    // Another scheme, or the token alone, is still refused.
    for auth in [
        format!("Basic {ADMIN}"),
        ADMIN.to_owned(),
        "bearer".to_owned(),
    ] {
        let r = app
            .http
            .post(format!("{}/v1/codes", app.base))
            .header("authorization", &auth)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 401, "{auth}");
    }
}

#[test]
fn a_token_list_of_nothing_or_short_tokens_refuses_to_start() {
    for (tokens, says) in [
        (" , ,", "holds no token"),
        ("   ", "holds no token"),
        ("short", "has 5 characters"),
    ] {
        // An API that starts anyway would serve forever: it gets a deadline, not our patience.
        let mut child = smsq_command(None)
            .arg("api")
            .env("SMSQ_API_TOKENS", tokens)
            .env("SMSQ_SECRET", "0123456789abcdef0123")
            .env("SMSQ_API__LISTEN", "127.0.0.1:0")
            .env("SMSQ_REDIS__URL", "redis://127.0.0.1:1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let status = wait_exit(&mut child, Duration::from_secs(10));
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert_eq!(status.code(), Some(2), "{tokens:?}: {stderr}");
        assert!(
            stderr.contains("SMSQ_API_TOKENS") && stderr.contains(says),
            "{tokens:?}: {stderr}"
        );
        assert!(
            !stderr.contains("short") || tokens != "short",
            "the token is shown: {stderr}"
        );
    }
}

#[test]
fn logs_to_a_pipe_carry_no_colour_codes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    // `smsq api` with Redis away logs warnings, then `api listening`; its stderr is a pipe.
    let child = smsq_command(None)
        .arg("api")
        .env("SMSQ_SECRET", "0123456789abcdef0123")
        .env("SMSQ_API__LISTEN", "127.0.0.1:0")
        .env("SMSQ_REDIS__URL", "redis://127.0.0.1:1")
        .env("SMSQ_REDIS__TIMEOUT_MS", "200")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = child;
    let stderr = child.stderr.take().unwrap();
    let _child = crate::common::KillOnDrop(child);
    // Lines up to `api listening`, read beside the test so a process that never gets there
    // fails the test at the deadline instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let done = line.contains("api listening");
            if tx.send(line).is_err() || done {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut lines = Vec::new();
    while !lines
        .last()
        .is_some_and(|l: &String| l.contains("api listening"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("no `api listening` within 20 s: {lines:?}"),
        }
    }
    let text = lines.join("\n");
    assert!(
        text.contains("WARN") && text.contains("api listening"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in piped logs: {text:?}"
    );
}

/// Item 2: an entry of a finished job that came back more often than `max_deliveries`
/// (reclaimed again and again) is acked; it must not be dead-lettered over its `sent`.
#[tokio::test]
async fn a_finished_job_redelivered_too_often_keeps_its_terminal_status() {
    use redis::AsyncCommands;
    use smsq::domain::{Shard, now_ms};
    use smsq::store::Begin;

    let app = spawn_app(settings(|c| c.worker.max_deliveries = 3)).await;
    let id = app.queue_message("13810000031").await;
    app.queue.ensure_group().await.unwrap();
    let mut conn = smsq::store::blocking_connection(&app.settings.redis, Duration::ZERO).unwrap();
    let mut entry = app
        .queue
        .read(&mut conn, Shard::FIRST, "stale", 1, None)
        .await
        .unwrap()
        .remove(0);
    let keys = app.store.keys(Shard::FIRST);
    let mut redis = app.redis().await;
    // Another delivery finished it; this entry's delivery count is far past the bound.
    let _: () = redis.hset(keys.job(&id), "s", "sent").await.unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(keys.jobs())
        .arg(smsq::store::GROUP)
        .arg("stale")
        .arg(0)
        .arg(&entry.entry_id)
        .arg("RETRYCOUNT")
        .arg(10)
        .query_async(&mut redis)
        .await
        .unwrap();
    entry.first_delivery = false;
    let job = entry.job.clone().unwrap();
    let fence = smsq::store::Fence::new("stale");
    let began = app
        .queue
        .begin(&entry, &job, &fence, now_ms())
        .await
        .unwrap();
    assert!(
        matches!(began, Begin::Finished(smsq::domain::JobStatus::Sent)),
        "{began:?}"
    );
    let (_, record) = app.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(record["status"], "sent", "{record}");
    let dead: redis::streams::StreamRangeReply = redis.xrange_all(keys.dead()).await.unwrap();
    assert!(dead.ids.is_empty(), "dead-lettered: {:?}", dead.ids);
    assert_eq!(app.backlog().await, 0, "acked and deleted");
}

/// Item 9: a Redis that may evict keys silently resets abuse counters and drops codes; the
/// API says so at start and `smsq status` reads `degraded` with the reason.
#[tokio::test]
async fn an_evicting_redis_is_called_out_at_start_and_in_status() {
    let redis = crate::common::private_redis();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("allkeys-lru")
        .query_async(&mut admin)
        .await
        .unwrap();
    let settings = crate::common::settings_on(&redis.url(), |_| {});
    let app = spawn_app(settings).await;
    let snapshot = smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    assert_eq!(
        snapshot.redis.maxmemory_policy.as_deref(),
        Some("allkeys-lru")
    );
    assert_eq!(
        snapshot.verdict.status.as_str(),
        "degraded",
        "{:?}",
        snapshot.verdict
    );
    assert!(
        snapshot
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("maxmemory-policy is allkeys-lru")),
        "{:?}",
        snapshot.verdict
    );
    // The API's start-up check (the worker runs the same one).
    app.store.warn_if_evicting().await;
    assert!(
        crate::common::logs().contains("maxmemory-policy is not noeviction"),
        "no warning logged"
    );
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory-policy")
        .arg("noeviction")
        .query_async(&mut admin)
        .await
        .unwrap();
    let snapshot = smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    assert_eq!(
        snapshot.verdict.status.as_str(),
        "ok",
        "{:?}",
        snapshot.verdict
    );
}

/// Redis's count of every command it has run (`INFO commandstats`).
async fn commands_run(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|l| {
            l.split("calls=")
                .nth(1)?
                .split(',')
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum()
}

/// Item 8: `/metrics` needs no token and sits on the listener the provider reaches, so a
/// flood of scrapes must cost Redis at most one snapshot a second, not one per request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_scrapes_costs_redis_one_snapshot_a_second() {
    let redis = crate::common::private_redis();
    let app = spawn_app(crate::common::settings_on(&redis.url(), |c| {
        c.redis.shards = 4
    }))
    .await;
    assert_eq!(app.get("/readyz").await.0, 200);
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // What one snapshot costs (the INFO reading it is one command itself).
    let before = commands_run(&mut conn).await;
    smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    let one = commands_run(&mut conn).await - before - 1;
    assert!(one > 20, "a snapshot of 4 shards is {one} commands");

    let before = commands_run(&mut conn).await;
    let started = Instant::now();
    let scrapes = (0..300).map(|_| async {
        let r = app
            .http
            .get(format!("{}/metrics", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        assert!(r.text().await.unwrap().contains("smsq_backlog"));
    });
    futures_util::future::join_all(scrapes).await;
    let took = started.elapsed();
    let spent = commands_run(&mut conn).await - before - 1;
    // Every started second may take one snapshot.
    let allowed = one * (took.as_secs() + 1);
    assert!(
        spent <= allowed,
        "300 scrapes in {took:?} ran {spent} commands; one snapshot is {one}"
    );
}

/// Item 8: behind `SMSQ_METRICS_TOKEN`, or on a listener of its own (`api.metrics_listen`).
#[tokio::test]
async fn metrics_can_want_a_token_and_live_on_their_own_listener() {
    let port = smsq::dev::local_redis::LocalRedis::free_port().unwrap();
    let mut s = settings(|c| c.api.metrics_listen = format!("127.0.0.1:{port}"));
    s.secrets.metrics_token = Some(Secret::new("metrics-token-0123456789"));
    let app = spawn_app(s).await;
    let r = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_json_error(r, 404, "not_found", "/metrics on the main listener").await;
    let url = format!("http://127.0.0.1:{port}/metrics");
    let up = crate::common::eventually(Duration::from_secs(5), "the metrics listener", || async {
        app.http.get(&url).send().await.ok()
    })
    .await;
    assert_json_error(up, 401, "unauthorized", "/metrics without the token").await;
    let r = app
        .http
        .get(&url)
        .bearer_auth("wrong-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let r = app
        .http
        .get(&url)
        .bearer_auth("metrics-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("smsq_verdict"));
}

const APP: &str = "app-backend-token-0123456789";
const OPS: &str = "operator-token-0123456789";

fn tokens(app: &[&str], admin: &[&str]) -> smsq::config::Settings {
    let mut s = settings(|_| {});
    s.secrets.api_tokens = app.iter().map(|t| Secret::new(*t)).collect();
    s.secrets.admin_tokens = admin.iter().map(|t| Secret::new(*t)).collect();
    s
}

async fn status_of(app: &crate::common::App, method: &str, path: &str, token: &str) -> u16 {
    let mut r = app
        .http
        .request(method.parse().unwrap(), format!("{}{path}", app.base))
        .bearer_auth(token);
    if method == "POST" {
        r = r.json(&serde_json::json!({"mobile": "13800138041"}));
    }
    r.send().await.unwrap().status().as_u16()
}

async fn login(app: &crate::common::App, token: &str, proto: Option<&str>) -> Option<String> {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut r = http
        .post(format!("{}/dashboard/login", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={token}"));
    if let Some(p) = proto {
        r = r.header("x-forwarded-proto", p);
    }
    let answer = r.send().await.unwrap();
    answer
        .headers()
        .get("set-cookie")
        .map(|c| c.to_str().unwrap().to_owned())
}

async fn admin_with_cookie(app: &crate::common::App, cookie: &str) -> u16 {
    let session = cookie.split(';').next().unwrap();
    app.http
        .get(format!("{}/v1/admin/status", app.base))
        .header("cookie", session)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Item 10: the web app's backend token opens the app's routes only; the operators' token
/// opens the admin side only; with no admin token the admin side is off.
#[tokio::test]
async fn app_tokens_and_admin_tokens_open_only_their_own_routes() {
    let app = spawn_app(tokens(&[APP], &[OPS])).await;
    assert_eq!(status_of(&app, "POST", "/v1/codes", APP).await, 202);
    assert_eq!(status_of(&app, "GET", "/v1/admin/status", APP).await, 401);
    assert_eq!(
        status_of(&app, "POST", "/v1/admin/dead/purge", APP).await,
        401
    );
    assert!(
        login(&app, APP, None).await.is_none(),
        "the app token opened a session"
    );
    assert_eq!(status_of(&app, "GET", "/v1/admin/status", OPS).await, 200);
    assert_eq!(status_of(&app, "POST", "/v1/codes", OPS).await, 401);

    let off = spawn_app(tokens(&[APP], &[])).await;
    let r = off
        .http
        .get(format!("{}/v1/admin/status", off.base))
        .bearer_auth(APP)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 403, "admin_disabled", "admin with no SMSQ_ADMIN_TOKENS").await;
    assert!(login(&off, APP, None).await.is_none());
}

/// Item 11: the cookie is Secure over TLS; a logout ends the session for good (a kept copy
/// of the cookie opens nothing); a token removed from the configuration ends its sessions.
#[tokio::test]
async fn sessions_are_secure_over_tls_and_revocable() {
    let app = spawn_app(tokens(&[APP], &[OPS, "second-operator-0123456789"])).await;
    let plain = login(&app, OPS, None).await.expect("a session");
    assert!(!plain.contains("Secure"), "{plain}");
    let tls = login(&app, OPS, Some("https")).await.expect("a session");
    assert!(tls.contains("; Secure"), "{tls}");
    let mut behind = tokens(&[APP], &[OPS]);
    behind.api.behind_tls = true;
    let behind = spawn_app(behind).await;
    assert!(
        login(&behind, OPS, None)
            .await
            .unwrap()
            .contains("; Secure")
    );

    // Logout: the server remembers it.
    assert_eq!(admin_with_cookie(&app, &plain).await, 200);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let out = http
        .post(format!("{}/dashboard/logout", app.base))
        .header("cookie", plain.split(';').next().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(out.status().as_u16(), 303);
    assert_eq!(
        admin_with_cookie(&app, &plain).await,
        401,
        "a copy of the logged-out cookie"
    );
    assert_eq!(
        admin_with_cookie(&app, &tls).await,
        200,
        "another session lives on"
    );

    // The same Redis and secret, the first operator's token taken out of the configuration.
    let second = login(&app, "second-operator-0123456789", None)
        .await
        .unwrap();
    let mut rotated = (*app.settings).clone();
    rotated.secrets.admin_tokens = vec![Secret::new("second-operator-0123456789")];
    let rotated = spawn_app(rotated).await;
    assert_eq!(
        admin_with_cookie(&rotated, &tls).await,
        401,
        "its token is gone"
    );
    assert_eq!(admin_with_cookie(&rotated, &second).await, 200);
}

/// Item 6: a job's history is read in O(its own events). With a million entries on the
/// events stream (what a busy day leaves), one read of a job's history takes well under a
/// millisecond of Redis time, as the slow log measures it; `/readyz` stays fast meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_history_read_costs_redis_its_own_events_not_the_stream() {
    use smsq::domain::Shard;

    let redis = crate::common::private_redis();
    let mut s = crate::common::settings_on(&redis.url(), |_| {});
    s.secrets.admin_tokens = vec![Secret::new(OPS)];
    let app = spawn_app(s).await;
    let fake = crate::common::spawn_fake(crate::common::fake_options()).await;
    let id = app.queue_message("13810000051").await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    crate::common::wait_for_status(&app, &id, "sent").await;
    stop.cancel();
    let _ = worker.await;

    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let events = app.store.keys(Shard::FIRST).events();
    // In slices a client's response timeout allows.
    let fill = redis::Script::new(
        "for i = 1, 50000 do redis.call('XADD', KEYS[1], '*', 'id', 'x', 'status', 'sent') end",
    );
    for _ in 0..20 {
        let _: () = fill.key(&events).invoke_async(&mut admin).await.unwrap();
    }
    let len: u64 = redis::cmd("XLEN")
        .arg(&events)
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(len >= 1_000_000);
    crate::common::log_every_command(&mut admin, 1000).await;

    let r = app
        .http
        .get(format!("{}/v1/admin/jobs/{id}", app.base))
        .bearer_auth(OPS)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let statuses: Vec<&str> = body["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["queued", "sending", "sent"], "{body}");

    // Every command the lookup ran, with its duration in µs.
    let lookup = crate::common::slow_log(&mut admin).await;
    assert!(!lookup.is_empty(), "the slow log saw nothing");
    let total_us: u64 = lookup.iter().map(|(us, _)| us).sum();
    assert!(
        total_us < 1000,
        "the history read took {total_us} µs of Redis: {lookup:?}"
    );
    assert!(
        lookup
            .iter()
            .all(|(_, args)| !args.iter().any(|a| a == &events)),
        "the events stream was read: {lookup:?}"
    );
}

/// Item 7: dead letters have a cap and a retention (the job records' TTL), and a replay by
/// id reads that letter alone, however many there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_capped_expire_and_replay_by_id_reads_one() {
    use redis::AsyncCommands;
    use smsq::domain::Shard;

    let redis = crate::common::private_redis();
    let app = spawn_app(crate::common::settings_on(&redis.url(), |c| {
        c.retry.max_attempts = 1;
        c.stream.dead_maxlen = 3;
    }))
    .await;
    let dead = app.store.keys(Shard::FIRST).dead();
    let mut conn = app.redis().await;
    // A letter from long ago, past any retention.
    let _: String = redis::cmd("XADD")
        .arg(&dead)
        .arg("1000-0")
        .arg("job")
        .arg("{}")
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut opts = crate::common::fake_options();
    opts.error_rate = 1.0;
    let fake = crate::common::spawn_fake(opts).await;
    let ids = app.queue_messages(13810000060, 5).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 1);
    for id in &ids {
        crate::common::wait_for_status(&app, id, "dead").await;
    }
    stop.cancel();
    let _ = worker.await;
    let letters: redis::streams::StreamRangeReply = conn.xrange_all(&dead).await.unwrap();
    assert_eq!(letters.ids.len(), 3, "capped at stream.dead_maxlen");
    assert!(
        letters.ids.iter().all(|e| e.id != "1000-0"),
        "the old letter outlived its retention"
    );
    let kept: Vec<String> = letters
        .ids
        .iter()
        .map(|e| e.get::<String>("job").unwrap())
        .collect();
    for id in &ids[2..] {
        assert!(
            kept.iter().any(|j| j.contains(id.as_str())),
            "{id} not among the newest"
        );
    }

    // Many letters (bigger than any page), then a replay by job id, watched by the slow log.
    let fill = redis::Script::new(
        "for i = 1, 20000 do redis.call('XADD', KEYS[1], '*', 'job', '{}', 'error', 'x') end",
    );
    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = fill.key(&dead).invoke_async(&mut admin).await.unwrap();
    crate::common::log_every_command(&mut admin, 1000).await;
    let done = smsq::ops::dlq::replay(&app.records, &[ids[4].clone()], false)
        .await
        .unwrap();
    assert_eq!(done.replayed, 1, "{}", done.report);
    let texts: Vec<Vec<String>> = crate::common::slow_log(&mut admin)
        .await
        .into_iter()
        .map(|(_, args)| args)
        .collect();
    let whole_reads: Vec<&Vec<String>> = texts
        .iter()
        .filter(|a| a.iter().any(|x| x == &dead) && a.iter().any(|x| x == "-" || x == "+"))
        .collect();
    assert!(
        whole_reads.is_empty(),
        "the replay ranged over the letters: {whole_reads:?}"
    );
    let lengths: Vec<&Vec<String>> = texts.iter().filter(|a| a[0] == "XLEN").collect();
    assert!(lengths.is_empty(), "{lengths:?}");
}

/// Item 3: the first attempt's answer was lost but the provider accepted it; the retry gets
/// `160054` (it already has this reqId), so smsq never learns the message id. The delivery
/// report still finds the job, by the reqId it echoes, and the job ends `delivered`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_sent_through_160054_still_gets_its_delivery_report() {
    use smsq::provider::TemplateSms;

    let app = spawn_app(settings(|_| {})).await;
    let mut opts = crate::common::fake_options();
    opts.report_url = Some(format!(
        "{}/v1/provider/ronglian/reports/{}",
        app.base,
        crate::common::REPORTS_TOKEN
    ));
    // Late enough that the worker's 160054 is written first, as when the platform is slow.
    opts.report_delay_ms = 1500;
    let fake = crate::common::spawn_fake(opts).await;
    let id = app.queue_message("13810000071").await;
    // The attempt whose answer never came back: accepted by the provider under the job id.
    let c = crate::common::client(&fake.base_url(), crate::common::TOKEN, 2000);
    let first = c
        .send(&TemplateSms {
            to: "13810000071",
            template_id: "1",
            datas: &["hello".to_owned()],
            req_id: Some(&id),
        })
        .await
        .expect("the provider accepts the first attempt");
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 1);
    let sent = crate::common::wait_for_status(&app, &id, "sent").await;
    assert_eq!(sent["provider_status"], "160054", "{sent}");
    let job = crate::common::wait_for_status(&app, &id, "delivered").await;
    stop.cancel();
    let _ = worker.await;
    assert_eq!(
        job["provider_message_id"],
        first.message_id.as_str(),
        "{job}"
    );
    assert_eq!(fake.messages().len(), 1, "one SMS at the provider");
}

/// A job two attempts are at: the first worker ("frozen") began it, was taken for dead, and
/// a second ("rescuer") reclaimed the entry and began its own attempt.
struct Overtaken {
    id: String,
    job: smsq::domain::Job,
    frozen: (smsq::store::Entry, smsq::store::Fence),
    rescuer: (smsq::store::Entry, smsq::store::Fence),
}

/// The next new entry of shard 0, read as `consumer` (a worker's read, XREADGROUP `>`), and
/// its job.
async fn read_one(
    app: &crate::common::App,
    consumer: &str,
) -> (smsq::store::Entry, smsq::domain::Job) {
    let mut conn = smsq::store::blocking_connection(&app.settings.redis, Duration::ZERO).unwrap();
    let entry = app
        .queue
        .read(&mut conn, smsq::domain::Shard::FIRST, consumer, 1, None)
        .await
        .unwrap()
        .remove(0);
    let job = entry.job.clone().unwrap();
    (entry, job)
}

/// A job the first worker ("frozen") began, whose entry a second ("rescuer") then claimed
/// and has not begun yet: `(id, job, entry, frozen's fence)`.
async fn claimed(
    app: &crate::common::App,
    mobile: &str,
) -> (
    String,
    smsq::domain::Job,
    smsq::store::Entry,
    smsq::store::Fence,
) {
    use smsq::domain::{Shard, now_ms};
    use smsq::store::{Begin, Fence};

    let keys = app.store.keys(Shard::FIRST);
    let id = app.queue_message(mobile).await;
    let (entry, job) = read_one(app, "frozen").await;
    let frozen = Fence::new("frozen");
    let begun = app.queue.begin(&entry, &job, &frozen, now_ms()).await;
    assert!(matches!(begun.unwrap(), Begin::Send { .. }));
    let mut redis = app.redis().await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(keys.jobs())
        .arg(smsq::store::GROUP)
        .arg("rescuer")
        .arg(0)
        .arg(&entry.entry_id)
        .query_async(&mut redis)
        .await
        .unwrap();
    (id, job, entry, frozen)
}

async fn overtaken(app: &crate::common::App, mobile: &str) -> Overtaken {
    use smsq::domain::now_ms;
    use smsq::store::Fence;

    let (id, job, entry, frozen) = claimed(app, mobile).await;
    let mut again = entry.clone();
    again.first_delivery = false;
    let rescuer = Fence::new("rescuer");
    app.queue
        .begin(&again, &job, &rescuer, now_ms())
        .await
        .unwrap();
    Overtaken {
        id,
        job,
        frozen: (entry, frozen),
        rescuer: (again, rescuer),
    }
}

/// Item 1: a worker frozen mid-send is taken for dead; another reclaims the entry and
/// sends. Whatever order the two outcomes arrive in, the job ends as the provider saw it
/// (`sent`), the stale failure writes nothing (no `failed`, no dead letter, no retry), and
/// the stale worker never acks the entry the other one holds.
#[tokio::test]
async fn a_stale_attempt_never_writes_over_what_happened() {
    use redis::AsyncCommands;
    use smsq::domain::{JobStatus, Shard, now_ms};
    use smsq::store::{Outcome, ProviderFailure, Settled};

    let app = spawn_app(settings(|_| {})).await;
    app.queue.ensure_group().await.unwrap();
    let keys = app.store.keys(Shard::FIRST);
    let mut redis = app.redis().await;
    let failure = || ProviderFailure {
        error: "172001 network error".into(),
        provider_status: "172001".into(),
    };
    let sent = |sid: &str| Outcome::Sent {
        provider_status: "000000".into(),
        message_id: sid.into(),
    };
    let stale_outcomes = [
        Outcome::Failed(failure()),
        Outcome::Dead(failure()),
        Outcome::RetryAt(now_ms() + 60_000, failure()),
    ];
    for (n, stale_outcome) in stale_outcomes.into_iter().enumerate() {
        let o = overtaken(&app, &format!("1381000009{n}")).await;
        // The frozen worker wakes first, with the failure it got.
        let (entry, fence) = &o.frozen;
        let settled = app.queue.settle(
            entry,
            &o.job,
            fence,
            1,
            &stale_outcome,
            "ronglian",
            0,
            now_ms(),
        );
        assert_eq!(settled.await.unwrap(), Settled::Stale, "{stale_outcome:?}");
        assert_eq!(
            app.backlog().await,
            1,
            "the stale worker acked the rescuer's entry"
        );
        let retries: u64 = redis.zcard(keys.retry()).await.unwrap();
        assert_eq!(retries, 0, "a second retry chain");
        let dead: u64 = redis.xlen(keys.dead()).await.unwrap();
        assert_eq!(dead, 0, "a dead letter for a job being sent");
        // The rescuer's send succeeds and is recorded.
        let (entry, fence) = &o.rescuer;
        let outcome = sent("abcdef0123456789abcdef0123456789");
        let settled = app
            .queue
            .settle(entry, &o.job, fence, 2, &outcome, "ronglian", 0, now_ms());
        assert_eq!(settled.await.unwrap(), Settled::Status(JobStatus::Sent));
        let (_, record) = app.get(&format!("/v1/jobs/{}", o.id)).await;
        assert_eq!(record["status"], "sent", "{record}");
        assert_eq!(app.backlog().await, 0);
    }

    // The other order: the frozen worker's send had gone through after all (its `sent` is
    // written, whoever owns the job), and the rescuer's later failure cannot undo it.
    let o = overtaken(&app, "13810000099").await;
    let (entry, fence) = &o.frozen;
    let outcome = sent("00112233445566778899aabbccddeeff");
    let settled = app
        .queue
        .settle(entry, &o.job, fence, 1, &outcome, "ronglian", 0, now_ms());
    assert_eq!(settled.await.unwrap(), Settled::Status(JobStatus::Sent));
    assert_eq!(app.backlog().await, 1, "not ours to ack");
    let (entry, fence) = &o.rescuer;
    let failed = Outcome::Failed(failure());
    let settled = app
        .queue
        .settle(entry, &o.job, fence, 2, &failed, "ronglian", 0, now_ms());
    assert_eq!(settled.await.unwrap(), Settled::Status(JobStatus::Sent));
    let (_, record) = app.get(&format!("/v1/jobs/{}", o.id)).await;
    assert_eq!(record["status"], "sent", "{record}");
    assert_eq!(
        record["provider_message_id"],
        "00112233445566778899aabbccddeeff"
    );
    assert_eq!(app.backlog().await, 0, "the rescuer acked its entry");
}

/// The two ends a frozen worker may write late: the provider accepted the SMS, or refused it
/// for good.
fn a_send_and_a_refusal() -> [smsq::store::Outcome; 2] {
    use smsq::store::{Outcome, ProviderFailure};
    [
        Outcome::Sent {
            provider_status: "000000".into(),
            message_id: "abcdef0123456789abcdef0123456789".into(),
        },
        Outcome::Failed(ProviderFailure {
            error: "160040 blocked".into(),
            provider_status: "160040".into(),
        }),
    ]
}

/// The other window of a takeover: the entry is claimed by another worker that has not begun
/// it yet, so the frozen attempt still owns the job. Its outcome is written and it acks the
/// entry itself (no XPENDING asked); the rescuer's begin then finds the job finished and only
/// acks: one send, nothing left pending, whatever the outcome.
#[tokio::test]
async fn an_owner_settling_an_entry_claimed_but_not_begun_ends_it_once() {
    use smsq::domain::{JobStatus, now_ms};
    use smsq::store::{Begin, Fence, Settled};

    let app = spawn_app(settings(|_| {})).await;
    app.queue.ensure_group().await.unwrap();
    let outcomes = a_send_and_a_refusal()
        .into_iter()
        .zip([JobStatus::Sent, JobStatus::Failed]);
    for (n, (outcome, status)) in outcomes.enumerate() {
        let (id, job, entry, frozen) = claimed(&app, &format!("1381000008{n}")).await;
        let settled = app
            .queue
            .settle(&entry, &job, &frozen, 1, &outcome, "ronglian", 0, now_ms())
            .await
            .unwrap();
        assert_eq!(settled, Settled::Status(status));
        assert_eq!(
            app.backlog().await,
            0,
            "the owner's outcome acked the entry"
        );
        let mut again = entry.clone();
        again.first_delivery = false;
        let rescuer = Fence::new("rescuer");
        let begun = app.queue.begin(&again, &job, &rescuer, now_ms()).await;
        assert!(
            matches!(begun.unwrap(), Begin::Finished(s) if s == status),
            "the rescuer would send it again"
        );
        let (_, record) = app.get(&format!("/v1/jobs/{id}")).await;
        assert_eq!(record["status"], status.as_str(), "{record}");
    }
}

/// Item 1: after a local Redis error a worker takes its own entries back; one another
/// worker reclaimed meanwhile (it took us for dead) is not taken from it.
#[tokio::test]
async fn taking_back_our_entries_never_steals_one_another_worker_holds() {
    use smsq::domain::Shard;

    let app = spawn_app(settings(|_| {})).await;
    app.queue.ensure_group().await.unwrap();
    let keys = app.store.keys(Shard::FIRST);
    app.queue_messages(13810000110, 2).await;
    let mut conn = smsq::store::blocking_connection(&app.settings.redis, Duration::ZERO).unwrap();
    let entries = app
        .queue
        .read(&mut conn, Shard::FIRST, "me", 2, None)
        .await
        .unwrap();
    let ids: Vec<String> = entries.iter().map(|e| e.entry_id.clone()).collect();
    let mut redis = app.redis().await;
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(keys.jobs())
        .arg(smsq::store::GROUP)
        .arg("other")
        .arg(0)
        .arg(&ids[0])
        .query_async(&mut redis)
        .await
        .unwrap();
    for count_delivery in [true, false] {
        let back = app
            .queue
            .claim_own("me", Shard::FIRST, &ids, count_delivery)
            .await
            .unwrap();
        let back: Vec<&str> = back.iter().map(|e| e.entry_id.as_str()).collect();
        assert_eq!(back, [ids[1].as_str()], "count_delivery {count_delivery}");
    }
    let owner: Vec<redis::Value> = redis::cmd("XPENDING")
        .arg(keys.jobs())
        .arg(smsq::store::GROUP)
        .arg(&ids[0])
        .arg(&ids[0])
        .arg(1)
        .query_async(&mut redis)
        .await
        .unwrap();
    let shown = format!("{owner:?}");
    assert!(shown.contains("other"), "{shown}");
}

/// Item 7: the dashboard's list of dead letters pages through all of them, 100 at a time,
/// each letter once, over every shard.
#[tokio::test]
async fn the_admin_dead_letter_list_pages_through_every_shard() {
    let mut s = crate::common::settings(|c| c.redis.shards = 3);
    s.secrets.admin_tokens = vec![Secret::new(OPS)];
    let app = spawn_app(s).await;
    let mut conn = app.redis().await;
    for (i, shard) in app.store.shards().all().enumerate() {
        let fill = redis::Script::new(
            "for i = 1, 90 do redis.call('XADD', KEYS[1], '*', 'job', '{}', 'error', ARGV[1]) end",
        );
        let _: () = fill
            .key(app.store.keys(shard).dead())
            .arg(format!("shard {i}"))
            .invoke_async(&mut conn)
            .await
            .unwrap();
    }
    let (mut seen, mut after, mut pages) = (Vec::new(), None::<String>, 0);
    loop {
        let query = after
            .as_ref()
            .map_or(String::new(), |a| format!("?after={a}"));
        let r = app
            .http
            .get(format!("{}/v1/admin/dead{query}", app.base))
            .bearer_auth(OPS)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let page: serde_json::Value = r.json().await.unwrap();
        assert_eq!(page["total"], 270);
        let letters = page["dead_letters"].as_array().unwrap();
        assert!(letters.len() <= 100);
        seen.extend(letters.iter().map(|d| d["id"].as_str().unwrap().to_owned()));
        pages += 1;
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_owned()),
            None => break,
        }
    }
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!((seen.len(), unique.len(), pages), (270, 270, 3));
    let r = app
        .http
        .get(format!("{}/v1/admin/dead?after=nonsense", app.base))
        .bearer_auth(OPS)
        .send()
        .await
        .unwrap();
    assert_json_error(r, 400, "invalid_request", "a cursor that is not an id").await;
}

/// Issue 18, item 3, attacked as the issue found it: 21 addresses inside one IPv6 /64 are
/// one user; after `198.51.100.9` hits its cap, `::ffff:198.51.100.9` is the same client;
/// many addresses of one /24 (or /48) meet the looser network cap; other networks go on.
#[tokio::test]
async fn per_address_caps_count_networks_not_single_addresses() {
    let app = spawn_app(settings(|c| {
        c.code.hourly_limit_per_ip = 20;
        c.code.hourly_limit_per_network = 30;
    }))
    .await;
    let issue = |n: u64, ip: String| {
        let app = &app;
        async move {
            let r = app
                .post(
                    "/v1/codes",
                    serde_json::json!({"mobile": smsq::dev::bench::mobile(n), "client_ip": ip}),
                )
                .await;
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap();
            (status, body["error"].as_str().unwrap_or("").to_owned())
        }
    };
    let mut n = 0;
    let mut next = || {
        n += 1;
        n
    };
    // One /64, 21 different addresses: the 21st is the same user's 21st code.
    for i in 1..=20 {
        let (status, _) = issue(next(), format!("2001:db8:aa:1::{i:x}")).await;
        assert_eq!(status, 202, "address {i}");
    }
    let (status, error) = issue(next(), "2001:db8:aa:1:ffff:ffff:ffff:ffff".into()).await;
    assert_eq!((status, error.as_str()), (429, "ip_limit"));
    // IPv4 and its IPv4-mapped IPv6 form are one client.
    for _ in 0..20 {
        assert_eq!(issue(next(), "198.51.100.9".into()).await.0, 202);
    }
    let (status, error) = issue(next(), "::ffff:198.51.100.9".into()).await;
    assert_eq!(
        (status, error.as_str()),
        (429, "ip_limit"),
        "the mapped form got through"
    );
    // The rest of that /24: 10 more codes reach its network cap of 30, whatever the address.
    for i in 10..20 {
        assert_eq!(issue(next(), format!("198.51.100.{i}")).await.0, 202);
    }
    let (status, error) = issue(next(), "198.51.100.77".into()).await;
    assert_eq!((status, error.as_str()), (429, "network_limit"));
    // The /48 around the first /64: other /64s count toward it (20 so far, 30 allowed).
    for i in 0..10 {
        assert_eq!(
            issue(next(), format!("2001:db8:aa:{:x}::1", 100 + i))
                .await
                .0,
            202
        );
    }
    let (status, error) = issue(next(), "2001:db8:aa:ffff::1".into()).await;
    assert_eq!((status, error.as_str()), (429, "network_limit"));
    // Another network is not touched.
    assert_eq!(issue(next(), "203.0.113.5".into()).await.0, 202);
    assert_eq!(issue(next(), "2001:db8:bb::1".into()).await.0, 202);
}

/// Item 16: each Redis call here takes 900 ms (under `redis.timeout_ms`), so a refused
/// `POST /v1/codes` with an `Idempotency-Key` and a `client_ip` needs four of them (look up
/// the key, reserve the per-IP slot, the issue script, give the slot back): 3.6 s, past the
/// API's 2.5 s deadline. The client gets its 503 while the issue script is in flight; the
/// slot must still be given back, or every cut request would eat one of the address's codes.
/// (Verify has two steps, each under `redis.timeout_ms`, so the deadline cannot fall between
/// them; a client hanging up does not cut a request either, as hyper only notices when it
/// writes the answer. Both were tried; neither left a partial verify before the fix.)
#[tokio::test]
async fn a_request_cut_between_its_redis_steps_still_finishes_them() {
    let slow = crate::common::slow_redis(&crate::common::redis_url()).await;
    let app = spawn_app(crate::common::settings_on(&slow.url, |c| {
        c.redis.timeout_ms = 1000;
        c.code.hourly_limit_per_ip = 5;
    }))
    .await;
    let mut redis = redis::Client::open(crate::common::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let ip = "198.51.100.20";
    let body = serde_json::json!({"mobile": "13900200001", "client_ip": ip});
    let first = app.post("/v1/codes", body.clone()).await;
    assert_eq!(first.status().as_u16(), 202);
    let user_key = {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{{{}:ip:*", app.prefix()))
            .query_async(&mut redis)
            .await
            .unwrap();
        keys.into_iter()
            .find(|k| !k.contains(":net:"))
            .expect("the address's hourly key")
    };
    let slots = |mut redis: redis::aio::MultiplexedConnection, key: String| async move {
        redis::cmd("GET")
            .arg(&key)
            .query_async::<Option<u32>>(&mut redis)
            .await
            .unwrap()
    };
    assert_eq!(slots(redis.clone(), user_key.clone()).await, Some(1));

    slow.set_delay(Duration::from_millis(900));
    let started = Instant::now();
    let cut = app
        .http
        .post(format!("{}/v1/codes", app.base))
        .header("Idempotency-Key", "cut-at-the-deadline")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(cut.status().as_u16(), 503, "{:?}", started.elapsed());
    assert!(started.elapsed() < Duration::from_millis(3500));
    crate::common::eventually(Duration::from_secs(10), "the slot given back", || {
        let (redis, key) = (redis.clone(), user_key.clone());
        async move { (slots(redis, key).await == Some(1)).then_some(()) }
    })
    .await;
}

/// A Redis near its `maxmemory` is said before it refuses writes: `smsq status` shows the
/// memory used against it, and the verdict is `degraded` past `status.memory_alert_percent`.
#[tokio::test]
async fn a_redis_near_its_maxmemory_makes_the_verdict_degraded() {
    let redis = crate::common::private_redis();
    let client = redis::Client::open(redis.url()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let app = spawn_app(crate::common::settings_on(&redis.url(), |_| {})).await;
    let before = smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    let used = before
        .redis
        .used_memory
        .expect("one server reports its memory");
    assert_eq!(before.redis.maxmemory, Some(0), "no limit by default");
    assert!(
        !before
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("maxmemory (")),
        "{:?}",
        before.verdict
    );
    // A limit the data already fills to about 90 %.
    let limit = used * 10 / 9;
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(limit)
        .query_async(&mut admin)
        .await
        .unwrap();
    let after = smsq::snapshot::Snapshot::take(&app.records, &app.settings)
        .await
        .unwrap();
    assert_eq!(after.redis.maxmemory, Some(limit));
    assert_eq!(
        after.verdict.status.as_str(),
        "degraded",
        "{:?}",
        after.verdict
    );
    assert!(
        after
            .verdict
            .reasons
            .iter()
            .any(|r| r.contains("maxmemory (")),
        "{:?}",
        after.verdict
    );
    let text = smsq::ops::status::render(&after);
    assert!(text.contains("MB maxmemory ("), "{text}");
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(0)
        .query_async(&mut admin)
        .await
        .unwrap();
}

/// Retention follows time, not counts: a job's record and its history live in the record for
/// `status.ttl_secs`, and the events stream keeps `stream.events_retention_secs` of events,
/// so a burst 30 times what the old count cap (100 in this test's old form) let through
/// erases neither the record, nor its history, nor a single event.
#[tokio::test]
async fn a_record_and_its_history_outlive_a_burst_far_past_any_count() {
    let app = spawn_app(crate::common::settings(|_| {})).await;
    let fake = crate::common::spawn_fake(crate::common::fake_options()).await;
    let first = app.queue_message("13700000001").await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    crate::common::wait_for_status(&app, &first, "sent").await;
    stop.cancel();
    worker.await.unwrap();
    // 30 times the cap, with no worker running: only `queued` events, 3,000 of them.
    app.queue_messages(13_700_100_000, 3_000).await;
    let mut conn = app.redis().await;
    let events: u64 = redis::cmd("XLEN")
        .arg(app.store.keys(smsq::domain::Shard::FIRST).events())
        .query_async(&mut conn)
        .await
        .unwrap();
    // 3 events of the first job and one per queued message: none trimmed.
    assert!(events >= 3_003, "the events stream lost events: {events}");
    let job = crate::common::status_of(&app, &first).await;
    assert_eq!(job["status"], "sent", "{job}");
    assert_eq!(
        crate::common::history(&app, &first).await,
        ["queued", "sending", "sent"],
        "{job}"
    );
}

/// The events stream forgets by time: with a retention of 1 s, the first events go once
/// they are older than that (whole stream nodes at a time), and the job's history, kept in
/// its record, stays whole.
#[tokio::test]
async fn the_events_stream_forgets_by_time_and_the_history_stays() {
    let app = spawn_app(crate::common::settings(|c| {
        c.stream.events_retention_secs = 1
    }))
    .await;
    let first = app.queue_message("13700000002").await;
    let entry = app.oldest_event().await.expect("the first job's event").id;
    app.queue_until_trimmed(&entry, 13_700_200_000).await;
    assert_eq!(crate::common::history(&app, &first).await, ["queued"]);
}

/// The sealed code lives in the code record, which a newer code takes over. A worker frozen
/// mid-send of the old code ends its job (`sent`, or a failure) after the user asked again:
/// it must drop only its own sealed code. Were it to drop the record's `o` whatever job it
/// names, the new job would find no code, end `expired`, and the user would never get it.
#[tokio::test]
async fn a_frozen_worker_ending_an_old_code_leaves_the_newer_code_to_be_sent() {
    use smsq::domain::{JobStatus, now_ms};
    use smsq::store::{Begin, Fence};

    let app = spawn_app(settings(|_| {})).await;
    app.queue.ensure_group().await.unwrap();
    for (n, outcome) in a_send_and_a_refusal().into_iter().enumerate() {
        let mobile = format!("1381000009{n}");
        let (_, first) = app
            .call("/v1/codes", serde_json::json!({"mobile": mobile}))
            .await;
        let first = first["job_id"].as_str().unwrap().to_owned();
        let (entry, job) = read_one(&app, "frozen").await;
        assert_eq!(job.id.as_str(), first);
        let frozen = Fence::new("frozen");
        let begun = app.queue.begin(&entry, &job, &frozen, now_ms()).await;
        assert!(matches!(
            begun.unwrap(),
            Begin::Send {
                sealed: Some(_),
                ..
            }
        ));

        // The user asks again while the first send hangs (past the resend interval): a new
        // code, a new job.
        app.end_resend_window("default", &mobile).await;
        let (status, second) = app
            .call("/v1/codes", serde_json::json!({"mobile": mobile}))
            .await;
        assert_eq!(status, 202, "{second}");
        let second = second["job_id"].as_str().unwrap().to_owned();
        let new_code = app.otp(&second).await.expect("the new code is sealed");

        app.queue
            .settle(&entry, &job, &frozen, 1, &outcome, "ronglian", 0, now_ms())
            .await
            .unwrap();
        assert_eq!(
            app.otp(&second).await.as_deref(),
            Some(new_code.as_str()),
            "the frozen worker's end took the newer code's sealed code"
        );
        let (entry, job) = read_one(&app, "rescuer").await;
        assert_eq!(job.id.as_str(), second);
        let begun = app
            .queue
            .begin(&entry, &job, &Fence::new("w2"), now_ms())
            .await;
        assert!(
            matches!(
                begun.unwrap(),
                Begin::Send {
                    sealed: Some(_),
                    ..
                }
            ),
            "the newer code would not be sent"
        );
        let (_, record) = app.get(&format!("/v1/jobs/{first}")).await;
        assert_ne!(record["status"], JobStatus::Expired.as_str(), "{record}");
    }
}

/// A worker frozen mid-send is taken for dead and its entry claimed by another, which has
/// not begun it yet. The frozen worker wakes and writes a transient failure: a retry, the
/// job's next attempt. The claimer must not send the old entry as well: that would be a
/// second line of attempts (two sends now, two retries later). Nor after the retry began.
#[tokio::test]
async fn a_claimed_entry_whose_attempt_already_retried_is_not_sent_again() {
    use redis::AsyncCommands;
    use smsq::domain::{JobStatus, Shard, now_ms};
    use smsq::store::{Begin, Fence, Outcome, ProviderFailure};

    let app = spawn_app(settings(|_| {})).await;
    app.queue.ensure_group().await.unwrap();
    let keys = app.store.keys(Shard::FIRST);
    let busy = ProviderFailure {
        error: "172001 network".into(),
        provider_status: "172001".into(),
    };
    for (n, retry_began_first) in [false, true].into_iter().enumerate() {
        let (_, job, entry, frozen) = claimed(&app, &format!("1381000010{n}")).await;
        let retry = Outcome::RetryAt(now_ms() - 1, busy.clone());
        app.queue
            .settle(&entry, &job, &frozen, 1, &retry, "ronglian", 0, now_ms())
            .await
            .unwrap();
        let mut redis = app.redis().await;
        let due: Vec<String> = redis.zrange(keys.retry(), 0, -1).await.unwrap();
        assert_eq!(due.len(), 1, "one retry: {due:?}");
        if retry_began_first {
            // The retry is due at once: promoted and begun by a third worker.
            app.queue
                .promote_due(Shard::FIRST, now_ms(), 10)
                .await
                .unwrap();
            let (next, next_job) = read_one(&app, "third").await;
            assert_eq!(next_job.attempt, 1);
            let begun = app
                .queue
                .begin(&next, &next_job, &Fence::new("third"), now_ms())
                .await;
            assert!(
                matches!(begun.unwrap(), Begin::Send { .. }),
                "the retry is sent"
            );
        }
        let mut again = entry.clone();
        again.first_delivery = false;
        let begun = app
            .queue
            .begin(&again, &job, &Fence::new("rescuer"), now_ms())
            .await
            .unwrap();
        let expected = if retry_began_first {
            JobStatus::Sending
        } else {
            JobStatus::Retrying
        };
        assert!(
            matches!(begun, Begin::Overtaken(s) if s == expected),
            "the claimer would send the old attempt again: {begun:?}"
        );
        if !retry_began_first {
            let due: Vec<String> = redis.zrange(keys.retry(), 0, -1).await.unwrap();
            assert_eq!(due.len(), 1, "still one line of attempts");
        }
        let _: () = redis.del(keys.retry()).await.unwrap();
    }
}
