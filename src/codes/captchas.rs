//! Image captchas: issued with a keyed hash of the answer, consumed by their first use.

use serde::Serialize;

use super::{CodeError, Codes};
use crate::captcha;
use crate::domain::CaptchaId;
use crate::store::CaptchaCheck;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(example = json!({"captcha_id": "4f2a0c1d9e8b7a6f5e4d3c2b1a0f9e8d",
    "image": "data:image/png;base64,iVBORw0KGgo…", "expires_in": 300}))]
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

    /// Checks the captcha a request carries: `Ok(true)` solved, `Ok(false)` none given (and
    /// none required).
    pub(super) async fn check_captcha(
        &self,
        given: Option<&(String, String)>,
    ) -> Result<bool, CodeError> {
        let Some((id, answer)) = given else {
            return if self.settings.captcha.required {
                Err(CodeError::CaptchaRequired)
            } else {
                Ok(false)
            };
        };
        // Ids are ours (32 hex): anything else cannot exist, and never becomes a Redis key.
        let Some(id) = CaptchaId::parse(id) else {
            return Err(CodeError::InvalidCaptcha);
        };
        let context = format!("captcha:{id}");
        let normalized = normalize_answer(answer);
        let check = self
            .store
            .take_captcha(&id, |stored| {
                self.hasher.matches(&context, &normalized, stored)
            })
            .await?;
        match check {
            CaptchaCheck::Right => Ok(true),
            CaptchaCheck::Wrong | CaptchaCheck::Unknown => Err(CodeError::InvalidCaptcha),
        }
    }
}

/// What a typed captcha answer is compared as: surrounding space ignored, any case.
pub fn normalize_answer(typed: &str) -> String {
    typed.trim().to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CaptchaId, Hasher, Secret};
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends as an id or an answer: no panic; an id is ours or nothing.
        #[test]
        fn any_id_or_answer_is_handled(id in "\\PC{0,40}", answer in "\\PC{0,40}") {
            if let Some(parsed) = CaptchaId::parse(&id) {
                prop_assert_eq!(parsed.as_str(), id.as_str());
                prop_assert_eq!(id.len(), 32);
            }
            let _ = normalize_answer(&answer);
        }

        /// Ids round-trip; an answer typed in another case or with spaces around is the same
        /// answer, and a different one is not.
        #[test]
        fn answers_match_however_they_are_typed(
            id in "[0-9a-f]{32}",
            answer in "[A-Z0-9]{4,8}",
            pad_left in " {0,3}",
            pad_right in "[ \\t]{0,3}",
            lower in any::<bool>(),
        ) {
            let parsed = CaptchaId::parse(&id).expect("32 hex digits");
            prop_assert_eq!(parsed.as_str(), id.as_str());
            let hasher = Hasher::new(Secret::new("captcha-secret-0123456789"));
            let context = format!("captcha:{id}");
            let stored = hasher.hash(&context, &answer);
            let shown = if lower { answer.to_ascii_lowercase() } else { answer.clone() };
            let typed = format!("{pad_left}{shown}{pad_right}");
            prop_assert!(hasher.matches(&context, &normalize_answer(&typed), &stored));
            let other = format!("{answer}X");
            prop_assert!(!hasher.matches(&context, &normalize_answer(&other), &stored));
        }
    }
}
