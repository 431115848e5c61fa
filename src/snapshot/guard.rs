//! The fleet guards in the snapshot: the budgets against their limits, the prefixes held.

use serde::Serialize;

use crate::config::{Budget, GuardAction, GuardSettings};
use crate::store::{BlockedPrefix, BudgetUse};

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct GuardView {
    /// The fleet's budgets, then each configured purpose's.
    pub budgets: Vec<BudgetLine>,
    /// Number prefixes the prefix guard holds now.
    pub blocked: Vec<BlockedPrefix>,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct BudgetLine {
    /// `hourly` (this Beijing hour) or `daily` (this Beijing day).
    pub window: &'static str,
    /// `null`: the whole fleet.
    pub purpose: Option<String>,
    pub used: u64,
    /// `null`: no budget (only counted).
    pub limit: Option<u32>,
    /// Where the soft threshold lies.
    pub alert_at: Option<u32>,
}

impl GuardView {
    pub fn new(guard: &GuardSettings, used: &BudgetUse, blocked: Vec<BlockedPrefix>) -> Self {
        let mut budgets = Vec::new();
        let mut add = |purpose: Option<&str>, budget: Budget| {
            let field = purpose.unwrap_or("*");
            for (window, limit, counts) in [
                ("hourly", budget.hourly, &used.hourly),
                ("daily", budget.daily, &used.daily),
            ] {
                let limit = limit.map(|l| l.get());
                budgets.push(BudgetLine {
                    window,
                    purpose: purpose.map(str::to_owned),
                    used: counts.get(field).copied().unwrap_or(0),
                    limit,
                    alert_at: limit.map(|l| {
                        (u64::from(l) * u64::from(guard.budgets.soft_percent)).div_ceil(100) as u32
                    }),
                });
            }
        };
        add(None, guard.budgets.fleet);
        for (purpose, budget) in &guard.budgets.purposes {
            add(Some(purpose.as_str()), *budget);
        }
        Self { budgets, blocked }
    }

    /// What the verdict says about the guards.
    pub fn reasons(&self, guard: &GuardSettings) -> Vec<String> {
        let mut reasons = Vec::new();
        for b in &self.budgets {
            let (Some(limit), Some(alert_at)) = (b.limit, b.alert_at) else {
                continue;
            };
            let name = match &b.purpose {
                None => format!("{} budget", b.window),
                Some(p) => format!("{} budget of purpose {p}", b.window),
            };
            let share = b.used * 100 / u64::from(limit).max(1);
            if b.used >= u64::from(limit) {
                let doing = match guard.budgets.action {
                    GuardAction::Refuse => "new codes are refused (budget_exhausted)",
                    GuardAction::Captcha => "new codes need a solved captcha",
                };
                reasons.push(format!(
                    "{name} used up: {} of {limit} codes; {doing}",
                    b.used
                ));
            } else if b.used >= u64::from(alert_at) {
                reasons.push(format!("{name} at {share}%: {} of {limit} codes", b.used));
            }
        }
        if !self.blocked.is_empty() {
            let list: Vec<&str> = self.blocked.iter().map(|b| b.prefix.as_str()).collect();
            reasons.push(format!(
                "{} number prefix(es) held by the prefix guard: {} (`smsq guard list`)",
                list.len(),
                list.join(", ")
            ));
        }
        reasons
    }
}
