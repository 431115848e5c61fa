//! The bench's world: a private Redis, child processes with the right environment, and the
//! in-process handles that prefill queues and watch them drain.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tokio::task::JoinSet;

use super::procs::Proc;
use super::{BenchError, Row, Sizes};
use crate::codes::{Codes, MessageRequest};
use crate::config::{RawConfig, Secrets, Settings};
use crate::dev::TempDir;
use crate::dev::fake::FakeMessage;
use crate::dev::local_redis::{Listen, LocalRedis};
use crate::domain::{Mobile, TemplateId};
use crate::startup::Application;
use crate::store::Store;

const SID: &str = "8a216da8bench00000000000000000aa";
const TOKEN: &str = "0123456789abcdef0123456789abcdef";
const APP_ID: &str = "8a216da8bench00000000000000000bb";
const SECRET: &str = "bench-secret-0123456789";

/// Mobiles of the bench and the tests: all valid, distinct for `n` below 500 million, and
/// spread over 50,000 prefixes (号段) the way real users' numbers are, so the prefix guard
/// sees ordinary traffic (a run of consecutive numbers is what a pumping ring walks).
pub fn mobile(n: u64) -> String {
    let n = n % 500_000_000;
    format!("13{:05}{:04}", n % 50_000, n / 50_000)
}

pub struct Bench {
    pub sizes: Sizes,
    pub redis: LocalRedis,
    pub app: Application,
    pub codes: Codes,
    env: HashMap<String, String>,
    rows: Vec<Row>,
    provider_ceiling: f64,
    /// The worker CPU of a bare sign-and-POST to the stand-in, µs per send (same run).
    client_floor_us: Option<f64>,
    _dir: TempDir,
}

