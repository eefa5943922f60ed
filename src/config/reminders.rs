//! `[[reminders]]`: review reminders, each a schedule in a time zone, the projects whose open
//! merge requests it lists, and the channels it posts to. They read GitLab, so they need
//! `[gitlab]` with a token.

use super::channels::ChannelConfig;
use super::errors::{invalid, ConfigError};
use super::gitlab::GitlabConfig;
use crate::schedule::Schedule;
use chrono_tz::Tz;
use serde::Deserialize;
use std::time::Duration;

/// Default `min_age`: merge requests opened at least this long ago are listed.
pub const DEFAULT_MIN_AGE: Duration = Duration::from_secs(4 * 3600);
/// Default `catch_up`: a run missed while the bridge was down is sent if it starts within this.
pub const DEFAULT_CATCH_UP: Duration = Duration::from_secs(2 * 3600);
/// Default `max_per_reviewer`: merge requests listed per reviewer before "and N more".
pub const DEFAULT_MAX_PER_REVIEWER: usize = 10;
/// Largest `max_per_reviewer` (Cliq caps a card's slides at 10 000 characters).
pub const MAX_MAX_PER_REVIEWER: usize = 50;
/// Default `time_budget`: how long one run may spend asking GitLab.
pub const DEFAULT_TIME_BUDGET: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReminder {
    name: String,
    channels: Vec<String>,
    schedule: String,
    timezone: Option<String>,
    #[serde(default)]
    projects: Vec<String>,
    #[serde(default)]
    groups: Vec<String>,
    min_age: Option<String>,
    catch_up: Option<String>,
    max_per_reviewer: Option<usize>,
    unassigned_after: Option<String>,
    #[serde(default)]
    pipelines: bool,
    #[serde(default)]
    all_clear: bool,
    time_budget: Option<String>,
}

/// One `[[reminders]]` entry, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ReminderConfig {
    /// Its name (`reminders run NAME`, the card's title, the store's key).
    pub name: String,
    /// Channel names (each defined in `[[channels]]`).
    pub channels: Vec<String>,
    /// When it runs.
    pub schedule: Schedule,
    /// The zone of `schedule` (default `[templates] timezone`).
    pub timezone: Tz,
    /// Project path globs it covers (`groups` entries become `GROUP/*`).
    pub projects: Vec<String>,
    /// Merge requests younger than this are not listed (default 4 h).
    pub min_age: Duration,
    /// A run missed by at most this much is sent when the bridge starts (default 2 h).
    pub catch_up: Duration,
    /// Merge requests listed per reviewer (default 10).
    pub max_per_reviewer: usize,
    /// Also list merge requests without a reviewer opened longer ago than this.
    pub unassigned_after: Option<Duration>,
    /// Read each listed merge request's head pipeline (one more request each) to flag failures.
    pub pipelines: bool,
    /// Post "no merge request waits for review" when nothing does (default: post nothing).
    pub all_clear: bool,
    /// How long one run may spend asking GitLab (default 60 s); what is not fetched by then is
    /// left out and the card says the list may be incomplete.
    pub time_budget: Duration,
}

