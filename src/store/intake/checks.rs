//! Checking what end users typed: a code (attempt counted first, compared in constant time by
//! the caller's `matches`) and an image captcha (consumed by its first use).

use std::time::Duration;

use super::Intake;
use super::issue::ms;
use crate::domain::{CaptchaId, Mobile, Purpose};
use crate::store::script::script;
use crate::store::{StoreError, field};

script! {
    /// Counts one attempt and hands back the stored hash to compare.
    struct VerifyCall = include_str!("verify.lua");
    keys { code_key }
    argv {}
}

script! {
    /// Uses a right code up, if the record still holds it, and records the verification.
    struct ConsumeCall<'a> = include_str!("consume.lua");
    keys { code_key, events, guard_now }
    argv {
        hash: &'a str, job_id: &'a str, now: i64, events_keep_ms: u64, burnt: &'a str,
        prefix: String, window_ms: u64,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    Valid,
    Mismatch {
        attempts_left: u32,
    },
    TooManyAttempts,
    /// Unknown, used and expired codes look the same.
    Expired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaptchaCheck {
    Right,
    Wrong,
    /// Never issued, expired, or already used.
    Unknown,
}

impl Intake {
    /// Counts one attempt, then compares in constant time with `matches`. A right code is
    /// counted for the prefix guard when `guard_window` is its window (`None`: a test number,
    /// or no prefix guard).
    pub async fn verify_code(
        &self,
        mobile: &Mobile,
        purpose: &Purpose,
        guard_window: Option<std::time::Duration>,
        matches: impl FnOnce(&str) -> bool,
    ) -> Result<Verification, StoreError> {
        let key = self
            .of_mobile(mobile)
            .code(purpose.as_str(), mobile.as_str());
        let reply: Vec<String> = VerifyCall {
            code_key: key.clone(),
        }
        .call(&mut self.conn())
        .await?;
        if field(&reply, 0)? == "missing" {
            return Ok(Verification::Expired);
        }
        let hash = field(&reply, 1)?.to_owned();
        let left: u32 = field(&reply, 2)?
            .parse()
            .map_err(|_| StoreError::Reply(format!("bad attempts in {reply:?}")))?;
        if !matches(&hash) {
            return Ok(if left == 0 {
                Verification::TooManyAttempts
            } else {
                Verification::Mismatch {
                    attempts_left: left,
                }
            });
        }
        // At 0 the last attempt already burnt (deleted) the record; it was right, so it
        // counts, and only its event is written.
        let now = crate::domain::now_ms();
        let window = guard_window.unwrap_or(std::time::Duration::from_secs(1));
        let k = self.of_mobile(mobile);
        let consumed: i64 = ConsumeCall {
            code_key: key,
            events: k.events(),
            guard_now: k.guard_counts(super::guard::buckets(now, window).0),
            hash: &hash,
            job_id: field(&reply, 3).unwrap_or(""),
            now,
            events_keep_ms: self.retention.events_keep_ms,
            burnt: if left == 0 { "1" } else { "0" },
            prefix: guard_window.map_or(String::new(), |_| mobile.prefix().as_str().to_owned()),
            window_ms: window.as_millis() as u64,
        }
        .call(&mut self.conn())
        .await?;
        Ok(if consumed == 1 {
            Verification::Valid
        } else {
            Verification::Expired
        })
    }

    pub async fn put_captcha(
        &self,
        id: &CaptchaId,
        answer_hash: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let _: () = redis::cmd("SET")
            .arg(self.fleet().captcha(id.as_str()))
            .arg(answer_hash)
            .arg("PX")
            .arg(ms(ttl))
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Takes the captcha (first use consumes it, right or wrong) and checks the answer.
    pub async fn take_captcha(
        &self,
        id: &CaptchaId,
        matches: impl FnOnce(&str) -> bool,
    ) -> Result<CaptchaCheck, StoreError> {
        let stored: Option<String> = redis::cmd("GETDEL")
            .arg(self.fleet().captcha(id.as_str()))
            .query_async(&mut self.conn())
            .await?;
        Ok(match stored {
            None => CaptchaCheck::Unknown,
            Some(hash) if matches(&hash) => CaptchaCheck::Right,
            Some(_) => CaptchaCheck::Wrong,
        })
    }
}
