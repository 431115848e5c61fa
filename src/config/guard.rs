//! `[guard]`: the fleet guards of the issue step — budgets and the number-prefix guard.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::time::Duration;

use super::ConfigError;
use super::raw::RawGuard;
use crate::domain::Purpose;

/// What a guard does when it holds: refuse, or ask for a solved captcha.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardAction {
    /// 429 `budget_exhausted` / `prefix_blocked`.
    Refuse,
    /// 403 `captcha_required`, unless the request carries a solved captcha.
    Captcha,
}

/// Codes per Beijing hour and day; `None` = no budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Budget {
    pub hourly: Option<NonZeroU32>,
    pub daily: Option<NonZeroU32>,
}

#[derive(Debug, Clone)]
pub struct Budgets {
    pub fleet: Budget,
    pub purposes: BTreeMap<Purpose, Budget>,
    /// Alert at this share of a budget, 1-100.
    pub soft_percent: u8,
    pub action: GuardAction,
}

impl Budgets {
    /// The budget a purpose has of its own (none if it is not listed).
    pub fn of(&self, purpose: &Purpose) -> Budget {
        self.purposes.get(purpose).copied().unwrap_or_default()
    }
}

#[derive(Debug, Clone)]
pub struct PrefixGuard {
    /// Counts are kept per window; a decision looks at this window and the one before.
    pub window: Duration,
    /// A prefix with fewer codes than this in the two windows is never tripped.
    pub min_codes: NonZeroU32,
    /// Tripped above this share of the fleet's codes, 1-100.
    pub max_share_percent: u8,
    /// Tripped when its codes are verified at less than this share of the fleet's rate, 0-100
    /// (0 = never for conversion).
    pub min_conversion_percent: u8,
    pub action: GuardAction,
    pub block: Duration,
}

#[derive(Debug, Clone)]
pub struct GuardSettings {
    pub budgets: Budgets,
    /// `None`: `guard.prefix_guard = false`.
    pub prefix: Option<PrefixGuard>,
}

impl GuardSettings {
    pub fn from_raw(raw: &RawGuard) -> Result<Self, ConfigError> {
        let budget = |key: &str, v: u64| -> Result<Option<NonZeroU32>, ConfigError> {
            let v = u32::try_from(v).map_err(|_| ConfigError::new(key, "too large"))?;
            Ok(NonZeroU32::new(v))
        };
        let mut purposes = BTreeMap::new();
        for (name, b) in &raw.purpose {
            let key = |field: &str| format!("guard.purpose.{name}.{field}");
            let purpose = Purpose::parse(name)
                .map_err(|e| ConfigError::new(format!("guard.purpose.{name}"), e.to_string()))?;
            purposes.insert(
                purpose,
                Budget {
                    hourly: budget(&key("hourly_budget"), b.hourly_budget)?,
                    daily: budget(&key("daily_budget"), b.daily_budget)?,
                },
            );
        }
        let percent = |key: &str, v: u64, min: u64| -> Result<u8, ConfigError> {
            if (min..=100).contains(&v) {
                Ok(v as u8)
            } else {
                Err(ConfigError::new(key, format!("must be {min}-100, got {v}")))
            }
        };
        let secs = |key: &str, v: u64| -> Result<Duration, ConfigError> {
            if (1..=30 * 86_400).contains(&v) {
                Ok(Duration::from_secs(v))
            } else {
                Err(ConfigError::new(key, format!("must be 1-2592000, got {v}")))
            }
        };
        let action = |key: &str, v: &str, refuse: &str| match v {
            "captcha" => Ok(GuardAction::Captcha),
            v if v == refuse => Ok(GuardAction::Refuse),
            _ => Err(ConfigError::new(
                key,
                format!("must be \"{refuse}\" or \"captcha\""),
            )),
        };
        let prefix = if raw.prefix_guard {
            Some(PrefixGuard {
                window: secs("guard.prefix_window_secs", raw.prefix_window_secs)?,
                min_codes: u32::try_from(raw.prefix_min_codes)
                    .ok()
                    .and_then(NonZeroU32::new)
                    .ok_or_else(|| {
                        ConfigError::new("guard.prefix_min_codes", "must be 1 or more")
                    })?,
                max_share_percent: percent(
                    "guard.prefix_max_share_percent",
                    raw.prefix_max_share_percent,
                    1,
                )?,
                min_conversion_percent: percent(
                    "guard.prefix_min_conversion_percent",
                    raw.prefix_min_conversion_percent,
                    0,
                )?,
                action: action("guard.prefix_action", &raw.prefix_action, "block")?,
                block: secs("guard.prefix_block_secs", raw.prefix_block_secs)?,
            })
        } else {
            None
        };
        Ok(Self {
            budgets: Budgets {
                fleet: Budget {
                    hourly: budget("guard.hourly_budget", raw.hourly_budget)?,
                    daily: budget("guard.daily_budget", raw.daily_budget)?,
                },
                purposes,
                soft_percent: percent("guard.soft_percent", raw.soft_percent, 1)?,
                action: action("guard.budget_action", &raw.budget_action, "refuse")?,
            },
            prefix,
        })
    }
}
