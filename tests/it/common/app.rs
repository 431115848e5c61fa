//! The API and workers in-process, built through `startup::Application` like the binary.

use smsq::domain::Shard;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use redis::AsyncCommands;
use smsq::config::Settings;
use smsq::startup::Application;
use smsq::store::Store;
use smsq::worker::Report;

use super::eventually;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The API, served in-process on a free port.
pub struct App {
    pub base: String,
    pub settings: Arc<Settings>,
    pub store: Store,
    /// The worker's, the API's and the operators' stores over `store`.
    pub queue: smsq::store::Queue,
    pub intake: smsq::store::Intake,
    pub records: smsq::store::Records,
    pub http: reqwest::Client,
    stop: CancellationToken,
}

impl Drop for App {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn spawn_app(settings: Settings) -> App {
    smsq::provider::install_crypto();
    let app = Application::build(settings).expect("application");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move { app.serve_api(listener, stop).await }
    });
    App {
        base,
        settings: app.settings().clone(),
        store: app.store().clone(),
        queue: smsq::store::Queue::new(app.store().clone()),
        intake: smsq::store::Intake::new(app.store().clone()),
        records: smsq::store::Records::new(app.store().clone()),
        http: reqwest::Client::new(),
        stop,
    }
}

impl App {
    pub async fn post(&self, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// POST and decode: (status, body).
    pub async fn call(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        let response = self.post(path, body).await;
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    /// POST and return only the status code.
    pub async fn status(&self, path: &str, body: serde_json::Value) -> u16 {
        self.post(path, body).await.status().as_u16()
    }

    /// Entries on the send streams of every shard: unsent jobs (acked entries are deleted).
    pub async fn backlog(&self) -> usize {
        self.records.inspect(0).await.expect("inspect").backlog as usize
    }

    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("json body"))
    }

    /// Queues a notification (template 1) to `to`; returns its job id.
    pub async fn queue_message(&self, to: &str) -> String {
        let (status, body) = self
            .call(
                "/v1/messages",
                serde_json::json!({"to": to, "template_id": "1", "datas": [to]}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
        body["job_id"].as_str().expect("job_id").to_owned()
    }

    /// Queues one notification to each of `count` numbers from `first` on; returns the job ids.
    /// The oldest entry of shard 0's events stream, `None` while it is empty.
    pub async fn oldest_event(&self) -> Option<redis::streams::StreamId> {
        let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.store.keys(Shard::FIRST).events())
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.redis().await)
            .await
            .expect("XRANGE");
        reply.ids.into_iter().next()
    }

    /// Queues messages, 50 at a time from `first` on, until the events stream no longer
    /// starts with the entry `entry_id` (a short `stream.events_retention_secs` trims it
    /// once it is older than that and newer events come).
    pub async fn queue_until_trimmed(&self, entry_id: &str, first: u64) {
        let mut next = first;
        eventually(Duration::from_secs(15), "the oldest event trimmed", || {
            next += 50;
            let from = next;
            async move {
                self.queue_messages(from, 50).await;
                let oldest = self.oldest_event().await;
                oldest.is_none_or(|e| e.id != entry_id).then_some(())
            }
        })
        .await;
    }

    pub async fn queue_messages(&self, first: u64, count: u64) -> Vec<String> {
        let mut ids = Vec::new();
        for n in first..first + count {
            ids.push(self.queue_message(&n.to_string()).await);
        }
        ids
    }

    /// Polls until every job in `ids` has status `wanted`.
    pub async fn wait_all(&self, ids: &[String], wanted: &str, within: Duration) {
        let what = format!("{} jobs to be {wanted}", ids.len());
        eventually(within, &what, || async {
            for id in ids {
                if self.get(&format!("/v1/jobs/{id}")).await.1["status"] != wanted {
                    return None;
                }
            }
            Some(())
        })
        .await
    }

    pub fn prefix(&self) -> &str {
        &self.settings.redis.prefix
    }

    pub async fn redis(&self) -> redis::aio::MultiplexedConnection {
        redis::Client::open(self.settings.redis.url.as_str())
            .expect("url")
            .get_multiplexed_async_connection()
            .await
            .expect("redis connection")
    }

    /// Ends a number's resend window for `purpose` now, as if the interval had passed: the
    /// `r:<purpose>` of its caps (one shard).
    pub async fn end_resend_window(&self, purpose: &str, mobile: &str) {
        let mut conn = self.redis().await;
        let pattern = self.store.keys(Shard::FIRST).caps(mobile, "*");
        let keys: Vec<String> = conn.keys(pattern).await.expect("KEYS caps");
        assert!(
            !keys.is_empty(),
            "no caps for {mobile}: no resend window to end"
        );
        for key in keys {
            let _: () = conn
                .hdel(key, format!("r:{purpose}"))
                .await
                .expect("HDEL r:");
        }
    }

    /// The code of a queued code job, opened from its sealed code (the code record's `o`)
    /// as the worker does.
    pub async fn otp(&self, job_id: &str) -> Option<String> {
        let sealed = self.sealed_otp(job_id).await?;
        let key = self.settings.secrets.hash_key().expect("SMSQ_SECRET");
        let code = smsq::domain::CodeSealer::new(&key)
            .open(job_id, &smsq::domain::SealedCode::from_stored(&sealed))
            .expect("the otp key opens with the API's key");
        Some(code.expose().to_owned())
    }

