//! What the app hears about a code or a message: the webhook event types, and which job
//! status (or verification) each one is.

use std::fmt;

use super::{JobKind, JobStatus};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    CodeSent,
    CodeDelivered,
    CodeUndelivered,
    CodeVerified,
    CodeExpired,
    CodeFailed,
    MessageSent,
    MessageDelivered,
    MessageUndelivered,
    MessageFailed,
    JobDead,
}

impl EventType {
    pub const ALL: [EventType; 11] = [
        Self::CodeSent,
        Self::CodeDelivered,
        Self::CodeUndelivered,
        Self::CodeVerified,
        Self::CodeExpired,
        Self::CodeFailed,
        Self::MessageSent,
        Self::MessageDelivered,
        Self::MessageUndelivered,
        Self::MessageFailed,
        Self::JobDead,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::CodeSent => "code.sent",
            Self::CodeDelivered => "code.delivered",
            Self::CodeUndelivered => "code.undelivered",
            Self::CodeVerified => "code.verified",
            Self::CodeExpired => "code.expired",
            Self::CodeFailed => "code.failed",
            Self::MessageSent => "message.sent",
            Self::MessageDelivered => "message.delivered",
            Self::MessageUndelivered => "message.undelivered",
            Self::MessageFailed => "message.failed",
            Self::JobDead => "job.dead",
        }
    }

    /// The event a job's new status is, if the app hears of it (`queued`, `sending`,
    /// `retrying`, `replayed` and `superseded` are the queue's business, not the app's).
    /// `verified` is not a job status: a verification is recorded as an event of its own.
    pub fn of(kind: JobKind, status: &str) -> Option<Self> {
        if status == "verified" {
            return (kind == JobKind::Code).then_some(Self::CodeVerified);
        }
        let status: JobStatus = status.parse().ok()?;
        Some(match (kind, status) {
            (_, JobStatus::Dead) => Self::JobDead,
            (JobKind::Code, JobStatus::Sent) => Self::CodeSent,
            (JobKind::Code, JobStatus::Delivered) => Self::CodeDelivered,
            (JobKind::Code, JobStatus::Undelivered) => Self::CodeUndelivered,
            (JobKind::Code, JobStatus::Expired) => Self::CodeExpired,
            (JobKind::Code, JobStatus::Failed) => Self::CodeFailed,
            (JobKind::Message, JobStatus::Sent) => Self::MessageSent,
            (JobKind::Message, JobStatus::Delivered) => Self::MessageDelivered,
            (JobKind::Message, JobStatus::Undelivered) => Self::MessageUndelivered,
            (JobKind::Message, JobStatus::Failed | JobStatus::Expired) => Self::MessageFailed,
            _ => return None,
        })
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which events an endpoint wants: exact types (`code.sent`), a family (`code.*`) or all
/// (`*`). Parsed once: a pattern that matches no event is an error, not a silent nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(Vec<EventType>);

impl EventFilter {
    pub fn parse(patterns: &[String]) -> Result<Self, String> {
        let mut wanted = Vec::new();
        for p in patterns {
            let matching: Vec<EventType> = EventType::ALL
                .into_iter()
                .filter(|t| match p.strip_suffix('*') {
                    Some(prefix) => t.as_str().starts_with(prefix),
                    None => t.as_str() == p,
                })
                .collect();
            if matching.is_empty() {
                return Err(format!(
                    "{p:?} matches no event (events: {}; `code.*`, `*`)",
                    EventType::ALL.map(EventType::as_str).join(", ")
                ));
            }
            wanted.extend(matching);
        }
        wanted.sort();
        wanted.dedup();
        Ok(Self(wanted))
    }

    pub fn wants(&self, event: EventType) -> bool {
        self.0.contains(&event)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_events_the_app_hears() {
        assert_eq!(
            EventType::of(JobKind::Code, "sent"),
            Some(EventType::CodeSent)
        );
        assert_eq!(
            EventType::of(JobKind::Message, "dead"),
            Some(EventType::JobDead)
        );
        assert_eq!(
            EventType::of(JobKind::Code, "verified"),
            Some(EventType::CodeVerified)
        );
        assert_eq!(EventType::of(JobKind::Message, "verified"), None);
        for quiet in [
            "queued",
            "sending",
            "retrying",
            "replayed",
            "superseded",
            "nonsense",
        ] {
            assert_eq!(EventType::of(JobKind::Code, quiet), None, "{quiet}");
        }
    }

    #[test]
    fn filters_take_types_families_and_all_and_refuse_what_matches_nothing() {
        let f = EventFilter::parse(&["code.*".into(), "job.dead".into()]).unwrap();
        assert!(f.wants(EventType::CodeVerified) && f.wants(EventType::JobDead));
        assert!(!f.wants(EventType::MessageSent));
        let all = EventFilter::parse(&["*".into()]).unwrap();
        assert!(EventType::ALL.iter().all(|t| all.wants(*t)));
        assert!(EventFilter::parse(&["code.sentt".into()]).is_err());
        assert!(EventFilter::parse(&["sms.*".into()]).is_err());
    }
}
