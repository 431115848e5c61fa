//! One-time codes: generated with a CSPRNG, stored only as a keyed hash, compared in constant
//! time.

use std::fmt;

use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::domain::Secret;

/// A plain one-time code. `Debug` hides it; the only ways out are [`Code::expose`] (for the
/// SMS itself and the sealer) and the keyed hash. It never reaches Redis: see `SealedCode`.
#[derive(Clone, PartialEq, Eq)]
pub struct Code(String);

impl Code {
    /// `length` uniform random digits (4–10), from the thread-local CSPRNG.
    pub fn generate(length: u8) -> Self {
        let length = length.clamp(4, 10) as u32;
        // random_range is uniform (no modulo bias), and 10^10 fits easily in u64.
        let n: u64 = rand::rng().random_range(0..10u64.pow(length));
        Self(format!("{n:0width$}", width = length as usize))
    }

    /// A test number's fixed code (`SMSQ_TEST_NUMBERS`, digits of `code.length`, checked
    /// with the settings).
    pub fn fixed(code: &str) -> Self {
        Self(code.to_owned())
    }

    /// The plain code a worker opened from its sealed code (the code record's `o`), just
    /// before sending it.
    pub(crate) fn from_opened(plain: String) -> Self {
        Self(plain)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Code(***)")
    }
}

/// Keyed hashes (HMAC-SHA256 under `SMSQ_SECRET`) of codes and captcha answers. The context
/// (purpose and mobile, or captcha id) is part of the input, so two users with the same code
/// have different hashes and a hash cannot be replayed under another key.
#[derive(Clone)]
pub struct Hasher {
    key: Secret,
}

/// Hex digits of a whole HMAC-SHA256, and of a code tag.
const HASH_HEX: usize = 64;
const TAG_HEX: usize = 32;

impl Hasher {
    pub fn new(key: Secret) -> Self {
        Self { key }
    }

    /// Lower-case hex HMAC of `context \0 value`.
    pub fn hash(&self, context: &str, value: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.key.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        mac.update(context.as_bytes());
        mac.update(&[0]);
        mac.update(value.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    /// Whether `value` hashes to `stored`, compared in constant time.
    pub fn matches(&self, context: &str, value: &str, stored: &str) -> bool {
        let computed = self.hash(context, value);
        computed.as_bytes().ct_eq(stored.as_bytes()).into()
    }

    /// What a code record keeps of a code: the HMAC's first 128 bits, as 32 hex digits. Half
    /// the bytes of the whole hash in every queued code; guessing a 128-bit tag under a secret
    /// key is hopeless, and the code itself has at most 10 digits to guess through the API,
    /// which counts every attempt.
    pub fn code_tag(&self, context: &str, value: &str) -> String {
        let mut tag = self.hash(context, value);
        tag.truncate(TAG_HEX);
        tag
    }

    /// Whether `value` is the code a record keeps: its tag ([`Hasher::code_tag`]), or the
    /// whole hash a record of an earlier build holds. Compared in constant time; a stored
    /// value of any other length never matches.
    pub fn matches_code(&self, context: &str, value: &str, stored: &str) -> bool {
        let computed = self.hash(context, value);
        match stored.len() {
            TAG_HEX | HASH_HEX => computed.as_bytes()[..stored.len()]
                .ct_eq(stored.as_bytes())
                .into(),
            _ => false,
        }
    }
}

impl fmt::Debug for Hasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hasher(***)")
    }
}

/// The 16 bytes that 32 lower-case hex digits spell (a job id, Ronglian's smsMessageSid),
/// or `None` for anything else.
pub(crate) fn packed_hex(id: &str) -> Option<[u8; 16]> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = id.as_bytes();
    if bytes.len() != 32 {
        return None;
    }
    let mut packed = [0u8; 16];
    for (out, pair) in packed.iter_mut().zip(bytes.chunks_exact(2)) {
        *out = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(packed)
}

/// Lower-case hex: by table, not `write!` (two ids and a hash per issued code went through
/// the formatting machinery, 1.5 % of the API's CPU in a profile).
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_requested_length_and_only_digits() {
        for len in 4..=10u8 {
            for _ in 0..200 {
                let c = Code::generate(len);
                assert_eq!(c.expose().len(), len as usize);
                assert!(c.expose().bytes().all(|b| b.is_ascii_digit()));
            }
        }
    }

    #[test]
    fn digits_are_roughly_uniform() {
        // 60k digits: each digit's share is 10% ± well under 1% unless generation is biased.
        let mut counts = [0u32; 10];
        for _ in 0..10_000 {
            for b in Code::generate(6).expose().bytes() {
                counts[(b - b'0') as usize] += 1;
            }
        }
        for (d, n) in counts.iter().enumerate() {
            assert!((5400..6600).contains(n), "digit {d} appeared {n} times");
        }
    }

    #[test]
    fn keyed_hash_depends_on_key_context_and_value() {
        let a = Hasher::new(Secret::new("k1-0123456789abcdef"));
        let b = Hasher::new(Secret::new("k2-0123456789abcdef"));
        let h = a.hash("login:13800138000", "123456");
        assert_eq!(h.len(), 64);
        assert!(a.matches("login:13800138000", "123456", &h));
        assert!(!a.matches("login:13800138000", "123457", &h));
        assert!(!a.matches("reset:13800138000", "123456", &h));
        assert!(!b.matches("login:13800138000", "123456", &h));
        assert!(!a.matches("login:13800138000", "123456", "short"));
    }

    #[test]
    fn a_code_matches_its_tag_or_an_older_records_whole_hash_and_nothing_shorter() {
        let a = Hasher::new(Secret::new("k1-0123456789abcdef"));
        let (context, code) = ("code:login:13800138000", "123456");
        let tag = a.code_tag(context, code);
        assert_eq!(tag.len(), 32);
        assert!(a.matches_code(context, code, &tag));
        assert!(a.matches_code(context, code, &a.hash(context, code)));
        assert!(!a.matches_code(context, "123457", &tag));
        assert!(!a.matches_code("code:reset:13800138000", code, &tag));
        // A prefix of the right hash of another length is no tag: an empty or cut value
        // would otherwise match any code.
        for n in [0, 1, 16, 31, 33, 63] {
            assert!(
                !a.matches_code(context, code, &a.hash(context, code)[..n]),
                "{n}"
            );
        }
    }

    #[test]
    fn packed_hex_is_the_bytes_hex_spells_and_nothing_else() {
        let id = "00a1b2c3d4e5f60718293a4b5c6d7e8f";
        let packed = packed_hex(id).unwrap();
        assert_eq!(packed[0], 0x00);
        assert_eq!(packed[15], 0x8f);
        assert_eq!(hex(&packed), id);
        for bad in [
            "",
            "00a1",
            "00A1B2C3D4E5F60718293A4B5C6D7E8F",
            "00a1b2c3d4e5f60718293a4b5c6d7e8g",
        ] {
            assert_eq!(packed_hex(bad), None, "{bad}");
        }
    }

    #[test]
    fn debug_hides_the_code() {
        assert_eq!(
            format!("{:?}", Code::from_opened("123456".into())),
            "Code(***)"
        );
    }
}
