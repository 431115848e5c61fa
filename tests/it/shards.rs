//! Shards on one Redis: fair reads across shards, dead letters and the snapshot over all of
//! them, and the start-up check that refuses a shard-count change that would strand jobs.

use std::time::Duration;

use smsq::domain::{Mobile, Shards};
use smsq::ops::{dlq, status};
use smsq::snapshot::Snapshot;
use smsq::startup::Application;
use smsq::store::{Layout, LayoutError};

use crate::common::{App, fake_options, settings, spawn_app, spawn_fake, wait_for_status};

/// `count` numbers from `from` on whose shard (of `shards`) is `shard`.
fn numbers_on(shards: u64, shard: usize, from: u64, count: usize) -> Vec<String> {
    let shards = Shards::new(shards).unwrap();
    (from..)
        .map(|n| n.to_string())
        .filter(|n| shards.of_mobile(&Mobile::parse(n).unwrap()).index() == shard)
        .take(count)
        .collect()
}

async fn queue_all(app: &App, numbers: &[String]) -> Vec<String> {
    let mut ids = Vec::new();
    for n in numbers {
        ids.push(app.queue_message(n).await);
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backlog_on_one_shard_does_not_starve_another() {
    let app = spawn_app(settings(|c| c.redis.shards = 4)).await;
    let busy = queue_all(&app, &numbers_on(4, 1, 13500000000, 120)).await;
    let quiet_numbers = numbers_on(4, 3, 13600000000, 4);
    let quiet = queue_all(&app, &quiet_numbers).await;
    let mut opts = fake_options();
    opts.delay_ms = 2;
    let fake = spawn_fake(opts).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    app.wait_all(&quiet, "sent", Duration::from_secs(20)).await;
    app.wait_all(&busy, "sent", Duration::from_secs(30)).await;
    stop.cancel();
    let order: Vec<String> = fake.messages().into_iter().map(|m| m.to).collect();
    let last_quiet = order
        .iter()
        .rposition(|to| quiet_numbers.iter().any(|q| to.ends_with(q.as_str())))
        .expect("quiet numbers sent");
    println!("quiet shard last served at {last_quiet}");
    // Queued after 120 others, yet served alongside them: each batch of two asks every
    // shard in turn, so the quiet shard's 4 go out among the first dozen or so.
    assert!(
        last_quiet < 20,
        "the quiet shard's last job went out {last_quiet}th of {}",
        order.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_and_the_snapshot_cover_every_shard() {
    let app = spawn_app(settings(|c| {
        c.redis.shards = 3;
        c.retry.max_attempts = 1;
    }))
    .await;
    let mut numbers = numbers_on(3, 1, 13700000000, 1);
    numbers.extend(numbers_on(3, 2, 13700000000, 1));
    let ids = queue_all(&app, &numbers).await;
    let mut broken = fake_options();
    broken.error_rate = 1.0;
    let broken = spawn_fake(broken).await;
    let (worker, stop) = app.spawn_worker(&broken.base_url(), 2);
    for id in &ids {
        wait_for_status(&app, id, "dead").await;
    }
    stop.cancel();
    worker.await.unwrap();

    let snapshot = Snapshot::take(&app.records, &app.settings).await.unwrap();
    assert_eq!(snapshot.dead_letters, 2);
    let per_shard: Vec<usize> = snapshot.stream.shards.iter().map(|v| v.shard).collect();
    assert_eq!(per_shard, [0, 1, 2]);
    let text = status::render(&snapshot);
    assert!(
        text.contains("shards     backlog/pending  0:0/0  1:0/0  2:0/0"),
        "{text}"
    );
    let letters = app.records.dead_letters(10).await.unwrap();
    let mut named: Vec<(usize, bool)> = letters
        .iter()
        .map(|d| (d.shard.index(), d.id.ends_with(&format!("@{}", d.shard))))
        .collect();
    named.sort();
    assert_eq!(named, [(1, true), (2, true)]);
    let listed = dlq::list(&app.records, 10, false).await.unwrap();
    assert!(listed.starts_with("2 dead letter(s)"), "{listed}");

    // Replayed by the names operators see, to a provider that works now.
    let healthy = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&healthy.base_url(), 2);
    let names: Vec<String> = letters.iter().map(|d| d.id.clone()).collect();
    let replayed = dlq::replay(&app.records, &names, false).await.unwrap();
    assert_eq!(replayed.replayed, 2, "{}", replayed.report);
    for id in &ids {
        wait_for_status(&app, id, "sent").await;
    }
    assert_eq!(app.records.dead_letter_count().await.unwrap(), 0);
    stop.cancel();
}

#[tokio::test]
async fn a_shard_count_change_that_would_strand_jobs_is_refused() {
    let app = spawn_app(settings(|c| c.redis.shards = 4)).await;
    // Queued on shards 2 and 3, with no worker to send them.
    let mut numbers = numbers_on(4, 2, 13800000000, 2);
    numbers.extend(numbers_on(4, 3, 13800000000, 1));
    let ids = queue_all(&app, &numbers).await;
    let with = |shards: u64| {
        let mut s = (*app.settings).clone();
        s.redis.shards = Shards::new(shards).unwrap();
        Application::build(s).unwrap()
    };

    // Shrinking to 2 would leave shards 2 and 3 unread: refused, by the check and the worker.
    match with(2).store().check_layout().await {
        Err(LayoutError::Stranded {
            configured: 2,
            recorded: 4,
            jobs: 3,
        }) => {}
        other => panic!("expected a refusal, got {other:?}"),
    }
    let worker = with(2).worker(None, Some(1)).unwrap();
    let refused = worker.run(Default::default()).await.unwrap_err();
    assert!(
        refused.to_string().contains("redis.shards = 2"),
        "{refused}"
    );
    // Growing strands nothing: every old shard is still read.
    assert_eq!(
        with(8).store().check_layout().await.unwrap(),
        Layout::Changed(4)
    );
    assert_eq!(with(8).store().check_layout().await.unwrap(), Layout::Same);
    // Back to 4 is fine too (shards 4..8 are empty); the jobs then drain on 4 shards …
    assert_eq!(
        with(4).store().check_layout().await.unwrap(),
        Layout::Changed(8)
    );
    let fake = spawn_fake(fake_options()).await;
    let (worker, stop) = app.spawn_worker(&fake.base_url(), 2);
    app.wait_all(&ids, "sent", Duration::from_secs(10)).await;
    stop.cancel();
    worker.await.unwrap();
    // … and an empty queue may shrink to one shard.
    assert_eq!(
        with(1).store().check_layout().await.unwrap(),
        Layout::Changed(4)
    );
}

/// An idle worker on 16 shards of one Redis blocks on all of them in one read: Redis sees a
/// read per block (500 ms here, the heartbeat), not one per shard every 10 ms (the poll it
/// replaced: ~2,500 reads in this window), and a job queued on any shard wakes it at once,
/// not at the end of a block on another shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_blocks_once_on_all_shards_and_wakes_for_any() {
    let redis = crate::common::private_redis();
    let app = spawn_app(crate::common::settings_on(&redis.url(), |c| {
        c.redis.shards = 16;
        c.worker.block_ms = 2000;
    }))
    .await;
    let fake = spawn_fake(fake_options()).await;
    let (_worker, stop) = app.spawn_worker(&fake.base_url(), 4);
    // A first job sent: the worker is past its start-up and reading.
    let first = app
        .queue_message(&numbers_on(16, 0, 13500000000, 1)[0])
        .await;
    wait_for_status(&app, &first, "sent").await;

    let mut admin = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("RESETSTAT")
        .query_async(&mut admin)
        .await
        .unwrap();
    // A measuring window, not a wait for something: what an idle worker costs per second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(&mut admin)
        .await
        .unwrap();
    let reads: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_xreadgroup:calls="))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap());
    println!("{reads} reads in 1.5 s of idling on 16 shards");
    assert!(reads <= 8, "{reads} reads in 1.5 s: the idle worker polls");

    for shard in [11, 5] {
        let number = numbers_on(16, shard, 13700000000, 1).remove(0);
        let queued = std::time::Instant::now();
        let job = app.queue_message(&number).await;
        wait_for_status(&app, &job, "sent").await;
        let took = queued.elapsed();
        assert!(
            took < Duration::from_millis(250),
            "a job on shard {shard} waited {took:?} for the blocked worker"
        );
    }
    stop.cancel();
}
