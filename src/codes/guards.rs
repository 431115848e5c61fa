//! What the fleet guards' answers become: one log line and one metric per decision, and the
//! API's error.

use super::CodeError;
use crate::config::GuardSettings;
use crate::store::{BudgetAlert, GuardRefusal, Guarded};

/// A budget reached its soft threshold (on this code's shard; each shard says so once).
pub(super) fn alerted(guard: &GuardSettings, alerts: &[BudgetAlert]) {
    for BudgetAlert(scope) in alerts {
        tracing::warn!(
            guard = "budget",
            budget = %scope,
            soft_percent = guard.budgets.soft_percent,
            "budget soft threshold reached"
        );
        crate::metrics::guard_decision("budget", "alert");
    }
}

pub(super) fn refused(r: GuardRefusal) -> CodeError {
    match &r.guard {
        Guarded::Prefix(prefix, Some(trip)) => {
            // The prefix is a block of 10,000 numbers; no number or job id goes with it.
            tracing::warn!(
                guard = "prefix",
                prefix = %prefix,
                reason = trip.reason.as_str(),
                prefix_codes = trip.prefix_codes,
                fleet_codes = trip.fleet_codes,
                action = if r.captcha { "captcha" } else { "block" },
                for_secs = r.retry_after.as_secs(),
                "number prefix tripped"
            );
            crate::metrics::guard_decision("prefix", "trip");
        }
        Guarded::Budget(_) | Guarded::Prefix(_, None) => {}
    }
    let which = match &r.guard {
        Guarded::Budget(_) => "budget",
        Guarded::Prefix(..) => "prefix",
    };
    crate::metrics::guard_decision(which, if r.captcha { "captcha" } else { "refuse" });
    match (r.guard, r.captcha) {
        (Guarded::Budget(scope), true) => CodeError::GuardCaptcha {
            why: format!("the {scope} is used up"),
        },
        (Guarded::Budget(scope), false) => CodeError::BudgetExhausted {
            scope: scope.to_string(),
            retry_after: r.retry_after,
        },
        (Guarded::Prefix(..), true) => CodeError::GuardCaptcha {
            why: "this number's prefix is held by the fleet guard".to_owned(),
        },
        (Guarded::Prefix(..), false) => CodeError::PrefixBlocked {
            retry_after: r.retry_after,
        },
    }
}
