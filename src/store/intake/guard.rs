//! The fleet guards' side of the issue step: the policy the script is handed, and its answers.
//!
//! Every counter lives on the number's shard and is kept by the issue script itself, so a
//! guard costs no round trip and no cross-slot call. With N shards each shard holds its share
//! of every cap (`ceil(cap / N)`): numbers hash evenly over the shards, so the shares fill
//! together, no key is touched by every request of the fleet, and a flood aimed at one
//! shard only exhausts that shard's share sooner.

use std::time::Duration;

use crate::config::{Budget, GuardAction, GuardSettings};
use crate::domain::{NumberPrefix, Purpose};
use crate::store::{StoreError, field};

/// What one issue call's guards are: twelve integers, as `issue_code.lua` reads them.
pub(super) fn policy(guard: &GuardSettings, purpose: &Purpose, shards: u32) -> String {
    let share = |cap: Option<std::num::NonZeroU32>| cap.map_or(0, |c| c.get().div_ceil(shards));
    let own = guard.budgets.of(purpose);
    let fleet: Budget = guard.budgets.fleet;
    let flag = |a: GuardAction| u8::from(a == GuardAction::Captcha);
    let (window, min_codes, share_pct, conv_pct, prefix_captcha, block) = match &guard.prefix {
        Some(p) => (
            p.window.as_millis() as u64,
            p.min_codes.get().div_ceil(shards),
            p.max_share_percent,
            p.min_conversion_percent,
            flag(p.action),
            p.block.as_millis() as u64,
        ),
        None => (0, 0, 0, 0, 0, 0),
    };
    format!(
        "{} {} {} {} {} {} {window} {min_codes} {share_pct} {conv_pct} {prefix_captcha} {block}",
        share(fleet.hourly),
        share(fleet.daily),
        share(own.hourly),
        share(own.daily),
        guard.budgets.soft_percent,
        flag(guard.budgets.action),
    )
}

/// The window a timestamp's prefix counts fall in, and the one before.
pub(in crate::store) fn buckets(now_ms: i64, window: Duration) -> (i64, i64) {
    let w = (window.as_millis() as i64).max(1);
    let now = now_ms.div_euclid(w);
    (now, now - 1)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BudgetWindow {
    Hourly,
    Daily,
}

impl BudgetWindow {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetWindow::Hourly => "hourly",
            BudgetWindow::Daily => "daily",
        }
    }
}

/// Which budget: the fleet's (`purpose: None`) or one purpose's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetScope {
    pub window: BudgetWindow,
    pub purpose: Option<Purpose>,
}

impl std::fmt::Display for BudgetScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.purpose {
            None => write!(f, "{} budget", self.window.as_str()),
            Some(p) => write!(f, "{} budget of purpose {p}", self.window.as_str()),
        }
    }
}

/// Why the prefix guard tripped a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TripReason {
    /// Its share of the fleet's recent codes was above `prefix_max_share_percent`.
    Share,
    /// Its codes were verified far less often than the fleet's.
    Conversion,
}

impl TripReason {
    pub fn as_str(self) -> &'static str {
        match self {
            TripReason::Share => "share",
            TripReason::Conversion => "conversion",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "share" => Some(TripReason::Share),
            "conversion" => Some(TripReason::Conversion),
            _ => None,
        }
    }
}

/// This request tripped the prefix: the counts (on this shard) that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trip {
    pub reason: TripReason,
    pub prefix_codes: u64,
    pub fleet_codes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Guarded {
    Budget(BudgetScope),
    /// The number's prefix is tripped; `trip` when this very request tripped it.
    Prefix(NumberPrefix, Option<Trip>),
}

/// A guard refused the request. `captcha`: a solved captcha would have let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuardRefusal {
    pub guard: Guarded,
    pub captcha: bool,
    pub retry_after: Duration,
}

/// A budget an issued code brought to its soft threshold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetAlert(pub BudgetScope);

fn scope(window: &str, purpose: &str) -> Result<BudgetScope, StoreError> {
    let window = match window {
        "hourly" => BudgetWindow::Hourly,
        "daily" => BudgetWindow::Daily,
        other => {
            return Err(StoreError::Reply(format!(
                "unknown budget window {other:?}"
            )));
        }
    };
    let purpose = match purpose {
        "*" => None,
        p => Some(Purpose::parse(p).map_err(|e| StoreError::Reply(e.to_string()))?),
    };
    Ok(BudgetScope { window, purpose })
}

