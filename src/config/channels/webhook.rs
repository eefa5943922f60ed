//! The kinds whose URL is the credential (Slack, Mattermost, Teams, Google Chat, Discord and the
//! generic `webhook`, signed per Standard Webhooks with a `signing_secret`): each URL checked
//! for its kind's documented shape, kept as a [`Secret`], and logged only as scheme, host and
//! first path segment. A Discord channel's `forum = true` says its webhook is a forum channel's
//! (each object a forum post of its own in a conversation, each message without one).

use super::{given, ChannelKind, Format, RawChannel, Reader};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::{Auth, Endpoint};
use crate::secret::Secret;

/// The endpoint of a channel whose URL is its credential.
pub(super) fn endpoint(
    r: &Reader<'_>,
    kind: ChannelKind,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    // The other kinds: the URL is the credential (Slack, Discord, Teams, Google Chat and
    // Mattermost put a token in it; a generic webhook may).
    if let Some(k) = given(c)
        .into_iter()
        .find(|k| !k.starts_with("signing_secret"))
    {
        return Err(invalid(
            r.key(k),
            format!(
                "a {} channel's credential is its url (or url_file / url_env)",
                kind.as_str()
            ),
        ));
    }
    if format == Format::Event && kind != ChannelKind::Webhook {
        return Err(invalid(
            r.key("format"),
            format!("a {} channel shows cards: \"event\" is for cliq incoming URLs, zoho_function and webhook", kind.as_str()),
        ));
    }
    let Some(url) = r.secret("url", c.url.take(), c.url_file.take(), c.url_env.take())? else {
        return Err(invalid(
            r.key("url"),
            format!("required for a {} channel", kind.as_str()),
        ));
    };
    let redacted = check_webhook_url(kind, url.expose()).map_err(|m| invalid(r.key("url"), m))?;
    let url = if kind == ChannelKind::GoogleChat {
        Secret::new(thread_replies(url.expose()))
    } else {
        url
    };
    let signing = r.secret(
        "signing_secret",
        c.signing_secret.take(),
        c.signing_secret_file.take(),
        c.signing_secret_env.take(),
    )?;
    let auth = match signing {
        None if kind == ChannelKind::Discord => Auth::Discord {
            url,
            forum: c.forum.unwrap_or(false),
        },
        None => Auth::SecretUrl(url),
        Some(_) if kind != ChannelKind::Webhook => {
            return Err(invalid(
                r.key("signing_secret"),
                "only a webhook channel is signed",
            ))
        }
        Some(s) => {
            if crate::signing::SigningKey::parse(s.expose()).is_none() {
                return Err(invalid(
                    r.key("signing_secret"),
                    "must be \"whsec_\" followed by base64 (Standard Webhooks)",
                ));
            }
            Auth::Signed { url, key: s }
        }
    };
    Ok((
        Endpoint {
            url: redacted,
            auth,
        },
        format,
    ))
}

/// Checks a webhook URL against its kind's documented shape and returns the form that may be
/// logged (scheme, host and the path's first segment). Plain http is accepted on loopback
/// hosts only (a local relay, or a test).
fn check_webhook_url(kind: ChannelKind, raw: &str) -> Result<String, String> {
    // The message never quotes the URL: it is a secret.
    let url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    let host = url.host_str().unwrap_or_default().to_string();
    let loopback = host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        _ => return Err("must be an https URL".into()),
    }
    if host.is_empty() {
        return Err("has no host".into());
    }
    let path = url.path();
    let query = |k: &str| url.query_pairs().any(|(q, v)| q == k && !v.is_empty());
    let shape = match kind {
        ChannelKind::Slack => path.starts_with("/services/") && path.split('/').count() >= 5,
        ChannelKind::Discord => {
            path.starts_with("/api/webhooks/") && path.trim_end_matches('/').split('/').count() >= 5
        }
        ChannelKind::GoogleChat => {
            path.starts_with("/v1/spaces/") && query("key") && query("token")
        }
        ChannelKind::Mattermost => path.starts_with("/hooks/") && path.len() > "/hooks/".len(),
        _ => true,
    };
    if !shape {
        let expected = match kind {
            ChannelKind::Slack => "https://hooks.slack.com/services/T…/B…/…",
            ChannelKind::Discord => "https://discord.com/api/webhooks/ID/TOKEN",
            ChannelKind::GoogleChat => {
                "https://chat.googleapis.com/v1/spaces/SPACE/messages?key=…&token=…"
            }
            _ => "https://MATTERMOST/hooks/KEY",
        };
        return Err(format!(
            "is not a {} webhook URL (expected {expected})",
            kind.as_str()
        ));
    }
    let first = path.split('/').find(|s| !s.is_empty()).unwrap_or_default();
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    Ok(format!("{}://{host}{port}/{first}/****", url.scheme()))
}

