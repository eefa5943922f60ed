//! `kind = "cliq"` (the default) and `"zoho_function"`: a Zoho URL, which is no secret, and its
//! credential apart from it: a zapikey (also taken out of the URL's query), an OAuth token, or
//! an extension incoming URL's appkey. A Cliq channel's OAuth mode (the REST API, which can
//! thread and edit) takes a Zoho OAuth client and a refresh token instead (`client_id`,
//! `client_secret`, `refresh_token`, each a secret), the data centre's `accounts_url`, and the
//! channel's unique name (`channel`) or a channel or chat URL.

use super::{base_url, given, ChannelKind, Format, RawChannel, Reader};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::sender::cliq_target;
use crate::deliver::{Auth, Endpoint, ZohoOAuth};

/// Zoho's accounts host in the US data centre (`accounts_url`'s default).
pub const DEFAULT_ACCOUNTS_URL: &str = "https://accounts.zoho.com";

/// The keys of a Cliq channel's OAuth mode.
const OAUTH_KEYS: [&str; 11] = [
    "client_id",
    "client_id_file",
    "client_id_env",
    "client_secret",
    "client_secret_file",
    "client_secret_env",
    "refresh_token",
    "refresh_token_file",
    "refresh_token_env",
    "accounts_url",
    "channel",
];

/// Why a Cliq channel's endpoint cannot thread (it then posts flat), or `None` when it can.
pub(super) fn cannot_thread(endpoint: &Endpoint) -> Option<&'static str> {
    match &endpoint.auth {
        Auth::CliqOAuth(_) if cliq_target(&endpoint.url).is_some() => None,
        Auth::CliqOAuth(_) => Some(
            "only a channel (`channel`, /api/v2/channelsbyname/NAME/message) or a chat \
             (/api/v2/chats/ID/message) threads",
        ),
        _ => Some(
            "a Cliq channel threads only in its OAuth mode (client_id, client_secret, \
             refresh_token); a zapikey or oauth_token posts flat",
        ),
    }
}

/// The endpoint of a Cliq or Zoho function channel.
pub(super) fn endpoint(
    r: &Reader<'_>,
    kind: ChannelKind,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    if let Some(k) = given(c).into_iter().find(|k| OAUTH_KEYS.contains(k)) {
        if kind != ChannelKind::Cliq {
            return Err(invalid(
                r.key(k),
                "only a cliq channel takes Zoho OAuth keys (client_id, client_secret, refresh_token, accounts_url, channel)",
            ));
        }
        return oauth_endpoint(r, c, format);
    }
    if c.url_file.is_some() || c.url_env.is_some() {
        return Err(invalid(
            r.key("url"),
            "a Zoho URL is not a secret: give `url` and the zapikey (or oauth_token) apart",
        ));
    }
    let Some(raw_url) = c.url.as_deref() else {
        let what = if kind == ChannelKind::Cliq {
            "Cliq"
        } else {
            "zoho_function"
        };
        return Err(invalid(
            r.key("url"),
            format!("required for a {what} channel"),
        ));
    };
    let (url, key_in_url, appkey_in_url) =
        split_zoho_keys(raw_url).map_err(|m| invalid(r.key("url"), m))?;
    let path = url::Url::parse(&url)
        .map(|u| u.path().to_string())
        .unwrap_or_default();
    let extension = path.contains("/applications/") && path.ends_with("/incoming");
    let incoming = path.ends_with("/incoming");
    if kind == ChannelKind::Cliq && format == Format::Event && !incoming {
        return Err(invalid(
            r.key("format"),
            "\"event\" is for a bot or extension incoming URL (/api/v2/bots/NAME/incoming, \
             /api/v2/applications/ID/incoming): a channel or chat shows only cards",
        ));
    }
    if kind == ChannelKind::ZohoFunction && !path.contains("/functions/") {
        return Err(invalid(
            r.key("url"),
            "a zoho_function URL names a function (…/functions/NAME/actions/execute)",
        ));
    }
    let zapikey = r.secret(
        "zapikey",
        c.zapikey.take().or(key_in_url),
        c.zapikey_file.take(),
        c.zapikey_env.take(),
    )?;
    let oauth = r.secret(
        "oauth_token",
        c.oauth_token.take(),
        c.oauth_token_file.take(),
        c.oauth_token_env.take(),
    )?;
    let appkey = r.secret(
        "appkey",
        c.appkey.take().or(appkey_in_url),
        c.appkey_file.take(),
        c.appkey_env.take(),
    )?;
    if let Some(k) = given(c)
        .into_iter()
        .find(|k| k.starts_with("signing_secret"))
    {
        return Err(invalid(r.key(k), "only a webhook channel is signed"));
    }
    if appkey.is_some() && !extension {
        return Err(invalid(
            r.key("appkey"),
            "only an extension incoming URL (/api/v2/applications/ID/incoming) takes an appkey",
        ));
    }
    if extension && appkey.is_none() {
        return Err(invalid(
            r.key("appkey"),
            "an extension incoming URL needs its appkey (in the url or as appkey/_file/_env)",
        ));
    }
    let auth = match (zapikey, oauth, appkey) {
        (Some(k), None, None) => Auth::ZapiKey(k),
        (None, Some(t), None) => Auth::OAuth(t),
        (None, None, None) => Auth::None,
        (k, None, Some(a)) => {
            let mut keys = vec![("appkey".to_string(), a)];
            keys.extend(k.map(|k| ("zapikey".to_string(), k)));
            Auth::Query(keys)
        }
        (None, Some(_), Some(_)) => {
            return Err(invalid(
                r.key("oauth_token"),
                "an extension incoming URL takes a zapikey with its appkey, not an oauth_token",
            ))
        }
        (Some(_), Some(_), _) => {
            return Err(invalid(
                r.key("zapikey"),
                "give a zapikey or an oauth_token, not both",
            ))
        }
    };
    Ok((Endpoint { url, auth }, format))
}

