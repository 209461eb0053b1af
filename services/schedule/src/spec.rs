//! When a schedule fires: a cron expression in a time zone, or a fixed interval, and the
//! arithmetic of its ticks (pure, no I/O; every tick time is Unix ms).
//!
//! Cron expressions have 5 fields (minute granularity) or 6 with seconds first, as parsed by
//! `croner` (POSIX/Vixie semantics plus `L`, `#`, `W` and `@hourly`-style aliases). Ticks are
//! wall-clock times in the schedule's IANA time zone (`chrono-tz`), so daylight-saving
//! changes are handled as cron does: a skipped local time fires once after the gap, a
//! repeated one fires once.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use serde::{Deserialize, Serialize};

/// Shortest fixed interval (a tick per second is the finest a 6-field cron gives too).
pub const MIN_EVERY_MS: i64 = 1_000;
/// Longest fixed interval.
pub const MAX_EVERY_MS: i64 = 366 * 24 * 3600 * 1000;
/// Longest accepted cron expression.
pub const MAX_CRON_LEN: usize = 256;

/// When a schedule fires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Spec {
    /// A cron expression evaluated in `time_zone` (an IANA name, e.g. `Europe/Berlin`).
    Cron {
        /// The expression as given (5 or 6 fields).
        expr: String,
        /// IANA time zone name; `UTC` by default.
        time_zone: String,
    },
    /// Every `every_ms`, at `anchor_ms + k·every_ms` (the anchor is the creation time).
    Every {
        /// The interval.
        every_ms: i64,
        /// The first tick's time minus one interval (the schedule's creation, Redis time).
        anchor_ms: i64,
    },
}

/// A spec that cannot be accepted; `field` names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    /// The field (`cron`, `time_zone`, `every`).
    pub field: &'static str,
    /// Why, with the allowed forms.
    pub message: String,
}

fn err(field: &'static str, message: impl Into<String>) -> SpecError {
    SpecError {
        field,
        message: message.into(),
    }
}

/// The parser: seconds optional (5 or 6 fields), no year field.
fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
}

