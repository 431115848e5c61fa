//! The test harness: a private `redis-server` per test binary, a key prefix per test, and
//! helpers to run the API, the fake provider and workers in-process ([`app`]), child `smsq`
//! processes ([`process`]) and the provider side ([`provider`]).

mod app;
mod latency;
mod process;
mod provider;

pub use app::*;
pub use latency::*;
pub use process::*;
pub use provider::*;

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use smsq::config::{RawConfig, Secrets, Settings};
use smsq::dev::local_cluster::LocalCluster;
use smsq::dev::local_redis::{Listen, LocalRedis};
use smsq::domain::Secret;

pub const SID: &str = "aaf98f89488d0aad0148a8e0d8d40a07";
pub const TOKEN: &str = "e33d4b7d2f6e4b6bb1e2a0b1f2c3d4e5";
pub const APP_ID: &str = "8a216da85f5c89b1015f7e6e3c2a0b1c";
pub const SECRET: &str = "test-secret-0123456789";
pub const REPORTS_TOKEN: &str = "reports-0123456789abcdef";

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

/// A private Redis Cluster of `masters` nodes with `replicas` each, for one test.
pub fn private_cluster(masters: usize, replicas: usize) -> LocalCluster {
    let dir = temp_dir("cluster");
    LocalCluster::start(&dir, masters, replicas).unwrap_or_else(|e| {
        panic!("\n\nthe cluster tests need redis-server and redis-cli: {e}\n\n")
    })
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

/// Whether `text` holds `code` as a value of its own: not inside a longer run of letters,
/// digits or a decimal point. A hex id, a millisecond count or a log line's microseconds
/// (`…:52.844621Z`, MONITOR's `1733….844621 [`) holds any six digits now and then; a leaked
/// code is a field's value (`code=844621`, `"844621"`).
pub fn holds_code(text: &str, code: &str) -> bool {
    let apart = |c: Option<char>| c.is_none_or(|c| !c.is_ascii_alphanumeric() && c != '.');
    text.match_indices(code).any(|(at, _)| {
        apart(text[..at].chars().next_back()) && apart(text[at + code.len()..].chars().next())
    })
}

#[test]
fn a_code_is_found_as_a_value_not_inside_an_id_or_a_timestamp() {
    for leak in [r#"datas=["844621","5"]"#, "code=844621 next", "844621"] {
        assert!(holds_code(leak, "844621"), "{leak}");
    }
    for not in [
        "2026-12-02T01:05:52.844621Z  INFO smsq",
        "job_id=00844621ab12",
        "1733112345.844621 [0 lua] \"HSET\"",
    ] {
        assert!(!holds_code(not, "844621"), "{not}");
    }
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
    // Nothing a test builds talks to the real provider, even one that forgets to point it at
    // the simulator: port 9 on loopback refuses.
    raw.provider.base_url = "http://127.0.0.1:9".into();
    raw.provider.timeout_ms = 2000;
    raw.provider.connect_timeout_ms = 1000;
    tweak(&mut raw);
    let secrets = Secrets {
        account_sid: Some(SID.into()),
        auth_token: Some(Secret::new(TOKEN)),
        app_id: Some(APP_ID.into()),
        secret: Some(Secret::new(SECRET)),
        api_tokens: Vec::new(),
        admin_tokens: Vec::new(),
        reports_token: Some(Secret::new(REPORTS_TOKEN)),
        metrics_token: None,
        webhook_secrets: Default::default(),
        test_numbers: Default::default(),
        captcha: Default::default(),
        providers: provider_secrets(),
    };
    Settings::from_raw(&raw, secrets).expect("valid test settings")
}

/// Credentials of the named accounts the tests configure, as `SMSQ_PROVIDER_<NAME>_*` give
/// them: `rl` and `rl2` (Ronglian, the simulator's account), `tc` (Tencent), `ali` (Aliyun),
/// each with the simulator's default keys.
pub fn provider_secrets() -> std::collections::BTreeMap<String, Secret> {
    use smsq::dev::fake::*;
    let mut out = std::collections::BTreeMap::new();
    for name in ["RL", "RL2"] {
        out.insert(
            format!("SMSQ_PROVIDER_{name}_ACCOUNT_SID"),
            Secret::new(SID),
        );
        out.insert(
            format!("SMSQ_PROVIDER_{name}_AUTH_TOKEN"),
            Secret::new(TOKEN),
        );
        out.insert(format!("SMSQ_PROVIDER_{name}_APP_ID"), Secret::new(APP_ID));
    }
    out.insert(
        "SMSQ_PROVIDER_TC_SECRET_ID".into(),
        Secret::new(FAKE_TENCENT_SECRET_ID),
    );
    out.insert(
        "SMSQ_PROVIDER_TC_SECRET_KEY".into(),
        Secret::new(FAKE_TENCENT_SECRET_KEY),
    );
    out.insert(
        "SMSQ_PROVIDER_ALI_ACCESS_KEY_ID".into(),
        Secret::new(FAKE_ALIYUN_ACCESS_KEY_ID),
    );
    out.insert(
        "SMSQ_PROVIDER_ALI_ACCESS_KEY_SECRET".into(),
        Secret::new(FAKE_ALIYUN_ACCESS_KEY_SECRET),
    );
    out
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

/// From now on Redis logs every command with its arguments (the slow log at 0 µs), as an
/// operator reading `SLOWLOG GET` would see them; the log starts empty.
pub async fn log_every_command(conn: &mut redis::aio::MultiplexedConnection, keep: u64) {
    for (k, v) in [
        ("slowlog-log-slower-than", "0".to_owned()),
        ("slowlog-max-len", keep.to_string()),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query_async(conn)
            .await
            .expect("CONFIG SET");
    }
    let _: () = redis::cmd("SLOWLOG")
        .arg("RESET")
        .query_async(conn)
        .await
        .expect("SLOWLOG RESET");
}

/// The slow log, oldest last: (µs the command took, the command and its arguments), without
/// the test's own `SLOWLOG` and `CONFIG` calls.
pub async fn slow_log(conn: &mut redis::aio::MultiplexedConnection) -> Vec<(u64, Vec<String>)> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(conn)
        .await
        .expect("SLOWLOG GET");
    let text = |v: &redis::Value| match v {
        redis::Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        other => format!("{other:?}"),
    };
    entries
        .iter()
        .filter_map(|entry| {
            let redis::Value::Array(f) = entry else {
                return None;
            };
            let redis::Value::Int(us) = f.get(2)? else {
                return None;
            };
            let redis::Value::Array(args) = f.get(3)? else {
                return None;
            };
            let args: Vec<String> = args.iter().map(text).collect();
            let own = args
                .first()
                .is_some_and(|c| c == "SLOWLOG" || c == "CONFIG");
            (!own).then_some((*us as u64, args))
        })
        .collect()
}
