//! `[gitlab]`: the GitLab instance and token of `setup`, `check`, `catch-up` and `serve`'s hook
//! watch; the hook URL and events `setup` registers.

use super::errors::{invalid, ConfigError};
use super::secrets::{secret, Environment, SecretSources};
use crate::gitlab::HookEvent;
use crate::secret::Secret;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

/// Default `[gitlab] concurrency`: projects `setup` works on at once.
pub const DEFAULT_GITLAB_CONCURRENCY: usize = 4;

/// Default `[gitlab] watch_hooks_minutes`.
pub const DEFAULT_WATCH_HOOKS_MINUTES: f64 = 10.0;

/// Largest `[gitlab] concurrency` accepted (GitLab rate-limits API users).
pub const MAX_GITLAB_CONCURRENCY: usize = 32;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGitlab {
    url: String,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_env: Option<String>,
    hook_url: Option<String>,
    events: Option<Vec<String>>,
    push_events_branch_filter: Option<String>,
    enable_ssl_verification: Option<bool>,
    concurrency: Option<usize>,
    watch_hooks_minutes: Option<f64>,
    ops_channel: Option<String>,
}

/// The `[gitlab]` section, validated.
#[derive(Debug, Clone)]
pub struct GitlabConfig {
    /// Base URL of the GitLab instance.
    pub url: String,
    /// API token (sent as `PRIVATE-TOKEN`), if given.
    pub token: Option<Secret>,
    /// The URL GitLab should call (this bridge's `/hooks/gitlab`).
    pub hook_url: Option<String>,
    /// Hook events `setup` subscribes to (default [`HookEvent::DEFAULT`]).
    pub events: BTreeSet<HookEvent>,
    /// Branch filter for push events; `None` means every branch.
    pub push_events_branch_filter: Option<String>,
    /// Whether GitLab verifies the bridge's TLS certificate (default true).
    pub enable_ssl_verification: bool,
    /// Projects `setup` works on at once (default [`DEFAULT_GITLAB_CONCURRENCY`]).
    pub concurrency: usize,
    /// How often `serve` checks the managed hooks' health (`watch_hooks_minutes`, default
    /// [`DEFAULT_WATCH_HOOKS_MINUTES`]; fractions allowed); `None` when 0 (off).
    pub watch_hooks: Option<Duration>,
    /// The channel hook-health alerts go to (`ops_channel`); without one they are only logged
    /// and counted.
    pub ops_channel: Option<String>,
}

