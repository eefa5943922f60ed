//! `kind = "slack"`: an incoming webhook (`url`, `url_file` or `url_env`: the `webhook` family;
//! flat posts only) or the bot-token mode (`token`, `token_file` or `token_env`: an `xoxb-`
//! token, sent as `Authorization: Bearer`; `channel`: the channel's id; `api_url`: Slack's Web
//! API by default, plain http only on loopback), which can thread and edit. Exactly one of the
//! two. Cards only.

use super::{
    api_mode, api_url, refuse_event_format, webhook, ChannelKind, Format, RawChannel, Reader,
};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::{Auth, Endpoint};

/// Slack's Web API.
pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

/// The keys of the bot-token mode.
const OWN: [&str; 5] = ["token", "token_file", "token_env", "channel", "api_url"];

/// The endpoint of a Slack channel: its webhook URL, or its bot token and channel.
pub(super) fn endpoint(
    r: &Reader<'_>,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    super::refuse_other_modes(
        r,
        c,
        "slack",
        &OWN,
        "url (or url_file / url_env), or token (or token_file / token_env), channel and api_url",
    )?;
    let url_given = c.url.is_some() || c.url_file.is_some() || c.url_env.is_some();
    let mode_keys = [
        ("channel", c.channel.is_some()),
        ("api_url", c.api_url.is_some()),
    ];
    if !api_mode(
        r,
        c,
        &mode_keys,
        "is for the bot-token mode: give token (or token_file / token_env) too",
    )? {
        return webhook::endpoint(r, ChannelKind::Slack, c, format);
    }
    if url_given {
        return Err(invalid(
            r.key("url"),
            "a slack channel takes either url (an incoming webhook) or token and channel (the bot-token mode), not both",
        ));
    }
    // `channel` is this mode's own (a cliq channel's OAuth mode names one too).
    if let Some(k) = super::given(c).into_iter().find(|k| *k != "channel") {
        return Err(invalid(
            r.key(k),
            "a slack channel's credential is its url (or url_file / url_env) or its token",
        ));
    }
    refuse_event_format(r, format, "slack")?;
    let Some(token) = r.token(c)? else {
        return Err(invalid(r.key("token"), "required"));
    };
    // Never quote the token.
    let t = token.expose();
    if !t.starts_with("xoxb-")
        || t.len() < 10
        || !t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return Err(invalid(
            r.key("token"),
            "is not a Slack bot token (xoxb-…, from the app's OAuth & Permissions page)",
        ));
    }
    let Some(channel) = c.channel.take().map(|s| s.trim().to_string()) else {
        return Err(invalid(
            r.key("channel"),
            "required with token: the channel's id (C…, at the bottom of the channel's details)",
        ));
    };
    let id_like = channel.len() >= 9
        && matches!(channel.as_bytes().first(), Some(b'C' | b'G' | b'D'))
        && channel
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if !id_like {
        return Err(invalid(
            r.key("channel"),
            format!("{channel:?} is not a channel id (C…, at the bottom of the channel's details; not its name)"),
        ));
    }
    let api_url = api_url(r, c, DEFAULT_SLACK_API_URL)?;
    Ok((
        Endpoint {
            url: api_url,
            auth: Auth::Slack { token, channel },
        },
        format,
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error_no_secret};
    use crate::config::Format;
    use crate::deliver::conversation::Mode;
    use crate::deliver::Auth;

    const TOKEN: &str = "xoxb-1-2-SECRETslack";

    #[test]
    fn a_slack_channel_takes_a_webhook_url_or_a_bot_token_and_a_channel() {
        let block = |extra: &str| format!("name='s'\nkind='slack'\n{extra}");
        let ok = |extra: &str| one_channel(&block(extra), &[("SLACK_TOKEN", TOKEN)]);
        let err =
            |extra: &str| one_channel_error_no_secret(&block(extra), &[("SLACK_TOKEN", TOKEN)]);
        let c = ok("token_env='SLACK_TOKEN'\nchannel='C0123456789'\nconversation='thread+edit'");
        assert_eq!(c.endpoint.url, "https://slack.com/api");
        assert!(
            matches!(&c.endpoint.auth, Auth::Slack { token, channel } if token.expose() == TOKEN && channel == "C0123456789")
        );
        assert!(!format!("{c:?}").contains("SECRET"));
        assert_eq!(
            (c.format, c.conversation.mode),
            (Format::Card, Mode::ThreadEdit)
        );
        assert_eq!(c.conversation.fallback, None);
        let c = ok(&format!(
            "token='{TOKEN}'\nchannel='C0123456789'\napi_url='http://127.0.0.1:9/api/'"
        ));
        assert_eq!(c.endpoint.url, "http://127.0.0.1:9/api");
        // The webhook mode stays as it was, and falls back to flat posts in a conversation.
        let c = ok("url='https://hooks.slack.com/services/T/B/K'\nconversation='thread'");
        assert!(matches!(c.endpoint.auth, Auth::SecretUrl(_)));
        assert_eq!(c.conversation.mode, Mode::Off);
        assert!(c
            .conversation
            .fallback
            .as_deref()
            .is_some_and(|f| f.contains("token and channel")));
        assert!(err("token_env='SLACK_TOKEN'").starts_with("channels[0].channel: required"));
        assert!(err("channel='C0123456789'")
            .starts_with("channels[0].channel: is for the bot-token mode"));
        assert!(err("token_env='SLACK_TOKEN'\nchannel='#dev'")
            .starts_with("channels[0].channel: \"#dev\" is not a channel id"));
        assert!(err("token='xoxp-SECRET-1234'\nchannel='C0123456789'")
            .starts_with("channels[0].token: is not a Slack bot token"));
        assert!(err("token_env='SLACK_TOKEN'\nchannel='C0123456789'\nurl='https://hooks.slack.com/services/T/B/K'")
            .starts_with("channels[0].url: a slack channel takes either url"));
        assert!(err("token_env='SLACK_TOKEN'\nchannel='C0123456789'\napi_url='http://slack.example.com/api'")
            .starts_with("channels[0].api_url: must be an https URL"));
        assert!(
            err("token_env='SLACK_TOKEN'\nchannel='C0123456789'\nroom='!r:x'")
                .starts_with("channels[0].room: is for a telegram or matrix channel")
        );
        assert!(
            err("token_env='SLACK_TOKEN'\nchannel='C0123456789'\nteam='dev'")
                .starts_with("channels[0].team: a slack channel takes")
        );
        assert!(
            err("token_env='SLACK_TOKEN'\nchannel='C0123456789'\nformat='event'")
                .starts_with("channels[0].format")
        );
        assert!(
            err("token_env='SLACK_TOKEN'\nchannel='C0123456789'\nzapikey='k'")
                .starts_with("channels[0].zapikey")
        );
    }
}
