//! The test harness: a private `redis-server` per test binary, a key prefix per test, and
//! helpers to run the API, the fake provider and workers in-process.

use std::collections::HashMap;
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use smsq::config::{RawConfig, Secrets, Settings};
use smsq::dev::fake::{self, FakeHandle, FakeOptions};
use smsq::dev::local_redis::{Listen, LocalRedis};
use smsq::domain::Secret;
use smsq::startup::Application;
use smsq::store::Store;
use smsq::worker::Report;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub const SID: &str = "aaf98f89488d0aad0148a8e0d8d40a07";
pub const TOKEN: &str = "e33d4b7d2f6e4b6bb1e2a0b1f2c3d4e5";
pub const APP_ID: &str = "8a216da85f5c89b1015f7e6e3c2a0b1c";
pub const SECRET: &str = "test-secret-0123456789";

struct Shared {
    redis: LocalRedis,
    _dir: PathBuf,
}

static SHARED: OnceLock<Shared> = OnceLock::new();
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// A fresh directory under the system temp dir. Kept after the run, so a failed test leaves
/// its Redis log for inspection; the next run removes those of processes that are gone.
pub fn temp_dir(tag: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(sweep_stale_temp_dirs);
    let dir = std::env::temp_dir().join(format!(
        "smsq-test-{}-{tag}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn sweep_stale_temp_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix("smsq-test-")
            .and_then(|r| r.split('-').next())
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// The URL of this test binary's redis-server, started on first use.
pub fn redis_url() -> String {
    SHARED
        .get_or_init(|| {
            init_logs();
            let dir = temp_dir("redis");
            let redis = LocalRedis::start(&dir, Listen::Unix(dir.join("redis.sock")))
                .unwrap_or_else(|e| panic!("\n\nthe tests need a real redis-server: {e}\n\n"));
            Shared { redis, _dir: dir }
        })
        .redis
        .url()
}

/// A private redis-server, for tests that stop and restart it.
pub fn private_redis() -> LocalRedis {
    let dir = temp_dir("private-redis");
    LocalRedis::start(&dir, Listen::Unix(dir.join("redis.sock")))
        .unwrap_or_else(|e| panic!("\n\nthe tests need a real redis-server: {e}\n\n"))
}

pub fn unique_prefix() -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "t{}n{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every log line of this test binary, at debug level, goes into a buffer tests can search.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("smsq=debug")
        .with_writer(|| Capture)
        .with_ansi(false)
        .try_init();
}

pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}

/// Settings for one test: its own prefix on the shared Redis, fast timings, test secrets.
pub fn settings(tweak: impl FnOnce(&mut RawConfig)) -> Settings {
    settings_on(&redis_url(), tweak)
}

pub fn settings_on(url: &str, tweak: impl FnOnce(&mut RawConfig)) -> Settings {
    init_logs();
    let mut raw = RawConfig::default();
    raw.redis.url = url.to_owned();
    raw.redis.prefix = unique_prefix();
    raw.redis.timeout_ms = 500;
    raw.worker.block_ms = 100;
    raw.worker.shutdown_grace_ms = 5000;
    raw.retry.base_ms = 20;
    raw.retry.max_ms = 100;
    raw.provider.timeout_ms = 2000;
    raw.provider.connect_timeout_ms = 1000;
    tweak(&mut raw);
    let secrets = Secrets {
        account_sid: Some(SID.into()),
        auth_token: Some(Secret::new(TOKEN)),
        app_id: Some(APP_ID.into()),
        secret: Some(Secret::new(SECRET)),
        api_tokens: Vec::new(),
    };
    Settings::from_raw(&raw, secrets).expect("valid test settings")
}

pub fn fake_options() -> FakeOptions {
    FakeOptions::new(SID, TOKEN, APP_ID)
}

pub async fn spawn_fake(opts: FakeOptions) -> FakeHandle {
    fake::spawn(opts).await.expect("fake provider starts")
}

/// The API, served in-process on a free port.
pub struct App {
    pub base: String,
    pub settings: Arc<Settings>,
    pub store: Store,
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

    /// Entries on the send stream: unsent jobs (acked entries are deleted).
    pub async fn backlog(&self) -> usize {
        self.redis()
            .await
            .xlen(self.store.keys().jobs())
            .await
            .expect("XLEN")
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
    pub async fn queue_messages(&self, first: u64, count: u64) -> Vec<String> {
        let mut ids = Vec::new();
        for n in first..first + count {
            ids.push(self.queue_message(&n.to_string()).await);
        }
        ids
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

    /// The plain code of a job, read from its otp key.
    pub async fn otp(&self, job_id: &str) -> Option<String> {
        self.redis()
            .await
            .get(self.store.keys().otp(job_id))
            .await
            .expect("GET otp")
    }

    /// Every key of this test's prefix with its DUMP, for before/after comparisons.
    pub async fn dump(&self) -> HashMap<String, Vec<u8>> {
        let mut conn = self.redis().await;
        let mut keys: Vec<String> = conn
            .keys(format!("*{}:*", self.prefix()))
            .await
            .expect("KEYS");
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
                "string" => vec![conn.get(&k).await.expect("GET")],
                "hash" => {
                    let h: HashMap<String, String> = conn.hgetall(&k).await.expect("HGETALL");
                    h.into_iter().flat_map(|(a, b)| [a, b]).collect()
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

/// Polls `check` until it returns `Some`, or panics with `what` after `within`.
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Environment for a child `smsq` process talking to the same Redis and prefix.
pub fn child_env(settings: &Settings, provider_base: &str) -> Vec<(String, String)> {
    vec![
        ("SMSQ_REDIS__URL".into(), settings.redis.url.clone()),
        ("SMSQ_REDIS__PREFIX".into(), settings.redis.prefix.clone()),
        ("SMSQ_PROVIDER__BASE_URL".into(), provider_base.to_owned()),
        ("SMSQ_WORKER__BLOCK_MS".into(), "100".into()),
        ("RONGLIAN_ACCOUNT_SID".into(), SID.into()),
        ("RONGLIAN_AUTH_TOKEN".into(), TOKEN.into()),
        ("RONGLIAN_APP_ID".into(), APP_ID.into()),
        ("SMSQ_SECRET".into(), SECRET.into()),
    ]
}

/// A `smsq` command with a clean environment (no SMSQ_* or RONGLIAN_* from the caller) and
/// `--config` pointing at the given file or a file that does not exist.
pub fn smsq_command(config: Option<&Path>) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_smsq"));
    for (k, _) in std::env::vars() {
        if k.starts_with("SMSQ_") || k.starts_with("RONGLIAN_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    if let Some(path) = config {
        cmd.arg("--config").arg(path);
    }
    cmd
}