impl Bench {
    pub async fn start(sizes: Sizes) -> Result<Self, BenchError> {
        let dir = std::env::temp_dir().join(format!("smsq-bench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| BenchError::Io("temp dir", e))?;
        let socket = dir.join("redis.sock");
        let dir2 = dir.clone();
        let redis =
            tokio::task::spawn_blocking(move || LocalRedis::start(&dir2, Listen::Unix(socket)))
                .await
                .map_err(|e| BenchError::Stuck(format!("starting redis: {e}")))??;
        let env: HashMap<String, String> = [
            ("SMSQ_REDIS__URL", redis.url()),
            ("SMSQ_REDIS__PREFIX", "bench".to_owned()),
            ("RONGLIAN_ACCOUNT_SID", SID.to_owned()),
            ("RONGLIAN_AUTH_TOKEN", TOKEN.to_owned()),
            ("RONGLIAN_APP_ID", APP_ID.to_owned()),
            ("SMSQ_SECRET", SECRET.to_owned()),
            // A run issues more codes in a minute than the shipped budgets allow in an hour
            // (10,000 / 100,000). The budgets are still counted by every issue step, so
            // their cost is measured; only their refusal is off.
            ("SMSQ_GUARD__HOURLY_BUDGET", "0".to_owned()),
            ("SMSQ_GUARD__DAILY_BUDGET", "0".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut raw = RawConfig::default();
        raw.redis.url = redis.url();
        raw.redis.prefix = "bench".into();
        // The bench's own prefill may queue behind a busy server; it is not what is measured.
        raw.redis.timeout_ms = 10_000;
        raw.guard.hourly_budget = 0;
        raw.guard.daily_budget = 0;
        let settings = Settings::from_raw(&raw, Secrets::from_env(&env)?)?;
        let app = Application::build(settings)?;
        let codes = app.codes()?;
        Ok(Self {
            sizes,
            redis,
            app,
            codes,
            env,
            rows: Vec::new(),
            provider_ceiling: 0.0,
            client_floor_us: None,
            _dir: TempDir(dir),
        })
    }

    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    pub fn provider_ceiling(&self) -> f64 {
        self.provider_ceiling
    }

    pub fn set_provider_ceiling(&mut self, rate: f64) {
        self.provider_ceiling = rate;
    }

    pub fn client_floor_us(&self) -> Option<f64> {
        self.client_floor_us
    }

    pub fn set_client_floor_us(&mut self, us: f64) {
        self.client_floor_us = Some(us);
    }

    pub fn row(&mut self, row: Row) {
        eprintln!(
            "  {}: {} = {:.2} {}",
            row.scenario, row.figure, row.value, row.unit
        );
        self.rows.push(row);
    }

    pub async fn conn(&self) -> Result<redis::aio::MultiplexedConnection, BenchError> {
        Ok(redis::Client::open(self.redis.url())?
            .get_multiplexed_async_connection()
            .await?)
    }

    /// An empty Redis for the next scenario.
    pub async fn flush(&self) -> Result<(), BenchError> {
        // ASYNC: a synchronous flush of millions of keys would stall Redis for seconds.
        let mut conn = self.conn().await?;
        let _: () = redis::cmd("FLUSHALL")
            .arg("ASYNC")
            .query_async(&mut conn)
            .await?;
        // … and the background free is over before the next measurement competes with it.
        loop {
            let info: String = redis::cmd("INFO")
                .arg("memory")
                .query_async(&mut conn)
                .await?;
            let pending = info
                .lines()
                .find_map(|l| l.strip_prefix("lazyfree_pending_objects:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
            if pending == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The bench's temporary directory (removed when the bench ends).
    pub fn dir(&self) -> &std::path::Path {
        &self._dir.0
    }

    /// The environment every child gets: the bench's Redis, account and secret.
    pub fn env(&self) -> &HashMap<String, String> {
        &self.env
    }

    /// The fake provider as its own process, answering after `delay_ms`.
    pub async fn fake(&self, delay_ms: u64) -> Result<(Proc, String), BenchError> {
        self.fake_with(&["--delay-ms", &delay_ms.to_string()]).await
    }

    /// The fake provider as its own process, with `args` (faults, reports, …).
    pub async fn fake_with(&self, args: &[&str]) -> Result<(Proc, String), BenchError> {
        let port = LocalRedis::free_port().map_err(|e| BenchError::Io("free port", e))?;
        let listen = format!("127.0.0.1:{port}");
        let mut all = vec!["fake-provider", "--listen", &listen];
        all.extend_from_slice(args);
        let proc = Proc::smsq(&all, &self.env).map_err(|e| BenchError::Io("fake", e))?;
        let base = format!("http://{listen}");
        wait_listening(&format!("{base}/_fake/messages"), START_WITHIN).await?;
        Ok((proc, base))
    }

    /// `smsq api` on a free port.
    pub async fn api(&self) -> Result<(Proc, String), BenchError> {
        let (env, base) = self.api_env(&[])?;
        let proc = Proc::smsq(&["api"], &env).map_err(|e| BenchError::Io("api", e))?;
        wait_listening(&format!("{base}/readyz"), START_WITHIN).await?;
        Ok((proc, base))
    }

    /// `smsq api` on a free port as its users start it (see [`Proc::smsq_logged`]), with
    /// `extra` settings.
    pub async fn api_logged(
        &self,
        extra: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Result<(Proc, String), BenchError> {
        let (env, base) = self.api_env(extra)?;
        let proc = Proc::smsq_logged(&["api"], &env, log).map_err(|e| BenchError::Io("api", e))?;
        wait_listening(&format!("{base}/readyz"), START_WITHIN).await?;
        Ok((proc, base))
    }

    fn api_env(
        &self,
        extra: &[(&str, &str)],
    ) -> Result<(HashMap<String, String>, String), BenchError> {
        let port = LocalRedis::free_port().map_err(|e| BenchError::Io("free port", e))?;
        let mut env = self.env.clone();
        env.insert("SMSQ_API__LISTEN".into(), format!("127.0.0.1:{port}"));
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        Ok((env, format!("http://127.0.0.1:{port}")))
    }

    /// `smsq worker` at the shipped concurrency and log level (see [`Proc::smsq_logged`]).
    pub fn worker_logged(
        &self,
        name: &str,
        provider: &str,
        extra: &[(&str, &str)],
        log: &std::path::Path,
    ) -> Result<Proc, BenchError> {
        let env = self.worker_env(provider, extra);
        Proc::smsq_logged(&["worker", "--name", name], &env, log)
            .map_err(|e| BenchError::Io("worker", e))
    }

    /// A worker's environment: the bench's, the provider's address and `extra` on top.
    fn worker_env(&self, provider: &str, extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut env = self.env.clone();
        env.insert("SMSQ_PROVIDER__BASE_URL".into(), provider.to_owned());
        env.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        env
    }

    /// `smsq worker` sending to `provider`, with `extra` settings on top of the shipped ones.
    pub fn worker(
        &self,
        name: &str,
        concurrency: usize,
        provider: &str,
        extra: &[(&str, &str)],
    ) -> Result<Proc, BenchError> {
        let env = self.worker_env(provider, extra);
        let c = concurrency.to_string();
        Proc::smsq(&["worker", "--name", name, "--concurrency", &c], &env)
            .map_err(|e| BenchError::Io("worker", e))
    }

    /// Queues `n` notifications through the same script as the API, 64 at a time.
    pub async fn prefill(&self, first: u64, n: u64) -> Result<(), BenchError> {
        prefill(&self.codes, first, n).await
    }

    /// Entries on the send streams of every shard (acked ones are deleted).
    pub async fn backlog(&self) -> Result<u64, BenchError> {
        backlog(self.app.store()).await
    }

    /// Waits until `n` workers beat, at most `within`.
    pub async fn wait_for_workers(&self, n: usize, within: Duration) -> Result<(), BenchError> {
        let records = crate::store::Records::new(self.app.store().clone());
        let deadline = std::time::Instant::now() + within;
        loop {
            let state = records.inspect(0).await?;
            if state.consumers.iter().filter(|c| c.alive).count() >= n {
                return Ok(());
            }
            if std::time::Instant::now() > deadline {
                return Err(BenchError::Stuck(format!(
                    "{n} workers did not start within {within:?}"
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the stream is empty (every job acked), at most `within`.
    pub async fn drained(&self, within: Duration) -> Result<Duration, BenchError> {
        drained(self.app.store(), within).await
    }

    /// The bench's settings with `url`, `cluster` and `shards` for Redis.
    pub fn settings_on(
        &self,
        url: &str,
        cluster: bool,
        shards: u64,
    ) -> Result<Settings, BenchError> {
        let mut settings = (**self.app.settings()).clone();
        settings.redis.url = url.to_owned();
        settings.redis.cluster = cluster;
        settings.redis.shards = crate::domain::Shards::new(shards)
            .map_err(|e| BenchError::Stuck(format!("shards: {e}")))?;
        Ok(settings)
    }

    pub async fn used_memory(&self) -> Result<u64, BenchError> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(info
            .lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0))
    }
}

/// What the fake provider received, with arrival times.
pub async fn fake_messages(base: &str) -> Result<Vec<FakeMessage>, BenchError> {
    fake_messages_since(base, 0).await
}

/// What the fake provider received from its `seq` number `since` on.
pub async fn fake_messages_since(base: &str, since: u64) -> Result<Vec<FakeMessage>, BenchError> {
    let answer = reqwest::get(format!("{base}/_fake/messages?since={since}"))
        .await
        .map_err(|e| BenchError::Stuck(format!("fake messages: {e}")))?;
    answer
        .json()
        .await
        .map_err(|e| BenchError::Stuck(format!("fake messages: {e}")))
}

/// How long a child process may take to answer after it was started.
const START_WITHIN: Duration = Duration::from_secs(30);

/// Waits until `url` answers a success: a process that listens but is not ready yet (its
/// Redis checks still running) answers 503 and is waited for, not raced.
pub async fn wait_listening(url: &str, within: Duration) -> Result<(), BenchError> {
    let started = Instant::now();
    let mut last = String::from("no answer");
    while started.elapsed() < within {
        match reqwest::get(url).await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("answered {}", r.status()),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(BenchError::Stuck(format!(
        "{url} was not ready within {within:?} ({last})"
    )))
}

/// Queues `n` notifications through `codes` (the API's script), 64 at a time.
pub async fn prefill(codes: &Codes, first: u64, n: u64) -> Result<(), BenchError> {
    let template = TemplateId::parse("1").map_err(|e| BenchError::Stuck(e.to_string()))?;
    let mut tasks = JoinSet::new();
    for lane in 0..64u64 {
        let (codes, template) = (codes.clone(), template.clone());
        tasks.spawn(async move {
            let mut i = lane;
            while i < n {
                let to = Mobile::parse(&mobile(first + i)).map_err(|_| "bad mobile")?;
                let req = MessageRequest {
                    to,
                    template_id: template.clone(),
                    datas: vec!["bench".into()],
                    idempotency: None,
                    request_id: None,
                };
                codes
                    .enqueue_message(req)
                    .await
                    .map_err(|_| "enqueue failed")?;
                i += 64;
            }
            Ok::<(), &'static str>(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| BenchError::Stuck(e.to_string()))?
            .map_err(|e| BenchError::Stuck(e.to_owned()))?;
    }
    Ok(())
}

/// Issues `n` codes (purpose `login`) to distinct numbers from `mobile(first)` on, through
/// the API's own issue step, 64 at a time. Returns how many were refused.
pub async fn issue_codes(codes: &Codes, first: u64, n: u64) -> Result<u64, BenchError> {
    let purpose =
        crate::domain::Purpose::parse("login").map_err(|e| BenchError::Stuck(e.to_string()))?;
    let mut tasks = JoinSet::new();
    for lane in 0..64u64 {
        let (codes, purpose) = (codes.clone(), purpose.clone());
        tasks.spawn(async move {
            let mut refused = 0;
            let mut i = lane;
            while i < n {
                let mobile = Mobile::parse(&mobile(first + i)).map_err(|_| "bad mobile")?;
                let req = crate::codes::CodeRequest {
                    mobile,
                    purpose: purpose.clone(),
                    client_ip: None,
                    captcha: None,
                    idempotency: None,
                    // As through the API, which gives every request an id when it sent none.
                    request_id: Some(crate::domain::RequestId::generate()),
                    channel: crate::domain::Channel::Sms,
                };
                if codes.issue(req).await.is_err() {
                    refused += 1;
                }
                i += 64;
            }
            Ok::<u64, &'static str>(refused)
        });
    }
    let mut refused = 0;
    while let Some(done) = tasks.join_next().await {
        refused += done
            .map_err(|e| BenchError::Stuck(e.to_string()))?
            .map_err(|e| BenchError::Stuck(e.to_owned()))?;
    }
    Ok(refused)
}

/// Entries on the send streams of every shard of `store` (acked ones are deleted).
pub async fn backlog(store: &Store) -> Result<u64, BenchError> {
    let mut total = 0;
    for shard in store.shards().all() {
        let n: u64 = store.conn().xlen(store.keys(shard).jobs()).await?;
        total += n;
    }
    Ok(total)
}

/// Waits until `store`'s streams are empty (every job acked), at most `within`.
pub async fn drained(store: &Store, within: Duration) -> Result<Duration, BenchError> {
    let started = Instant::now();
    while backlog(store).await? > 0 {
        if started.elapsed() > within {
            return Err(BenchError::Stuck(format!("not drained within {within:?}")));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(started.elapsed())
}
