//! Tencent Cloud API v3 signing (TC3-HMAC-SHA256), as the official SDKs sign: a JSON `POST`
//! whose `content-type` and `host` headers are signed. Used to call Tencent Captcha, and by
//! the simulator to check a request the way Tencent does.

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const CONTENT_TYPE: &str = "application/json";

fn hmac(key: &[u8], msg: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
    mac.update(msg.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha256_hex(data: &[u8]) -> String {
    crate::domain::hex(&Sha256::digest(data))
}

/// The UTC date of a Unix timestamp, `yyyy-mm-dd` (part of the credential scope).
pub fn date(timestamp: i64) -> String {
    chrono::DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string()
}

/// The signature (hex) of a JSON `POST /` to `host` carrying `payload`.
pub fn signature(
    secret_key: &str,
    service: &str,
    host: &str,
    payload: &[u8],
    timestamp: i64,
) -> String {
    let canonical = format!(
        "POST\n/\n\ncontent-type:{CONTENT_TYPE}\nhost:{host}\n\ncontent-type;host\n{}",
        sha256_hex(payload)
    );
    let date = date(timestamp);
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{date}/{service}/tc3_request\n{}",
        sha256_hex(canonical.as_bytes())
    );
    let k_date = hmac(format!("TC3{secret_key}").as_bytes(), &date);
    let k_service = hmac(&k_date, service);
    let k_signing = hmac(&k_service, "tc3_request");
    crate::domain::hex(&hmac(&k_signing, &to_sign))
}

/// The `Authorization` header of that request.
pub fn authorization(
    secret_id: &str,
    secret_key: &str,
    service: &str,
    host: &str,
    payload: &[u8],
    timestamp: i64,
) -> String {
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{}/{service}/tc3_request, SignedHeaders=content-type;host, Signature={}",
        date(timestamp),
        signature(secret_key, service, host, payload, timestamp)
    )
}

/// What an `Authorization` header claims: the key id, the date and service of its scope, the
/// signed headers and the signature.
#[derive(Debug, PartialEq, Eq)]
pub struct Claimed<'a> {
    pub secret_id: &'a str,
    pub date: &'a str,
    pub service: &'a str,
    pub signed_headers: &'a str,
    pub signature: &'a str,
}

pub fn parse(header: &str) -> Option<Claimed<'_>> {
    let rest = header.strip_prefix("TC3-HMAC-SHA256 ")?;
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split(',').map(str::trim) {
        match part.split_once('=') {
            Some(("Credential", v)) => credential = Some(v),
            Some(("SignedHeaders", v)) => signed = Some(v),
            Some(("Signature", v)) => signature = Some(v),
            _ => return None,
        }
    }
    let mut scope = credential?.split('/');
    let claimed = Claimed {
        secret_id: scope.next()?,
        date: scope.next()?,
        service: scope.next()?,
        signed_headers: signed?,
        signature: signature?,
    };
    (scope.next() == Some("tc3_request") && scope.next().is_none()).then_some(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_header_parses_back_to_what_was_signed() {
        let h = authorization(
            "AKIDexample",
            "key",
            "captcha",
            "captcha.tencentcloudapi.com",
            b"{}",
            1_551_113_065,
        );
        let c = parse(&h).unwrap();
        assert_eq!(
            (c.secret_id, c.date, c.service, c.signed_headers),
            ("AKIDexample", "2019-02-25", "captcha", "content-type;host")
        );
        assert_eq!(
            c.signature,
            signature(
                "key",
                "captcha",
                "captcha.tencentcloudapi.com",
                b"{}",
                1_551_113_065
            )
        );
        assert_ne!(
            c.signature,
            signature(
                "other",
                "captcha",
                "captcha.tencentcloudapi.com",
                b"{}",
                1_551_113_065
            )
        );
        assert!(
            parse("TC3-HMAC-SHA256 Credential=a/b/c/other, SignedHeaders=x, Signature=y").is_none()
        );
        assert!(parse("HMAC Credential=a").is_none());
    }
}
