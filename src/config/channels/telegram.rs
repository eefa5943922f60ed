//! `kind = "telegram"`: a bot token (`token`, `token_file` or `token_env`; it sits in the URL
//! path, so it is a secret everywhere), the `chat_id` (an integer id, or `@channelusername`), an
//! optional forum topic (`message_thread_id`) and `api_url` (Telegram's by default; a local Bot
//! API server may be given, plain http only on loopback). Cards only.

use super::{api_url, refuse_foreign, Format, RawChannel, Reader};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::Endpoint;

/// Telegram's Bot API.
pub const DEFAULT_TELEGRAM_API_URL: &str = "https://api.telegram.org";

/// The endpoint of a Telegram channel.
pub(super) fn endpoint(
    r: &Reader<'_>,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    refuse_foreign(
        r,
        c,
        format,
        "telegram",
        &[
            "token",
            "token_file",
            "token_env",
            "chat_id",
            "message_thread_id",
            "api_url",
        ],
        "token (or token_file / token_env), chat_id, message_thread_id and api_url",
        "give chat_id (and api_url for a local Bot API server)",
    )?;
    let Some(token) = r.token(c)? else {
        return Err(invalid(
            r.key("token"),
            "required for a telegram channel (the bot token from @BotFather; or token_file / token_env)",
        ));
    };
    // Never quote the token: "123456:ABC…", digits, a colon and a secret.
    let shape_ok = token.expose().split_once(':').is_some_and(|(id, rest)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    if !shape_ok {
        return Err(invalid(
            r.key("token"),
            "is not a bot token (digits, a colon, then letters, digits, _ and -)",
        ));
    }
    let chat_id = match c.chat_id.take() {
        Some(toml::Value::Integer(n)) => n.to_string(),
        Some(toml::Value::String(s)) => s.trim().to_string(),
        Some(_) => {
            return Err(invalid(
                r.key("chat_id"),
                "must be an integer id or \"@channelusername\"",
            ))
        }
        None => return Err(invalid(r.key("chat_id"), "required for a telegram channel")),
    };
    let numeric = chat_id.parse::<i64>().is_ok_and(|n| n != 0);
    let username = chat_id
        .strip_prefix('@')
        .is_some_and(|u| u.len() >= 4 && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    if !numeric && !username {
        return Err(invalid(
            r.key("chat_id"),
            format!("{chat_id:?} is neither an integer chat id nor \"@channelusername\""),
        ));
    }
    if let Some(t) = c.message_thread_id {
        if t <= 0 {
            return Err(invalid(
                r.key("message_thread_id"),
                "must be a positive topic id",
            ));
        }
    }
    let api_url = api_url(r, c, DEFAULT_TELEGRAM_API_URL)?;
    Ok((
        Endpoint::telegram(&api_url, &token, &chat_id, c.message_thread_id),
        format,
    ))
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error_no_secret, parse};
    use crate::config::ChannelKind;
    use crate::deliver::Auth;

    const TOKEN: &str = "123456:ABC-def_SECRET";

    #[test]
    fn a_telegram_channel_takes_a_token_and_a_chat() {
        let block = |extra: &str| format!("name='tg'\nkind='telegram'\n{extra}");
        let ok = |extra: &str| one_channel(&block(extra), &[("TG", TOKEN)]);
        let err = |extra: &str| one_channel_error_no_secret(&block(extra), &[("TG", TOKEN)]);
        let c = ok("token_env='TG'\nchat_id=-1001234567890");
        assert_eq!(c.kind, ChannelKind::Telegram);
        assert_eq!(c.rate_per_minute, 20);
        assert_eq!(c.endpoint.url, "https://api.telegram.org/bot…/sendMessage");
        assert!(
            matches!(&c.endpoint.auth, Auth::Telegram { url, chat_id, message_thread_id: None }
            if url.expose() == format!("https://api.telegram.org/bot{TOKEN}/sendMessage") && chat_id == "-1001234567890")
        );
        assert!(!format!("{c:?}").contains("SECRET"));
        let c = ok(&format!("token='{TOKEN}'\nchat_id='@gitlab_news'\nmessage_thread_id=42\napi_url='http://127.0.0.1:8081/'"));
        assert!(
            matches!(&c.endpoint.auth, Auth::Telegram { url, chat_id, message_thread_id: Some(42) }
            if url.expose() == format!("http://127.0.0.1:8081/bot{TOKEN}/sendMessage") && chat_id == "@gitlab_news")
        );
        assert!(err("chat_id=1").starts_with("channels[0].token: required"));
        assert!(err("token='not a token SECRET'\nchat_id=1")
            .starts_with("channels[0].token: is not a bot token"));
        assert!(err("token_env='TG'").starts_with("channels[0].chat_id: required"));
        assert!(err("token_env='TG'\nchat_id='dev'").starts_with("channels[0].chat_id"));
        assert!(
            err("token_env='TG'\nchat_id=1\napi_url='http://tg.example.com'")
                .starts_with("channels[0].api_url: must be an https URL")
        );
        assert!(err("token_env='TG'\nchat_id=1\nformat='event'").starts_with("channels[0].format"));
        assert!(
            err("token_env='TG'\nchat_id=1\nurl='https://x.test/'").starts_with("channels[0].url")
        );
        assert!(err("token_env='TG'\nchat_id=1\nzapikey='k'").starts_with("channels[0].zapikey"));
        assert!(err("token_env='TG'\nchat_id=1\nroom='!r:x'").starts_with("channels[0].room"));
        assert!(err("token_env='TG'\nchat_id=1\nmessage_thread_id=0")
            .starts_with("channels[0].message_thread_id"));
        // Telegram keys on another kind.
        let other = "[server]\nsecret_token='x'\n[[channels]]\nname='s'\nkind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nchat_id=1\n";
        assert!(parse(other, &[]).is_err_and(|e| e
            .to_string()
            .starts_with("channels[0].chat_id: is for a telegram or matrix channel")));
    }
}
