//! Image captchas: issued with a keyed hash of the answer, consumed by their first use.

use std::net::IpAddr;

use serde::Serialize;

use super::{CodeError, Codes};
use crate::captcha;
use crate::captcha::vendor::{CaptchaToken, VendorError, VendorVerdict};
use crate::domain::CaptchaId;
use crate::store::CaptchaCheck;

/// What a code request carries as its captcha.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptchaAnswer {
    /// The built-in captcha: its id and what the user read.
    Builtin { id: String, answer: String },
    /// What a vendor's widget returned.
    Vendor(CaptchaToken),
}

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
    /// none required), or — a vendor down with `captcha.fail_open` — let through unchecked.
    pub(super) async fn check_captcha(
        &self,
        given: Option<&CaptchaAnswer>,
        client_ip: Option<IpAddr>,
    ) -> Result<bool, CodeError> {
        let provider = self.settings.captcha.provider.as_str();
        let Some(given) = given else {
            return if self.settings.captcha.required {
                Err(CodeError::CaptchaRequired)
            } else {
                Ok(false)
            };
        };
        match (given, &self.vendor) {
            (CaptchaAnswer::Builtin { id, answer }, None) => self.check_builtin(id, answer).await,
            (CaptchaAnswer::Vendor(token), Some(vendor)) => {
                match vendor.verify(token, client_ip).await {
                    Ok(VendorVerdict::Pass) => {
                        crate::metrics::captcha_check(provider, "pass");
                        Ok(true)
                    }
                    Ok(VendorVerdict::Fail(why)) => {
                        tracing::info!(provider, reason = %why, "captcha refused by the vendor");
                        crate::metrics::captcha_check(provider, "fail");
                        Err(CodeError::InvalidCaptcha)
                    }
                    Err(e) => self.vendor_down(provider, &e),
                }
            }
            // The other kind's fields: what this deployment does not check cannot pass.
            _ => {
                crate::metrics::captcha_check(provider, "fail");
                Err(CodeError::InvalidCaptcha)
            }
        }
    }

    /// The vendor did not answer usably: refuse (the default), or with `captcha.fail_open`
    /// let the request through unchecked — `captcha.required` waived, but not counted as
    /// solved, so a fleet guard that asks for a captcha still holds.
    fn vendor_down(&self, provider: &'static str, e: &VendorError) -> Result<bool, CodeError> {
        if matches!(e, VendorError::Credentials(_)) {
            tracing::error!(provider, error = %e, "captcha vendor refused smsq's credentials");
        } else {
            tracing::warn!(provider, error = %e, "captcha vendor unavailable");
        }
        if self.settings.captcha.fail_open {
            crate::metrics::captcha_check(provider, "unavailable_allowed");
            Ok(false)
        } else {
            crate::metrics::captcha_check(provider, "unavailable_refused");
            Err(CodeError::CaptchaUnavailable)
        }
    }

    async fn check_builtin(&self, id: &str, answer: &str) -> Result<bool, CodeError> {
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
