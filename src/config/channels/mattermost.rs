//! `kind = "mattermost"`: an incoming webhook (`url`, `url_file` or `url_env` of the form
//! `https://…/hooks/KEY`: the `webhook` family; flat posts only) or the API mode: `url` the
//! server's base URL (plain http only on loopback), `token` (or `token_file` / `token_env`: a
//! personal access or bot token, sent as `Authorization: Bearer`), `channel_id`, and
//! optionally `team` (the team's name in its URLs, for links to a thread), which can thread
//! and edit. Cards only.

use super::{
    api_mode, base_url, refuse_event_format, webhook, ChannelKind, Format, RawChannel, Reader,
};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::{Auth, Endpoint};

/// The keys of the API mode besides `url`.
const OWN: [&str; 5] = ["token", "token_file", "token_env", "channel_id", "team"];

/// The endpoint of a Mattermost channel: its webhook URL, or its server, token and channel.
pub(super) fn endpoint(
    r: &Reader<'_>,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    super::refuse_other_modes(
        r,
        c,
        "mattermost",
        &OWN,
        "url (or url_file / url_env), and for the API mode token (or token_file / token_env), channel_id and team",
    )?;
    let mode_keys = [
        ("channel_id", c.channel_id.is_some()),
        ("team", c.team.is_some()),
    ];
    if !api_mode(
        r,
        c,
        &mode_keys,
        "is for the API mode: give token (or token_file / token_env) too, and the server's url",
    )? {
        return webhook::endpoint(r, ChannelKind::Mattermost, c, format);
    }
    if let Some(k) = super::given(c).first() {
        return Err(invalid(
            r.key(k),
            "a mattermost channel's credential is its url (or url_file / url_env) or its token",
        ));
    }
    refuse_event_format(r, format, "mattermost")?;
    let Some(url) = r.secret("url", c.url.take(), c.url_file.take(), c.url_env.take())? else {
        return Err(invalid(
            r.key("url"),
            "required: the server's base URL (https://chat.example.org) with token",
        ));
    };
    let server = base_url(url.expose()).map_err(|m| invalid(r.key("url"), m))?;
    if server.contains("/hooks/") {
        return Err(invalid(
            r.key("url"),
            "is an incoming webhook URL: with token, give the server's base URL (https://chat.example.org)",
        ));
    }
    let Some(token) = r.token(c)? else {
        return Err(invalid(r.key("token"), "required"));
    };
    if !token.expose().bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(invalid(
            r.key("token"),
            "is not a Mattermost access token (letters and digits)",
        ));
    }
    let Some(channel_id) = c.channel_id.take().map(|s| s.trim().to_string()) else {
        return Err(invalid(
            r.key("channel_id"),
            "required with token: the channel's id (View Info in the channel's menu)",
        ));
    };
    if channel_id.len() != 26
        || !channel_id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    {
        return Err(invalid(
            r.key("channel_id"),
            format!("{channel_id:?} is not a channel id (26 lowercase letters and digits; not the channel's name)"),
        ));
    }
    let team = match c.team.take().map(|t| t.trim().to_string()) {
        None => None,
        Some(t)
            if !t.is_empty()
                && t.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'
                }) =>
        {
            Some(t)
        }
        Some(t) => {
            return Err(invalid(
                r.key("team"),
                format!(
                "{t:?} is not a team name as its URLs show it (lowercase letters, digits, - and _)"
            ),
            ))
        }
    };
    Ok((
        Endpoint {
            url: server,
            auth: Auth::Mattermost {
                token,
                channel_id,
                team,
            },
        },
        format,
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error_no_secret};
    use crate::deliver::conversation::Mode;
    use crate::deliver::Auth;

    const TOKEN: &str = "SECRETmattermost0123456789";
    const CHANNEL: &str = "abcdefghijklmnopqrstuvwxyz";

    #[test]
    fn a_mattermost_channel_takes_a_webhook_url_or_a_server_token_and_channel() {
        let block = |extra: &str| format!("name='m'\nkind='mattermost'\n{extra}");
        let ok = |extra: &str| one_channel(&block(extra), &[("MM_TOKEN", TOKEN)]);
        let err = |extra: &str| one_channel_error_no_secret(&block(extra), &[("MM_TOKEN", TOKEN)]);
        let api = format!(
            "url='https://chat.example.org/'\ntoken_env='MM_TOKEN'\nchannel_id='{CHANNEL}'"
        );
        let c = ok(&format!("{api}\nteam='dev'\nconversation='thread'"));
        assert_eq!(c.endpoint.url, "https://chat.example.org");
        assert!(
            matches!(&c.endpoint.auth, Auth::Mattermost { token, channel_id, team }
                if token.expose() == TOKEN && channel_id == CHANNEL && team.as_deref() == Some("dev"))
        );
        assert!(!format!("{c:?}").contains("SECRET"));
        assert_eq!(
            (c.conversation.mode, c.conversation.fallback.clone()),
            (Mode::Thread, None)
        );
        // The webhook mode stays as it was, and falls back to flat posts in a conversation.
        let c = ok("url='https://chat.example.org/hooks/KEY'\nconversation='thread+edit'");
        assert!(matches!(c.endpoint.auth, Auth::SecretUrl(_)));
        assert_eq!(c.conversation.mode, Mode::Off);
        assert!(c.conversation.fallback.is_some());
        assert!(
            err(&format!("token_env='MM_TOKEN'\nchannel_id='{CHANNEL}'"))
                .starts_with("channels[0].url: required")
        );
        assert!(err("url='https://chat.example.org'\ntoken_env='MM_TOKEN'")
            .starts_with("channels[0].channel_id: required"));
        assert!(err(
            "url='https://chat.example.org'\ntoken_env='MM_TOKEN'\nchannel_id='town-square'"
        )
        .starts_with("channels[0].channel_id: \"town-square\" is not a channel id"));
        assert!(err(&format!("url='https://chat.example.org/hooks/KEY'\ntoken_env='MM_TOKEN'\nchannel_id='{CHANNEL}'")).starts_with("channels[0].url: is an incoming webhook URL"));
        assert!(err(&format!(
            "url='http://chat.example.org'\ntoken_env='MM_TOKEN'\nchannel_id='{CHANNEL}'"
        ))
        .starts_with("channels[0].url: must be an https URL"));
        assert!(err(&format!(
            "url='https://chat.example.org/hooks/KEY'\nchannel_id='{CHANNEL}'"
        ))
        .starts_with("channels[0].channel_id: is for the API mode"));
        assert!(err(&format!("{api}\nteam='Dev Team'")).starts_with("channels[0].team"));
        assert!(err(&format!("{api}\nchannel='C0123456789'"))
            .starts_with("channels[0].channel: a mattermost channel takes"));
        assert!(err(&format!("{api}\nformat='event'")).starts_with("channels[0].format"));
    }
}
