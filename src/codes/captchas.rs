//! Image captchas: issued with a keyed hash of the answer, consumed by their first use.

use serde::Serialize;

use super::{CodeError, Codes};
use crate::captcha;
use crate::domain::CaptchaId;
use crate::store::CaptchaCheck;

#[derive(Debug, Clone, Serialize)]
pub struct CaptchaIssued {
    pub captcha_id: String,
    pub image: String,
    pub expires_in: u64,
}

impl Codes {
    pub async fn new_captcha(&self) -> Result<CaptchaIssued, CodeError> {
        let cs = &self.settings.captcha;
        let (answer, png) = captcha::generate(cs.length);
        let id = CaptchaId::generate();
        let hash = self.hasher.hash(&format!("captcha:{id}"), &answer);
        self.store.put_captcha(&id, &hash, cs.ttl).await?;
        Ok(CaptchaIssued {
            captcha_id: id.to_string(),
            image: captcha::data_url(&png),
            expires_in: cs.ttl.as_secs(),
        })
    }

    pub(super) async fn check_captcha(
        &self,
        given: Option<&(String, String)>,
    ) -> Result<(), CodeError> {
        let Some((id, answer)) = given else {
            return if self.settings.captcha.required {
                Err(CodeError::CaptchaRequired)
            } else {
                Ok(())
            };
        };
        // Ids are ours (32 hex): anything else cannot exist, and never becomes a Redis key.
        let Some(id) = CaptchaId::parse(id) else {
            return Err(CodeError::InvalidCaptcha);
        };
        let context = format!("captcha:{id}");
        let normalized = answer.trim().to_ascii_uppercase();
        let check = self
            .store
            .take_captcha(&id, |stored| {
                self.hasher.matches(&context, &normalized, stored)
            })
            .await?;
        match check {
            CaptchaCheck::Right => Ok(()),
            CaptchaCheck::Wrong | CaptchaCheck::Unknown => Err(CodeError::InvalidCaptcha),
        }
    }
}
