//! `smsq dev`: the newcomer's first run. Redis (the configured one, or a private child), the
//! fake provider, the API and a worker in one process tree; one code sent and verified
//! through the HTTP API; then it keeps running until Ctrl-C and cleans up after itself.
//!
//! Also home of the development tooling the demo and the tests share: the TemplateSMS
//! simulator ([`fake`]) and a private `redis-server` child ([`local_redis`]).

pub mod bench;
pub mod failover;
pub mod fake;
pub mod fake_captcha;
pub mod local_cluster;
pub mod local_redis;
pub mod pumping;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use rand::RngExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::{Settings, mask_url_password};
use crate::provider::Kind;
use crate::startup::{Application, StartupError};
use fake::FakeOptions;
use local_cluster::LocalCluster;
use local_redis::{Listen, LocalRedis};

/// Marks an API token `smsq dev` made up (and may therefore print).
const DEV_TOKEN_PREFIX: &str = "dev-";

/// Made-up credentials for the fake provider, used when `RONGLIAN_*` are not set.
const DEV_ACCOUNT_SID: &str = "8a216da8dev0000000000000000000aa";
const DEV_AUTH_TOKEN: &str = "0123456789abcdef0123456789abcdef";
const DEV_APP_ID: &str = "8a216da8dev0000000000000000000bb";

/// Fills in what the demo needs and the environment did not give: a hashing key and a
/// Ronglian account that the in-process fake provider accepts.
pub fn dev_env(mut env: HashMap<String, String>) -> HashMap<String, String> {
    let mut default = |k: &str, v: String| {
        env.entry(k.to_owned()).or_insert(v);
    };
    let secret: [u8; 16] = rand::rng().random();
    default("SMSQ_SECRET", crate::domain::hex(&secret));
    default("RONGLIAN_ACCOUNT_SID", DEV_ACCOUNT_SID.to_owned());
    default("RONGLIAN_AUTH_TOKEN", DEV_AUTH_TOKEN.to_owned());
    default("RONGLIAN_APP_ID", DEV_APP_ID.to_owned());
    let token: [u8; 16] = rand::rng().random();
    default("SMSQ_REPORTS_TOKEN", crate::domain::hex(&token));
    // The demo calls the API with an API token and the dashboard logs in with an admin
    // token; tokens the demo made up say so (and may be printed).
    let token: [u8; 12] = rand::rng().random();
    default(
        "SMSQ_API_TOKENS",
        format!("{DEV_TOKEN_PREFIX}{}", crate::domain::hex(&token)),
    );
    let admin: [u8; 12] = rand::rng().random();
    default(
        "SMSQ_ADMIN_TOKENS",
        format!("{DEV_TOKEN_PREFIX}admin-{}", crate::domain::hex(&admin)),
    );
    env
}

