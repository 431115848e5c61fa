//! The provider accounts a worker sends through, the route each job takes over them, and
//! each account's circuit as this worker last saw it.
//!
//! **Circuits.** Each account's circuit lives in Redis (`store::queue::circuit`), so one
//! worker's discovery holds for the fleet. Every worker keeps a copy, refreshed every
//! [`REFRESH`] and from the reply of every circuit call it makes, so a healthy send costs no
//! Redis call of its own: only failures, probes and an open circuit's end are asked about.
//! An account-level fault or throttling opens a circuit at once; `failover.error_threshold`
//! transient errors within `failover.error_window_secs` open it too; after
//! `failover.cool_down_secs` `failover.probes` sends go through it, and when they all
//! succeed it closes.
//!
//! **Routes.** `[routing.<purpose>]`, `[routing.messages]` or `[routing.default]`: an order
//! (the first healthy account) or weights (drawn per job; the rest are its fallbacks). A job
//! whose last attempt's outcome is unknown goes to that same account first, once; a job whose
//! last attempt failed transiently (or was unknown twice) tries the others first. When no account
//! on the route is healthy, the first one not disabled is used anyway: with nowhere else to
//! go, sending and retrying as before beats holding every code back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rand::RngExt;

use super::Limiter;
use crate::config::{AccountSettings, Credentials, ProviderAccounts, Route};
use crate::domain::{Job, JobKind, now_ms};
use crate::provider::{
    AliyunAccount, AliyunClient, Client, ClientError, Kind, Sender, TencentAccount, TencentClient,
};
use crate::store::{Circuit, CircuitOp, CircuitPolicy, CircuitState, Permit, Queue, StoreError};

/// How often a worker reads every account's circuit from Redis.
pub(super) const REFRESH: Duration = Duration::from_millis(500);

/// One account: its settings, its client and its share of the fleet's rate for it.
pub(crate) struct Account {
    pub settings: AccountSettings,
    pub sender: Sender,
    pub limiter: Limiter,
}

impl Account {
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// This account's template for `job`, `None` when it has none for it (then the job
    /// does not go through it). A message's template name must be mapped by the account; a
    /// provider's own id goes as is unless the account maps it.
    pub fn template_for<'a>(&'a self, job: &'a Job) -> Option<&'a str> {
        let s = &self.settings;
        match (job.kind, &job.purpose) {
            (JobKind::Message, _) if job.template_id.is_name() => s
                .templates
                .get(job.template_id.as_str())
                .map(String::as_str),
            _ if s.legacy => Some(job.template_id.as_str()),
            (JobKind::Code, Some(purpose)) => s
                .templates
                .get(purpose.as_str())
                .or(s.code_template.as_ref())
                .map(String::as_str),
            (JobKind::Code, None) => None,
            (JobKind::Message, _) => Some(
                s.templates
                    .get(job.template_id.as_str())
                    .map_or(job.template_id.as_str(), String::as_str),
            ),
        }
    }

    /// Whether this account can take `job`: a template for it, or, for a voice code, calls
    /// (Ronglian's `VoiceVerify`).
    pub fn takes(&self, job: &Job) -> bool {
        match job.channel {
            crate::domain::Channel::Voice => self.settings.kind == Kind::Ronglian,
            crate::domain::Channel::Sms => self.template_for(job).is_some(),
        }
    }

    /// The values `template` takes: Ronglian and Tencent templates take the first N (N =
    /// its `params`, when listed); Aliyun's client names them itself.
    pub fn values<'a>(&self, template: &str, datas: &'a [String]) -> &'a [String] {
        match (self.settings.kind, self.settings.params.get(template)) {
            (Kind::Ronglian | Kind::Tencent, Some(names)) => &datas[..names.len().min(datas.len())],
            _ => datas,
        }
    }
}

/// The worker's accounts and routes, and the circuits as last seen.
pub(crate) struct Accounts {
    list: Vec<Account>,
    config: ProviderAccounts,
    pub policy: CircuitPolicy,
    seen: Mutex<HashMap<String, Circuit>>,
}

/// Where a job goes next.
pub(crate) struct Choice<'a> {
    pub account: &'a Account,
    /// This send is one of a half-open circuit's probes: its success is reported.
    pub probe: bool,
}

