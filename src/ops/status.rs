//! `smsq status`: the snapshot as text (one screen), as JSON, or redrawn every second.

use std::fmt::Write as _;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::snapshot::Snapshot;
use crate::store::Records;

/// What `smsq status` printed, and whether the queue is healthy.
pub struct Shown {
    pub text: String,
    pub healthy: bool,
}

/// One snapshot, rendered. A Redis that does not answer is itself the verdict `down`.
pub async fn show(store: &Records, settings: &Settings, json: bool) -> Shown {
    match Snapshot::take(store, settings).await {
        Ok(s) => Shown {
            healthy: s.verdict.status != crate::snapshot::Health::Down,
            text: if json {
                serde_json::to_string_pretty(&s).unwrap_or_default()
            } else {
                render(&s)
            },
        },
        Err(e) => {
            let reason = format!("redis unreachable: {e}");
            Shown {
                healthy: false,
                text: if json {
                    serde_json::json!({"verdict": {"status": "down", "reasons": [reason]}})
                        .to_string()
                } else {
                    format!("smsq status: down ({reason})")
                },
            }
        }
    }
}

/// Redraws every second until `stop`.
pub async fn watch(store: &Records, settings: &Settings, json: bool, stop: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let shown = show(store, settings, json).await;
        // Clear the screen and go home, then draw: no flicker of a half-cleared screen.
        print!("\x1b[2J\x1b[H{}\n(every 1 s; Ctrl-C to stop)\n", shown.text);
    }
}

pub fn render(s: &Snapshot) -> String {
    let mut out = String::new();
    header(&mut out, s);
    queue(&mut out, s);
    limiter(&mut out, s);
    throughput(&mut out, s);
    workers(&mut out, s);
    out
}

fn header(out: &mut String, s: &Snapshot) {
    let taken = Utc
        .timestamp_millis_opt(s.taken_at_ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_default();
    let why = if s.verdict.reasons.is_empty() {
        String::new()
    } else {
        format!(": {}", s.verdict.reasons.join("; "))
    };
    let _ = writeln!(out, "smsq status: {}{why}   ({taken})", s.verdict.status);
}

fn queue(out: &mut String, s: &Snapshot) {
    let st = &s.stream;
    let _ = writeln!(
        out,
        "queue      backlog {}   lag {}   pending {}   oldest pending {}",
        st.backlog,
        st.lag.map_or("?".to_owned(), |l| l.to_string()),
        st.pending,
        st.oldest_pending_age_ms.map_or("-".to_owned(), secs),
    );
    let next = match s.retries.next_due_in_ms {
        Some(ms) if ms < 0 => format!(", next overdue by {}", secs(-ms as u64)),
        Some(ms) => format!(", next due in {}", secs(ms as u64)),
        None => String::new(),
    };
    if st.shards.len() > 1 {
        let each: Vec<String> = st
            .shards
            .iter()
            .map(|v| format!("{}:{}/{}", v.shard, v.backlog, v.pending))
            .collect();
        let _ = writeln!(out, "shards     backlog/pending  {}", each.join("  "));
    }
    let _ = writeln!(out, "retries    {} waiting{next}", s.retries.waiting);
    let _ = writeln!(out, "dead       {} dead letter(s)", s.dead_letters);
    if let Some(h) = &s.halt {
        let until = h.until_ms.map_or("until resumed".to_owned(), |u| {
            format!("for {} more", secs((u - s.taken_at_ms).max(0) as u64))
        });
        let _ = writeln!(
            out,
            "PAUSED     by {}: {} ({until}; `smsq resume`)",
            h.by, h.reason
        );
    }
    for a in s.audit.iter().take(3) {
        let when = Utc
            .timestamp_millis_opt(a.ts_ms)
            .single()
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "audit      {when}  {} by {}  {}",
            a.action, a.by, a.reason
        );
    }
    for h in &s.webhooks {
        let _ = writeln!(
            out,
            "webhooks   {}: {} waiting, {} dead, {} delivered, {} failed attempt(s)",
            h.endpoint, h.backlog, h.dead, h.delivered, h.failed_attempts
        );
    }
    guards(out, s);
    for a in &s.providers {
        let state = match (a.disabled, a.open_until_ms) {
            (true, _) => "DISABLED".to_owned(),
            (false, Some(until)) => format!(
                "OPEN ({}), probes in {}",
                a.reason,
                secs((until - s.taken_at_ms).max(0) as u64)
            ),
            (false, None) => a.circuit.clone(),
        };
        let _ = writeln!(
            out,
            "provider   {} ({}, {}/s, {})   {state}   {} recent error(s)",
            a.name, a.kind, a.rate_per_sec, a.route, a.recent_errors
        );
    }
    if let Some(used) = s.redis.used_memory {
        let of = match s.redis.maxmemory {
            Some(max) if max > 0 => {
                format!(" of {} MB maxmemory ({}%)", max >> 20, used * 100 / max)
            }
            _ => " (no maxmemory set)".to_owned(),
        };
        let retained = s
            .redis
            .retained_jobs
            .map(|n| format!(", ≈{n} job records retained"))
            .unwrap_or_default();
        let _ = writeln!(out, "redis      {} MB used{of}{retained}", used >> 20);
    }
}

