//! Every Redis key smsq uses, named in one place (docs/contract.md "Redis keys").
//!
//! Keys that one atomic script touches share the hash tag of one shard, `{<prefix>:<shard>}`,
//! so each script runs on one Redis Cluster slot. The per-IP counters and captchas are touched
//! alone and stay untagged, spreading over the cluster.

use crate::domain::{Job, JobKind, Shard};

/// The consumer group every worker joins.
pub const GROUP: &str = "senders";

#[derive(Debug, Clone)]
pub struct Keys {
    prefix: String,
    shard: Shard,
    tag: String,
}

impl Keys {
    pub fn new(prefix: &str, shard: Shard) -> Self {
        Self {
            prefix: prefix.to_owned(),
            shard,
            tag: format!("{{{prefix}:{shard}}}"),
        }
    }

    pub fn shard(&self) -> Shard {
        self.shard
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn jobs(&self) -> String {
        format!("{}:jobs", self.tag)
    }
    /// Where a build before the code record held the sealed code kept it: read by `begin`
    /// and `replay` only, for a code issued before an upgrade (it expires with the code).
    pub fn legacy_otp(&self, job_id: &str) -> String {
        format!("{}:otp:{job_id}", self.tag)
    }
    pub fn retry(&self) -> String {
        format!("{}:retry", self.tag)
    }
    pub fn dead(&self) -> String {
        format!("{}:dead", self.tag)
    }
    pub fn events(&self) -> String {
        format!("{}:events", self.tag)
    }
    pub fn job(&self, job_id: &str) -> String {
        format!("{}:job:{job_id}", self.tag)
    }
    /// The number's current code for a purpose: `hash`, `job`, `attempts` and the code sealed
    /// for the job (`o`), all for the code's TTL (docs/contract.md).
    pub fn code(&self, purpose: &str, mobile: &str) -> String {
        format!("{}:code:{purpose}:{mobile}", self.tag)
    }
    /// What [`Keys::code`] starts with: a script adds `<purpose>:<mobile>`.
    pub fn code_prefix(&self) -> String {
        format!("{}:code:", self.tag)
    }
    /// What `begin` and `replay` check a job against: the code record of a code job (is it
    /// still this job's code?); a message job has none, so its own record stands in.
    pub fn code_of(&self, job: &Job) -> String {
        match (&job.kind, &job.purpose) {
            (JobKind::Code, Some(p)) => self.code(p.as_str(), job.to.as_str()),
            _ => self.job(job.id.as_str()),
        }
    }
    /// A number's caps this Beijing day (`day` = `yyyymmdd`), one small hash until the day
    /// ends and one resend interval more: `d` codes today, `h<hh>` codes in hour `hh`, `v`
    /// voice calls today (`code.*_limit_per_mobile`), `r:<purpose>` when the purpose's
    /// resend window ends (Unix ms). One key instead of one per window: fewer keys per code.
    pub fn caps(&self, mobile: &str, day: &str) -> String {
        format!("{}:caps:{mobile}:{day}", self.tag)
    }
    /// Codes issued this Beijing hour (`yyyymmddhh`) or day (`yyyymmdd`) on this shard: field
    /// `*` for all, one field per purpose (the budgets of `[guard]`).
    pub fn budget(&self, when: &str) -> String {
        format!("{}:guard:budget:{when}", self.tag)
    }
    /// The prefix guard's counts in one window (`bucket` = Unix ms / window): fields `i`/`v`
    /// (codes issued / verified on this shard) and `i:<prefix>`/`v:<prefix>`.
    pub fn guard_counts(&self, bucket: i64) -> String {
        format!("{}:guard:prefixes:{bucket}", self.tag)
    }
    /// The prefixes the guard tripped on this shard: prefix → `<until ms> <action> <why> <n> <of>`.
    pub fn guard_blocked(&self) -> String {
        format!("{}:guard:blocked", self.tag)
    }
    /// Idempotency records, by a digest of the client's `Idempotency-Key`.
    pub fn idempotency(&self, digest: &str) -> String {
        format!("{}:idem:{digest}", self.tag)
    }
    /// The fleet's GCRA state: the theoretical arrival time of the next send (µs, Redis clock).
    pub fn rate(&self) -> String {
        format!("{}:rate", self.tag)
    }
    /// A named account's own GCRA state (`None`: the unnamed account of `[provider]`).
    pub fn rate_of(&self, account: Option<&str>) -> String {
        match account {
            Some(name) => format!("{}:rate:{name}", self.tag),
            None => self.rate(),
        }
    }
    /// A named account's pause, as [`Keys::pause`] is the unnamed account's.
    pub fn pause_of(&self, account: Option<&str>) -> String {
        match account {
            Some(name) => format!("{}:pause:{name}", self.tag),
            None => self.pause(),
        }
    }
    /// An account's circuit, shared by every worker: `state` (`open`, `half`; absent =
    /// closed), `until` (ms), `reason`, `disabled`, the transient-error window (`wstart`,
    /// `werrs`) and the probes (`probes`, `probe_ok`, `probe_ms`).
    pub fn circuit(&self, account: &str) -> String {
        format!("{}:provider:{account}", self.tag)
    }
    /// `<until ms> <provider code>` while the provider asked every worker to slow down.
    pub fn pause(&self) -> String {
        format!("{}:pause", self.tag)
    }
    /// An operator's kill switch: while it exists no worker sends (`by`, `reason`, `since_ms`,
    /// `until_ms`; it expires at `until_ms` when one was given).
    pub fn halt(&self) -> String {
        format!("{}:halt", self.tag)
    }
    /// Who paused and resumed sending, and the provider's own pauses (capped).
    pub fn audit(&self) -> String {
        format!("{}:audit", self.tag)
    }
    /// The limit the workers enforce (`rate_per_sec`, `burst`), for operators.
    pub fn limiter(&self) -> String {
        format!("{}:limiter", self.tag)
    }
    /// A sent message's job, by the provider's message id and the number (delivery reports).
    pub fn sid(&self, message_id: &str, mobile: &str) -> String {
        format!("{}:sid:{message_id}:{mobile}", self.tag)
    }
    /// A delivery report that came before the `sent` write it belongs to.
    pub fn early_report(&self, message_id: &str, mobile: &str) -> String {
        format!("{}:early:{message_id}:{mobile}", self.tag)
    }
    /// The job record key without the id: for a script that finds the id in Redis.
    pub fn job_prefix(&self) -> String {
        format!("{}:job:", self.tag)
    }
    /// The newest jobs to a number, for support: their ids as 16 bytes each, newest first.
    pub fn by_mobile(&self, mobile: &str) -> String {
        format!("{}:mob:{mobile}", self.tag)
    }
    /// What an older build kept as [`Keys::by_mobile`]: a sorted set of job ids by creation
    /// ms. Read (never written) until the last one expires.
    pub fn by_mobile_before(&self, mobile: &str) -> String {
        format!("{}:mobile:{mobile}", self.tag)
    }
    /// Per-minute counts of job outcomes; `minute` is Unix ms / 60 000.
    pub fn stats(&self, minute: i64) -> String {
        format!("{}:stats:{minute}", self.tag)
    }
    /// Jobs made per Unix hour (field: ms / 3 600 000) on this shard, the hours of the
    /// retention only: the count of retained job records. Written next to [`Keys::events`]
    /// by `enqueue` in lib.lua, which derives it from that key.
    pub fn made(&self) -> String {
        format!("{}:made", self.tag)
    }
    /// Where `smsq export --name <name>` (to stdout) got to on this shard's events stream.
    pub fn export(&self, name: &str) -> String {
        format!("{}:export:{name}", self.tag)
    }
    /// How many shards the queue is laid out in (shard 0 only), checked at start-up.
    pub fn layout(&self) -> String {
        format!("{}:shards", self.tag)
    }
    /// A worker's heartbeat: present (short TTL) while the consumer `name` is alive. Every
    /// shard has one, so the reaper's check and claim stay one script on one slot.
    pub fn heartbeat(&self, name: &str) -> String {
        format!("{}:hb:{name}", self.tag)
    }
    /// One end user's codes this hour (an IPv4 address or an IPv6 /64). Tagged by its
    /// network, so the user's and the network's counters share a slot and one script.
    pub fn ip(&self, network: &str, host: &str, hour: &str) -> String {
        format!("{{{}:ip:{network}}}:{host}:{hour}", self.prefix)
    }
    /// One network's codes this hour (an IPv4 /24 or an IPv6 /48).
    pub fn ip_network(&self, network: &str, hour: &str) -> String {
        format!("{{{}:ip:{network}}}:net:{hour}", self.prefix)
    }
    pub fn captcha(&self, id: &str) -> String {
        format!("{}:captcha:{id}", self.prefix)
    }
    /// One webhook endpoint's delivery queue (`due`, `ev`, `tries`, `dead`, `stats`), all
    /// under the endpoint's own hash tag (one slot, whatever the shards).
    pub fn webhook(&self, endpoint: &str, part: &str) -> String {
        format!("{{{}:wh:{endpoint}}}:{part}", self.prefix)
    }
    /// A dashboard session that logged out, until the session would have expired.
    pub fn revoked_session(&self, session_id: &str) -> String {
        format!("{}:session-revoked:{session_id}", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_spec_layout() {
        let k = Keys::new("smsq", Shard::FIRST);
        assert_eq!(k.jobs(), "{smsq:0}:jobs");
        assert_eq!(
            k.code("login", "13800138000"),
            "{smsq:0}:code:login:13800138000"
        );
        assert_eq!(
            k.caps("13800138000", "20261124"),
            "{smsq:0}:caps:13800138000:20261124"
        );
        assert_eq!(
            k.ip("203.0.113.0/24", "203.0.113.7", "2026112401"),
            "{smsq:ip:203.0.113.0/24}:203.0.113.7:2026112401"
        );
        assert_eq!(
            k.ip_network("203.0.113.0/24", "2026112401"),
            "{smsq:ip:203.0.113.0/24}:net:2026112401"
        );
        assert_eq!(k.captcha("x"), "smsq:captcha:x");
        assert_eq!(k.rate(), "{smsq:0}:rate");
        assert_eq!(k.heartbeat("w1"), "{smsq:0}:hb:w1");
        let last = crate::domain::Shards::new(6).unwrap().all().last().unwrap();
        let k = Keys::new("smsq", last);
        assert_eq!(k.jobs(), "{smsq:5}:jobs");
        assert_eq!(
            k.ip("::/48", "::/64", "2026112401"),
            "{smsq:ip:::/48}:::/64:2026112401"
        );
    }
}