/// Validates `[[reminders]]` against the channels, `[gitlab]` and the templates' zone.
pub(super) fn reminders_section(
    raw: Vec<RawReminder>,
    channels: &[ChannelConfig],
    gitlab: Option<&GitlabConfig>,
    default_tz: Tz,
) -> Result<Vec<ReminderConfig>, ConfigError> {
    let mut out: Vec<ReminderConfig> = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("reminders[{i}].{k}");
        let name = r.name.trim().to_string();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(invalid(
                key("name"),
                "must be letters, digits, `-`, `_` or `.` (it is typed in `reminders run NAME`)",
            ));
        }
        if out.iter().any(|o| o.name == name) {
            return Err(invalid(
                key("name"),
                format!("{name:?} names two reminders"),
            ));
        }
        if gitlab.is_none_or(|g| g.token.is_none()) {
            return Err(invalid(
                format!("reminders[{i}]"),
                "reminders read merge requests from GitLab: [gitlab] needs a url and a token",
            ));
        }
        if r.channels.is_empty() {
            return Err(invalid(key("channels"), "name at least one channel"));
        }
        for c in &r.channels {
            if !channels.iter().any(|ch| &ch.name == c) {
                return Err(invalid(
                    key("channels"),
                    format!("no [[channels]] named {c:?}"),
                ));
            }
        }
        let schedule =
            Schedule::parse(&r.schedule).map_err(|e| invalid(key("schedule"), e.to_string()))?;
        let timezone = match r.timezone {
            None => default_tz,
            Some(t) => t.trim().parse().map_err(|_| {
                invalid(
                    key("timezone"),
                    format!("{t:?} is not an IANA time zone (such as \"Europe/Berlin\")"),
                )
            })?,
        };
        let mut projects: Vec<String> = Vec::new();
        for (j, p) in r.projects.iter().enumerate() {
            let p = p.trim().trim_matches('/');
            if p.is_empty() {
                return Err(invalid(format!("reminders[{i}].projects[{j}]"), "is empty"));
            }
            projects.push(p.to_string());
        }
        for (j, g) in r.groups.iter().enumerate() {
            let g = g.trim().trim_matches('/');
            if g.is_empty() || g.contains('*') {
                return Err(invalid(
                    format!("reminders[{i}].groups[{j}]"),
                    "must be a group's full path (`acme` or `acme/team`)",
                ));
            }
            projects.push(format!("{g}/*"));
        }
        if projects.is_empty() {
            return Err(invalid(
                key("projects"),
                "name the projects it covers (path globs such as \"acme/*\"), or `groups`",
            ));
        }
        let duration = |k: &str, v: Option<String>, default: Duration| match v {
            None => Ok(default),
            Some(s) => crate::duration::parse(s.trim()).ok_or_else(|| {
                invalid(
                    key(k),
                    format!("{s:?} is not a duration: write 30s, 15m, 2h or 7d"),
                )
            }),
        };
        let min_age = duration("min_age", r.min_age, DEFAULT_MIN_AGE)?;
        let catch_up = duration("catch_up", r.catch_up, DEFAULT_CATCH_UP)?;
        let time_budget = duration("time_budget", r.time_budget, DEFAULT_TIME_BUDGET)?;
        if time_budget.is_zero() {
            return Err(invalid(key("time_budget"), "must be more than 0s"));
        }
        let unassigned_after = match r.unassigned_after {
            None => None,
            Some(s) => Some(duration("unassigned_after", Some(s), Duration::ZERO)?),
        };
        let max_per_reviewer = r.max_per_reviewer.unwrap_or(DEFAULT_MAX_PER_REVIEWER);
        if !(1..=MAX_MAX_PER_REVIEWER).contains(&max_per_reviewer) {
            return Err(invalid(
                key("max_per_reviewer"),
                format!("must be between 1 and {MAX_MAX_PER_REVIEWER}"),
            ));
        }
        out.push(ReminderConfig {
            name,
            channels: r.channels,
            schedule,
            timezone,
            projects,
            min_age,
            catch_up,
            max_per_reviewer,
            unassigned_after,
            pipelines: r.pipelines,
            all_clear: r.all_clear,
            time_budget,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::testing::parse;

    const BASE: &str = r#"
[server]
secret_token = "hook-secret"

[[channels]]
name = "dev"
url = "https://cliq.zoho.com/api/v2/channelsbyname/dev/message"
zapikey = "k"

[gitlab]
url = "https://gitlab.example.com"
token = "glpat-x"

[templates]
timezone = "Asia/Kolkata"
"#;

    fn with(reminder: &str) -> String {
        format!("{BASE}\n[[reminders]]\n{reminder}\n")
    }

    fn error(text: &str) -> String {
        match parse(text, &[]) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_reminder_with_defaults() {
        let cfg = parse(
            &with("name = \"reviews\"\nchannels = [\"dev\"]\nschedule = \"weekdays 09:30\"\nprojects = [\"acme/*\"]\ngroups = [\"ops\"]"),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = &cfg.reminders[0];
        assert_eq!(r.name, "reviews");
        assert_eq!(r.schedule.to_string(), "weekdays 09:30");
        assert_eq!(r.timezone, chrono_tz::Asia::Kolkata);
        assert_eq!(r.projects, vec!["acme/*", "ops/*"]);
        assert_eq!(r.min_age, super::DEFAULT_MIN_AGE);
        assert_eq!(r.catch_up, super::DEFAULT_CATCH_UP);
        assert_eq!(r.max_per_reviewer, 10);
        assert!(!r.all_clear && !r.pipelines && r.unassigned_after.is_none());
        let cfg = parse(
            &with("name = \"b\"\nchannels = [\"dev\"]\nschedule = \"mon,thu 14:00\"\ntimezone = \"Europe/Berlin\"\nprojects = [\"acme/app\"]\nmin_age = \"1d\"\ncatch_up = \"30m\"\nunassigned_after = \"2d\"\nall_clear = true\npipelines = true\nmax_per_reviewer = 3\ntime_budget = \"20s\""),
            &[],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = &cfg.reminders[0];
        assert_eq!(r.timezone, chrono_tz::Europe::Berlin);
        assert_eq!(r.min_age.as_secs(), 86_400);
        assert_eq!(r.catch_up.as_secs(), 1_800);
        assert_eq!(r.unassigned_after.map(|d| d.as_secs()), Some(172_800));
        assert!(r.all_clear && r.pipelines);
        assert_eq!(r.max_per_reviewer, 3);
        assert_eq!(r.time_budget.as_secs(), 20);
    }

    #[test]
    fn mistakes_are_refused_naming_the_key() {
        let ok = "name = \"r\"\nchannels = [\"dev\"]\nprojects = [\"acme/*\"]\n";
        let e = error(&with(&format!("{ok}schedule = \"every day 9\"")));
        assert!(
            e.starts_with("reminders[0].schedule: \"every day 9\" is not a schedule"),
            "{e}"
        );
        let e = error(&with(&format!("{ok}schedule = \"weekdays 25:00\"")));
        assert!(
            e.starts_with("reminders[0].schedule: \"25:00\" is not a time of day"),
            "{e}"
        );
        let e = error(&with(&format!(
            "{ok}schedule = \"daily 09:00\"\ntimezone = \"Mars/Olympus\""
        )));
        assert!(
            e.starts_with("reminders[0].timezone: \"Mars/Olympus\" is not an IANA time zone"),
            "{e}"
        );
        let e = error(&with(&format!(
            "{ok}schedule = \"daily 09:00\"\nmin_age = \"4 hours\""
        )));
        assert!(
            e.starts_with("reminders[0].min_age: \"4 hours\" is not a duration"),
            "{e}"
        );
        let e = error(&with(
            "name = \"r\"\nchannels = [\"ops\"]\nprojects = [\"a/*\"]\nschedule = \"daily 09:00\"",
        ));
        assert!(
            e.starts_with("reminders[0].channels: no [[channels]] named \"ops\""),
            "{e}"
        );
        let e = error(&with(
            "name = \"r\"\nchannels = [\"dev\"]\nschedule = \"daily 09:00\"",
        ));
        assert!(
            e.starts_with("reminders[0].projects: name the projects"),
            "{e}"
        );
        let e = error(&with("name = \"a b\"\nchannels = [\"dev\"]\nprojects = [\"a/*\"]\nschedule = \"daily 09:00\""));
        assert!(e.starts_with("reminders[0].name: must be"), "{e}");
        let e = error(&with(&format!(
            "{ok}schedule = \"daily 09:00\"\nmax_per_reviewer = 0"
        )));
        assert!(
            e.starts_with("reminders[0].max_per_reviewer: must be between 1 and 50"),
            "{e}"
        );
        let two = format!(
            "{}\n[[reminders]]\n{ok}schedule = \"daily 10:00\"\n",
            with(&format!("{ok}schedule = \"daily 09:00\""))
        );
        let e = error(&two);
        assert!(
            e.starts_with("reminders[1].name: \"r\" names two reminders"),
            "{e}"
        );
        let no_gitlab = format!(
            "{}\n[[reminders]]\n{ok}schedule = \"daily 09:00\"\n",
            BASE.replace(
                "[gitlab]\nurl = \"https://gitlab.example.com\"\ntoken = \"glpat-x\"\n",
                ""
            )
        );
        let e = error(&no_gitlab);
        assert!(
            e.starts_with("reminders[0]: reminders read merge requests from GitLab"),
            "{e}"
        );
        assert!(!e.contains("glpat"), "{e}");
    }
}
