//! One endpoint's deliveries: lease what is due, pace it (`governor`, per endpoint), POST
//! it signed, and record the answer.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::Target;
use crate::config::WebhookSettings;
use crate::domain::now_ms;
use crate::store::Hooks;
use crate::store::hooks::Leased;

/// When nothing is due, how soon to look again.
const IDLE: Duration = Duration::from_millis(100);
/// The longest wait between two attempts of one delivery.
const MAX_BACKOFF_MS: i64 = 3_600_000;

pub(super) fn client(settings: &WebhookSettings) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        // A redirect would send the signed body somewhere the operator did not configure.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("smsq/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub(super) struct Deliverer {
    hooks: Hooks,
    target: Arc<Target>,
    client: reqwest::Client,
    pace: Arc<DefaultDirectRateLimiter>,
    slots: Arc<Semaphore>,
    max_age: Duration,
    /// How long a leased delivery stays ours: past its timeout, so a live dispatcher never
    /// sees its own in-flight delivery taken; short, so a dead one's come back soon.
    lease_ms: u64,
}

impl Deliverer {
    pub(super) fn new(
        hooks: Hooks,
        target: Arc<Target>,
        settings: &WebhookSettings,
        client: reqwest::Client,
    ) -> Self {
        let rate = settings.rate_per_sec;
        let burst =
            NonZeroU32::new(rate.get().min(settings.concurrency.get() as u32)).unwrap_or(rate);
        Self {
            hooks,
            target,
            client,
            pace: Arc::new(RateLimiter::direct(
                Quota::per_second(rate).allow_burst(burst),
            )),
            slots: Arc::new(Semaphore::new(settings.concurrency.get())),
            max_age: settings.max_age,
            lease_ms: settings.timeout.as_millis() as u64 * 2 + 1000,
        }
    }

    pub(super) async fn run(self, stop: CancellationToken) {
        let name = self.target.endpoint.name.clone();
        while !stop.is_cancelled() {
            let free = self.slots.available_permits();
            let leased = if free == 0 {
                Ok(Vec::new())
            } else {
                self.hooks.lease(&name, now_ms(), self.lease_ms, free).await
            };
            let leased = match leased {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(endpoint = %name, error = %e, "webhooks: cannot lease deliveries");
                    Vec::new()
                }
            };
            if leased.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(IDLE) => {}
                    _ = stop.cancelled() => {}
                }
                continue;
            }
            for delivery in leased {
                tokio::select! {
                    _ = self.pace.until_ready() => {}
                    _ = stop.cancelled() => return,
                }
                let Ok(permit) = self.slots.clone().acquire_owned().await else {
                    return;
                };
                let one = One {
                    hooks: self.hooks.clone(),
                    target: self.target.clone(),
                    client: self.client.clone(),
                    max_age: self.max_age,
                };
                tokio::spawn(async move {
                    one.deliver(delivery).await;
                    drop(permit);
                });
            }
        }
    }
}

/// What one delivery task needs.
struct One {
    hooks: Hooks,
    target: Arc<Target>,
    client: reqwest::Client,
    max_age: Duration,
}

impl One {
    async fn deliver(self, delivery: Leased) {
        let name = &self.target.endpoint.name;
        let sent_at = now_ms() / 1000;
        let header = super::signature(
            self.target.secret.expose(),
            sent_at,
            delivery.payload.as_bytes(),
        );
        let answer = self
            .client
            .post(self.target.endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(super::HEADER, header)
            .header("Smsq-Event-Id", &delivery.event_id)
            .body(delivery.payload.clone())
            .send()
            .await;
        let failure = match answer {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("answered {}", r.status().as_u16())),
            Err(e) if e.is_timeout() => Some("timed out".to_owned()),
            Err(_) => Some("could not connect".to_owned()),
        };
        let recorded = match &failure {
            None => {
                crate::metrics::webhook(name, "delivered");
                self.hooks.delivered(name, &delivery.event_id).await
            }
            Some(why) => {
                let now = now_ms();
                let next = next_due(&delivery, now, self.max_age);
                tracing::debug!(endpoint = %name, event = %delivery.event_id, why, "webhook attempt failed");
                match self.hooks.failed(name, &delivery, now, next).await {
                    Ok(true) => {
                        crate::metrics::webhook(name, "dead");
                        tracing::warn!(endpoint = %name, event = %delivery.event_id, tries = delivery.tries + 1, why, "webhook delivery dead: retried for webhooks.max_age_secs");
                        Ok(())
                    }
                    Ok(false) => {
                        crate::metrics::webhook(name, "failed");
                        Ok(())
                    }
                    Err(e) => Err(e),
                }
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the delivery is due again: sent twice at worst, never lost.
            tracing::warn!(endpoint = %name, error = %e, "webhooks: cannot record a delivery's outcome");
        }
    }
}

/// The next attempt after `tries + 1` failures: 1 s, 2 s, 4 s … up to an hour, ±20 %; `None`
/// once that would be past `max_age` from the event (the delivery is dead).
fn next_due(delivery: &Leased, now: i64, max_age: Duration) -> Option<i64> {
    let base = 1000i64
        .saturating_mul(1 << delivery.tries.min(22))
        .min(MAX_BACKOFF_MS);
    let jitter = (rand::random::<f64>() * 0.4 - 0.2) * base as f64;
    let due = now + base + jitter as i64;
    (due - delivery.first_ms <= max_age.as_millis() as i64).then_some(due)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_an_hour_and_ends_at_max_age() {
        let at = |tries: u32, first_ms: i64| Leased {
            event_id: "e".into(),
            payload: "{}".into(),
            tries,
            first_ms,
        };
        let day = Duration::from_secs(86_400);
        let d0 = next_due(&at(0, 0), 0, day).unwrap();
        assert!((800..=1200).contains(&d0), "{d0}");
        let d5 = next_due(&at(5, 0), 0, day).unwrap();
        assert!((25_600..=38_400).contains(&d5), "{d5}");
        let d30 = next_due(&at(30, 0), 0, day).unwrap();
        assert!(d30 <= 3_600_000 * 12 / 10, "{d30}");
        assert_eq!(
            next_due(&at(3, 0), 86_400_000, day),
            None,
            "past a day: dead"
        );
    }
}
