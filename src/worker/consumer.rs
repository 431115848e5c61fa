//! One consumer of the `senders` group of every shard: where the next batch of entries
//! comes from.
//!
//! Order of preference:
//! 1. our own entries that a Redis error left with us, once their short delay is over;
//! 2. our own pending entries after a restart with the same name;
//! 3. entries of consumers whose heartbeat lapsed (crashed workers), claimed at once; and,
//!    every `worker.claim_idle_ms / 2`, entries idle that long anywhere (a live worker that
//!    hangs: the backstop);
//! 4. new entries, blocking up to `worker.block_ms` when there are none (at most one
//!    heartbeat interval, so the reaper above runs on time). With several shards every shard
//!    gets an equal share of the batch, the first shard changing each time (with a batch
//!    smaller than the shard count, one entry each from the first ones), and what is left of
//!    the batch goes to the shards that had more: a backlog on one shard cannot starve
//!    another.
//!    - On one Redis, all the shards are asked in one `XREADGROUP … STREAMS s0 s1 …`, and an
//!      idle worker blocks on all of them in that one read: it costs Redis one read per
//!      `worker.block_ms`, and a new job on any shard wakes it at once. Jobs arriving on
//!      several shards just before the blocking read can bring more entries than the batch
//!      has room for; they are ours already (pending here) and are the next batch.
//!    - Redis Cluster refuses a read across slots, and each shard is a slot of its own: there
//!      each shard is read on its own (concurrently), and when all are empty the read blocks
//!      on one shard in turn for at most [`SHARD_POLL`], so an idle worker notices a new job
//!      on any shard within that.
//!
//! The reads have a connection of their own (a blocked read would hold up every command
//! behind it on the shared socket).

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;

use crate::config::Settings;
use crate::domain::Shard;
use crate::store::{self, Conn, Entry, Queue, StoreError};

/// How long an entry that hit a Redis error waits before we try it again.
const REDELIVERY_DELAY: Duration = Duration::from_millis(300);

/// With several shards, how long an idle read blocks on one of them before asking them all.
pub const SHARD_POLL: Duration = Duration::from_millis(10);

/// One of our entries to take again.
struct Redelivery {
    due: Instant,
    shard: Shard,
    entry_id: String,
    /// The claim counts as a delivery (towards the poison-pill limit).
    counts: bool,
}

pub struct Consumer {
    settings: Arc<Settings>,
    queue: Queue,
    name: String,
    /// For the reads; dropped after an error and made again on the next call.
    conn: Option<Conn>,
    /// Per shard: where the rescan of our own pending entries goes on; `None` once done.
    pending_from: Vec<Option<String>>,
    redeliveries: VecDeque<Redelivery>,
    /// Entries a blocking read brought beyond the batch's room (jobs on several shards just
    /// before it): delivered to us, handed out first next time.
    surplus: VecDeque<Entry>,
    /// The last read of new entries found none (one Redis, several shards).
    idle: bool,
    /// Entries handed out by `next_batch` and not yet `finished`: a rescan of our pending
    /// entries must not hand them out twice.
    in_flight: HashSet<(Shard, String)>,
    /// The shard that gets the share's remainder (and the idle block) next.
    turn: usize,
    next_reap: Instant,
    next_backstop: Instant,
}