/// Why the demo could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("{0}: {1}")]
    Io(&'static str, #[source] std::io::Error),
    #[error(transparent)]
    Redis(#[from] local_redis::LocalRedisError),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("calling the API: {0}")]
    Http(#[from] reqwest::Error),
    #[error("{0}")]
    Demo(String),
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> DevError {
    move |e| DevError::Io(what, e)
}

/// A directory of the demo's or the bench's, removed however they end.
pub(crate) struct TempDir(pub PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn run(mut settings: Settings, shutdown: CancellationToken) -> Result<(), DevError> {
    let dir = TempDir(std::env::temp_dir().join(format!("smsq-dev-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).map_err(io("creating the demo's temp directory"))?;

    let _redis = ensure_redis(&mut settings, &dir.0).await?;
    let account = settings.secrets.ronglian()?;
    fill_account_secrets(&mut settings, &account);

    let listener = match TcpListener::bind(settings.api.listen).await {
        Ok(l) => l,
        Err(e) => {
            println!(
                "  (api.listen {} is busy: {e}; using a free port)",
                settings.api.listen
            );
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(io("binding the API"))?
        }
    };
    let api_addr = listener.local_addr().map_err(io("binding the API"))?;
    let mut fake_opts = FakeOptions::new(
        &account.account_sid,
        account.auth_token.expose(),
        &account.app_id,
    );
    fake_opts.templates = settings.providers.template_ids().into_iter().collect();
    if let Some(tc) = settings
        .providers
        .accounts
        .iter()
        .find(|a| a.kind == Kind::Tencent)
    {
        fake_opts.tencent_app_id.clone_from(&tc.app_id);
    }
    fake_opts.record = Some(dir.0.join("messages.jsonl"));
    // The demo shares its process with the fake: the file keeps every message, memory only
    // the recent ones, so a `smsq dev` left running for days does not grow with its traffic.
    fake_opts.keep = 1_000;
    // The fake pushes delivery reports to our API, as the platform would.
    if let Some(token) = &settings.secrets.reports_token {
        // Each kind's reports to the first account of that kind.
        let url = |kind: Kind| {
            let a = settings
                .providers
                .accounts
                .iter()
                .find(|a| a.kind == kind)?;
            Some(format!(
                "http://{api_addr}/v1/provider/{}/reports/{}",
                a.name,
                token.expose()
            ))
        };
        fake_opts.report_url = url(Kind::Ronglian);
        fake_opts.tencent_report_url = url(Kind::Tencent);
        fake_opts.aliyun_report_url = url(Kind::Aliyun);
    }
    let fake = fake::spawn(fake_opts)
        .await
        .map_err(io("starting the fake provider"))?;
    settings.provider.base_url = fake.base_url();
    settings.providers.use_base_url(&fake.base_url())?;

    let app = Application::build(settings)?;
    let settings = app.settings();
    let stop = CancellationToken::new();
    let api = tokio::spawn({
        let (app, stop) = (app.clone(), stop.clone());
        async move { app.serve_api(listener, stop).await }
    });
    let worker = app.worker(None, Some(4))?;
    let worker = tokio::spawn(worker.run(stop.clone()));

    let base = format!("http://{api_addr}");
    println!(
        "smsq dev: redis {}, fake provider {}, api {base}",
        mask_url_password(&settings.redis.url),
        fake.base_url()
    );
    let first = |tokens: &[crate::domain::Secret]| {
        tokens
            .first()
            .map(|t| t.expose().to_owned())
            .unwrap_or_default()
    };
    let token = first(&settings.secrets.api_tokens);
    let admin = first(&settings.secrets.admin_tokens);
    let demo = tokio::select! {
        result = demo(&base, &token, &fake) => result,
        _ = shutdown.cancelled() => Ok(()),
    };
    let several = settings.providers.accounts.len() > 1;
    match &demo {
        Ok(()) => print_next_steps(&base, &token, &admin, &fake.base_url(), several),
        Err(e) => println!("\ndemo failed: {e}"),
    }
    if demo.is_ok() {
        shutdown.cancelled().await;
    }
    println!("\nstopping…");
    stop.cancel();
    let _ = api.await;
    let _ = worker.await;
    fake.stop().await;
    println!("stopped; temporary files removed");
    demo
}

/// A Redis `smsq dev` started, kept until it ends.
pub enum PrivateRedis {
    Single(LocalRedis),
    Cluster(LocalCluster),
}

/// The configured Redis (or cluster) if it answers, else a private `redis-server` on a free
/// port (or, with `redis.cluster`, a private three-master cluster).
async fn ensure_redis(
    settings: &mut Settings,
    dir: &std::path::Path,
) -> Result<Option<PrivateRedis>, DevError> {
    let reachable = async {
        let mut conn = crate::store::Conn::open(&settings.redis, settings.redis.timeout).ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .ok()
    };
    if tokio::time::timeout(Duration::from_millis(800), reachable)
        .await
        .ok()
        .flatten()
        .is_some()
    {
        return Ok(None);
    }
    let dir = dir.to_owned();
    let private = if settings.redis.cluster {
        println!(
            "smsq dev: no cluster answers at {}; starting a private Redis Cluster (3 masters)",
            mask_url_password(&settings.redis.url)
        );
        let cluster = tokio::task::spawn_blocking(move || LocalCluster::start(&dir, 3, 0))
            .await
            .map_err(|e| DevError::Demo(format!("starting the cluster: {e}")))??;
        settings.redis.url = cluster.url();
        PrivateRedis::Cluster(cluster)
    } else {
        println!(
            "smsq dev: nothing answers at {}; starting a private redis-server",
            mask_url_password(&settings.redis.url)
        );
        let port = LocalRedis::free_port().map_err(io("finding a free port"))?;
        let redis = tokio::task::spawn_blocking(move || LocalRedis::start(&dir, Listen::Tcp(port)))
            .await
            .map_err(|e| DevError::Demo(format!("starting redis-server: {e}")))??;
        settings.redis.url = redis.url();
        PrivateRedis::Single(redis)
    };
    Ok(Some(private))
}

async fn demo(base: &str, token: &str, fake: &fake::FakeHandle) -> Result<(), DevError> {
    crate::provider::install_crypto();
    let mut headers = reqwest::header::HeaderMap::new();
    if let Ok(bearer) = format!("Bearer {token}").parse() {
        headers.insert(reqwest::header::AUTHORIZATION, bearer);
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .default_headers(headers)
        .build()?;
    let mobile = format!("138{:08}", rand::rng().random_range(0..100_000_000u32));
    println!("\n1. POST {base}/v1/codes  {{\"mobile\": \"{mobile}\", \"purpose\": \"login\"}}");
    let issued: serde_json::Value = http
        .post(format!("{base}/v1/codes"))
        .json(&serde_json::json!({"mobile": mobile, "purpose": "login"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("   → 202 {issued}");
    let job_id = issued["job_id"].as_str().unwrap_or_default().to_owned();

    let deadline = Instant::now() + Duration::from_secs(15);
    let message = loop {
        if let Some(m) = fake
            .messages()
            .into_iter()
            .find(|m| m.req_id.as_deref() == Some(job_id.as_str()))
        {
            break m;
        }
        if Instant::now() > deadline {
            return Err(DevError::Demo(
                "the worker did not send the SMS within 15 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let code = message.datas.first().cloned().unwrap_or_default();
    println!("\n2. the worker sent it; the fake provider received:");
    println!(
        "   to {} template {} datas {:?} (smsMessageSid {})",
        message.to, message.template_id, message.datas, message.sms_message_sid
    );
    println!("   the code is {code}");

    println!(
        "\n3. POST {base}/v1/codes/verify  {{\"mobile\": \"{mobile}\", \"purpose\": \"login\", \"code\": \"{code}\"}}"
    );
    let verified: serde_json::Value = http
        .post(format!("{base}/v1/codes/verify"))
        .json(&serde_json::json!({"mobile": mobile, "purpose": "login", "code": code}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    println!("   → 200 {verified}");
    if verified["valid"] != serde_json::Value::Bool(true) {
        return Err(DevError::Demo(format!("verification failed: {verified}")));
    }
    // The fake pushes the delivery report a moment after accepting the SMS.
    let deadline = Instant::now() + Duration::from_secs(10);
    let job = loop {
        let job: serde_json::Value = http
            .get(format!("{base}/v1/jobs/{job_id}"))
            .send()
            .await?
            .json()
            .await?;
        if job["status"] == "delivered" || Instant::now() > deadline {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    println!("\n4. GET {base}/v1/jobs/{job_id}   (after the delivery report)\n   → {job}");
    if job["status"] != "delivered" {
        return Err(DevError::Demo(format!(
            "no delivery report within 10 s: {job}"
        )));
    }
    println!(
        "\nverified: the code that was sent is the code that verifies, and it reached the handset \
         (queued → sending → sent → delivered)."
    );
    Ok(())
}

/// The simulator accepts one account per kind: a named account whose credentials the
/// environment does not give gets the simulator's (never replacing what was given).
fn fill_account_secrets(settings: &mut Settings, ronglian: &crate::config::RonglianAccount) {
    use crate::domain::Secret;
    let mut wanted = Vec::new();
    for a in settings.providers.accounts.iter().filter(|a| !a.legacy) {
        let fields: Vec<(&str, String)> = match a.kind {
            Kind::Ronglian => vec![
                ("ACCOUNT_SID", ronglian.account_sid.clone()),
                ("AUTH_TOKEN", ronglian.auth_token.expose().to_owned()),
                ("APP_ID", ronglian.app_id.clone()),
            ],
            Kind::Tencent => vec![
                ("SECRET_ID", fake::FAKE_TENCENT_SECRET_ID.to_owned()),
                ("SECRET_KEY", fake::FAKE_TENCENT_SECRET_KEY.to_owned()),
            ],
            Kind::Aliyun => vec![
                ("ACCESS_KEY_ID", fake::FAKE_ALIYUN_ACCESS_KEY_ID.to_owned()),
                (
                    "ACCESS_KEY_SECRET",
                    fake::FAKE_ALIYUN_ACCESS_KEY_SECRET.to_owned(),
                ),
            ],
        };
        wanted.extend(fields.into_iter().map(|(f, v)| (a.secret_var(f), v)));
    }
    for (var, value) in wanted {
        settings
            .secrets
            .providers
            .entry(var)
            .or_insert_with(|| Secret::new(value));
    }
}

fn print_next_steps(base: &str, token: &str, admin: &str, fake: &str, several: bool) {
    // Only a token the demo made up is printed; one from the environment stays secret.
    let shown = if token.starts_with(DEV_TOKEN_PREFIX) {
        token
    } else {
        "$TOKEN"
    };
    let login = if admin.starts_with(DEV_TOKEN_PREFIX) {
        format!("log in with the admin token {admin}")
    } else {
        "log in with one of your SMSQ_ADMIN_TOKENS".to_owned()
    };
    let auth = format!("-H 'authorization: Bearer {shown}'");
    println!(
        "\nDashboard: {base}/dashboard  ({login})
\nTry next (Ctrl-C stops everything):
  curl -s -XPOST {base}/v1/codes {auth} -H 'content-type: application/json' -d '{{\"mobile\":\"13800138000\"}}'
  curl -s {fake}/_fake/messages
  curl -s -XPOST {base}/v1/codes/verify {auth} -H 'content-type: application/json' -d '{{\"mobile\":\"13800138000\",\"code\":\"<code>\"}}'
  curl -s {base}/readyz"
    );
    if several {
        println!(
            "\nFailover: take the primary down, watch codes go through the next account on the
dashboard, then bring it back (`\"fault\"`: http500, account, throttle, hang or none):
  curl -s -XPOST {fake}/_fake/outage -d '{{\"kind\":\"ronglian\",\"fault\":\"http500\"}}'
  curl -s -XPOST {fake}/_fake/outage -d '{{\"kind\":\"ronglian\",\"fault\":\"none\"}}'"
        );
    }
}