/// Parses a time zone name (empty = UTC).
pub fn parse_time_zone(name: &str) -> Result<Tz, SpecError> {
    if name.is_empty() {
        return Ok(Tz::UTC);
    }
    Tz::from_str(name).map_err(|_| {
        err(
            "time_zone",
            format!(
                "unknown time zone {:?}; use an IANA name such as \"UTC\", \"Europe/Berlin\" \
                 or \"America/New_York\"",
                truncate(name, 64)
            ),
        )
    })
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

impl Spec {
    /// A cron spec, checked: the expression parses (5 or 6 fields), has a future tick, and
    /// the zone exists.
    pub fn cron(expr: &str, time_zone: &str) -> Result<Spec, SpecError> {
        let expr = expr.trim();
        if expr.len() > MAX_CRON_LEN {
            return Err(err(
                "cron",
                format!("is {} bytes; the limit is {MAX_CRON_LEN}", expr.len()),
            ));
        }
        let fields = expr.split_whitespace().count();
        if !expr.starts_with('@') && !(5..=6).contains(&fields) {
            return Err(err(
                "cron",
                format!(
                    "{:?} has {fields} fields; a cron expression has 5 (minute hour \
                     day-of-month month day-of-week) or 6 (seconds first)",
                    truncate(expr, 80)
                ),
            ));
        }
        let cron = parser().parse(expr).map_err(|e| {
            err(
                "cron",
                format!(
                    "{:?} is not a valid cron expression: {e}",
                    truncate(expr, 80)
                ),
            )
        })?;
        let tz = parse_time_zone(time_zone)?;
        let spec = Spec::Cron {
            expr: expr.to_owned(),
            time_zone: tz.name().to_owned(),
        };
        // an expression that never matches (e.g. "0 0 30 2 *") is refused now, not silently idle
        let now = Utc::now().with_timezone(&tz);
        if cron.find_next_occurrence(&now, false).is_err() {
            return Err(err(
                "cron",
                format!("{:?} never matches a date", truncate(expr, 80)),
            ));
        }
        Ok(spec)
    }

    /// A fixed interval starting at `anchor_ms` (its first tick is one interval later).
    pub fn every(every_ms: i64, anchor_ms: i64) -> Result<Spec, SpecError> {
        if !(MIN_EVERY_MS..=MAX_EVERY_MS).contains(&every_ms) {
            return Err(err(
                "every",
                format!(
                    "is {every_ms} ms; an interval is 1 s to 366 days ({MIN_EVERY_MS} to \
                     {MAX_EVERY_MS} ms)"
                ),
            ));
        }
        Ok(Spec::Every {
            every_ms,
            anchor_ms,
        })
    }

    /// The first tick strictly after `t` (Unix ms), or `None` when there is none (a cron
    /// expression whose last match has passed, or a stored spec that no longer parses).
    pub fn next_after(&self, t: i64) -> Option<i64> {
        match self {
            Spec::Every {
                every_ms,
                anchor_ms,
            } => {
                let every = (*every_ms).max(1);
                let k = if t < *anchor_ms {
                    1
                } else {
                    (t - anchor_ms) / every + 1
                };
                anchor_ms.checked_add(k.checked_mul(every)?)
            }
            Spec::Cron { expr, time_zone } => {
                let cron: Cron = parser().parse(expr).ok()?;
                let tz = parse_time_zone(time_zone).ok()?;
                // croner searches whole seconds: start from the second containing `t`, exclusive
                let secs = t.div_euclid(1000);
                let start = tz.timestamp_opt(secs, 0).single()?;
                let next = cron.find_next_occurrence(&start, false).ok()?;
                Some(next.timestamp_millis())
            }
        }
    }

    /// A short human form: the expression and zone, or `every 5s`.
    pub fn describe(&self) -> String {
        match self {
            Spec::Cron { expr, time_zone } => format!("{expr} ({time_zone})"),
            Spec::Every { every_ms, .. } => format!("every {every_ms} ms"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, NaiveDate};

    fn ms(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> i64 {
        let naive = NaiveDate::from_ymd_opt(y, mo, d)
            .unwrap()
            .and_hms_opt(h, mi, s)
            .unwrap();
        tz.from_local_datetime(&naive)
            .earliest()
            .unwrap()
            .timestamp_millis()
    }

    fn utc(t: i64) -> String {
        DateTime::<Utc>::from_timestamp_millis(t)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string()
    }

    fn ticks(spec: &Spec, from: i64, n: usize) -> Vec<String> {
        let mut out = Vec::new();
        let mut t = from;
        for _ in 0..n {
            t = spec.next_after(t).unwrap();
            out.push(utc(t));
        }
        out
    }

    /// Five fields tick per minute, six per second; a start inside a second or exactly on a
    /// tick gives the next tick strictly after it.
    #[test]
    fn five_and_six_fields() {
        let s = Spec::cron("*/15 * * * *", "").unwrap();
        let t = ms(Tz::UTC, 2026, 1, 1, 10, 0, 0);
        assert_eq!(utc(s.next_after(t).unwrap()), "2026-01-01T10:15:00Z");
        assert_eq!(utc(s.next_after(t - 1).unwrap()), "2026-01-01T10:00:00Z");
        let s = Spec::cron("*/2 * * * * *", "UTC").unwrap();
        assert_eq!(utc(s.next_after(t + 500).unwrap()), "2026-01-01T10:00:02Z");
        assert_eq!(utc(s.next_after(t + 1999).unwrap()), "2026-01-01T10:00:02Z");
        assert_eq!(utc(s.next_after(t + 2000).unwrap()), "2026-01-01T10:00:04Z");
    }

    /// Bad expressions and zones name their field.
    #[test]
    fn bad_input_names_the_field() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "nonsense here x y z",
        ] {
            let e = Spec::cron(bad, "UTC").unwrap_err();
            assert_eq!(e.field, "cron", "{bad:?}: {e}");
        }
        assert_eq!(Spec::cron("0 0 30 2 *", "UTC").unwrap_err().field, "cron");
        let e = Spec::cron("* * * * *", "Mars/Olympus").unwrap_err();
        assert_eq!(e.field, "time_zone");
        assert!(e.to_string().contains("Mars/Olympus"), "{e}");
        assert_eq!(Spec::every(999, 0).unwrap_err().field, "every");
        assert!(Spec::every(1000, 0).is_ok());
    }

    /// A daily 09:00 in New York is 14:00 UTC in winter and 13:00 UTC in summer: ticks follow
    /// the zone's wall clock across the change.
    #[test]
    fn wall_clock_follows_the_zone() {
        let s = Spec::cron("0 9 * * *", "America/New_York").unwrap();
        let t = ms(Tz::UTC, 2026, 3, 6, 0, 0, 0);
        assert_eq!(
            ticks(&s, t, 4),
            [
                "2026-03-06T14:00:00Z",
                "2026-03-07T14:00:00Z",
                "2026-03-08T13:00:00Z", // DST began at 02:00 that morning
                "2026-03-09T13:00:00Z",
            ]
        );
    }

    /// Spring forward in Berlin (2026-03-29, 02:00 → 03:00): a daily 02:30 does not exist
    /// that day and fires once right after the gap; an hourly schedule fires every real hour.
    #[test]
    fn spring_forward_gap() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let s = Spec::cron("30 2 * * *", "Europe/Berlin").unwrap();
        let t = ms(berlin, 2026, 3, 27, 12, 0, 0);
        let got = ticks(&s, t, 3);
        assert_eq!(got[0], "2026-03-28T01:30:00Z"); // 02:30 CET
                                                    // 2026-03-29: 02:30 skipped; fires once at 03:00 CEST = 01:00 UTC
        assert_eq!(got[1], "2026-03-29T01:00:00Z");
        assert_eq!(got[2], "2026-03-30T00:30:00Z"); // 02:30 CEST
        let hourly = Spec::cron("0 * * * *", "Europe/Berlin").unwrap();
        let t = ms(Tz::UTC, 2026, 3, 28, 23, 30, 0);
        assert_eq!(
            ticks(&hourly, t, 4),
            [
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T02:00:00Z",
                "2026-03-29T03:00:00Z"
            ]
        );
    }

    /// Fall back in Berlin (2026-10-25, 03:00 → 02:00): a daily 02:30 occurs twice in local
    /// time and fires once.
    #[test]
    fn fall_back_overlap_fires_once() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        let s = Spec::cron("30 2 * * *", "Europe/Berlin").unwrap();
        let t = ms(berlin, 2026, 10, 24, 12, 0, 0);
        let got = ticks(&s, t, 3);
        assert_eq!(got[0], "2026-10-25T00:30:00Z"); // the first 02:30 (CEST)
        assert_eq!(got[1], "2026-10-26T01:30:00Z"); // next day, 02:30 CET
        assert_eq!(got[2], "2026-10-27T01:30:00Z");
    }

    /// Fixed intervals are anchored at creation and ignore zones and DST.
    #[test]
    fn intervals_are_anchored() {
        let s = Spec::every(2_000, 10_500).unwrap();
        assert_eq!(s.next_after(0), Some(12_500));
        assert_eq!(s.next_after(10_500), Some(12_500));
        assert_eq!(s.next_after(12_499), Some(12_500));
        assert_eq!(s.next_after(12_500), Some(14_500));
        assert_eq!(s.next_after(20_000), Some(20_500));
    }
}
