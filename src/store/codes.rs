//! Issuing codes and enqueueing notification messages: the per-IP cap, then one script.

use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Timelike};

use redis::{Script, ScriptInvocation};

use super::scripts::SCRIPTS;
use super::{Store, StoreError, field};
use crate::config::CodeSettings;
use crate::domain::{ClientNet, Job, Mobile, Purpose, beijing};

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
    Issued,
    /// The same `Idempotency-Key` and body were seen before: here is the first answer.
    Replay(String),
    /// The same `Idempotency-Key` with a different body.
    Conflict,
    ResendTooSoon(Duration),
    HourlyLimit(Duration),
    DailyLimit(Duration),
    /// The stream holds `stream.maxlen` unsent jobs: refuse rather than trim (trimming would
    /// drop queued jobs).
    QueueFull,
}

/// The Beijing-time hour and day a timestamp falls in, and how long until each ends.
struct Windows {
    hour: String,
    hour_left_ms: i64,
    day: String,
    day_left_ms: i64,
}

fn windows(now_ms: i64) -> Windows {
    let now: DateTime<_> = beijing()
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(|| beijing().timestamp_millis_opt(0).unwrap());
    let into_hour = (now.minute() as i64 * 60 + now.second() as i64) * 1000
        + now.timestamp_subsec_millis() as i64;
    let into_day = now.hour() as i64 * 3_600_000 + into_hour;
    Windows {
        hour: format!(
            "{:04}{:02}{:02}{:02}",
            now.year(),
            now.month(),
            now.day(),
            now.hour()
        ),
        hour_left_ms: 3_600_000 - into_hour,
        day: format!("{:04}{:02}{:02}", now.year(), now.month(), now.day()),
        day_left_ms: 86_400_000 - into_day,
    }
}

pub(super) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn ms_reply(reply: &[String]) -> Result<Duration, StoreError> {
    let v: i64 = field(reply, 1)?
        .parse()
        .map_err(|_| StoreError::Reply(format!("bad ttl in {reply:?}")))?;
    Ok(Duration::from_millis(v.max(0) as u64))
}

impl Store {
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
        let reply: (i64, i64, Option<String>) = SCRIPTS
            .ip_reserve
            .key(k.ip(&client.network, &client.host, &w.hour))
            .key(k.ip_network(&client.network, &w.hour))
            .arg(limits.0)
            .arg(limits.1)
            .arg(w.hour_left_ms)
            .invoke_async(&mut self.conn())
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
        let _: i64 = SCRIPTS
            .ip_release
            .key(k.ip(&client.network, &client.host, &w.hour))
            .key(k.ip_network(&client.network, &w.hour))
            .invoke_async(&mut self.conn())
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
        let id = job.id.as_str();
        let w = windows(job.created_ms);
        let mut call = self.enqueue_call(&SCRIPTS.issue_code, job, new.idempotency, new.answer);
        call.key(k.code(purpose, mobile))
            .key(k.resend(purpose, mobile))
            .key(k.hourly(mobile, &w.hour))
            .key(k.daily(mobile, &w.day))
            .key(k.otp(id))
            .arg(purpose)
            .arg(new.code_hash)
            .arg(new.sealed.as_str())
            .arg(ms(settings.ttl))
            .arg(ms(settings.resend_interval))
            .arg(settings.hourly_limit_per_mobile.get())
            .arg(w.hour_left_ms)
            .arg(settings.daily_limit_per_mobile.get())
            .arg(w.day_left_ms)
            .arg(settings.max_verify_attempts.get())
            .arg(k.otp(""));
        let reply: Vec<String> = call.invoke_async(&mut self.conn()).await?;
        outcome(&reply)
    }

    pub async fn enqueue_message(&self, new: &NewMessage<'_>) -> Result<IssueOutcome, StoreError> {
        let call = self.enqueue_call(
            &SCRIPTS.enqueue_message,
            new.job,
            new.idempotency,
            new.answer,
        );
        let reply: Vec<String> = call.invoke_async(&mut self.conn()).await?;
        outcome(&reply)
    }

    /// The keys and arguments both enqueue scripts start with (see their headers).
    fn enqueue_call<'s>(
        &self,
        script: &'s Script,
        job: &Job,
        idempotency: Option<Idempotency<'_>>,
        answer: &str,
    ) -> ScriptInvocation<'s> {
        let k = self.of_mobile(&job.to);
        let id = job.id.as_str();
        let (digest, fingerprint) = idempotency.map_or(("-", ""), |i| (i.digest, i.fingerprint));
        let mut call = script.prepare_invoke();
        call.key(k.idempotency(digest))
            .key(k.jobs())
            .key(k.events())
            .key(k.job(id))
            .key(k.by_mobile(job.to.as_str()))
            .arg(fingerprint)
            .arg(answer)
            .arg(IDEMPOTENCY_TTL_SECS)
            .arg(job.created_ms)
            .arg(id)
            .arg(job.to_json())
            .arg(self.retention.stream_maxlen)
            .arg(self.retention.events_maxlen)
            .arg(self.retention.status_ttl_secs)
            .arg(job.to.masked())
            .arg(job.template_id.as_str());
        call
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

fn outcome(reply: &[String]) -> Result<IssueOutcome, StoreError> {
    Ok(match field(reply, 0)? {
        "ok" => IssueOutcome::Issued,
        "replay" => IssueOutcome::Replay(field(reply, 1)?.to_owned()),
        "conflict" => IssueOutcome::Conflict,
        "resend_too_soon" => IssueOutcome::ResendTooSoon(ms_reply(reply)?),
        "hourly_limit" => IssueOutcome::HourlyLimit(ms_reply(reply)?),
        "daily_limit" => IssueOutcome::DailyLimit(ms_reply(reply)?),
        "queue_full" => IssueOutcome::QueueFull,
        other => return Err(StoreError::Reply(format!("unknown outcome {other:?}"))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_beijing_hours_and_days() {
        // 2026-11-23T16:30:00Z is 2026-11-24 00:30 in Beijing.
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 16, 30, 0)
            .unwrap()
            .timestamp_millis();
        let w = windows(t);
        assert_eq!(w.day, "20261124");
        assert_eq!(w.hour, "2026112400");
        assert_eq!(w.hour_left_ms, 30 * 60 * 1000);
        assert_eq!(w.day_left_ms, (23 * 60 + 30) * 60 * 1000);
    }
}