/// A Google Chat webhook URL that replies in the `thread.threadKey` the body names (or starts
/// that thread): `messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD` unless it has one.
fn thread_replies(raw: &str) -> String {
    match url::Url::parse(raw.trim()) {
        Ok(mut u) if !u.query_pairs().any(|(k, _)| k == "messageReplyOption") => {
            u.query_pairs_mut()
                .append_pair("messageReplyOption", "REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD");
            u.to_string()
        }
        _ => raw.trim().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error};
    use crate::config::Format;
    use crate::deliver::Auth;

    #[test]
    fn each_webhook_kind_checks_its_url_credentials_and_format() {
        let ok = |extra: &str| {
            one_channel(
                &format!("name='c'\n{extra}"),
                &[("SLACK", "https://hooks.slack.com/services/T1/B2/SECRETX")],
            )
        };
        let err = |extra: &str| one_channel_error(&format!("name='c'\n{extra}"), &[]);
        // A webhook URL is a secret: the logged form keeps only scheme, host and first segment.
        let slack = ok("kind='slack'\nurl_env='SLACK'");
        assert_eq!(slack.endpoint.url, "https://hooks.slack.com/services/****");
        assert!(
            matches!(&slack.endpoint.auth, Auth::SecretUrl(u) if u.expose().ends_with("SECRETX"))
        );
        assert!(!format!("{slack:?}").contains("SECRETX"));
        assert_eq!((slack.format, slack.rate_per_minute), (Format::Card, 60));
        assert!(err("kind='slack'\nurl='https://hooks.slack.com/x'")
            .starts_with("channels[0].url: is not a slack webhook URL"));
        assert!(err("kind='slack'\nurl='http://hooks.slack.com/services/T/B/K'").contains("https"));
        assert!(
            err("kind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nzapikey='k'")
                .starts_with("channels[0].zapikey")
        );
        assert!(
            err("kind='discord'\nurl='https://discord.com/api/webhooks/1/t'\nformat='event'")
                .starts_with("channels[0].format")
        );
        assert!(err(
            "kind='google_chat'\nurl='https://chat.googleapis.com/v1/spaces/S/messages?key=k'"
        )
        .starts_with("channels[0].url"));
        let chat = ok("kind='google_chat'\nurl='https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t'");
        assert!(
            matches!(&chat.endpoint.auth, Auth::SecretUrl(u) if u.expose().contains("messageReplyOption=REPLY_MESSAGE_FALLBACK_TO_NEW_THREAD"))
        );
        // Signed webhooks, and the event JSON by default.
        let hook = ok("kind='webhook'\nurl='https://example.com/in'\nsigning_secret='whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'");
        assert!(matches!(hook.endpoint.auth, Auth::Signed { .. }));
        assert_eq!(hook.format, Format::Event);
        assert!(
            err("kind='webhook'\nurl='https://example.com/in'\nsigning_secret='nope!'")
                .starts_with("channels[0].signing_secret")
        );
        assert!(err("kind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nsigning_secret='whsec_AAAA'").starts_with("channels[0].signing_secret"));
    }
}
