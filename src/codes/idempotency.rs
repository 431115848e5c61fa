//! `Idempotency-Key`: a retried request gets the first answer back instead of a second code
//! or message. The key names a record (scoped by endpoint); a digest of the body tells a true
//! retry from a reused key.

use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::{CodeError, Codes};
use crate::domain::{Mobile, hex};
use crate::store::StoreError;

/// The client's `Idempotency-Key` and a fingerprint of the request body.
#[derive(Debug, Clone)]
pub struct IdempotencyRequest {
    pub key: String,
    pub body: Vec<u8>,
}

impl IdempotencyRequest {
    /// Digests: the record's name (scoped by `scope`, so codes and messages do not collide)
    /// and the fingerprint of the body.
    pub(super) fn digests(&self, scope: &str) -> (String, String) {
        let name = hex(&Sha256::digest(format!("{scope}\0{}", self.key)));
        (name, hex(&Sha256::digest(&self.body)))
    }
}

impl Codes {
    /// The earlier answer for this key and body, a conflict, or nothing yet.
    pub(super) async fn replay<T: DeserializeOwned>(
        &self,
        mobile: &Mobile,
        name: &str,
        fingerprint: &str,
    ) -> Result<Option<T>, CodeError> {
        match self.store.idempotent_answer(mobile, name).await? {
            Some((fp, answer)) if fp == fingerprint => Ok(Some(parse_answer(&answer)?)),
            Some(_) => Err(CodeError::IdempotencyConflict),
            None => Ok(None),
        }
    }
}

pub(super) fn parse_answer<T: DeserializeOwned>(answer: &str) -> Result<T, CodeError> {
    serde_json::from_str(answer)
        .map_err(|e| CodeError::Store(StoreError::Reply(format!("stored answer: {e}"))))
}
