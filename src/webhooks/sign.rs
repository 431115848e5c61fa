//! The signature on every delivery: `Smsq-Signature: t=<unix seconds>,v1=<hex>`, where the
//! hex is HMAC-SHA256 under the endpoint's secret of `<t>.<body>`. The receiver recomputes
//! it over the raw body and refuses a `t` too far from its own clock (replays).

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const HEADER: &str = "Smsq-Signature";

/// The header's value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", crate::domain::hex(&mac(secret, t, body)))
}

fn mac(secret: &str, t: i64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// What a receiver does (the tests' receiver, and the README's snippets in Python and Node
/// do the same): the header's `t` within `tolerance_secs` of `now`, and its `v1` the MAC of
/// the raw body, compared in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let expected = crate::domain::hex(&mac(secret, t, body));
    bool::from(subtle::ConstantTimeEq::ct_eq(
        expected.as_bytes(),
        v1.as_bytes(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_nothing_else_does() {
        let body = br#"{"id":"evt_0_1-0","type":"code.sent"}"#;
        let header = signature("whsec-0123456789abcdef", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="));
        assert!(verify(
            "whsec-0123456789abcdef",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "another-secret-0123456",
            &header,
            body,
            1_700_000_100,
            300
        ));
        assert!(!verify(
            "whsec-0123456789abcdef",
            &header,
            b"{}",
            1_700_000_100,
            300
        ));
        assert!(
            !verify("whsec-0123456789abcdef", &header, body, 1_700_000_400, 300),
            "replayed late"
        );
        assert!(!verify(
            "whsec-0123456789abcdef",
            "v1=00",
            body,
            1_700_000_000,
            300
        ));
    }
}
