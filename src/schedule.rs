//! Weekly schedules as users write them (`daily 09:30`, `weekdays 09:30`, `mon,thu 14:00`) and
//! their instants in an IANA time zone: the next run after an instant, and the latest scheduled
//! instant at or before now (for catching up after a restart).
//!
//! Local times are taken as the zone's clocks show them, through daylight-saving changes:
//! - a time the clocks skip (02:30 on a spring-forward day in Europe/Berlin) runs at the first
//!   valid local minute after it (03:00 that day);
//! - a time the clocks show twice (02:30 on a fall-back day) runs once, at the first of the two.
//!
//! Pure: no clock, no I/O; the caller passes `now`.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use std::fmt;

/// The day names of a schedule, Monday first.
pub const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// Why a schedule was refused; each message says what is wrong and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// Not two words (days, time).
    #[error(
        "{0:?} is not a schedule: write \"daily HH:MM\", \"weekdays HH:MM\" or days and a time \
         such as \"mon,thu 14:00\""
    )]
    Shape(String),
    /// A word among the days that is not a day.
    #[error("{0:?} is not a day: use daily, weekdays, or mon, tue, wed, thu, fri, sat, sun separated by commas")]
    Day(String),
    /// A day named twice.
    #[error("{0} is named twice")]
    RepeatedDay(String),
    /// Not a time of day.
    #[error("{0:?} is not a time of day: write HH:MM on a 24-hour clock, 00:00 to 23:59")]
    Time(String),
}

/// A set of weekdays and a local time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Schedule {
    /// Bit `n` set: the schedule runs on [`DAY_NAMES`]`[n]` (Monday is bit 0). Never empty.
    days: u8,
    /// The local time of day (whole minutes).
    time: NaiveTime,
}

/// What a reminder should do now, given its last run ([`Schedule::due`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// The latest scheduled instant has been handled already (or there is none yet).
    No,
    /// Run now for this scheduled instant (at most `catch_up` ago).
    Run(DateTime<Utc>),
    /// This scheduled instant was missed by more than `catch_up`: skip it (and say so in the log).
    Missed(DateTime<Utc>),
}

const ALL_DAYS: u8 = 0b111_1111;
const WEEKDAYS: u8 = 0b001_1111;
/// Local dates looked at around an instant: a week and a day each way covers every weekly
/// schedule, with room for a zone that skipped a whole day.
const SEARCH_DAYS: i64 = 9;
/// Local minutes tried after a time the clocks skip (the longest known gap is a day).
const GAP_MINUTES: i64 = 48 * 60;

impl Schedule {
    /// Parses `daily HH:MM`, `weekdays HH:MM` or `DAY[,DAY…] HH:MM` (days `mon`…`sun`, any case).
    pub fn parse(s: &str) -> Result<Schedule, ScheduleError> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let [days, time] = words[..] else {
            return Err(ScheduleError::Shape(s.to_string()));
        };
        Ok(Schedule {
            days: parse_days(days)?,
            time: parse_time(time)?,
        })
    }

    /// The local time of day.
    pub fn time(&self) -> NaiveTime {
        self.time
    }

    /// Whether the schedule runs on `day` (0 = Monday … 6 = Sunday).
    pub fn runs_on(&self, day: u32) -> bool {
        day < 7 && self.days & (1 << day) != 0
    }

    /// The first scheduled instant strictly after `after`, on the clocks of `tz`.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
        let today = after.with_timezone(&tz).date_naive();
        (-1..=SEARCH_DAYS)
            .filter_map(|d| self.instant_on(today + Duration::days(d), tz))
            .filter(|t| *t > after)
            .min()
            // Unreachable for a parsed schedule (some day runs every week); a day later is a
            // harmless answer rather than a panic.
            .unwrap_or(after + Duration::days(1))
    }

    /// The latest scheduled instant at or before `now`, on the clocks of `tz`.
    pub fn latest_at_or_before(&self, now: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let today = now.with_timezone(&tz).date_naive();
        (-SEARCH_DAYS..=1)
            .filter_map(|d| self.instant_on(today + Duration::days(d), tz))
            .filter(|t| *t <= now)
            .max()
    }

    /// Whether to run now: `last` is the scheduled instant of the last run (or skip) recorded,
    /// `None` if the reminder never ran. The latest scheduled instant ≤ `now` runs if it is newer
    /// than `last` and at most `catch_up` old; older, it is [`Due::Missed`].
    pub fn due(
        &self,
        tz: Tz,
        last: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        catch_up: std::time::Duration,
    ) -> Due {
        let Some(latest) = self.latest_at_or_before(now, tz) else {
            return Due::No;
        };
        if last.is_some_and(|l| l >= latest) {
            return Due::No;
        }
        let late = now - latest;
        match Duration::from_std(catch_up) {
            Ok(limit) if late <= limit => Due::Run(latest),
            _ => Due::Missed(latest),
        }
    }

    /// The instant the schedule runs on local `date`, if it is a scheduled day.
    fn instant_on(&self, date: NaiveDate, tz: Tz) -> Option<DateTime<Utc>> {
        if !self.runs_on(date.weekday().num_days_from_monday()) {
            return None;
        }
        let local = date.and_time(self.time);
        match tz.from_local_datetime(&local) {
            LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
            LocalResult::Ambiguous(first, _) => Some(first.with_timezone(&Utc)),
            LocalResult::None => (1..=GAP_MINUTES).find_map(|m| {
                tz.from_local_datetime(&(local + Duration::minutes(m)))
                    .earliest()
                    .map(|t| t.with_timezone(&Utc))
            }),
        }
    }
}

