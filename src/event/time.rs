//! GitLab's many timestamp spellings, parsed leniently.
//!
//! GitLab has written timestamps as `2013-12-03T17:23:34Z`, `2013-12-03 17:23:34 UTC`,
//! `2012-01-03T23:36:29+02:00`, `2025-05-02 11:54:46 +0000`, with milliseconds, and (in its own docs)
//! with a stray space after a colon. Calendar dates (`due_date`) are bare `YYYY-MM-DD`. Nothing here
//! fails an event: an unparseable value is kept as the raw string by the caller.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// A point in time or a calendar date, as found in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// A full timestamp with its offset.
    Instant(DateTime<FixedOffset>),
    /// A calendar date with no time of day (e.g. `due_date`): it is the same day in every zone.
    Date(NaiveDate),
}

/// Parses a timestamp or a calendar date in any of the spellings GitLab is known to use.
pub fn parse_when(raw: &str) -> Option<When> {
    let s = raw.trim();
    if s.len() == 10 {
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            return Some(When::Date(d));
        }
    }
    parse_instant(s).map(When::Instant)
}

/// Parses a full timestamp (not a bare date).
pub fn parse_instant(raw: &str) -> Option<DateTime<FixedOffset>> {
    let cleaned: String;
    let mut s = raw.trim();
    // GitLab's docs once printed "2015-04-08T21: 00:25-07:00": drop blanks that follow a colon.
    if s.contains(": ") {
        cleaned = s.replace(": ", ":");
        s = &cleaned;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t);
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f %z",
        "%Y-%m-%d %H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
    ] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t);
        }
    }
    // "2013-12-03 17:23:34 UTC" and zone-less forms are UTC.
    let naive_part = s
        .strip_suffix(" UTC")
        .or_else(|| s.strip_suffix(" GMT"))
        .or_else(|| s.strip_suffix('Z'))
        .unwrap_or(s);
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(n) = NaiveDateTime::parse_from_str(naive_part, fmt) {
            return Some(Utc.from_utc_datetime(&n).fixed_offset());
        }
    }
    None
}

/// Normalises a payload timestamp for templates: RFC 3339 when it parses, the raw text otherwise.
pub fn normalize(raw: &str) -> String {
    match parse_when(raw) {
        Some(When::Instant(t)) => t.to_rfc3339(),
        Some(When::Date(d)) => d.format("%Y-%m-%d").to_string(),
        None => raw.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_known_spelling_to_the_same_instant() {
        let want = parse_instant("2013-12-03T17:23:34Z");
        assert!(want.is_some());
        for s in [
            "2013-12-03 17:23:34 UTC",
            "2013-12-03T19:23:34+02:00",
            "2013-12-03 17:23:34 +0000",
            "2013-12-03T17:23:34.000Z",
            "2013-12-03T17: 23:34Z",
            "2013-12-03 17:23:34",
        ] {
            assert_eq!(parse_instant(s), want, "{s}");
        }
    }

    #[test]
    fn dates_stay_dates_and_garbage_stays_raw() {
        assert_eq!(
            parse_when("2026-03-08"),
            NaiveDate::from_ymd_opt(2026, 3, 8).map(When::Date)
        );
        assert_eq!(parse_when("next tuesday"), None);
        assert_eq!(normalize("next tuesday"), "next tuesday");
        assert_eq!(
            normalize("2015-04-08T21: 00:25-07:00"),
            "2015-04-08T21:00:25-07:00"
        );
        assert_eq!(
            normalize("2026-05-28T05:54:03.097Z"),
            "2026-05-28T05:54:03.097+00:00"
        );
    }
}
