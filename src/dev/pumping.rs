//! The pumping scenario (issue 18 item 7), run by `bench/run` at full size and by a test
//! small: a ring requesting codes for distinct numbers inside a few 号段, from thousands of
//! addresses, never verifying, interleaved with real users whose numbers are spread over all
//! mainland prefixes, each from its own address, most of whom read their code (from the fake
//! provider) and verify it. It reports what reached the provider for the ring's numbers and
//! how many real users were refused.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, RngExt};
use tokio::sync::oneshot;
use tokio::task::JoinSet;

use crate::dev::fake::FakeMessage;

#[derive(Debug, Clone, Copy)]
pub struct PumpingSizes {
    pub bot_requests: u64,
    pub bot_prefixes: u64,
    pub bot_v4: u64,
    pub bot_v4_networks: u64,
    pub bot_v6: u64,
    pub bot_v6_networks: u64,
    pub bot_rate: f64,
    pub real_requests: u64,
    pub real_rate: f64,
    /// Share of real users who verify their code.
    pub verifying: f64,
    pub verify_within: Duration,
}

impl PumpingSizes {
    /// The scenario: 20,000 ring requests at ~200/s, 2,000 real users at ~20/s.
    pub fn full() -> Self {
        Self {
            bot_requests: 20_000,
            bot_prefixes: 20,
            bot_v4: 5_000,
            bot_v4_networks: 2_000,
            bot_v6: 500,
            bot_v6_networks: 50,
            bot_rate: 200.0,
            real_requests: 2_000,
            real_rate: 20.0,
            verifying: 0.8,
            verify_within: Duration::from_secs(30),
        }
    }

    /// The same shape, a tenth of it, twice as fast: seconds, for a test.
    pub fn small() -> Self {
        Self {
            bot_requests: 2_000,
            bot_rate: 400.0,
            real_requests: 200,
            real_rate: 40.0,
            verify_within: Duration::from_secs(10),
            ..Self::full()
        }
    }
}