/// The endpoint of a Cliq channel in its OAuth mode.
fn oauth_endpoint(
    r: &Reader<'_>,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    if let Some(k) = given(c).into_iter().find(|k| !OAUTH_KEYS.contains(k)) {
        return Err(invalid(
            r.key(k),
            "a cliq channel in the OAuth mode (client_id, client_secret, refresh_token) takes no other credential",
        ));
    }
    if c.url_file.is_some() || c.url_env.is_some() {
        return Err(invalid(
            r.key("url"),
            "a Zoho URL is not a secret: give `url` (or `channel`)",
        ));
    }
    let secret = |name: &str,
                  inline: Option<String>,
                  file: Option<std::path::PathBuf>,
                  env: Option<String>| {
        r.secret(name, inline, file, env)?.ok_or_else(|| {
            invalid(
                r.key(name),
                "required in a cliq channel's OAuth mode (client_id, client_secret and refresh_token; each also as _file or _env)",
            )
        })
    };
    let client_id = secret(
        "client_id",
        c.client_id.take(),
        c.client_id_file.take(),
        c.client_id_env.take(),
    )?;
    let client_secret = secret(
        "client_secret",
        c.client_secret.take(),
        c.client_secret_file.take(),
        c.client_secret_env.take(),
    )?;
    let refresh_token = secret(
        "refresh_token",
        c.refresh_token.take(),
        c.refresh_token_file.take(),
        c.refresh_token_env.take(),
    )?;
    let accounts_url = match c.accounts_url.take() {
        Some(u) => base_url(&u).map_err(|m| invalid(r.key("accounts_url"), m))?,
        None => DEFAULT_ACCOUNTS_URL.to_string(),
    };
    let url = match (c.url.take(), c.channel.take()) {
        (Some(_), Some(_)) => {
            return Err(invalid(r.key("channel"), "give channel or url, not both"));
        }
        (None, None) => {
            return Err(invalid(
                r.key("channel"),
                "required in a cliq channel's OAuth mode: the channel's unique name (or a url)",
            ));
        }
        (Some(raw), None) => {
            let (url, zapikey, appkey) =
                split_zoho_keys(&raw).map_err(|m| invalid(r.key("url"), m))?;
            if zapikey.is_some() || appkey.is_some() {
                return Err(invalid(
                    r.key("url"),
                    "a cliq channel in the OAuth mode takes no zapikey or appkey in its url",
                ));
            }
            url
        }
        (None, Some(name)) => {
            let name = name.trim().to_string();
            if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '/') {
                return Err(invalid(
                    r.key("channel"),
                    format!("{name:?} is not a channel's unique name"),
                ));
            }
            let host = cliq_host(&accounts_url).ok_or_else(|| {
                invalid(
                    r.key("channel"),
                    "the Cliq host cannot be told from accounts_url (not accounts.…): give url = \
                     \"https://cliq…/api/v2/channelsbyname/NAME/message\" instead",
                )
            })?;
            format!(
                "{host}/api/v2/channelsbyname/{}/message",
                crate::deliver::path_segment(&name)
            )
        }
    };
    let incoming = url::Url::parse(&url).is_ok_and(|u| u.path().ends_with("/incoming"));
    if format == Format::Event && !incoming {
        return Err(invalid(
            r.key("format"),
            "\"event\" is for a bot or extension incoming URL (/api/v2/bots/NAME/incoming): a channel or chat shows only cards",
        ));
    }
    let oauth = ZohoOAuth {
        accounts_url,
        client_id,
        client_secret,
        refresh_token,
        key: r.key("refresh_token"),
    };
    Ok((
        Endpoint {
            url,
            auth: Auth::CliqOAuth(oauth),
        },
        format,
    ))
}

