//! Each provider account's circuit, in Redis so every worker shares it (`circuit.lua`);
//! operators read it and switch an account off and on (`smsq provider`).

use std::time::Duration;

use crate::store::script::script;
use crate::store::{Store, StoreError};

script! {
    /// One operation on an account's circuit; returns its state after.
    struct CircuitCall<'a> = include_str!("circuit.lua");
    keys { circuit, audit }
    argv {
        op: &'a str, now: i64, window: u64, threshold: u32, cool: u64, probes: u32,
        reason: &'a str, open_ms: u64, by: &'a str,
    }
}

/// What happened, or is asked, at an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitOp<'a> {
    /// May a send go through it now?
    Permit,
    /// A send succeeded.
    Ok,
    /// A transient error (5xx, timeout, unreadable answer).
    Transient(&'a str),
    /// An account-level fault or throttling: open for this long.
    Fault(&'a str, Duration),
    /// An operator's switch, with who did it.
    Disable {
        by: &'a str,
    },
    Enable {
        by: &'a str,
    },
    Read,
}

/// An account's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    /// No sends until `until_ms` (then it is half open).
    Open {
        until_ms: i64,
    },
    /// Probes decide whether it closes.
    HalfOpen,
}

impl CircuitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CircuitState::Closed => "closed",
            CircuitState::Open { .. } => "open",
            CircuitState::HalfOpen => "half-open",
        }
    }
}

/// A permit's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permit {
    /// Closed: send.
    Send,
    /// Half open, and this send is one of the probes.
    Probe,
    /// Open, disabled, or every probe is out: not through this account now.
    No,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    pub state: CircuitState,
    pub disabled: bool,
    /// Why it last opened.
    pub reason: String,
    /// A permit's answer (for other ops, whether a send may go now).
    pub permit: Permit,
    /// Transient errors counted in the current window (`failover.error_window_secs`).
    pub recent_errors: u32,
}

/// The circuit's rules, from `[failover]`.
#[derive(Debug, Clone, Copy)]
pub struct CircuitPolicy {
    pub window: Duration,
    pub threshold: u32,
    pub cool_down: Duration,
    pub probes: u32,
}

/// On the shared handle: the workers report and ask, operators read and switch.
impl Store {
    pub async fn circuit(
        &self,
        account: &str,
        op: CircuitOp<'_>,
        policy: &CircuitPolicy,
        now_ms: i64,
    ) -> Result<Circuit, StoreError> {
        let (name, reason, open_ms, by) = match op {
            CircuitOp::Permit => ("permit", "", 0, ""),
            CircuitOp::Ok => ("ok", "", 0, ""),
            CircuitOp::Transient(why) => ("transient", why, 0, "worker"),
            CircuitOp::Fault(why, open) => ("fault", why, open.as_millis() as u64, "worker"),
            CircuitOp::Disable { by } => ("disable", "disabled by an operator", 0, by),
            CircuitOp::Enable { by } => ("enable", "enabled by an operator", 0, by),
            CircuitOp::Read => ("read", "", 0, ""),
        };
        let fleet = self.fleet();
        let reply: (String, i64, i64, String, String, u32) = CircuitCall {
            circuit: fleet.circuit(account),
            audit: fleet.audit(),
            op: name,
            now: now_ms,
            window: policy.window.as_millis() as u64,
            threshold: policy.threshold,
            cool: policy.cool_down.as_millis() as u64,
            probes: policy.probes,
            reason,
            open_ms,
            by,
        }
        .call(&mut self.conn())
        .await?;
        parse(reply)
    }
}

/// The script's reply, checked: a state or answer it never gives is an error, not a guess.
fn parse(
    (state, until_ms, disabled, reason, answer, recent_errors): (
        String,
        i64,
        i64,
        String,
        String,
        u32,
    ),
) -> Result<Circuit, StoreError> {
    let bad = || StoreError::Reply(format!("circuit: {state:?} {answer:?}"));
    let state = match state.as_str() {
        "closed" => CircuitState::Closed,
        "open" => CircuitState::Open { until_ms },
        "half" => CircuitState::HalfOpen,
        _ => return Err(bad()),
    };
    let disabled = disabled == 1;
    let permit = match (answer.as_str(), disabled) {
        (_, true) | ("open" | "wait" | "disabled", _) => Permit::No,
        ("probe", _) => Permit::Probe,
        ("closed", _) => Permit::Send,
        // A non-permit op on a half-open circuit: a send would need a probe permit.
        ("half", _) => Permit::No,
        _ => return Err(bad()),
    };
    Ok(Circuit {
        state,
        disabled,
        reason,
        permit,
        recent_errors,
    })
}