/// Validates `[gitlab]`.
pub(super) fn gitlab_section(
    g: RawGitlab,
    env: &dyn Environment,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<GitlabConfig, ConfigError> {
    let url = g.url.trim().trim_end_matches('/').to_string();
    check_http_url(&url).map_err(|m| invalid("gitlab.url", m))?;
    if let Some(h) = &g.hook_url {
        check_http_url(h.trim()).map_err(|m| invalid("gitlab.hook_url", m))?;
    }
    let events = match g.events {
        None => HookEvent::DEFAULT.into_iter().collect(),
        Some(names) => {
            if names.is_empty() {
                return Err(invalid("gitlab.events", "must name at least one event"));
            }
            let mut events = BTreeSet::new();
            for (i, name) in names.iter().enumerate() {
                let e = HookEvent::from_name(name.trim()).ok_or_else(|| {
                    let known: Vec<&str> = HookEvent::ALL.iter().map(|e| e.name()).collect();
                    invalid(
                        format!("gitlab.events[{i}]"),
                        format!("unknown event {name:?}; known: {}", known.join(", ")),
                    )
                })?;
                events.insert(e);
            }
            events
        }
    };
    let concurrency = g.concurrency.unwrap_or(DEFAULT_GITLAB_CONCURRENCY);
    if !(1..=MAX_GITLAB_CONCURRENCY).contains(&concurrency) {
        return Err(invalid(
            "gitlab.concurrency",
            format!("must be between 1 and {MAX_GITLAB_CONCURRENCY}"),
        ));
    }
    let minutes = g.watch_hooks_minutes.unwrap_or(DEFAULT_WATCH_HOOKS_MINUTES);
    if !minutes.is_finite() || !(0.0..=24.0 * 60.0).contains(&minutes) {
        return Err(invalid(
            "gitlab.watch_hooks_minutes",
            "must be between 0 (off) and 1440",
        ));
    }
    let watch_hooks = (minutes > 0.0).then(|| Duration::from_secs_f64(minutes * 60.0));
    Ok(GitlabConfig {
        watch_hooks,
        ops_channel: g
            .ops_channel
            .map(|c| c.trim().to_string())
            .filter(|c| !c.is_empty()),
        url,
        token: secret(
            SecretSources {
                key: "gitlab.token",
                inline: g.token,
                file: g.token_file.map(resolve),
                env: g.token_env,
            },
            env,
        )?,
        hook_url: g.hook_url.map(|h| h.trim().to_string()),
        events,
        push_events_branch_filter: g
            .push_events_branch_filter
            .map(|f| f.trim().to_string())
            .filter(|f| !f.is_empty()),
        enable_ssl_verification: g.enable_ssl_verification.unwrap_or(true),
        concurrency,
    })
}

/// Accepts an absolute http(s) URL with a host.
fn check_http_url(raw: &str) -> Result<(), String> {
    let url = url::Url::parse(raw).map_err(|e| format!("{raw:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(format!("{raw:?} must be an http(s) URL"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

    #[test]
    fn gitlab_section_has_defaults_and_names_bad_keys() {
        let base = "[server]\nsecret_token='x'\n[gitlab]\nurl='https://gitlab.example.com/'\ntoken_env='GT'\nhook_url='https://b.example.com/hooks/gitlab'\n";
        let cfg = parse(base, &[("GT", "glpat-1")]);
        let g = match cfg.map(|c| c.gitlab) {
            Ok(Some(g)) => g,
            other => panic!("{other:?}"),
        };
        assert_eq!(g.url, "https://gitlab.example.com");
        assert_eq!(g.events, HookEvent::DEFAULT.into_iter().collect());
        assert!(g.enable_ssl_verification);
        assert_eq!(g.concurrency, DEFAULT_GITLAB_CONCURRENCY);
        assert_eq!(g.push_events_branch_filter, None);
        assert_eq!(g.watch_hooks, Some(Duration::from_secs(600)));
        assert_eq!(g.ops_channel, None);
        assert!(!format!("{g:?}").contains("glpat-1"));
        let err = |extra: &str| {
            parse(&format!("{base}{extra}"), &[("GT", "t")])
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(err("events=['push','pushes']\n")
            .starts_with("gitlab.events[1]: unknown event \"pushes\""));
        assert!(err("events=[]\n").starts_with("gitlab.events:"));
        assert!(err("concurrency=0\n").starts_with("gitlab.concurrency:"));
        assert!(err("watch_hooks_minutes=-1\n").starts_with("gitlab.watch_hooks_minutes:"));
        assert!(err("ops_channel='ops'\n").starts_with("gitlab.ops_channel: no [[channels]]"));
        let off = parse(&format!("{base}watch_hooks_minutes=0\n"), &[("GT", "t")]);
        assert!(matches!(off.map(|c| c.gitlab), Ok(Some(g)) if g.watch_hooks.is_none()));
        let ok = parse(
            &format!("{base}events=['job','push']\nenable_ssl_verification=false\npush_events_branch_filter='main'\nconcurrency=8\n"),
            &[("GT", "t")],
        );
        let g = match ok.map(|c| c.gitlab) {
            Ok(Some(g)) => g,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            g.events,
            [HookEvent::Push, HookEvent::Job].into_iter().collect()
        );
        assert!(!g.enable_ssl_verification);
        assert_eq!(g.push_events_branch_filter.as_deref(), Some("main"));
        assert_eq!(g.concurrency, 8);
        let bad_url = parse(
            "[server]\nsecret_token='x'\n[gitlab]\nurl='gitlab.example.com'\n",
            &[],
        );
        assert!(bad_url
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("gitlab.url"));
        let bad_hook = parse(
            "[server]\nsecret_token='x'\n[gitlab]\nurl='https://g.test'\nhook_url='/hooks'\n",
            &[],
        );
        assert!(bad_hook
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
            .starts_with("gitlab.hook_url"));
    }
}