impl Accounts {
    /// Builds a client and a limiter per account, reading each account's credentials.
    pub fn build(
        config: &ProviderAccounts,
        secrets: &crate::config::Secrets,
        queue: &Queue,
    ) -> Result<Self, crate::startup::StartupError> {
        let mut list = Vec::new();
        for a in &config.accounts {
            let sender = sender(a, a.credentials(secrets)?)?;
            let key = (!a.legacy).then(|| a.name.clone());
            let limiter = Limiter::new(queue.clone(), key, a.rate_per_sec.get(), a.burst.get());
            list.push(Account {
                settings: a.clone(),
                sender,
                limiter,
            });
        }
        let f = &config.failover;
        Ok(Self {
            list,
            config: config.clone(),
            policy: CircuitPolicy {
                window: f.error_window,
                threshold: f.error_threshold.get(),
                cool_down: f.cool_down,
                probes: f.probes.get(),
            },
            seen: Mutex::default(),
        })
    }

    fn by_name(&self, name: &str) -> Option<&Account> {
        self.list.iter().find(|a| a.name() == name)
    }

    /// The accounts `job` may go through, in the order to try them.
    pub fn candidates(&self, job: &Job) -> Vec<&Account> {
        let route_name = match (&job.kind, &job.purpose) {
            (JobKind::Code, Some(p)) => p.as_str(),
            _ => "messages",
        };
        let mut names: Vec<&str> = match self.config.route(route_name) {
            Route::Ordered(names) => names.iter().map(String::as_str).collect(),
            Route::Weighted(weights) => weighted_order(weights, &mut rand::rng()),
        };
        if let Some(avoid) = job.avoid.as_deref()
            && let Some(at) = names.iter().position(|n| *n == avoid)
        {
            let last = names.remove(at);
            names.push(last);
        }
        if let Some(pinned) = job.account.as_deref() {
            names.retain(|n| *n != pinned);
            names.insert(0, pinned);
        }
        names
            .into_iter()
            .filter_map(|n| self.by_name(n))
            .filter(|a| a.takes(job))
            .collect()
    }