impl std::str::FromStr for Schedule {
    type Err = ScheduleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Schedule::parse(s)
    }
}

impl fmt::Display for Schedule {
    /// The canonical spelling: `daily 09:30`, `weekdays 09:30` or `mon,thu 14:00`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.days {
            ALL_DAYS => f.write_str("daily")?,
            WEEKDAYS => f.write_str("weekdays")?,
            days => {
                let names: Vec<&str> = (0..7)
                    .filter(|d| days & (1 << d) != 0)
                    .map(|d| DAY_NAMES[d])
                    .collect();
                f.write_str(&names.join(","))?;
            }
        }
        write!(f, " {}", self.time.format("%H:%M"))
    }
}

fn parse_days(s: &str) -> Result<u8, ScheduleError> {
    match s.to_ascii_lowercase().as_str() {
        "daily" => return Ok(ALL_DAYS),
        "weekdays" => return Ok(WEEKDAYS),
        _ => {}
    }
    let mut days = 0u8;
    for word in s.split(',') {
        let lower = word.trim().to_ascii_lowercase();
        let bit = DAY_NAMES
            .iter()
            .position(|d| *d == lower)
            .ok_or_else(|| ScheduleError::Day(word.to_string()))?;
        if days & (1 << bit) != 0 {
            return Err(ScheduleError::RepeatedDay(lower));
        }
        days |= 1 << bit;
    }
    Ok(days)
}