/// `{'guard', 'budget'|'prefix', action, ms, …}` from `issue_code.lua`.
pub(super) fn refusal(reply: &[String], prefix: NumberPrefix) -> Result<GuardRefusal, StoreError> {
    let bad = || StoreError::Reply(format!("bad guard answer {reply:?}"));
    let captcha = match field(reply, 2)? {
        "captcha" => true,
        "refuse" | "block" => false,
        _ => return Err(bad()),
    };
    let ms: i64 = field(reply, 3)?.parse().map_err(|_| bad())?;
    let retry_after = Duration::from_millis(ms.max(0) as u64);
    let guard = match field(reply, 1)? {
        "budget" => Guarded::Budget(scope(field(reply, 4)?, field(reply, 5)?)?),
        "prefix" => {
            let trip = match field(reply, 4)? {
                "" => None,
                why => Some(Trip {
                    reason: TripReason::parse(why).ok_or_else(bad)?,
                    prefix_codes: field(reply, 5)?.parse().map_err(|_| bad())?,
                    fleet_codes: field(reply, 6)?.parse().map_err(|_| bad())?,
                }),
            };
            Guarded::Prefix(prefix, trip)
        }
        _ => return Err(bad()),
    };
    Ok(GuardRefusal {
        guard,
        captcha,
        retry_after,
    })
}

/// The soft-threshold alerts of an `ok` answer: `hourly:*,daily:login`.
pub(super) fn alerts(list: &str) -> Result<Vec<BudgetAlert>, StoreError> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (window, purpose) = s
                .split_once(':')
                .ok_or_else(|| StoreError::Reply(format!("bad budget alert {s:?}")))?;
            scope(window, purpose).map(BudgetAlert)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RawConfig, Settings};

    fn guard() -> GuardSettings {
        Settings::from_raw(&RawConfig::default(), Default::default())
            .unwrap()
            .guard
    }

    #[test]
    fn the_policy_divides_caps_among_the_shards() {
        let login = Purpose::parse("login").unwrap();
        assert_eq!(
            policy(&guard(), &login, 1),
            "10000 100000 0 0 80 1 600000 20 2 25 1 43200000"
        );
        assert_eq!(
            policy(&guard(), &login, 16),
            "625 6250 0 0 80 1 600000 2 2 25 1 43200000"
        );
    }

    #[test]
    fn answers_parse_or_are_refused() {
        let p = NumberPrefix::parse("1380013").unwrap();
        let r = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = refusal(
            &r(&["guard", "prefix", "block", "5000", "share", "21", "40"]),
            p.clone(),
        );
        assert_eq!(
            got.unwrap(),
            GuardRefusal {
                guard: Guarded::Prefix(
                    p.clone(),
                    Some(Trip {
                        reason: TripReason::Share,
                        prefix_codes: 21,
                        fleet_codes: 40
                    })
                ),
                captcha: false,
                retry_after: Duration::from_secs(5),
            }
        );
        let got = refusal(
            &r(&["guard", "budget", "captcha", "10", "daily", "login"]),
            p.clone(),
        );
        assert_eq!(
            got.unwrap().guard,
            Guarded::Budget(BudgetScope {
                window: BudgetWindow::Daily,
                purpose: Some(Purpose::parse("login").unwrap())
            })
        );
        for bad in [
            &["guard", "budget", "maybe", "10", "daily", "*"][..],
            &["guard", "budget", "refuse", "x", "daily", "*"],
            &["guard", "budget", "refuse", "10", "weekly", "*"],
            &["guard", "prefix", "block", "10", "luck", "1", "2"],
            &["guard", "elsewhere", "block", "10"],
        ] {
            assert!(refusal(&r(bad), p.clone()).is_err(), "{bad:?}");
        }
        assert_eq!(alerts("").unwrap(), vec![]);
        assert_eq!(alerts("hourly:*,daily:login").unwrap().len(), 2);
        assert!(alerts("hourly").is_err());
    }
}
