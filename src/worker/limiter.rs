//! The in-process send rate limit (`worker.rate_per_sec`, `worker.burst`), a GCRA from
//! `governor`.

use std::num::NonZeroU32;
use std::sync::Arc;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

#[derive(Clone)]
pub struct Limiter(Arc<DefaultDirectRateLimiter>);

impl Limiter {
    pub fn new(rate_per_sec: NonZeroU32, burst: NonZeroU32) -> Self {
        Self(Arc::new(RateLimiter::direct(
            Quota::per_second(rate_per_sec).allow_burst(burst),
        )))
    }

    pub async fn until_ready(&self) {
        self.0.until_ready().await;
    }
}
