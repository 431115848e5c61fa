//! Issuing codes and enqueueing notification messages: the per-IP cap, then one script.

use std::time::Duration;

use super::Intake;
use super::guard::{self, BudgetAlert, GuardRefusal};
use super::windows::windows;
use crate::config::{CodeSettings, GuardSettings};
use crate::domain::{ClientNet, Job, Mobile, Purpose};
use crate::store::script::script;
use crate::store::{StoreError, field};

script! {
    /// Reserves one slot of an address's and its network's hourly caps, or says which refused.
    struct IpReserveCall = include_str!("ip_reserve.lua");
    keys { user, network }
    argv { user_limit: u32, network_limit: u32, ttl_ms: i64 }
}

script! {
    /// Gives a reservation back.
    struct IpReleaseCall = include_str!("ip_release.lua");
    keys { user, network }
    argv {}
}

script! {
    /// Checks the resend window and the caps, then stores the code, its job and the entry.
    struct IssueCodeCall<'a> = include_str!("issue_code.lua");
    keys {
        idem, stream, events, job_key, by_mobile, code_key, caps, prev_caps,
        budget_hour, budget_day, guard_now, guard_prev, blocked,
    }
    argv {
        fingerprint: &'a str, answer: &'a str, answer_ttl: u64, now: i64, job_id: &'a str,
        job_json: String, stream_maxlen: u64, events_keep_ms: u64, ttl: u64, masked: String,
        purpose: &'a str, code_hash: &'a str, sealed_code: &'a str,
        code_ttl_ms: u64, resend_ms: u64, hour_field: &'a str, hourly_limit: u32, hourly_ttl_ms: i64,
        daily_limit: u32, daily_ttl_ms: i64, verify_attempts: u32, request_id: &'a str, test: &'a str, guard: String, prefix: String,
        captcha_solved: &'a str, voice_limit: u32, fallback_json: &'a str, fallback_cap: u32,
        job_prefix: String, packed_id: [u8; 16],
    }
}

script! {
    /// Stores a notification job and its entry (the idempotency record with it).
    struct EnqueueMessageCall<'a> = include_str!("enqueue_message.lua");
    keys { idem, stream, events, job_key, by_mobile }
    argv {
        fingerprint: &'a str, answer: &'a str, answer_ttl: u64, now: i64, job_id: &'a str,
        job_json: String, stream_maxlen: u64, events_keep_ms: u64, ttl: u64, masked: String,
        template_id: &'a str, request_id: &'a str, packed_id: [u8; 16],
    }
}

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_TTL_SECS: u64 = 24 * 3600;

/// A new code job, ready to be stored. `answer` is the API response that an
/// `Idempotency-Key` replay returns.
pub struct NewCode<'a> {
    pub job: &'a Job,
    pub purpose: &'a Purpose,
    /// The code sealed for this job: the plain code never reaches Redis.
    pub sealed: &'a crate::domain::SealedCode,
    pub code_hash: &'a str,
    pub idempotency: Option<Idempotency<'a>>,
    pub answer: &'a str,
    /// The request carried a solved captcha: a guard whose action is `captcha` lets it by.
    pub captcha_solved: bool,
    /// The fleet guards; `None` for a test number, which they neither count nor stop.
    pub guard: Option<&'a GuardSettings>,
    /// `code.fallback = "voice"`, for a text that may fall back to a call.
    pub fallback: Option<&'a Fallback>,
}

/// A text's fallback call: the voice job (a [`Job`] with `code_of` = the text's id) kept on the
/// text's record, and the day's voice cap when this request's resend falls back (0: none now,
/// e.g. in the quiet hours).
pub struct Fallback {
    pub call_json: String,
    pub resend_cap: u32,
}

/// A notification job, ready to be stored.
pub struct NewMessage<'a> {
    pub job: &'a Job,
    pub idempotency: Option<Idempotency<'a>>,
    pub answer: &'a str,
}

/// `digest` names the record (a hash of the client's key), `fingerprint` is a hash of the body.
#[derive(Clone, Copy)]
pub struct Idempotency<'a> {
    pub digest: &'a str,
    pub fingerprint: &'a str,
}

/// Which per-address cap refused a request, and when it resets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpRefusal {
    /// `code.hourly_limit_per_ip`: this address (this IPv6 /64).
    User(Duration),
    /// `code.hourly_limit_per_network`: this IPv4 /24 or IPv6 /48.
    Network(Duration),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// With the budgets this code brought to their soft threshold.
    Issued(Vec<BudgetAlert>),
    /// The same `Idempotency-Key` and body were seen before: here is the first answer.
    Replay(String),
    /// The same `Idempotency-Key` with a different body.
    Conflict,
    ResendTooSoon(Duration),
    HourlyLimit(Duration),
    DailyLimit(Duration),
    /// `code.voice_daily_limit_per_mobile` calls today.
    VoiceLimit(Duration),
    /// A resend fell back to a call with the same code: the answer (as an idempotent replay's).
    Fallback(String),
    /// The stream holds `stream.maxlen` unsent jobs: refuse rather than trim (trimming would
    /// drop queued jobs).
    QueueFull,
    /// A fleet guard (`[guard]`) held.
    Guarded(GuardRefusal),
}

pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn ms_reply(reply: &[String]) -> Result<Duration, StoreError> {
    let v: i64 = field(reply, 1)?
        .parse()
        .map_err(|_| StoreError::Reply(format!("bad ttl in {reply:?}")))?;
    Ok(Duration::from_millis(v.max(0) as u64))
}

impl Intake {
    /// The per-user and per-network hourly caps: `Ok(None)` reserved one slot of each,
    /// `Ok(Some(refusal))` refused.
    pub async fn reserve_ip(
        &self,
        client: &ClientNet,
        limits: (u32, u32),
        now_ms: i64,
    ) -> Result<Option<IpRefusal>, StoreError> {
        let w = windows(now_ms);
        let k = self.fleet();
        let reply: (i64, i64, Option<String>) = IpReserveCall {
            user: k.ip(&client.network, &client.host, &w.hour),
            network: k.ip_network(&client.network, &w.hour),
            user_limit: limits.0,
            network_limit: limits.1,
            ttl_ms: w.hour_left_ms,
        }
        .call(&mut self.conn())
        .await?;
        let after = |pttl: i64| Duration::from_millis(pttl.max(0) as u64);
        Ok(match reply {
            (1, ..) => None,
            (_, pttl, Some(which)) if which == "network" => Some(IpRefusal::Network(after(pttl))),
            (_, pttl, _) => Some(IpRefusal::User(after(pttl))),
        })
    }

    pub async fn release_ip(&self, client: &ClientNet, now_ms: i64) -> Result<(), StoreError> {
        let w = windows(now_ms);
        let k = self.fleet();
        let _: i64 = IpReleaseCall {
            user: k.ip(&client.network, &client.host, &w.hour),
            network: k.ip_network(&client.network, &w.hour),
        }
        .call(&mut self.conn())
        .await?;
        Ok(())
    }

    /// Checks the resend flag and the caps, then stores the code, the job and its stream
    /// entry — or, if any check fails, changes nothing. All on the number's shard.
    pub async fn issue_code(
        &self,
        new: &NewCode<'_>,
        settings: &CodeSettings,
    ) -> Result<IssueOutcome, StoreError> {
        let job = new.job;
        let k = self.of_mobile(&job.to);
        let (mobile, purpose) = (job.to.as_str(), new.purpose.as_str());
        let w = windows(job.created_ms);
        let e = self.job_write(job, new.idempotency);
        let prefix = job.to.prefix();
        let window = new
            .guard
            .and_then(|g| g.prefix.as_ref())
            .map_or(std::time::Duration::from_secs(1), |p| p.window);
        let (now_bucket, prev_bucket) = guard::buckets(job.created_ms, window);
        let reply: Vec<String> = IssueCodeCall {
            idem: e.idem,
            stream: e.stream,
            events: e.events,
            job_key: e.job_key,
            by_mobile: e.by_mobile,
            code_key: k.code(purpose, mobile),
            caps: k.caps(mobile, &w.day),
            // A resend window that began before midnight is on yesterday's caps: read them
            // while today is younger than the interval (else today's again, read once).
            prev_caps: match w.previous_day(settings.resend_interval) {
                Some(day) => k.caps(mobile, &day),
                None => k.caps(mobile, &w.day),
            },
            budget_hour: k.budget(&w.hour),
            budget_day: k.budget(&w.day),
            guard_now: k.guard_counts(now_bucket),
            guard_prev: k.guard_counts(prev_bucket),
            blocked: k.guard_blocked(),
            fingerprint: e.fingerprint,
            answer: new.answer,
            answer_ttl: IDEMPOTENCY_TTL_SECS,
            now: job.created_ms,
            job_id: job.id.as_str(),
            job_json: job.to_json(),
            stream_maxlen: self.retention.stream_maxlen,
            events_keep_ms: self.retention.events_keep_ms,
            ttl: self.retention.status_ttl_secs,
            masked: job.to.masked(),
            purpose,
            code_hash: new.code_hash,
            sealed_code: new.sealed.as_str(),
            code_ttl_ms: ms(settings.ttl),
            resend_ms: ms(settings.resend_interval),
            hour_field: &w.hour_field,
            hourly_limit: settings.hourly_limit_per_mobile.get(),
            hourly_ttl_ms: w.hour_left_ms,
            daily_limit: settings.daily_limit_per_mobile.get(),
            daily_ttl_ms: w.day_left_ms,
            verify_attempts: settings.max_verify_attempts.get(),
            request_id: job.request_id.as_ref().map_or("", |r| r.as_str()),
            test: if job.test { "1" } else { "0" },
            guard: new.guard.map_or(String::new(), |g| {
                guard::policy(g, new.purpose, self.shards().count() as u32)
            }),
            prefix: prefix.as_str().to_owned(),
            captcha_solved: if new.captcha_solved { "1" } else { "0" },
            voice_limit: match job.channel {
                crate::domain::Channel::Voice => settings.voice.daily_limit_per_mobile.get(),
                crate::domain::Channel::Sms => 0,
            },
            fallback_json: new.fallback.map_or("", |f| f.call_json.as_str()),
            fallback_cap: new.fallback.map_or(0, |f| f.resend_cap),
            job_prefix: k.job_prefix(),
            packed_id: job.id.packed(),
        }
        .call(&mut self.conn())
        .await?;
        if field(&reply, 0)? == "guard" {
            return Ok(IssueOutcome::Guarded(guard::refusal(&reply, prefix)?));
        }
        outcome(&reply)
    }