/// The Cliq host of the data centre whose accounts host is `accounts_url`
/// (`https://accounts.zoho.eu` → `https://cliq.zoho.eu`).
fn cliq_host(accounts_url: &str) -> Option<String> {
    let u = url::Url::parse(accounts_url).ok()?;
    let rest = u.host_str()?.strip_prefix("accounts.")?;
    Some(format!("https://cliq.{rest}"))
}

/// Validates a Zoho URL and moves the `zapikey` and `appkey` found in its query out of it.
fn split_zoho_keys(raw: &str) -> Result<(String, Option<String>, Option<String>), String> {
    let (rest, zapikey) = split_zapikey(raw)?;
    let mut url = url::Url::parse(&rest).map_err(|e| format!("not a URL: {e}"))?;
    let appkey = take_query(&mut url, "appkey");
    Ok((url.to_string(), zapikey, appkey))
}

/// Validates a channel URL and moves a `zapikey` found in its query out of it.
fn split_zapikey(raw: &str) -> Result<(String, Option<String>), String> {
    let mut url = url::Url::parse(raw.trim()).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err("must be an http(s) URL".into());
    }
    let key = take_query(&mut url, "zapikey");
    Ok((url.to_string(), key))
}

/// Removes the query parameter `name` from `url` (every occurrence) and returns its last value.
fn take_query(url: &mut url::Url, name: &str) -> Option<String> {
    let mut value = None;
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == name {
                value = Some(v.into_owned());
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if kept.is_empty() {
        url.set_query(None);
    } else {
        url.query_pairs_mut().clear().extend_pairs(kept);
    }
    value
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error};
    use crate::config::Format;
    use crate::deliver::Auth;

    #[test]
    fn zoho_urls_give_up_their_keys_and_take_the_event_where_it_is_shown() {
        let ok = |extra: &str| {
            one_channel(
                &format!("name='c'\n{extra}"),
                &[("SLACK", "https://hooks.slack.com/services/T1/B2/SECRETX")],
            )
        };
        let err = |extra: &str| one_channel_error(&format!("name='c'\n{extra}"), &[]);
        // Zoho: an extension's appkey is a secret taken out of the URL; functions take the event.
        let ext = ok("url='https://cliq.zoho.com/api/v2/applications/9/incoming?appkey=AK&zapikey=ZK'\nformat='event'");
        assert_eq!(
            ext.endpoint.url,
            "https://cliq.zoho.com/api/v2/applications/9/incoming"
        );
        assert!(
            matches!(&ext.endpoint.auth, Auth::Query(k) if k.len() == 2 && k[0].0 == "appkey" && k[1].1.expose() == "ZK")
        );
        assert!(
            err("url='https://cliq.zoho.com/api/v2/applications/9/incoming'")
                .starts_with("channels[0].appkey")
        );
        assert!(
            err("url='https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nformat='event'")
                .starts_with("channels[0].format")
        );
        assert!(
            err("url='https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nappkey='A'")
                .starts_with("channels[0].appkey")
        );
        let bot =
            ok("url='https://cliq.zoho.com/api/v2/bots/b/incoming'\nzapikey='k'\nformat='event'");
        assert_eq!(bot.format, Format::Event);
        let function = ok("kind='zoho_function'\nurl='https://www.zohoapis.com/crm/v7/functions/f/actions/execute?auth_type=apikey&zapikey=ZK'");
        assert_eq!(function.format, Format::Event);
        assert_eq!(
            function.endpoint.url,
            "https://www.zohoapis.com/crm/v7/functions/f/actions/execute?auth_type=apikey"
        );
        assert!(
            err("kind='zoho_function'\nurl='https://www.zohoapis.com/crm/v7/x'")
                .starts_with("channels[0].url")
        );
    }

    #[test]
    fn a_cliq_channel_in_the_oauth_mode_takes_a_client_a_refresh_token_and_a_channel() {
        let env = [("RT", "1000.SECRET-refresh")];
        let block = |extra: &str| format!("name='c'\n{extra}");
        let ok = |extra: &str| one_channel(&block(extra), &env);
        let err = |extra: &str| {
            let e = one_channel_error(&block(extra), &env);
            assert!(!e.contains("SECRET"), "{e}");
            e
        };
        let keys = "client_id='1000.ID'\nclient_secret='SECRET-cs'\nrefresh_token_env='RT'\n";
        let c = ok(&format!("{keys}channel='dev'"));
        assert_eq!(
            c.endpoint.url,
            "https://cliq.zoho.com/api/v2/channelsbyname/dev/message"
        );
        assert!(matches!(&c.endpoint.auth, Auth::CliqOAuth(o)
            if o.accounts_url == "https://accounts.zoho.com"
                && o.refresh_token.expose() == "1000.SECRET-refresh"
                && o.client_secret.expose() == "SECRET-cs"
                && o.key == "channels[0].refresh_token"));
        assert!(!format!("{c:?}").contains("SECRET"));
        assert_eq!(c.conversation.fallback, None);
        let c = ok(&format!(
            "{keys}channel='dev'\naccounts_url='https://accounts.zoho.eu/'\nconversation='thread+edit'"
        ));
        assert_eq!(
            c.endpoint.url,
            "https://cliq.zoho.eu/api/v2/channelsbyname/dev/message"
        );
        assert_eq!(
            c.conversation.mode,
            crate::deliver::conversation::Mode::ThreadEdit
        );
        let c = ok(&format!(
            "{keys}url='http://127.0.0.1:9/api/v2/chats/CT_1/message'\naccounts_url='http://127.0.0.1:9'"
        ));
        assert_eq!(
            c.endpoint.url,
            "http://127.0.0.1:9/api/v2/chats/CT_1/message"
        );
        // A bot's incoming URL posts flat: `check` says so.
        let c = ok(&format!(
            "{keys}url='https://cliq.zoho.com/api/v2/bots/b/incoming'\nconversation='thread'"
        ));
        assert_eq!(c.conversation.mode, crate::deliver::conversation::Mode::Off);
        assert!(c
            .conversation
            .fallback
            .is_some_and(|f| f.contains("falls back to flat posts")));
        // A webhook (zapikey) channel asking for a conversation posts flat, as before.
        let c = ok("url='https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nzapikey='k'\nconversation='thread'");
        assert_eq!(c.conversation.mode, crate::deliver::conversation::Mode::Off);
        assert!(c
            .conversation
            .fallback
            .is_some_and(|f| f.contains("OAuth mode")));
        assert!(
            err("client_id='1000.ID'\nrefresh_token_env='RT'\nchannel='dev'")
                .starts_with("channels[0].client_secret: required")
        );
        assert!(err(keys).starts_with("channels[0].channel: required"));
        assert!(err(&format!(
            "{keys}channel='dev'\nurl='https://cliq.zoho.com/api/v2/channelsbyname/dev/message'"
        ))
        .starts_with("channels[0].channel"));
        assert!(err(&format!("{keys}channel='dev'\nzapikey='SECRET-z'"))
            .starts_with("channels[0].zapikey"));
        assert!(err(&format!(
            "{keys}channel='dev'\naccounts_url='http://accounts.zoho.com'"
        ))
        .starts_with("channels[0].accounts_url: must be an https URL"));
        assert!(err(&format!(
            "{keys}channel='dev'\naccounts_url='http://127.0.0.1:9'"
        ))
        .starts_with("channels[0].channel: the Cliq host"));
        assert!(err(&format!("{keys}channel='dev ops'")).starts_with("channels[0].channel"));
        assert!(err("kind='zoho_function'\nurl='https://www.zohoapis.com/crm/v7/functions/f/actions/execute'\nclient_id='x'")
            .starts_with("channels[0].client_id: only a cliq channel"));
        assert!(err(
            "kind='slack'\nurl='https://hooks.slack.com/services/T/B/K'\nrefresh_token='x'"
        )
        .starts_with("channels[0].refresh_token"));
    }
}
