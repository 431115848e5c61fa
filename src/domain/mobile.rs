//! Mainland China mobile numbers.

use std::fmt;

/// A mainland mobile number, normalised to 11 digits (`1[3-9]` + 9 digits).
///
/// `Debug` and `Display` show it masked (`138****8000`): the full number is only reachable
/// through [`Mobile::as_str`], which the code paths that really need it call explicitly.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Mobile(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a mainland China mobile number (expected 11 digits starting with 13-19, optionally +86)"
)]
pub struct InvalidMobile;

impl Mobile {
    /// Accepts `13800138000`, `+86 138 0013 8000`, `86-138-0013-8000` and the like.
    /// Exactly what [`Mobile::parse`] takes (with at most 32 characters), as a regular
    /// expression: for the OpenAPI document, and a test keeps the two the same.
    pub const PATTERN: &str = r"^[\t\n\x0c\r ]*[ -]*(\+[ -]*8[ -]*6[ -]*|8[ -]*6[ -]*)?1[ -]*[3-9]([ -]*[0-9]){9}[ -]*[\t\n\x0c\r ]*$";

    pub fn parse(input: &str) -> Result<Self, InvalidMobile> {
        if input.len() > 32 {
            return Err(InvalidMobile);
        }
        let compact: String = input
            .trim_matches(|c: char| c.is_ascii_whitespace())
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .collect();
        let digits = compact.strip_prefix('+').unwrap_or(&compact);
        if compact.starts_with('+') && !digits.starts_with("86") {
            return Err(InvalidMobile);
        }
        let national = match digits.len() {
            13 => digits.strip_prefix("86").ok_or(InvalidMobile)?,
            11 if !compact.starts_with('+') => digits,
            _ => return Err(InvalidMobile),
        };
        let b = national.as_bytes();
        let valid = b.len() == 11
            && b.iter().all(u8::is_ascii_digit)
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1]);
        if valid {
            Ok(Self(national.to_owned()))
        } else {
            Err(InvalidMobile)
        }
    }

    /// The full 11 digits, for the provider request and Redis keys.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `138****8000`: what logs, status records and API responses show.
    pub fn masked(&self) -> String {
        format!("{}****{}", &self.0[..3], &self.0[7..])
    }
}

impl Mobile {
    /// The number's 7-digit prefix (号段, e.g. `1380013`): what the prefix guard counts by.
    pub fn prefix(&self) -> NumberPrefix {
        NumberPrefix(self.0[..7].to_owned())
    }
}

/// A 7-digit number prefix (号段): `1[3-9]` and five digits. A block of 10,000 numbers that
/// one carrier gave one region; a fleet-level fact, never one person's number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NumberPrefix(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a number prefix (expected 7 digits starting with 13-19, like 1380013)")]
pub struct InvalidPrefix;

impl NumberPrefix {
    pub fn parse(input: &str) -> Result<Self, InvalidPrefix> {
        let b = input.trim().as_bytes();
        let valid = b.len() == 7
            && b.iter().all(u8::is_ascii_digit)
            && b[0] == b'1'
            && (b'3'..=b'9').contains(&b[1]);
        if valid {
            Ok(Self(input.trim().to_owned()))
        } else {
            Err(InvalidPrefix)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NumberPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Mobile({})", self.masked())
    }
}

impl fmt::Display for Mobile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// Any input: no panic; what parses is 11 digits, parses again to itself, and masks.
        #[test]
        fn any_input_parses_or_is_refused_and_what_parses_round_trips(input in "\\PC{0,40}") {
            if let Ok(m) = Mobile::parse(&input) {
                prop_assert_eq!(m.as_str().len(), 11);
                prop_assert_eq!(Mobile::parse(m.as_str()), Ok(m.clone()));
                prop_assert_eq!(m.masked().len(), 11);
                prop_assert_eq!(&m.masked()[3..7], "****");
            }
        }

        /// `PATTERN` (what the OpenAPI document says) takes exactly what `parse` takes, on
        /// inputs near the accepted ones (digits, `+`, spaces, dashes, whitespace) and any.
        #[test]
        fn the_documented_pattern_is_the_parser(
            near in "[0-9+ \\-\t\n\u{3000}]{0,34}",
            any in "\\PC{0,34}",
        ) {
            let pattern = regex::Regex::new(Mobile::PATTERN).unwrap();
            for input in [near, any] {
                let documented = pattern.is_match(&input) && input.chars().count() <= 32;
                prop_assert_eq!(documented, Mobile::parse(&input).is_ok(), "{:?}", input);
            }
        }

        /// A valid number in any of the accepted dresses is the same number.
        #[test]
        fn a_number_in_any_accepted_form_is_itself(
            second in 3u8..=9,
            rest in "[0-9]{9}",
            prefix in prop::sample::select(vec!["", "86", "+86", "+86 ", "86-", " "]),
            sep in prop::sample::select(vec!["", " ", "-"]),
        ) {
            let number = format!("1{second}{rest}");
            let dressed = format!("{prefix}{}{sep}{}{sep}{}", &number[..3], &number[3..7], &number[7..]);
            let parsed = Mobile::parse(&dressed);
            prop_assert_eq!(parsed.as_ref().map(|m| m.as_str().to_owned()), Ok(number), "{}", dressed);
            let pattern = regex::Regex::new(Mobile::PATTERN).unwrap();
            prop_assert!(pattern.is_match(&dressed), "the documented pattern refuses {:?}", dressed);
            // One character that does not belong, anywhere: both refuse it.
            for (i, bad) in [(0, 'x'), (dressed.len() / 2, '\t'), (dressed.len(), '+')] {
                let mut spoilt = dressed.clone();
                spoilt.insert(i, bad);
                let both = (pattern.is_match(&spoilt), Mobile::parse(&spoilt).is_ok());
                prop_assert!(both.0 == both.1, "{:?}: pattern {} parse {}", spoilt, both.0, both.1);
            }
        }
    }

    use super::*;

    #[test]
    fn accepts_and_normalises_common_spellings() {
        for input in [
            "13800138000",
            "+8613800138000",
            "8613800138000",
            "+86 138 0013 8000",
            "138-0013-8000",
            " 13800138000 ",
            "+86-138-0013-8000",
        ] {
            assert_eq!(
                Mobile::parse(input).unwrap().as_str(),
                "13800138000",
                "{input}"
            );
        }
    }

    #[test]
    fn rejects_what_is_not_a_mainland_mobile() {
        for input in [
            "",
            "1380013800",
            "138001380001",
            "12800138000",
            "23800138000",
            "+1 13800138000",
            "+13800138000",
            "0086 13800138000",
            "1380013800a",
            "１３８００１３８０００",
            "138.0013.8000",
            "+86+13800138000",
            "8613800138000000",
        ] {
            assert_eq!(Mobile::parse(input), Err(InvalidMobile), "{input:?}");
        }
    }

    #[test]
    fn a_prefix_is_the_first_seven_digits_and_parses_back() {
        let m = Mobile::parse("+86 138 0013 8000").unwrap();
        assert_eq!(m.prefix().as_str(), "1380013");
        assert_eq!(NumberPrefix::parse("1380013"), Ok(m.prefix()));
        for bad in [
            "",
            "138001",
            "13800138",
            "1280013",
            "138001a",
            "13800138000",
        ] {
            assert_eq!(NumberPrefix::parse(bad), Err(InvalidPrefix), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_full_number() {
        let m = Mobile::parse("13800138000").unwrap();
        assert_eq!(m.to_string(), "138****8000");
        assert!(!format!("{m:?}").contains("13800138000"));
    }
}