    pub async fn enqueue_message(&self, new: &NewMessage<'_>) -> Result<IssueOutcome, StoreError> {
        let job = new.job;
        let e = self.job_write(job, new.idempotency);
        let reply: Vec<String> = EnqueueMessageCall {
            idem: e.idem,
            stream: e.stream,
            events: e.events,
            job_key: e.job_key,
            by_mobile: e.by_mobile,
            fingerprint: e.fingerprint,
            answer: new.answer,
            answer_ttl: IDEMPOTENCY_TTL_SECS,
            now: job.created_ms,
            job_id: job.id.as_str(),
            job_json: job.to_json(),
            stream_maxlen: self.retention.stream_maxlen,
            events_keep_ms: self.retention.events_keep_ms,
            ttl: self.retention.status_ttl_secs,
            masked: job.to.masked(),
            template_id: job.template_id.as_str(),
            request_id: job.request_id.as_ref().map_or("", |r| r.as_str()),
            packed_id: job.id.packed(),
        }
        .call(&mut self.conn())
        .await?;
        outcome(&reply)
    }

    /// The keys both enqueue scripts start with, on the number's shard.
    fn job_write<'a>(&self, job: &Job, idempotency: Option<Idempotency<'a>>) -> JobWrite<'a> {
        let k = self.of_mobile(&job.to);
        let (digest, fingerprint) = idempotency.map_or(("-", ""), |i| (i.digest, i.fingerprint));
        JobWrite {
            idem: k.idempotency(digest),
            stream: k.jobs(),
            events: k.events(),
            job_key: k.job(job.id.as_str()),
            by_mobile: k.by_mobile(job.to.as_str()),
            fingerprint,
        }
    }

    /// The answer remembered for an `Idempotency-Key` of a request to `mobile`, if any:
    /// `(fingerprint, answer)`. The record lives on the number's shard, written by the same
    /// script as the job.
    pub async fn idempotent_answer(
        &self,
        mobile: &Mobile,
        digest: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let (fp, answer): (Option<String>, Option<String>) = redis::cmd("HMGET")
            .arg(self.of_mobile(mobile).idempotency(digest))
            .arg("fp")
            .arg("response")
            .query_async(&mut self.conn())
            .await?;
        Ok(fp.zip(answer))
    }
}

/// What both enqueue scripts write a job through.
struct JobWrite<'a> {
    idem: String,
    stream: String,
    events: String,
    job_key: String,
    by_mobile: String,
    fingerprint: &'a str,
}

fn outcome(reply: &[String]) -> Result<IssueOutcome, StoreError> {
    Ok(match field(reply, 0)? {
        "ok" => IssueOutcome::Issued(guard::alerts(reply.get(2).map_or("", String::as_str))?),
        "replay" => IssueOutcome::Replay(field(reply, 1)?.to_owned()),
        "conflict" => IssueOutcome::Conflict,
        "resend_too_soon" => IssueOutcome::ResendTooSoon(ms_reply(reply)?),
        "hourly_limit" => IssueOutcome::HourlyLimit(ms_reply(reply)?),
        "daily_limit" => IssueOutcome::DailyLimit(ms_reply(reply)?),
        "voice_limit" => IssueOutcome::VoiceLimit(ms_reply(reply)?),
        "fallback" => IssueOutcome::Fallback(field(reply, 1)?.to_owned()),
        "queue_full" => IssueOutcome::QueueFull,
        other => return Err(StoreError::Reply(format!("unknown outcome {other:?}"))),
    })
}
