//! `[[routes]]`: which events go to which channels, filtered by project, ref, labels and user,
//! worded by which templates in which zone.

use super::channels::ChannelConfig;
use super::errors::{invalid, ConfigError};
use chrono_tz::Tz;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    name: Option<String>,
    channels: Vec<String>,
    events: Option<Vec<String>>,
    projects: Option<Vec<String>>,
    refs: Option<Vec<String>>,
    labels_any: Option<Vec<String>>,
    labels_all: Option<Vec<String>>,
    exclude_users: Option<Vec<String>>,
    #[serde(default)]
    confidential: bool,
    #[serde(default)]
    only_status_changes: bool,
    templates: Option<PathBuf>,
    timezone: Option<String>,
}

/// One `[[routes]]` entry, validated: which events go to which channels, worded how. The
/// default has no filter (every event) and no channel.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RouteConfig {
    /// Name for logs (`routes[N]` when not given).
    pub name: String,
    /// Channel names (each defined in `[[channels]]`).
    pub channels: Vec<String>,
    /// Event-key globs; `!glob` excludes. Empty: every event.
    pub events: Vec<String>,
    /// Project path globs (`group/*`). Empty: every project.
    pub projects: Vec<String>,
    /// Branch or tag globs; `default` is the project's default branch, `protected` a protected
    /// ref. Applies to events that have a ref (push, tag push, pipeline, job, merge request target).
    pub refs: Vec<String>,
    /// The event must carry at least one of these labels (issues, merge requests, their comments).
    pub labels_any: Vec<String>,
    /// The event must carry all of these labels.
    pub labels_all: Vec<String>,
    /// Username globs whose actions are not posted (bots, service accounts).
    pub exclude_users: Vec<String>,
    /// Whether confidential issues and comments may take this route.
    pub confidential: bool,
    /// Pipelines take this route only when their ref's finished status changed
    /// (`pipeline.fixed`, `pipeline.broken`); other events are not affected.
    pub only_status_changes: bool,
    /// Template folder of this route (overrides `[templates] dir`).
    pub templates: Option<PathBuf>,
    /// Zone of this route's dates (overrides `[templates] timezone`).
    pub timezone: Option<Tz>,
}

/// Validates `[[routes]]` against the channels.
pub(super) fn routes_section(
    raw: Vec<RawRoute>,
    channels: &[ChannelConfig],
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<Vec<RouteConfig>, ConfigError> {
    let mut out = Vec::with_capacity(raw.len());
    for (i, r) in raw.into_iter().enumerate() {
        let key = |k: &str| format!("routes[{i}].{k}");
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
        let lists = [
            ("events", &r.events),
            ("projects", &r.projects),
            ("refs", &r.refs),
            ("labels_any", &r.labels_any),
            ("labels_all", &r.labels_all),
            ("exclude_users", &r.exclude_users),
        ];
        for (k, list) in lists {
            if list
                .iter()
                .flatten()
                .any(|p| p.trim_start_matches('!').trim().is_empty())
            {
                return Err(invalid(key(k), "empty pattern"));
            }
        }
        let timezone = match &r.timezone {
            None => None,
            Some(name) => Some(name.parse::<Tz>().map_err(|_| {
                invalid(key("timezone"), format!("unknown IANA time zone {name:?}"))
            })?),
        };
        out.push(RouteConfig {
            name: r.name.unwrap_or_else(|| format!("routes[{i}]")),
            channels: r.channels,
            events: r.events.unwrap_or_default(),
            projects: r.projects.unwrap_or_default(),
            refs: r.refs.unwrap_or_default(),
            labels_any: r.labels_any.unwrap_or_default(),
            labels_all: r.labels_all.unwrap_or_default(),
            exclude_users: r.exclude_users.unwrap_or_default(),
            confidential: r.confidential,
            only_status_changes: r.only_status_changes,
            templates: r.templates.map(resolve),
            timezone,
        });
    }
    Ok(out)
}
