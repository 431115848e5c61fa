//! Checking what end users typed: a code (attempt counted first, compared in constant time by
//! the caller's `matches`) and an image captcha (consumed by its first use).

use std::time::Duration;

use super::codes::ms;
use super::scripts::SCRIPTS;
use super::{Store, StoreError, field};
use crate::domain::{CaptchaId, Mobile, Purpose};

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

impl Store {
    /// Counts one attempt, then compares in constant time with `matches`.
    pub async fn verify_code(
        &self,
        mobile: &Mobile,
        purpose: &Purpose,
        matches: impl FnOnce(&str) -> bool,
    ) -> Result<Verification, StoreError> {
        let key = self
            .of_mobile(mobile)
            .code(purpose.as_str(), mobile.as_str());
        let reply: Vec<String> = SCRIPTS
            .verify
            .key(&key)
            .invoke_async(&mut self.conn())
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
        if left == 0 {
            // The last attempt already burnt (deleted) the record; it was right, so it counts.
            return Ok(Verification::Valid);
        }
        let consumed: i64 = SCRIPTS
            .consume
            .key(&key)
            .arg(&hash)
            .invoke_async(&mut self.conn())
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

impl Store {
    /// Remembers that the dashboard session `session_id` logged out, for as long as its
    /// cookie could still be presented.
    pub async fn revoke_session(&self, session_id: &str, for_ms: u64) -> Result<(), StoreError> {
        let _: () = redis::cmd("SET")
            .arg(self.fleet().revoked_session(session_id))
            .arg(1)
            .arg("PX")
            .arg(for_ms.max(1))
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    pub async fn session_revoked(&self, session_id: &str) -> Result<bool, StoreError> {
        let n: u64 = redis::cmd("EXISTS")
            .arg(self.fleet().revoked_session(session_id))
            .query_async(&mut self.conn())
            .await?;
        Ok(n > 0)
    }
}
