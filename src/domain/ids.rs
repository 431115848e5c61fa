//! Identifiers smsq hands out: 32 lower-case hex digits from the CSPRNG. Parsing them before
//! any lookup means a malformed id never becomes part of a Redis key.

use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use super::Shard;

macro_rules! hex_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            pub fn generate() -> Self {
                let bytes: [u8; 16] = rand::rng().random();
                Self(super::code::hex(&bytes))
            }

            /// What `parse` takes, for the OpenAPI document.
            pub const PATTERN: &str = "^[0-9a-f]{32}$";

            pub fn parse(input: &str) -> Option<Self> {
                let ok = input.len() == 32
                    && input
                        .bytes()
                        .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                ok.then(|| Self(input.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The 16 bytes the id spells, as an index keeps it.
            pub fn packed(&self) -> [u8; 16] {
                super::code::packed_hex(&self.0).expect("parsed as 32 lower-case hex digits")
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                Self::parse(&s).ok_or_else(|| {
                    concat!($what, " must be 32 lower-case hex digits").to_owned()
                })
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

/// The caller's `x-request-id`, or one made for a request that came without a usable one:
/// 1 to 128 characters of letters, digits and `- _ . : / + = @`, so it is safe in a log line,
/// a header and a Redis field as it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RequestId(String);

impl RequestId {
    pub fn parse(input: &str) -> Option<Self> {
        let ok = (1..=128).contains(&input.len())
            && input
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b));
        ok.then(|| Self(input.to_owned()))
    }

    pub fn generate() -> Self {
        let bytes: [u8; 16] = rand::rng().random();
        Self(super::code::hex(&bytes))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for RequestId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s).ok_or_else(|| "a request id is 1-128 letters, digits or -_.:/+=@".into())
    }
}

impl From<RequestId> for String {
    fn from(id: RequestId) -> String {
        id.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl JobId {
    /// A new id naming `shard` in its first byte (the other 15 bytes are random).
    pub fn generate_in(shard: Shard) -> Self {
        let mut bytes: [u8; 16] = rand::rng().random();
        bytes[0] = shard.index() as u8;
        Self(super::code::hex(&bytes))
    }

    /// The first byte, which names the shard (see [`super::Shards::of_job`]).
    pub(super) fn shard_byte(&self) -> u8 {
        // `parse` and `generate` only make lower-case hex digits, so each byte is one.
        let nibble = |b: u8| match b {
            b'0'..=b'9' => b - b'0',
            _ => (b | 0x20).wrapping_sub(b'a').wrapping_add(10) & 0x0f,
        };
        let b = self.0.as_bytes();
        nibble(b[0]) << 4 | nibble(b[1])
    }
}

hex_id!(
    /// A send job. Also the provider's `reqId`, which allows at most 32 characters and must stay
    /// the same across retries of one logical send.
    JobId,
    "job id"
);

hex_id!(
    /// An image captcha.
    CaptchaId,
    "captcha id"
);
