//! The Beijing-time hour and day the per-number and per-address caps count in.

use std::time::Duration;

use chrono::{DateTime, Datelike, FixedOffset, TimeZone, Timelike};

use crate::domain::beijing;

/// The Beijing-time hour and day a timestamp falls in, and how long until each ends.
pub(in crate::store) struct Windows {
    pub hour: String,
    /// The hour's field in the number's caps (`h00` … `h23`, see `Keys::caps`).
    pub hour_field: String,
    pub hour_left_ms: i64,
    pub day: String,
    pub day_left_ms: i64,
    now: DateTime<FixedOffset>,
}

impl Windows {
    /// Yesterday (`yyyymmdd`) while today is younger than `interval`: a window of that length
    /// that began yesterday has not ended yet. `None` later in the day.
    pub fn previous_day(&self, interval: Duration) -> Option<String> {
        let into_day = 86_400_000 - self.day_left_ms;
        if u128::from(into_day.unsigned_abs()) >= interval.as_millis() {
            return None;
        }
        let yesterday = self.now - chrono::Duration::days(1);
        Some(day(&yesterday))
    }
}

fn day(t: &DateTime<FixedOffset>) -> String {
    format!("{:04}{:02}{:02}", t.year(), t.month(), t.day())
}

pub(in crate::store) fn windows(now_ms: i64) -> Windows {
    let now: DateTime<_> = beijing()
        .timestamp_millis_opt(now_ms)
        .single()
        .unwrap_or_else(|| beijing().timestamp_millis_opt(0).unwrap());
    let into_hour = (now.minute() as i64 * 60 + now.second() as i64) * 1000
        + now.timestamp_subsec_millis() as i64;
    let into_day = now.hour() as i64 * 3_600_000 + into_hour;
    Windows {
        hour: format!(
            "{:04}{:02}{:02}{:02}",
            now.year(),
            now.month(),
            now.day(),
            now.hour()
        ),
        hour_field: format!("h{:02}", now.hour()),
        hour_left_ms: 3_600_000 - into_hour,
        day: day(&now),
        day_left_ms: 86_400_000 - into_day,
        now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_beijing_hours_and_days() {
        // 2026-11-23T16:30:00Z is 2026-11-24 00:30 in Beijing.
        let t = chrono::Utc
            .with_ymd_and_hms(2026, 11, 23, 16, 30, 0)
            .unwrap()
            .timestamp_millis();
        let w = windows(t);
        assert_eq!(w.day, "20261124");
        assert_eq!(w.hour, "2026112400");
        assert_eq!(w.hour_field, "h00");
        assert_eq!(w.hour_left_ms, 30 * 60 * 1000);
        assert_eq!(w.day_left_ms, (23 * 60 + 30) * 60 * 1000);
        assert_eq!(
            w.previous_day(Duration::from_secs(31 * 60)).as_deref(),
            Some("20261123"),
            "a window of 31 minutes that began yesterday is still open at 00:30"
        );
        assert_eq!(w.previous_day(Duration::from_secs(30 * 60)), None);
        assert_eq!(w.previous_day(Duration::ZERO), None);
    }
}
