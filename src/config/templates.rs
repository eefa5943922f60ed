//! `[templates]` (the template folder, the zone and formats of dates, the reload watch) and
//! `[preview]` (the template preview page of `serve`).

use super::errors::{invalid, ConfigError};
use chrono_tz::Tz;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Default timestamp format (`25-Nov-2026 05:30 PM`).
pub const DEFAULT_DATE_FORMAT: &str = "%d-%b-%Y %I:%M %p";

/// Default calendar-date format (`25-Nov-2026`).
pub const DEFAULT_DAY_FORMAT: &str = "%d-%b-%Y";

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTemplates {
    dir: Option<PathBuf>,
    timezone: Option<String>,
    date_format: Option<String>,
    day_format: Option<String>,
    watch_interval_ms: Option<u64>,
}

/// The `[templates]` section, validated.
#[derive(Debug, Clone)]
pub struct TemplatesConfig {
    /// Folder of user templates (`*.hbs`), if any.
    pub dir: Option<PathBuf>,
    /// Zone dates are shown in.
    pub timezone: Tz,
    /// strftime format for timestamps.
    pub date_format: String,
    /// strftime format for calendar dates.
    pub day_format: String,
    /// How often `serve` looks for edited template files; zero turns the watch off (SIGHUP still
    /// reloads). Default 1 s.
    pub watch_interval: Duration,
}

/// Validates `[templates]`.
pub(super) fn templates_section(
    t: RawTemplates,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<TemplatesConfig, ConfigError> {
    let tz_name = t.timezone.unwrap_or_else(|| "UTC".to_string());
    let timezone: Tz = tz_name.parse().map_err(|_| {
        invalid(
            "templates.timezone",
            format!("unknown IANA time zone {tz_name:?}"),
        )
    })?;
    let date_format = t
        .date_format
        .unwrap_or_else(|| DEFAULT_DATE_FORMAT.to_string());
    check_strftime("templates.date_format", &date_format)?;
    let day_format = t
        .day_format
        .unwrap_or_else(|| DEFAULT_DAY_FORMAT.to_string());
    check_strftime("templates.day_format", &day_format)?;
    Ok(TemplatesConfig {
        dir: t.dir.map(resolve),
        timezone,
        date_format,
        day_format,
        watch_interval: Duration::from_millis(t.watch_interval_ms.unwrap_or(1000)),
    })
}

/// Rejects strftime formats chrono cannot render, at load time rather than per message.
fn check_strftime(key: &str, fmt: &str) -> Result<(), ConfigError> {
    use chrono::format::{Item, StrftimeItems};
    if StrftimeItems::new(fmt).any(|i| matches!(i, Item::Error)) {
        return Err(invalid(
            key,
            format!("{fmt:?} is not a valid strftime format"),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawPreview {
    #[serde(default)]
    enabled: bool,
    listen: Option<String>,
    fixtures: Option<PathBuf>,
}

/// The `[preview]` section, validated: the template preview page of `serve`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreviewConfig {
    /// `preview.enabled`: serve `GET /preview` (default off: 404).
    pub enabled: bool,
    /// `preview.listen`: a separate `address:port` for the page; `None` serves it beside the
    /// webhooks on `server.listen`, which must then be a loopback address.
    pub listen: Option<String>,
    /// `preview.fixtures`: a folder of JSON payloads the page lists beside the bundled samples.
    pub fixtures: Option<PathBuf>,
}

/// Whether `address` (`ip:port`) is a loopback address.
pub fn is_loopback(address: &str) -> bool {
    address
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// Validates `[preview]`. The page needs no token to view, so it is never served on a public
/// address by accident: enabled without its own `listen`, it requires a loopback `server.listen`.
pub(super) fn preview_section(
    raw: RawPreview,
    server_listen: &str,
    resolve: &dyn Fn(PathBuf) -> PathBuf,
) -> Result<PreviewConfig, ConfigError> {
    if let Some(listen) = &raw.listen {
        if listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(invalid(
                "preview.listen",
                format!("{listen:?} is not an address:port"),
            ));
        }
    }
    if raw.enabled && raw.listen.is_none() && !is_loopback(server_listen) {
        return Err(invalid(
            "preview.enabled",
            format!(
                "the preview page needs no token, so it is not served on server.listen = \
                 {server_listen:?}, which is not a loopback address; set preview.listen \
                 (e.g. \"127.0.0.1:8081\") or preview.enabled = false"
            ),
        ));
    }
    Ok(PreviewConfig {
        enabled: raw.enabled,
        listen: raw.listen,
        fixtures: raw.fixtures.map(resolve),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;

    #[test]
    fn preview_is_off_by_default_and_never_public_by_accident() {
        let off = parse("[server]\nsecret_token='x'\nlisten='0.0.0.0:8080'\n", &[]);
        assert_eq!(off.map(|c| c.preview).ok(), Some(PreviewConfig::default()));
        let local = parse(
            "[server]\nsecret_token='x'\nlisten='127.0.0.1:8080'\n[preview]\nenabled=true\nfixtures='fx'\n",
            &[],
        );
        let p = local.map(|c| c.preview).map_err(|e| e.to_string());
        assert!(
            p.as_ref().is_ok_and(|p| p.enabled && p.listen.is_none()),
            "{p:?}"
        );
        assert!(p.is_ok_and(|p| p.fixtures.is_some_and(|f| f.ends_with("fx"))));
        for public in ["0.0.0.0:8080", "192.0.2.7:8080", "[::]:8080"] {
            let msg = parse(
                &format!(
                    "[server]\nsecret_token='x'\nlisten='{public}'\n[preview]\nenabled=true\n"
                ),
                &[],
            )
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
            assert!(msg.starts_with("preview.enabled: "), "{public}: {msg}");
            for key in ["server.listen", "preview.listen", public] {
                assert!(msg.contains(key), "{public}: {msg}");
            }
            assert!(!msg.contains('\n'), "{msg}");
        }
        let own = parse(
            "[server]\nsecret_token='x'\nlisten='0.0.0.0:8080'\n[preview]\nenabled=true\nlisten='127.0.0.1:8081'\n",
            &[],
        );
        assert_eq!(
            own.ok().and_then(|c| c.preview.listen),
            Some("127.0.0.1:8081".to_string())
        );
        let bad = parse(
            "[server]\nsecret_token='x'\n[preview]\nenabled=true\nlisten='localhost'\n",
            &[],
        );
        let msg = bad.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.starts_with("preview.listen: "), "{msg}");
    }
}
