//! The worker's consumer driven one batch at a time, against a real Redis: what comes first,
//! how a backlog on one shard shares a batch with the others, and how an entry a Redis error
//! interrupted comes back, once, to the same consumer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smsq::domain::Shard;
use smsq::store::{Queue, Store};
use smsq::worker::Consumer;

use crate::common::settings;

/// Entries added straight to one shard's stream (the consumer only reads them; what is in
/// them is the worker's business, not the consumer's).
async fn add(store: &Store, shard: Shard, n: usize) -> Vec<String> {
    let mut conn = redis::Client::open(crate::common::redis_url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..n {
        let id: String = redis::cmd("XADD")
            .arg(store.keys(shard).jobs())
            .arg("*")
            .arg("job")
            .arg(format!("entry {i}"))
            .query_async(&mut conn)
            .await
            .unwrap();
        ids.push(id);
    }
    ids
}

fn entry_ids(batch: Vec<smsq::store::Entry>) -> Vec<String> {
    batch.into_iter().map(|e| e.entry_id).collect()
}

fn per_shard(batch: &[smsq::store::Entry]) -> BTreeMap<usize, usize> {
    let mut counts = BTreeMap::new();
    for e in batch {
        *counts.entry(e.shard.index()).or_default() += 1;
    }
    counts
}

fn settings_with(shards: u64) -> Arc<smsq::config::Settings> {
    Arc::new(settings(|c| {
        c.redis.shards = shards;
        c.worker.block_ms = 50;
    }))
}

async fn consumer_on(shards: u64, name: &str) -> (Consumer, Store) {
    consumer_of(settings_with(shards), name).await
}

async fn consumer_of(settings: Arc<smsq::config::Settings>, name: &str) -> (Consumer, Store) {
    let store = Store::connect(&settings).unwrap();
    let queue = Queue::new(store.clone());
    queue.ensure_group().await.unwrap();
    (Consumer::new(settings, queue, name.to_owned()), store)
}

#[tokio::test]
async fn a_backlog_on_one_shard_does_not_starve_the_others() {
    let (mut consumer, store) = consumer_on(3, "fair").await;
    let shard = |i| store.shards().all().nth(i).unwrap();
    add(&store, shard(0), 200).await;
    add(&store, shard(1), 3).await;
    add(&store, shard(2), 30).await;
    // An equal share each (10, 10, 10 of 30): shard 1 has only 3, so its 7 go to the others.
    let first = consumer.next_batch(30).await.unwrap();
    assert_eq!(first.len(), 30);
    let counts = per_shard(&first);
    assert_eq!(counts.get(&1), Some(&3), "{counts:?}");
    assert!(counts[&2] >= 10 && counts[&0] >= 10, "{counts:?}");
    // Shard 1 is empty now: the next batch still gives shard 2 its share.
    let second = consumer.next_batch(30).await.unwrap();
    let counts = per_shard(&second);
    assert_eq!(second.len(), 30);
    assert!(counts.get(&2).copied().unwrap_or(0) >= 10, "{counts:?}");
    // Every entry once: nothing handed out twice across the batches.
    let mut seen: Vec<(usize, String)> = first
        .iter()
        .chain(&second)
        .map(|e| (e.shard.index(), e.entry_id.clone()))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 60);
}

#[tokio::test]
async fn an_interrupted_entry_comes_back_once_after_its_delay() {
    let (mut consumer, store) = consumer_on(1, "redeliver").await;
    let ids = add(&store, Shard::FIRST, 2).await;
    let batch = consumer.next_batch(10).await.unwrap();
    assert_eq!(batch.len(), 2);
    // The first one hit a Redis error: it is redelivered; the second is still in flight.
    consumer.finished(Shard::FIRST, &ids[0]);
    consumer.redeliver(Shard::FIRST, ids[0].clone(), false);
    let asked = Instant::now();
    let mut again = Vec::new();
    while again.is_empty() {
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "never redelivered"
        );
        again = consumer.next_batch(10).await.unwrap();
    }
    assert!(
        asked.elapsed() >= Duration::from_millis(250),
        "redelivered before its delay: {:?}",
        asked.elapsed()
    );
    let got: Vec<&str> = again.iter().map(|e| e.entry_id.as_str()).collect();
    assert_eq!(got, vec![ids[0].as_str()], "only the interrupted one, once");
    // Nothing else comes: the second is still ours and in flight, not handed out again.
    let later = consumer.next_batch(10).await.unwrap();
    assert!(later.is_empty(), "{later:?}");
}

#[tokio::test]
async fn a_restarted_consumer_takes_its_own_pending_entries_first() {
    let settings = settings_with(1);
    let (mut first, store) = consumer_of(settings.clone(), "restart").await;
    let old = add(&store, Shard::FIRST, 3).await;
    assert_eq!(first.next_batch(3).await.unwrap().len(), 3);
    drop(first);
    let new = add(&store, Shard::FIRST, 2).await;
    // The same name after a restart: its 3 unacked entries first, then the new ones.
    let (mut again, _) = consumer_of(settings, "restart").await;
    let resumed = entry_ids(again.next_batch(10).await.unwrap());
    assert_eq!(resumed, old);
    let fresh = entry_ids(again.next_batch(10).await.unwrap());
    assert_eq!(fresh, new);
}