fn parse_time(s: &str) -> Result<NaiveTime, ScheduleError> {
    let bad = || ScheduleError::Time(s.to_string());
    let (h, m) = s.split_once(':').ok_or_else(bad)?;
    let digits = |p: &str| (1..=2).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || m.len() != 2 || !digits(m) {
        return Err(bad());
    }
    let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Europe::Berlin;

    fn sched(s: &str) -> Schedule {
        match Schedule::parse(s) {
            Ok(s) => s,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    fn utc(s: &str) -> DateTime<Utc> {
        match DateTime::parse_from_rfc3339(s) {
            Ok(t) => t.with_timezone(&Utc),
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn the_three_forms_parse_and_print_canonically() {
        assert_eq!(sched("daily 09:30").to_string(), "daily 09:30");
        assert_eq!(sched("weekdays 9:05").to_string(), "weekdays 09:05");
        assert_eq!(sched("Thu,mon  14:00").to_string(), "mon,thu 14:00");
        assert_eq!(
            sched("mon,tue,wed,thu,fri 08:00").to_string(),
            "weekdays 08:00"
        );
        assert_eq!(sched("sat,sun 00:00").to_string(), "sat,sun 00:00");
        assert_eq!(
            sched("sun 23:59").time(),
            NaiveTime::from_hms_opt(23, 59, 0).unwrap_or_default()
        );
    }

    #[test]
    fn bad_schedules_say_what_is_wrong() {
        let err = |s: &str| match Schedule::parse(s) {
            Ok(v) => panic!("{s:?} parsed as {v}"),
            Err(e) => e.to_string(),
        };
        assert!(err("").contains("is not a schedule"));
        assert!(err("09:30").contains("\"09:30\" is not a schedule"));
        assert!(err("every day 09:30").contains("is not a schedule"));
        assert!(err("mon,fry 09:30").contains("\"fry\" is not a day"));
        assert!(err("mon, 09:30").contains("\"\" is not a day"));
        assert!(err("mon,,thu 09:30").contains("\"\" is not a day"));
        assert!(err("mon,mon 09:30").contains("mon is named twice"));
        for t in [
            "24:00", "09:60", "9:5", "0930", "09:30:00", "-1:30", "09:3a", "123:00",
        ] {
            assert!(
                err(&format!("daily {t}")).contains("is not a time of day"),
                "{t}"
            );
        }
    }

    #[test]
    fn next_run_is_strictly_after_and_in_the_zone() {
        let s = sched("weekdays 09:30");
        // Friday 4 December 2026, 08:29 UTC = 09:29 in Berlin (CET, +1).
        assert_eq!(
            s.next_after(utc("2026-12-04T08:29:00Z"), Berlin),
            utc("2026-12-04T08:30:00Z")
        );
        // At the instant itself: the next one, on Monday (the weekend skipped).
        assert_eq!(
            s.next_after(utc("2026-12-04T08:30:00Z"), Berlin),
            utc("2026-12-07T08:30:00Z")
        );
        // Summer time: 09:30 CEST is 07:30 UTC.
        assert_eq!(
            s.next_after(utc("2026-07-01T00:00:00Z"), Berlin),
            utc("2026-07-01T07:30:00Z")
        );
        let mon_thu = sched("mon,thu 14:00");
        assert_eq!(
            mon_thu.next_after(utc("2026-12-04T12:00:00Z"), chrono_tz::UTC),
            utc("2026-12-07T14:00:00Z")
        );
        // Late in the local day but already the next day in UTC.
        let tokyo = sched("daily 08:00");
        assert_eq!(
            tokyo.next_after(utc("2026-12-04T22:00:00Z"), chrono_tz::Asia::Tokyo),
            utc("2026-12-04T23:00:00Z")
        );
    }

    #[test]
    fn berlin_spring_forward_2026_runs_a_skipped_time_at_three() {
        // Sunday 29 March 2026: 02:00 CET becomes 03:00 CEST (01:00 UTC).
        let skipped = sched("daily 02:30");
        assert_eq!(
            skipped.next_after(utc("2026-03-28T12:00:00Z"), Berlin),
            utc("2026-03-29T01:00:00Z")
        );
        // The day before and after run at 02:30 local as usual.
        assert_eq!(
            skipped.next_after(utc("2026-03-27T12:00:00Z"), Berlin),
            utc("2026-03-28T01:30:00Z")
        );
        assert_eq!(
            skipped.next_after(utc("2026-03-29T01:00:00Z"), Berlin),
            utc("2026-03-30T00:30:00Z")
        );
        // A time after the change moves from +1 to +2.
        let morning = sched("daily 09:30");
        assert_eq!(
            morning.next_after(utc("2026-03-28T09:00:00Z"), Berlin),
            utc("2026-03-29T07:30:00Z")
        );
        assert_eq!(
            skipped.latest_at_or_before(utc("2026-03-29T06:00:00Z"), Berlin),
            Some(utc("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn berlin_fall_back_2026_runs_a_repeated_time_once_at_the_first() {
        // Sunday 25 October 2026: 03:00 CEST becomes 02:00 CET (01:00 UTC); 02:30 happens twice.
        let twice = sched("daily 02:30");
        let first = utc("2026-10-25T00:30:00Z");
        assert_eq!(twice.next_after(utc("2026-10-24T12:00:00Z"), Berlin), first);
        // After the first: the second 02:30 (01:30 UTC) is not a run; the next is on Monday.
        assert_eq!(twice.next_after(first, Berlin), utc("2026-10-26T01:30:00Z"));
        assert_eq!(
            twice.latest_at_or_before(utc("2026-10-25T01:45:00Z"), Berlin),
            Some(first)
        );
        assert_eq!(
            twice.due(
                Berlin,
                Some(first),
                utc("2026-10-25T01:31:00Z"),
                std::time::Duration::from_secs(7200)
            ),
            Due::No
        );
        let morning = sched("daily 09:30");
        assert_eq!(
            morning.next_after(utc("2026-10-24T09:00:00Z"), Berlin),
            utc("2026-10-25T08:30:00Z")
        );
    }

    #[test]
    fn latest_at_or_before_includes_now_and_skips_other_days() {
        let s = sched("mon,thu 14:00");
        // Sunday 6 December 2026: the latest was Thursday the 3rd.
        assert_eq!(
            s.latest_at_or_before(utc("2026-12-06T12:00:00Z"), chrono_tz::UTC),
            Some(utc("2026-12-03T14:00:00Z"))
        );
        assert_eq!(
            s.latest_at_or_before(utc("2026-12-07T14:00:00Z"), chrono_tz::UTC),
            Some(utc("2026-12-07T14:00:00Z"))
        );
    }

    #[test]
    fn due_runs_once_within_catch_up_and_skips_older() {
        let s = sched("daily 09:30");
        let tz = chrono_tz::UTC;
        let two_hours = std::time::Duration::from_secs(7200);
        let at = utc("2026-12-04T09:30:00Z");
        // Before the first run of the day: yesterday's is long gone.
        assert_eq!(
            s.due(
                tz,
                Some(utc("2026-12-03T09:30:00Z")),
                utc("2026-12-04T09:29:00Z"),
                two_hours
            ),
            Due::No
        );
        assert_eq!(
            s.due(tz, Some(utc("2026-12-03T09:30:00Z")), at, two_hours),
            Due::Run(at)
        );
        // Recorded: a restart right after does not run it again.
        assert_eq!(
            s.due(tz, Some(at), utc("2026-12-04T09:30:05Z"), two_hours),
            Due::No
        );
        // Down across the time, back within catch_up: runs; later than that: missed.
        let last = Some(utc("2026-12-03T09:30:00Z"));
        assert_eq!(
            s.due(tz, last, utc("2026-12-04T11:30:00Z"), two_hours),
            Due::Run(at)
        );
        assert_eq!(
            s.due(tz, last, utc("2026-12-04T11:30:01Z"), two_hours),
            Due::Missed(at)
        );
        // Never ran: the latest instant counts the same way.
        assert_eq!(
            s.due(tz, None, utc("2026-12-04T10:00:00Z"), two_hours),
            Due::Run(at)
        );
        assert_eq!(
            s.due(tz, None, utc("2026-12-04T20:00:00Z"), two_hours),
            Due::Missed(at)
        );
    }
}