impl Consumer {
    pub fn new(settings: Arc<Settings>, queue: Queue, name: String) -> Self {
        Self {
            settings,
            // "0": every entry already delivered to this name and not acked.
            pending_from: vec![Some("0".to_owned()); queue.shards().count()],
            queue,
            name,
            conn: None,
            redeliveries: VecDeque::new(),
            surplus: VecDeque::new(),
            idle: false,
            in_flight: HashSet::new(),
            turn: 0,
            next_reap: Instant::now(),
            next_backstop: Instant::now(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// An entry of ours that a Redis error interrupted: it comes back in a later batch.
    pub fn redeliver(&mut self, shard: Shard, entry_id: String, count_delivery: bool) {
        self.redeliveries.push_back(Redelivery {
            due: Instant::now() + REDELIVERY_DELAY,
            shard,
            entry_id,
            counts: count_delivery,
        });
    }

    /// An entry from `next_batch` is handled (or stuck, and queued for redelivery).
    pub fn finished(&mut self, shard: Shard, entry_id: &str) {
        self.in_flight.remove(&(shard, entry_id.to_owned()));
    }

    /// Up to `count` entries to handle now (possibly none, after the blocking read's timeout).
    pub async fn next_batch(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        match self.try_next_batch(count.max(1)).await {
            Ok(entries) => {
                let ids = entries.iter().chain(&self.surplus);
                let ids = ids.map(|e| (e.shard, e.entry_id.clone()));
                self.in_flight.extend(ids);
                Ok(entries)
            }
            Err(e) => {
                self.conn = None;
                // A read whose reply was lost (a timeout, a failover) still delivered its
                // entries to us: rescan our pending entries rather than leave them to the
                // idle backstop.
                self.pending_from.fill(Some("0".to_owned()));
                Err(e)
            }
        }
    }

    async fn try_next_batch(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        if !self.surplus.is_empty() {
            let take = count.min(self.surplus.len());
            return Ok(self.surplus.drain(..take).collect());
        }
        let redelivered = self.due_redeliveries(count).await?;
        if !redelivered.is_empty() {
            return Ok(redelivered);
        }
        let resumed = self.own_pending(count).await?;
        if !resumed.is_empty() {
            tracing::info!(count = resumed.len(), "resuming our own pending entries");
            return Ok(resumed);
        }
        let reaped = self.reap(count).await?;
        if !reaped.is_empty() {
            return Ok(reaped);
        }
        self.read_new(count).await
    }

    /// Our own leftovers (but those in flight here), shard by shard. A cursor moves only on
    /// success: an error retries it.
    async fn own_pending(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        for shard in self.queue.shards().all() {
            while let Some(from) = self.pending_from[shard.index()].clone() {
                let conn = reader(&mut self.conn, &self.settings)?;
                let mut entries = self
                    .queue
                    .read_from(conn, shard, &self.name, &from, count)
                    .await?;
                self.pending_from[shard.index()] = entries.last().map(|last| last.entry_id.clone());
                entries.retain(|e| !self.in_flight.contains(&(shard, e.entry_id.clone())));
                if !entries.is_empty() {
                    return Ok(entries);
                }
            }
        }
        Ok(Vec::new())
    }

    /// New entries, fairly from every shard (see the module's comment).
    async fn read_new(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let ws = &self.settings.worker;
        let block = ws.block.min(ws.heartbeat);
        let shards = self.queue.shards();
        let conn = reader(&mut self.conn, &self.settings)?;
        if shards.count() == 1 {
            return self
                .queue
                .read(conn, Shard::FIRST, &self.name, count, Some(block))
                .await;
        }
        let n = shards.count();
        let turn = self.turn;
        self.turn = (turn + 1) % n;
        if !self.settings.redis.cluster {
            let order: Vec<Shard> = shards.all().cycle().skip(turn).take(n).collect();
            // Idle since the last read: straight to the blocking read (it answers at once
            // if anything came meanwhile), one read per block rather than two.
            let mut entries = match self.idle {
                true => Vec::new(),
                false => read_together(&self.queue, conn, &order, &self.name, count).await?,
            };
            if entries.is_empty() {
                // A wake-up serves the one shard that got a job; only entries that came in
                // between the reads above and this one can make it more than `count`.
                let each = (count / n).max(1);
                let read = self
                    .queue
                    .read_shards(conn, &order, &self.name, each, Some(block));
                entries = read.await?;
            }
            self.idle = entries.is_empty();
            if entries.len() > count {
                self.surplus.extend(entries.drain(count..));
            }
            return Ok(entries);
        }
        // The first `count % n` shards from `turn` on get one more than the others.
        let shares: Vec<(Shard, usize)> = shards
            .all()
            .map(|s| {
                let extra = usize::from((s.index() + n - turn) % n < count % n);
                (s, count / n + extra)
            })
            .filter(|(_, share)| *share > 0)
            .collect();
        let (queue, name) = (&self.queue, self.name.as_str());
        let reads = shares.iter().map(|&(shard, share)| {
            let mut conn = conn.clone();
            async move { queue.read(&mut conn, shard, name, share, None).await }
        });
        let mut entries = Vec::new();
        let mut drained = Vec::new();
        for (read, &(shard, share)) in join_all(reads).await.into_iter().zip(&shares) {
            let read = read?;
            if read.len() < share {
                drained.push(shard);
            }
            entries.extend(read);
        }
        // The rest of the batch: every shard not known to be empty, in turn from `turn`
        // (with a batch smaller than the shard count, some shards had no share at all).
        let rest = shards.all().cycle().skip(turn).take(n);
        for shard in rest.filter(|s| !drained.contains(s)) {
            let room = count - entries.len();
            if room == 0 {
                break;
            }
            entries.extend(queue.read(conn, shard, name, room, None).await?);
        }
        if !entries.is_empty() {
            return Ok(entries);
        }
        let shard = shards.all().nth(turn).unwrap_or(Shard::FIRST);
        let block = block.min(SHARD_POLL);
        queue.read(conn, shard, name, count, Some(block)).await
    }

    /// Our interrupted entries whose delay is over. They leave the queue only once claimed:
    /// a Redis error keeps them for the next batch. One that a rescan of our pending entries
    /// handed out meanwhile (and is in flight again) is not claimed twice.
    async fn due_redeliveries(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let now = Instant::now();
        let due = self
            .redeliveries
            .iter()
            .take_while(|r| r.due <= now)
            .take(count)
            .count();
        if due == 0 {
            return Ok(Vec::new());
        }
        let mut entries = Vec::new();
        for shard in self.queue.shards().all() {
            for counts in [true, false] {
                let ids: Vec<String> = self
                    .redeliveries
                    .iter()
                    .take(due)
                    .filter(|r| r.shard == shard && r.counts == counts)
                    .filter(|r| !self.in_flight.contains(&(r.shard, r.entry_id.clone())))
                    .map(|r| r.entry_id.clone())
                    .collect();
                let claimed = self.queue.claim_own(&self.name, shard, &ids, counts);
                entries.extend(claimed.await?);
            }
        }
        self.redeliveries.drain(..due);
        crate::metrics::reclaimed("redelivery", entries.len());
        Ok(entries)
    }

    /// Entries of dead consumers (heartbeat lapsed) at once, then the idle backstop.
    async fn reap(&mut self, count: usize) -> Result<Vec<Entry>, StoreError> {
        let settings = self.settings.clone();
        let ws = &settings.worker;
        let now = Instant::now();
        let mut claimed = Vec::new();
        if now >= self.next_reap {
            self.next_reap = now + ws.heartbeat / 2;
            'shards: for shard in self.queue.shards().all() {
                for consumer in self.queue.consumers(shard).await? {
                    if consumer.alive || consumer.name == self.name {
                        continue;
                    }
                    let room = count - claimed.len();
                    let entries = self
                        .queue
                        .reap(shard, &consumer.name, &self.name, room, ws.heartbeat)
                        .await?;
                    if !entries.is_empty() {
                        crate::metrics::reclaimed("dead_worker", entries.len());
                        tracing::warn!(
                            count = entries.len(),
                            dead = %consumer.name,
                            %shard,
                            "reclaimed entries of a worker whose heartbeat stopped"
                        );
                    }
                    claimed.extend(entries);
                    if claimed.len() >= count {
                        break 'shards;
                    }
                }
            }
        }
        if claimed.is_empty() && now >= self.next_backstop {
            let idle = ws.claim_idle;
            self.next_backstop = now + (idle / 2).max(Duration::from_millis(500));
            for shard in self.queue.shards().all() {
                let room = count - claimed.len();
                if room == 0 {
                    break;
                }
                claimed.extend(self.queue.claim_idle(shard, &self.name, idle, room).await?);
            }
            if !claimed.is_empty() {
                crate::metrics::reclaimed("idle", claimed.len());
                tracing::warn!(
                    count = claimed.len(),
                    idle_ms = idle.as_millis() as u64,
                    "reclaimed entries idle at other consumers"
                );
            }
        }
        Ok(claimed)
    }
}

/// New entries of `shards` (one Redis) in as few reads as fairness allows: an equal share
/// each, then the rest of the batch from those that had their whole share, until the batch
/// is full or they are all empty. Never more than `count`.
async fn read_together(
    queue: &Queue,
    conn: &mut Conn,
    shards: &[Shard],
    consumer: &str,
    count: usize,
) -> Result<Vec<Entry>, StoreError> {
    let mut entries = Vec::new();
    let mut open = shards.to_vec();
    while entries.len() < count && !open.is_empty() {
        // Rounded down, so a read never brings more than the room; with less room than
        // shards, one each from the first of them.
        let room = count - entries.len();
        let asked = &open[..room.min(open.len())];
        let each = (room / asked.len()).max(1);
        let read = queue.read_shards(conn, asked, consumer, each, None).await?;
        // A shard that had fewer than its share is empty now.
        let emptied: Vec<Shard> = asked
            .iter()
            .copied()
            .filter(|&shard| read.iter().filter(|e| e.shard == shard).count() < each)
            .collect();
        open.retain(|s| !emptied.contains(s));
        entries.extend(read);
    }
    Ok(entries)
}

/// The reads' connection, made on first use (and again after an error dropped it).
fn reader<'c>(slot: &'c mut Option<Conn>, settings: &Settings) -> Result<&'c mut Conn, StoreError> {
    let conn = match slot.take() {
        Some(conn) => conn,
        None => store::blocking_connection(&settings.redis, settings.worker.block)?,
    };
    Ok(slot.insert(conn))
}
