//! Many workers, one account: the fleet-wide rate limit, the shared pause, heartbeats and fast
//! reclaim after `kill -9`, and the poison-pill limit.

use smsq::domain::Shard;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use smsq::dev::bench::busiest_second;
use smsq::domain::now_us;
use smsq::startup::Application;
use smsq::store::Grant;
use smsq::worker::Limiter;

use crate::common::{
    KillOnDrop, child_env, eventually, fake_options, history, settings, signal, spawn_app,
    spawn_fake, spawn_worker_process, wait_for_status,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_limiters_share_one_rate_even_when_one_dies_holding_slots() {
    const RATE: u32 = 200;
    const BURST: u32 = 20;
    let app = Application::build(settings(|_| {})).unwrap();
    let store = smsq::store::Queue::new(app.store().clone());
    // A process that took slots and died before using them: they are spent, never re-issued.
    let dead = Limiter::new(store.clone(), None, RATE, BURST);
    let lease = store
        .lease(None, &dead.policy().script(), 10)
        .await
        .unwrap();
    let Grant::Slots(held) = lease.grant else {
        panic!("an idle limiter grants slots at once: {lease:?}")
    };
    let mut times: Vec<i64> = held
        .iter()
        .map(|o| lease.now_us + o.as_micros() as i64)
        .collect();

    let run_for = Duration::from_millis(2500);
    let started = Instant::now();
    let started_us = now_us();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let limiter = Limiter::new(store.clone(), None, RATE, BURST);
        for _ in 0..25 {
            let limiter = limiter.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                while started.elapsed() < run_for {
                    limiter.acquire().await;
                    mine.push(now_us());
                }
                mine
            });
        }
    }
    while let Some(mine) = tasks.join_next().await {
        times.extend(mine.unwrap());
    }
    // Tasks still waiting at the end get their slot later: count the run's window only.
    let end_us = started_us + run_for.as_micros() as i64;
    let sent = times
        .iter()
        .filter(|t| (started_us..end_us).contains(t))
        .count();
    let busiest = busiest_second(&times);
    let expected = f64::from(RATE) * run_for.as_secs_f64();
    println!(
        "4 limiters, {RATE}/s burst {BURST}: {sent} sends in {run_for:?}, busiest second {busiest}"
    );
    assert!(
        busiest <= (RATE + BURST) as usize,
        "busiest second {busiest}"
    );
    assert!(
        (sent as f64) > 0.85 * expected && (sent as f64) < expected + f64::from(BURST),
        "{sent} sends, expected about {expected}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_stops_every_limiter_until_it_ends() {
    let app = Application::build(settings(|_| {})).unwrap();
    let store = smsq::store::Queue::new(app.store().clone());
    let pauser = Limiter::new(store.clone(), None, 1000, 20);
    let other = Limiter::new(store.clone(), None, 1000, 20);
    other.acquire().await;
    let pause = Duration::from_millis(800);
    let now = smsq::domain::now_ms();
    pauser
        .pause_all(now + pause.as_millis() as i64, now, "111111")
        .await
        .unwrap();
    let asked = Instant::now();
    // Slots granted before the pause may still be in hand: up to one horizon ahead (50 ms),
    // usable up to 40 ms late. Past that, nothing until the pause ends.
    let grace = Duration::from_millis(100);
    while asked.elapsed() < grace {
        other.acquire().await;
    }
    assert!(
        asked.elapsed() >= pause - Duration::from_millis(20),
        "a slot {:?} into an {pause:?} pause",
        asked.elapsed()
    );
    let mut conn = redis::Client::open(app.settings().redis.url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pause_key: Option<String> = conn
        .get(app.store().keys(Shard::FIRST).pause())
        .await
        .unwrap();
    assert_eq!(pause_key, None, "the pause key expires with the pause");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_worker_processes_send_at_the_fleet_rate() {
    let app = spawn_app(settings(|_| {})).await;
    let fake = spawn_fake(fake_options()).await;
    let ids = app.queue_messages(13700000000, 400).await;
    let env = child_env(&app.settings, &fake.base_url());
    let limit = [
        ("SMSQ_WORKER__RATE_PER_SEC", "40"),
        ("SMSQ_WORKER__BURST", "5"),
    ];
    let _workers: Vec<KillOnDrop> = ["rate-a", "rate-b", "rate-c"]
        .into_iter()
        .map(|name| KillOnDrop(spawn_worker_process(&env, name, &limit)))
        .collect();
    let messages = eventually(Duration::from_secs(40), "400 messages sent", || async {
        let m = fake.messages();
        (m.len() >= ids.len()).then_some(m)
    })
    .await;
    let times: Vec<i64> = messages.iter().map(|m| m.received_us).collect();
    let busiest = busiest_second(&times);
    let (first, last) = (times.iter().min().unwrap(), times.iter().max().unwrap());
    let rate = (times.len() - 1) as f64 / ((last - first) as f64 / 1e6);
    println!("3 worker processes at 40/s burst 5: {rate:.2} sends/s, busiest second {busiest}");
    assert_eq!(messages.len(), 400, "each message once");
    assert!(busiest <= 45, "busiest second had {busiest} sends");
    assert!((rate - 40.0).abs() <= 2.0, "achieved {rate:.2}/s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_too_fast_answer_pauses_every_worker() {
    let pause = Duration::from_millis(1500);
    let app = spawn_app(settings(|c| c.worker.pause_ms = 1500)).await;
    let mut opts = fake_options();
    opts.answer_first = vec!["111111".into()];
    let fake = spawn_fake(opts).await;
    let (_a, stop_a) = app.spawn_worker(&fake.base_url(), 4);
    let (_b, stop_b) = app.spawn_worker(&fake.base_url(), 4);
    let ids = app.queue_messages(13710000000, 20).await;
    let messages = eventually(Duration::from_secs(15), "20 messages sent", || async {
        let m = fake.messages();
        (m.len() >= ids.len()).then_some(m)
    })
    .await;
    stop_a.cancel();
    stop_b.cancel();
    let told = fake.scripted()[0].received_us;
    // Slots handed out before the pause can be used for one horizon (50 ms) plus lateness.
    let paused_from = told + 100_000;
    let paused_until = told + pause.as_micros() as i64;
    let during: Vec<i64> = messages
        .iter()
        .map(|m| m.received_us)
        .filter(|t| (paused_from..paused_until).contains(t))
        .collect();
    assert!(during.is_empty(), "{} sends during the pause", during.len());
    assert!(
        messages.iter().any(|m| m.received_us >= paused_until),
        "sending resumed after the pause"
    );
    // The paused job did not use up an attempt: sent on its first counted attempt.
    for id in &ids {
        let job = wait_for_status(&app, id, "sent").await;
        assert_eq!(job["attempts"], 1, "{id}: {job}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_workers_sends_are_resumed_by_another_within_seconds() {
    let app = spawn_app(settings(|_| {})).await;
    let mut opts = fake_options();
    opts.delay_ms = 1000;
    let fake = spawn_fake(opts).await;
    // The shipped defaults, but for the test's own Redis, prefix and provider.
    let env = child_env(&app.settings, &fake.base_url());
    let default_block = [("SMSQ_WORKER__BLOCK_MS", "2000")];
    let mut victim = KillOnDrop(spawn_worker_process(&env, "victim", &default_block));
    // As many as the victim's concurrency (16): all of them in flight when it dies.
    let ids = app.queue_messages(13720000000, 16).await;
    app.wait_all(&ids, "sending", Duration::from_secs(10)).await;
    let _survivor = KillOnDrop(spawn_worker_process(&env, "survivor", &default_block));
    signal(&victim.0, libc::SIGKILL);
    let killed = Instant::now();
    let _ = victim.0.wait();
    for id in &ids {
        eventually(Duration::from_secs(20), "every job sent", || async {
            (app.get(&format!("/v1/jobs/{id}")).await.1["status"] == "sent").then_some(())
        })
        .await;
    }
    let recovered = killed.elapsed();
    println!("kill -9 with 16 sends in flight: all sent {recovered:?} after the kill");
    assert!(recovered < Duration::from_secs(10), "took {recovered:?}");
    let mut req_ids: Vec<String> = fake
        .messages()
        .into_iter()
        .filter_map(|m| m.req_id)
        .collect();
    req_ids.sort();
    let total = req_ids.len();
    req_ids.dedup();
    assert_eq!((total, req_ids.len()), (16, 16), "each job accepted once");
    for id in &ids {
        let h = history(&app, id).await;
        assert_eq!(h.last().map(String::as_str), Some("sent"), "{id}: {h:?}");
        assert_eq!(h.iter().filter(|s| *s == "sent").count(), 1, "{id}: {h:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_that_fails_every_time_is_dead_lettered_and_the_rest_are_sent() {
    let app = spawn_app(settings(|c| c.worker.max_deliveries = 3)).await;
    let fake = spawn_fake(fake_options()).await;
    let poison = app.queue_message("13730000000").await;
    // Its job record holds a value of the wrong type: every script that touches it fails.
    let mut redis = app.redis().await;
    let key = app.store.keys(Shard::FIRST).job(&poison);
    let _: () = redis.del(&key).await.unwrap();
    let _: () = redis.set(&key, "not a hash").await.unwrap();
    let others = app.queue_messages(13730000001, 5).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    for id in &others {
        wait_for_status(&app, id, "sent").await;
    }
    let dead = eventually(
        Duration::from_secs(10),
        "the poison entry dead-lettered",
        || async {
            let dead: redis::streams::StreamRangeReply = app
                .redis()
                .await
                .xrange_all(app.store.keys(Shard::FIRST).dead())
                .await
                .unwrap();
            dead.ids.into_iter().next()
        },
    )
    .await;
    stop.cancel();
    let error: String = dead.get("error").unwrap();
    let job: String = dead.get("job").unwrap();
    assert!(error.contains("delivered 4 times"), "{error}");
    assert!(job.contains(&poison), "{job}");
    assert_eq!(app.backlog().await, 0, "acked and gone from the stream");
    assert!(
        fake.messages()
            .iter()
            .all(|m| m.req_id.as_deref() != Some(poison.as_str()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_waiting_for_a_slot_are_never_taken_from_a_live_worker() {
    // One send a second and a 300 ms backstop: without the refresh, the other worker's
    // backstop would take every waiting entry (a second delivery).
    let app = spawn_app(settings(|c| {
        c.worker.rate_per_sec = 1;
        c.worker.burst = 1;
        c.worker.claim_idle_ms = 300;
    }))
    .await;
    let fake = spawn_fake(fake_options()).await;
    let (_a, stop_a) = app.spawn_worker(&fake.base_url(), 4);
    let (_b, stop_b) = app.spawn_worker(&fake.base_url(), 4);
    let ids = app.queue_messages(13740000000, 3).await;
    let mut redis = app.redis().await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while fake.messages().len() < ids.len() {
        let pending: redis::streams::StreamPendingCountReply = redis
            .xpending_count(
                app.store.keys(Shard::FIRST).jobs(),
                smsq::store::GROUP,
                "-",
                "+",
                10,
            )
            .await
            .unwrap();
        for p in pending.ids {
            assert_eq!(p.times_delivered, 1, "entry {} delivered again", p.id);
        }
        assert!(Instant::now() < deadline, "3 sends at 1/s took over 10 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop_a.cancel();
    stop_b.cancel();
    assert_eq!(fake.messages().len(), 3);
}