    /// The sealed code Redis holds for a job (as Redis stores it): the `o` of the code record
    /// that names the job, if one does.
    pub async fn sealed_otp(&self, job_id: &str) -> Option<String> {
        let key = self.code_record_of(job_id).await?;
        self.redis().await.hget(key, "o").await.expect("HGET o")
    }

    /// The code record (`code:<purpose>:<mobile>`) whose `job` is `job_id`, if one is.
    pub async fn code_record_of(&self, job_id: &str) -> Option<String> {
        let mut conn = self.redis().await;
        let pattern = format!("{}*", self.store.keys(Shard::FIRST).code_prefix());
        let keys: Vec<String> = conn.keys(pattern).await.expect("KEYS code");
        for key in keys {
            let job: Option<String> = conn.hget(&key, "job").await.expect("HGET job");
            if job.as_deref() == Some(job_id) {
                return Some(key);
            }
        }
        None
    }

    /// Every key of this test's prefix with its DUMP, for before/after comparisons.
    /// Every key of this test (but the shard layout, recorded when the API starts), dumped.
    pub async fn dump(&self) -> HashMap<String, Vec<u8>> {
        let mut conn = self.redis().await;
        let layout = self.store.keys(Shard::FIRST).layout();
        let mut keys: Vec<String> = conn
            .keys(format!("*{}:*", self.prefix()))
            .await
            .expect("KEYS");
        keys.retain(|k| *k != layout);
        keys.sort();
        let mut out = HashMap::new();
        for k in keys {
            let v: Vec<u8> = redis::cmd("DUMP")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .expect("DUMP");
            out.insert(k, v);
        }
        out
    }

    /// Every string found in this test's keys: string values, hash fields and values, stream
    /// fields and values, sorted-set members.
    pub async fn all_stored_text(&self) -> Vec<(String, String)> {
        let mut conn = self.redis().await;
        let keys: Vec<String> = conn
            .keys(format!("*{}:*", self.prefix()))
            .await
            .expect("KEYS");
        let mut out = Vec::new();
        for k in keys {
            let kind: String = redis::cmd("TYPE")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .expect("TYPE");
            let texts: Vec<String> = match kind.as_str() {
                // Lossy: the per-number index holds job ids as bytes.
                "string" => {
                    let v: Vec<u8> = conn.get(&k).await.expect("GET");
                    vec![String::from_utf8_lossy(&v).into_owned()]
                }
                "hash" => {
                    // Lossy too: a record keeps a hex message id as its bytes (`ib`).
                    let h: HashMap<String, Vec<u8>> = conn.hgetall(&k).await.expect("HGETALL");
                    h.into_iter()
                        .flat_map(|(a, b)| [a, String::from_utf8_lossy(&b).into_owned()])
                        .collect()
                }
                "zset" => conn.zrange(&k, 0, -1).await.expect("ZRANGE"),
                "stream" => {
                    let r: redis::streams::StreamRangeReply =
                        conn.xrange_all(&k).await.expect("XRANGE");
                    r.ids
                        .into_iter()
                        .flat_map(|e| {
                            e.map.into_iter().flat_map(|(f, v)| {
                                [f, redis::from_redis_value::<String>(v).unwrap_or_default()]
                            })
                        })
                        .collect()
                }
                other => panic!("unexpected key type {other} for {k}"),
            };
            out.extend(texts.into_iter().map(|t| (k.clone(), t)));
        }
        out
    }

    pub fn spawn_worker(
        &self,
        base_url: &str,
        concurrency: usize,
    ) -> (JoinHandle<Report>, CancellationToken) {
        spawn_worker(&self.settings, base_url, concurrency)
    }
}

pub fn spawn_worker(
    settings: &Settings,
    base_url: &str,
    concurrency: usize,
) -> (JoinHandle<Report>, CancellationToken) {
    let mut settings = settings.clone();
    settings.provider.base_url = base_url.to_owned();
    // One simulator serves every kind: every account goes there.
    settings.providers.use_base_url(base_url).expect("a URL");
    let worker = Application::build(settings)
        .expect("application")
        .worker(None, Some(concurrency))
        .expect("worker");
    let stop = CancellationToken::new();
    let handle = tokio::spawn({
        let stop = stop.clone();
        async move { worker.run(stop).await.expect("worker runs") }
    });
    (handle, stop)
}

/// The job as `GET /v1/jobs/{id}` shows it.
pub async fn status_of(app: &App, job_id: &str) -> serde_json::Value {
    app.get(&format!("/v1/jobs/{job_id}")).await.1
}

/// Polls the job until it has status `wanted` (10 s deadline).
pub async fn wait_for_status(app: &App, job_id: &str, wanted: &str) -> serde_json::Value {
    eventually(
        Duration::from_secs(10),
        &format!("job {job_id} to be {wanted}"),
        || async {
            let job = status_of(app, job_id).await;
            (job["status"] == wanted).then_some(job)
        },
    )
    .await
}

/// The statuses a job went through, from the events stream.
pub async fn history(app: &App, job_id: &str) -> Vec<String> {
    let id = smsq::domain::JobId::parse(job_id).unwrap();
    app.records
        .events_of(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.status.as_str().to_owned())
        .collect()
}