impl PumpingSizes {
    /// For `bench/run --quick`: the same shape, a twentieth of it, in a few seconds.
    pub fn quick() -> Self {
        Self {
            bot_requests: 1_000,
            bot_rate: 500.0,
            real_requests: 100,
            real_rate: 50.0,
            ..Self::small()
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PumpingResult {
    pub bot_requests: u64,
    /// SMS that reached the provider for the ring's numbers (see [`count_bot_sms`]).
    pub bot_sms: u64,
    pub real_requests: u64,
    /// Real users refused with anything but their own `resend_too_soon`.
    pub real_refused: u64,
    pub real_verified: u64,
    /// The ring's answers by error code (`accepted` for 202).
    pub bot_answers: BTreeMap<String, u64>,
    pub real_answers: BTreeMap<String, u64>,
    pub seconds: f64,
}

#[derive(Debug, thiserror::Error)]
#[error("pumping scenario: {0}")]
pub struct PumpingError(String);

/// The ring's `i`-th request: a number walking one of its prefixes, and an address.
fn bot(i: u64, s: &PumpingSizes) -> (String, String) {
    let prefix = 1_700_000 + (i % s.bot_prefixes) * 37;
    let mobile = format!("{prefix}{:04}", (i / s.bot_prefixes) % 10_000);
    let ip = if i % 10 == 9 {
        let a = i % s.bot_v6;
        format!(
            "2001:db8:aa:{:x}::{:x}",
            a % s.bot_v6_networks,
            a / s.bot_v6_networks + 1
        )
    } else {
        let a = i % s.bot_v4;
        let net = a % s.bot_v4_networks;
        format!(
            "100.{}.{}.{}",
            64 + net / 256,
            net % 256,
            a / s.bot_v4_networks + 1
        )
    };
    (mobile, ip)
}

fn is_bot(mobile: &str, s: &PumpingSizes) -> bool {
    let Some(prefix) = mobile.get(..7).and_then(|p| p.parse::<u64>().ok()) else {
        return false;
    };
    prefix >= 1_700_000
        && (prefix - 1_700_000) % 37 == 0
        && (prefix - 1_700_000) / 37 < s.bot_prefixes
}

/// A real user: any mainland number, any address.
fn real(rng: &mut impl Rng) -> (String, String) {
    let mobile = format!(
        "1{}{:09}",
        rng.random_range(3..=9),
        rng.random_range(0..1_000_000_000u64)
    );
    let ip = format!(
        "{}.{}.{}.{}",
        rng.random_range(1..=99),
        rng.random_range(0..=255),
        rng.random_range(0..=255),
        rng.random_range(1..=254)
    );
    (mobile, ip)
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<String>>>>;

/// Hands each real user the code the fake provider received for their number.
async fn read_codes(fake: String, waiting: Waiting, stop: tokio_util::sync::CancellationToken) {
    let mut since = 0;
    loop {
        let done = stop.is_cancelled();
        if let Ok(r) = reqwest::get(format!("{fake}/_fake/messages?since={since}")).await
            && let Ok(messages) = r.json::<Vec<FakeMessage>>().await
        {
            for m in messages {
                since = since.max(m.seq + 1);
                if let Some(tx) = waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&m.to)
                {
                    let _ = tx.send(m.datas.first().cloned().unwrap_or_default());
                }
            }
        }
        if done {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// One `POST /v1/codes`: `accepted`, the error code, or `no_answer`.
async fn ask(http: &reqwest::Client, url: &str, mobile: &str, ip: &str) -> String {
    let body = serde_json::json!({"mobile": mobile, "client_ip": ip});
    let Ok(r) = http.post(url).json(&body).send().await else {
        return "no_answer".to_owned();
    };
    if r.status().as_u16() == 202 {
        return "accepted".to_owned();
    }
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    body["error"].as_str().unwrap_or("other").to_owned()
}

/// Runs the scenario against a running API at `api` whose workers send to the fake at `fake`.
pub async fn run(api: &str, fake: &str, s: PumpingSizes) -> Result<PumpingResult, PumpingError> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(256)
        .build()
        .map_err(|e| PumpingError(e.to_string()))?;
    let url = format!("{api}/v1/codes");
    let result = Arc::new(Mutex::new(PumpingResult::default()));
    let waiting: Waiting = Default::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let reader = tokio::spawn(read_codes(fake.to_owned(), waiting.clone(), stop.clone()));
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    // Requests in flight at most: a server that falls behind slows the scenario down rather
    // than drowning in its own backlog (and answering `unavailable` to everyone).
    let in_flight = Arc::new(tokio::sync::Semaphore::new(64));
    let (bot_every, real_every) = (1.0 / s.bot_rate, 1.0 / s.real_rate);
    let (mut next_bot, mut next_real, mut sent_real) = (0u64, 0.0f64, 0u64);
    let mut rng = rand::rng();
    while next_bot < s.bot_requests || sent_real < s.real_requests {
        let t = started.elapsed().as_secs_f64();
        let bot_due = next_bot as f64 * bot_every;
        if next_bot < s.bot_requests && bot_due <= t {
            let (mobile, ip) = bot(next_bot, &s);
            next_bot += 1;
            let permit = in_flight.clone().acquire_owned().await;
            let (http, url, result) = (http.clone(), url.clone(), result.clone());
            tasks.spawn(async move {
                let key = ask(&http, &url, &mobile, &ip).await;
                drop(permit);
                let mut r = result.lock().unwrap_or_else(|p| p.into_inner());
                r.bot_requests += 1;
                *r.bot_answers.entry(key).or_default() += 1;
            });
            continue;
        }
        if sent_real < s.real_requests && next_real <= t {
            next_real += real_every;
            sent_real += 1;
            let (mobile, ip) = real(&mut rng);
            let verifies = rng.random_bool(s.verifying);
            let think = Duration::from_millis(rng.random_range(500..3000));
            let (http, api, result, waiting) = (
                http.clone(),
                api.to_owned(),
                result.clone(),
                waiting.clone(),
            );
            let within = s.verify_within;
            let permit = in_flight.clone().acquire_owned().await;
            tasks.spawn(async move {
                let (tx, rx) = oneshot::channel();
                waiting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(mobile.clone(), tx);
                let key = ask(&http, &format!("{api}/v1/codes"), &mobile, &ip).await;
                drop(permit);
                let accepted = key == "accepted";
                {
                    let mut r = result.lock().unwrap_or_else(|p| p.into_inner());
                    r.real_requests += 1;
                    r.real_refused += u64::from(!accepted && key != "resend_too_soon");
                    *r.real_answers.entry(key).or_default() += 1;
                }
                if !(accepted && verifies) {
                    return;
                }
                let Ok(Ok(code)) = tokio::time::timeout(within, rx).await else {
                    return;
                };
                tokio::time::sleep(think).await;
                let verified = http
                    .post(format!("{api}/v1/codes/verify"))
                    .json(&serde_json::json!({"mobile": mobile, "code": code}))
                    .send()
                    .await;
                if let Ok(r) = verified
                    && r.json::<serde_json::Value>().await.unwrap_or_default()["valid"] == true
                {
                    result
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .real_verified += 1;
                }
            });
            continue;
        }
        let wait = (bot_due.min(next_real) - t).clamp(0.0005, 0.01);
        tokio::time::sleep(Duration::from_secs_f64(wait)).await;
    }
    while tasks.join_next().await.is_some() {}
    stop.cancel();
    reader.await.map_err(|e| PumpingError(e.to_string()))?;
    let mut r = result.lock().unwrap_or_else(|p| p.into_inner()).clone();
    r.seconds = started.elapsed().as_secs_f64();
    Ok(r)
}

/// The SMS the provider received for the ring's numbers: count them once the queue is
/// drained (`bot_sms` of [`run`]'s result stays 0 until then).
pub fn count_bot_sms(messages: &[FakeMessage], s: &PumpingSizes) -> u64 {
    messages.iter().filter(|m| is_bot(&m.to, s)).count() as u64
}