fn guards(out: &mut String, s: &Snapshot) {
    let budgets: Vec<String> = s
        .guard
        .budgets
        .iter()
        .filter(|b| b.purpose.is_none())
        .map(|b| match b.limit {
            Some(l) => format!("{} {}/{l}", b.window, b.used),
            None => format!("{} {}", b.window, b.used),
        })
        .collect();
    let held: Vec<&str> = s.guard.blocked.iter().map(|b| b.prefix.as_str()).collect();
    let held = if held.is_empty() {
        "no prefix held".to_owned()
    } else {
        format!("held: {} (`smsq guard list`)", held.join(", "))
    };
    let _ = writeln!(out, "guards     codes {}   {held}", budgets.join("   "));
}

fn limiter(out: &mut String, s: &Snapshot) {
    let l = &s.limiter;
    let limit = match (l.rate_per_sec, l.burst) {
        (Some(r), Some(b)) => format!("{r}/s burst {b}"),
        _ => "not published yet".to_owned(),
    };
    let pause = match (l.paused_until_ms, &l.pause_reason) {
        (Some(until), Some(code)) => format!(
            "PAUSED by {code} for {}",
            secs((until - s.taken_at_ms).max(0) as u64)
        ),
        _ => "none".to_owned(),
    };
    let _ = writeln!(
        out,
        "limiter    {limit}   wait {} ms   pause {pause}",
        l.wait_ms
    );
}

fn throughput(out: &mut String, s: &Snapshot) {
    let t = &s.throughput;
    let count = |k: &str| t.last_hour.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "sent       {:.2}/s over 1 min   {:.2}/s over 1 h",
        t.sent_per_sec_1m, t.sent_per_sec_1h
    );
    let counts: Vec<String> = [
        "sent",
        "failed",
        "dead",
        "expired",
        "superseded",
        "retrying",
    ]
    .iter()
    .map(|k| format!("{k} {}", count(k)))
    .collect();
    let _ = writeln!(out, "last hour  {}", counts.join("   "));
    let rate = t.delivery_rate_1h.map_or("no reports".to_owned(), |r| {
        format!("{:.0} % delivered", r * 100.0)
    });
    let _ = writeln!(
        out,
        "handsets   delivered {}   undelivered {}   ({rate})",
        count("delivered"),
        count("undelivered"),
    );
}

fn workers(out: &mut String, s: &Snapshot) {
    let live = s.live_consumers();
    let dead = s.consumers.len() - live;
    let _ = writeln!(out, "workers    {live} live, {dead} dead");
    if !s.consumers.is_empty() {
        let _ = writeln!(
            out,
            "  {:<32} {:<5} {:>8} {:>9} {:>11}",
            "CONSUMER", "STATE", "PENDING", "IDLE", "DELIVERIES"
        );
    }
    for c in &s.consumers {
        let _ = writeln!(
            out,
            "  {:<32} {:<5} {:>8} {:>9} {:>11}",
            c.name,
            if c.alive { "live" } else { "dead" },
            c.pending,
            secs(c.idle_ms),
            c.max_deliveries
        );
    }
}

fn secs(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}
