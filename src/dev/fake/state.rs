//! What the simulator remembers: numbers' last sends and daily counts, reqIds seen today, the
//! accepted messages (and the record file).

use std::collections::{HashMap, HashSet, VecDeque};

use chrono::Utc;
use rand::RngExt;
use rand::rngs::StdRng;
use tokio::io::AsyncWriteExt;

use super::checks::{Checked, Fault, fault};
use super::{Fake, FakeMessage, Outage, ScriptedAnswer};
use crate::domain::beijing;
use crate::provider::Kind;

pub(super) struct Inner {
    pub rng: StdRng,
    pub last_sent: HashMap<String, chrono::DateTime<Utc>>,
    pub daily: HashMap<String, u32>,
    /// The Beijing day `daily` counts; a new day starts it empty.
    pub daily_day: String,
    pub req_ids: HashSet<(String, String)>,
    /// `req_ids` in the order they came, to forget the oldest past `--keep`.
    pub req_id_order: VecDeque<(String, String)>,
    /// The last `--keep` accepted messages, oldest first.
    pub messages: VecDeque<FakeMessage>,
    /// Every message ever accepted, kept or not: the next message's `seq`.
    pub accepted: u64,
    pub scripted: Vec<ScriptedAnswer>,
    /// What each kind answers now (`POST /_fake/outage`).
    pub outages: HashMap<Kind, Outage>,
    /// Aliyun nonces seen, to refuse a reused one, and their order (the oldest forgotten).
    pub nonces: HashSet<String>,
    pub nonce_order: VecDeque<String>,
}

impl Inner {
    /// Remembers `message` (and its reqId), forgetting the oldest past `keep`.
    fn remember(&mut self, message: FakeMessage, day: &str, keep: usize, dedupe: bool) {
        if let Some(req_id) = message.req_id.as_ref().filter(|_| dedupe) {
            let key = (day.to_owned(), req_id.clone());
            self.req_ids.insert(key.clone());
            self.req_id_order.push_back(key);
            while self.req_id_order.len() > keep {
                if let Some(old) = self.req_id_order.pop_front() {
                    self.req_ids.remove(&old);
                }
            }
        }
        self.accepted += 1;
        self.messages.push_back(message);
        while self.messages.len() > keep {
            self.messages.pop_front();
        }
    }
}

/// The Beijing day (`yyyymmdd`) the provider counts reqIds and daily limits in.
pub(super) fn beijing_day(now: chrono::DateTime<Utc>) -> String {
    now.with_timezone(&beijing()).format("%Y%m%d").to_string()
}

/// Limits that depend on what was sent before, then the message is accepted and recorded.
pub(super) async fn accept(
    fake: &Fake,
    request: Checked,
    received_us: i64,
    kind: Kind,
) -> Result<FakeMessage, Fault> {
    let opts = &fake.opts;
    let now = Utc::now();
    let day = beijing_day(now);
    let message = {
        let mut inner = fake.lock();
        // Only Ronglian deduplicates by request id; Tencent's and Aliyun's only correlate.
        let dedupe = kind == Kind::Ronglian && request.voice.is_none();
        if dedupe
            && let Some(req_id) = &request.req_id
            && inner.req_ids.contains(&(day.clone(), req_id.clone()))
        {
            return Err(fault("160054", "请求重复"));
        }
        if inner.daily_day != day {
            inner.daily.clear();
            inner.daily_day.clone_from(&day);
        }
        // Daily counts are per number and template, per Beijing day.
        let daily_key = |number: &str| format!("{number}/{}/{day}", request.template_id);
        for number in &request.to {
            if let (Some(secs), Some(last)) =
                (opts.per_number_interval_secs, inner.last_sent.get(number))
                && (now - *last).num_milliseconds() < (secs as i64) * 1000
            {
                return Err(fault("160038", "短信验证码发送过频繁"));
            }
            if let Some(limit) = opts.daily_limit
                && inner.daily.get(&daily_key(number)).copied().unwrap_or(0) >= limit
            {
                return Err(fault("160040", "验证码超出同模板同号码天发送上限"));
            }
        }
        // Only the limits that are on keep a per-number memory: the fake stays bounded.
        for number in &request.to {
            if opts.per_number_interval_secs.is_some() {
                inner.last_sent.insert(number.clone(), now);
            }
            if opts.daily_limit.is_some() {
                *inner.daily.entry(daily_key(number)).or_default() += 1;
            }
        }
        let sid_bytes: [u8; 16] = inner.rng.random();
        let digits: u64 = inner.rng.random_range(10u64.pow(17)..10u64.pow(18));
        let voice = request.voice.clone();
        let message = FakeMessage {
            // Each vendor's own shape: what its delivery report names.
            sms_message_sid: match kind {
                Kind::Ronglian => crate::domain::hex(&sid_bytes),
                Kind::Tencent => format!("2019:{digits}"),
                Kind::Aliyun => format!("{digits}^0"),
            },
            kind: kind.as_str().to_owned(),
            resp_url: voice.as_ref().and_then(|v| v.resp_url.clone()),
            to: request.to.join(","),
            template_id: request.template_id,
            datas: request.datas,
            req_id: request.req_id.or(voice.map(|v| v.user_data)),
            date_created: now
                .with_timezone(&beijing())
                .format("%Y%m%d%H%M%S")
                .to_string(),
            received_us,
            seq: inner.accepted,
        };
        inner.remember(message.clone(), &day, opts.keep.max(1), dedupe);
        message
    };
    if let Some(path) = &opts.record {
        let line = format!("{}\n", serde_json::to_string(&message).unwrap_or_default());
        let written = async {
            let mut f = tokio::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .await?;
            f.write_all(line.as_bytes()).await?;
            // tokio's File hands writes to a background thread; flush waits until it is done,
            // so the line is on disk before the client gets its answer.
            f.flush().await
        };
        if let Err(e) = written.await {
            tracing::warn!(error = %e, path = %path.display(), "cannot record fake message");
        }
    }
    Ok(message)
}
