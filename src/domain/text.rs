//! Small validated strings: code purposes and provider template ids.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidText(&'static str);

/// What a code is for (`login`, `reset_password`): `[a-z0-9_-]{1,32}`. Codes of different
/// purposes for one mobile are independent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Purpose(String);

impl Purpose {
    /// What [`Purpose::parse`] takes, for the OpenAPI document (a test keeps them the same).
    pub const PATTERN: &str = "^[a-z0-9_-]{1,32}$";

    pub fn parse(input: &str) -> Result<Self, InvalidText> {
        let ok = (1..=32).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(input.to_owned()))
        } else {
            Err(InvalidText("purpose must be 1-32 characters of [a-z0-9_-]"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for Purpose {
    fn default() -> Self {
        Self("default".to_owned())
    }
}

impl fmt::Display for Purpose {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A template: a provider's own id (digits, as Ronglian and Tencent number them), or a name
/// (`order_shipped`) that each provider account maps to its own id (`templates`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TemplateId(String);

impl TemplateId {
    /// What [`TemplateId::parse`] takes, for the OpenAPI document.
    pub const PATTERN: &str = "^([0-9]{1,32}|[a-z][a-z0-9_]{0,31})$";

    pub fn parse(input: &str) -> Result<Self, InvalidText> {
        let digits = input.bytes().all(|b| b.is_ascii_digit());
        let name = input.starts_with(|c: char| c.is_ascii_lowercase())
            && input
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if (1..=32).contains(&input.len()) && (digits || name) {
            Ok(Self(input.to_owned()))
        } else {
            Err(InvalidText(
                "template_id must be 1-32 digits (a provider's id) or a name of [a-z0-9_] starting with a letter",
            ))
        }
    }

    /// A name the accounts map, not a provider's own id.
    pub fn is_name(&self) -> bool {
        !self.0.bytes().all(|b| b.is_ascii_digit())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TemplateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The patterns the OpenAPI document gives take exactly what the parsers take.
        #[test]
        fn the_documented_patterns_are_the_parsers(input in "[a-z0-9_A-Z\\- .]{0,34}|\\PC{0,34}") {
            let purpose = regex::Regex::new(Purpose::PATTERN).unwrap();
            prop_assert_eq!(purpose.is_match(&input), Purpose::parse(&input).is_ok());
            let template = regex::Regex::new(TemplateId::PATTERN).unwrap();
            prop_assert_eq!(template.is_match(&input), TemplateId::parse(&input).is_ok());
            let hex = regex::Regex::new(crate::domain::CaptchaId::PATTERN).unwrap();
            prop_assert_eq!(hex.is_match(&input), crate::domain::CaptchaId::parse(&input).is_some());
        }
    }

    #[test]
    fn purposes() {
        for ok in ["default", "login", "reset_pw", "a-b-9", &"x".repeat(32)] {
            assert!(Purpose::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Login", "a b", "登录", "a.b", &"x".repeat(33)] {
            assert!(Purpose::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn template_ids() {
        assert!(TemplateId::parse("1").is_ok());
        assert!(!TemplateId::parse("123456").unwrap().is_name());
        assert!(TemplateId::parse("order_shipped").unwrap().is_name());
        for bad in ["", "1a", "A1", "_a", "1 ", "-1", "a-b", &"1".repeat(33)] {
            assert!(TemplateId::parse(bad).is_err(), "{bad}");
        }
    }
}