    /// The first of `candidates` not in `tried` that may send now. With nothing tried yet
    /// and nothing healthy, the first one not disabled.
    pub async fn choose<'a>(
        &self,
        queue: &Queue,
        candidates: &[&'a Account],
        tried: &[&str],
    ) -> Option<Choice<'a>> {
        let now = now_ms();
        let left: Vec<&'a Account> = candidates
            .iter()
            .copied()
            .filter(|a| !tried.contains(&a.name()))
            .collect();
        for account in &left {
            let seen = self.seen(account.name());
            let ask = match &seen {
                None => false,
                Some(c) if c.disabled => continue,
                Some(c) => match c.state {
                    CircuitState::Closed => false,
                    CircuitState::Open { until_ms } if until_ms > now => continue,
                    CircuitState::Open { .. } | CircuitState::HalfOpen => true,
                },
            };
            if !ask {
                return Some(Choice {
                    account,
                    probe: false,
                });
            }
            match self.call(queue, account.name(), CircuitOp::Permit).await {
                Ok(c) if c.permit == Permit::Send => {
                    return Some(Choice {
                        account,
                        probe: false,
                    });
                }
                Ok(c) if c.permit == Permit::Probe => {
                    tracing::info!(
                        account = account.name(),
                        "probing an account whose circuit was open"
                    );
                    return Some(Choice {
                        account,
                        probe: true,
                    });
                }
                Ok(_) => continue,
                // Cannot ask: go by what we saw (open past its time), rather than stall.
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read an account's circuit");
                    return Some(Choice {
                        account,
                        probe: false,
                    });
                }
            }
        }
        if !tried.is_empty() {
            return None;
        }
        left.into_iter()
            .find(|a| !self.seen(a.name()).is_some_and(|c| c.disabled))
            .map(|account| Choice {
                account,
                probe: false,
            })
    }

    /// One circuit operation; its reply becomes what this worker sees.
    pub async fn call(
        &self,
        queue: &Queue,
        account: &str,
        op: CircuitOp<'_>,
    ) -> Result<Circuit, StoreError> {
        let circuit = queue.circuit(account, op, &self.policy, now_ms()).await?;
        self.remember(account, circuit.clone());
        Ok(circuit)
    }

    /// Reports a send's outcome (failures and probes only: a healthy send costs nothing).
    pub async fn report(&self, queue: &Queue, account: &str, op: CircuitOp<'_>) {
        match self.call(queue, account, op).await {
            Ok(c) if matches!(c.state, CircuitState::Open { .. }) => {
                tracing::warn!(account, reason = %c.reason, "account circuit open");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, account, "cannot share an account's health"),
        }
    }

    /// Whether this worker last saw the account's circuit other than closed.
    pub fn unhealthy(&self, account: &str) -> bool {
        self.seen(account)
            .is_some_and(|c| c.state != CircuitState::Closed)
    }

    fn seen(&self, account: &str) -> Option<Circuit> {
        self.lock().get(account).cloned()
    }

    fn remember(&self, account: &str, circuit: Circuit) {
        let was = self.lock().insert(account.to_owned(), circuit.clone());
        crate::metrics::circuit(account, &circuit);
        if let Some(was) = was
            && was.state.as_str() != circuit.state.as_str()
        {
            tracing::info!(
                account,
                from = was.state.as_str(),
                to = circuit.state.as_str(),
                "account circuit changed"
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads every account's circuit (the background refresh).
    pub async fn refresh(&self, queue: &Queue) {
        for account in &self.list {
            if let Err(e) = self.call(queue, account.name(), CircuitOp::Read).await {
                tracing::debug!(error = %e, "cannot refresh an account's circuit");
                return;
            }
        }
    }
}

/// The names of a weighted route in the order one job tries them: drawn without
/// replacement, each pick in proportion to its weight (weight 0: only as a last resort).
fn weighted_order<'a>(weights: &'a [(String, u32)], rng: &mut impl rand::Rng) -> Vec<&'a str> {
    let mut left: Vec<(&str, u32)> = weights.iter().map(|(n, w)| (n.as_str(), *w)).collect();
    let mut order = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let total: u64 = left.iter().map(|(_, w)| u64::from(*w)).sum();
        let pick = if total == 0 {
            0
        } else {
            let mut draw = rng.random_range(0..total);
            left.iter()
                .position(|(_, w)| {
                    let w = u64::from(*w);
                    if draw < w {
                        true
                    } else {
                        draw -= w;
                        false
                    }
                })
                .unwrap_or(0)
        };
        order.push(left.remove(pick).0);
    }
    order
}

fn sender(a: &AccountSettings, credentials: Credentials) -> Result<Sender, ClientError> {
    Ok(match credentials {
        Credentials::Ronglian(account) => {
            let settings = crate::config::ProviderSettings {
                base_url: a.base_url.as_str().trim_end_matches('/').to_owned(),
                timeout: a.timeout,
                connect_timeout: a.connect_timeout,
            };
            Sender::Ronglian(Client::new(&settings, account)?)
        }
        Credentials::Tencent {
            secret_id,
            secret_key,
        } => Sender::Tencent(TencentClient::new(
            TencentAccount {
                base_url: &a.base_url,
                region: &a.region,
                app_id: &a.app_id,
                sign_name: &a.sign_name,
                secret_id: &secret_id,
                secret_key: &secret_key,
            },
            a.timeout,
            a.connect_timeout,
        )?),
        Credentials::Aliyun {
            access_key_id,
            access_key_secret,
        } => Sender::Aliyun(AliyunClient::new(
            AliyunAccount {
                base_url: &a.base_url,
                sign_name: &a.sign_name,
                access_key_id: &access_key_id,
                access_key_secret: &access_key_secret,
                params: a.params.clone(),
            },
            a.timeout,
            a.connect_timeout,
        )?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn a_weighted_route_spreads_by_weight_and_keeps_the_rest_as_fallbacks() {
        let weights = vec![
            ("a".to_owned(), 3),
            ("b".to_owned(), 1),
            ("c".to_owned(), 0),
        ];
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut first = HashMap::new();
        for _ in 0..4000 {
            let order = weighted_order(&weights, &mut rng);
            assert_eq!(order.len(), 3);
            assert_eq!(order[2], "c", "weight 0 only as the last resort");
            *first.entry(order[0]).or_insert(0) += 1;
        }
        let a = first["a"];
        assert!(
            (2800..3200).contains(&a),
            "a first {a} of 4000, expected ~3000"
        );
        assert_eq!(first.get("c"), None);
    }
}
