//! The plain code, sealed before it leaves smsq and opened by the worker just before the send.
//!
//! Redis holds a code between the API's issue and the worker's send, and whatever a script
//! receives as an argument is visible to anyone who can read `SLOWLOG GET` or attach `MONITOR`
//! (operators, a managed Redis's console, a support dump). So the code is encrypted with
//! ChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`) under a key derived from `SMSQ_SECRET`
//! with a context of its own, a fresh random nonce per code, and the job id as associated
//! data: a sealed code moved to another job's key does not open. The keyed hash verify uses
//! is separate and unchanged.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hmac::{Hmac, Mac};
use rand::RngExt;
use sha2::Sha256;

use super::{Code, Secret};

/// The key's own context: the same `SMSQ_SECRET` keys the hashes, never with this input.
const KEY_CONTEXT: &[u8] = b"smsq/otp-seal/v1";
/// Marks the format, so a later one can be told apart.
const PREFIX: &str = "s1.";
const NONCE_LEN: usize = 12;

/// A code as Redis stores it: `s1.` and base64 of nonce ‖ ciphertext ‖ tag. Not secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedCode(String);

impl SealedCode {
    /// What a worker read back from the code record (`o`).
    pub fn from_stored(stored: &str) -> Self {
        Self(stored.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SealedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SealedCode({} chars)", self.0.len())
    }
}

/// Why a sealed code did not open: the API and this worker disagree on `SMSQ_SECRET`, or
/// the stored value was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("the stored code is not in the sealed format")]
    Format,
    #[error(
        "the stored code does not open with this SMSQ_SECRET (the API that issued it has another)"
    )]
    Key,
}

/// Seals and opens codes; cheap to clone.
#[derive(Clone)]
pub struct CodeSealer {
    cipher: ChaCha20Poly1305,
}

impl CodeSealer {
    pub fn new(secret: &Secret) -> Self {
        let mut kdf = <Hmac<Sha256> as Mac>::new_from_slice(secret.expose().as_bytes())
            .expect("HMAC accepts keys of any length");
        kdf.update(KEY_CONTEXT);
        let key = kdf.finalize().into_bytes();
        Self {
            cipher: ChaCha20Poly1305::new(Key::from_slice(&key)),
        }
    }

    /// `code`, sealed for the job `job_id`.
    pub fn seal(&self, job_id: &str, code: &Code) -> SealedCode {
        let nonce: [u8; NONCE_LEN] = rand::rng().random();
        let payload = Payload {
            msg: code.expose().as_bytes(),
            aad: job_id.as_bytes(),
        };
        // Encryption into a Vec fails only past the cipher's length limit (256 GiB).
        let sealed = self
            .cipher
            .encrypt(Nonce::from_slice(&nonce), payload)
            .unwrap_or_default();
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        SealedCode(format!("{PREFIX}{}", STANDARD_NO_PAD.encode(bytes)))
    }

    /// The code sealed for `job_id`, or why not.
    pub fn open(&self, job_id: &str, sealed: &SealedCode) -> Result<Code, OpenError> {
        let b64 = sealed.0.strip_prefix(PREFIX).ok_or(OpenError::Format)?;
        let bytes = STANDARD_NO_PAD.decode(b64).map_err(|_| OpenError::Format)?;
        if bytes.len() <= NONCE_LEN {
            return Err(OpenError::Format);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let payload = Payload {
            msg: ciphertext,
            aad: job_id.as_bytes(),
        };
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), payload)
            .map_err(|_| OpenError::Key)?;
        let text = String::from_utf8(plain).map_err(|_| OpenError::Format)?;
        Ok(Code::from_opened(text))
    }
}

impl fmt::Debug for CodeSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CodeSealer(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealer(key: &str) -> CodeSealer {
        CodeSealer::new(&Secret::new(key))
    }

    #[test]
    fn a_sealed_code_opens_for_its_job_only_and_shows_nothing() {
        let s = sealer("k1-0123456789abcdef");
        let code = Code::generate(6);
        let sealed = s.seal("job-a", &code);
        assert!(!sealed.as_str().contains(code.expose()));
        assert_eq!(s.open("job-a", &sealed).unwrap(), code);
        assert_eq!(s.open("job-b", &sealed), Err(OpenError::Key));
        assert_eq!(
            sealer("k2-0123456789abcdef").open("job-a", &sealed),
            Err(OpenError::Key)
        );
        // A fresh nonce each time: the same code never seals to the same text.
        assert_ne!(s.seal("job-a", &code), sealed);
    }

    #[test]
    fn anything_else_in_the_key_is_refused_not_trusted() {
        let s = sealer("k1-0123456789abcdef");
        for stored in [
            "123456",
            "s1.",
            "s1.!!!",
            "s1.AAAA",
            "s2.AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            let got = s.open("job-a", &SealedCode::from_stored(stored));
            assert!(got.is_err(), "{stored}: {got:?}");
        }
        let mut tampered = s.seal("job-a", &Code::generate(6)).as_str().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(
            s.open("job-a", &SealedCode::from_stored(&tampered))
                .is_err()
        );
    }
}
