//! `kind = "cliq"` (the default) and `"zoho_function"`: a Zoho URL, which is no secret, and its
//! credential apart from it: a zapikey (also taken out of the URL's query), an OAuth token, or
//! an extension incoming URL's appkey.

use super::{given, ChannelKind, Format, RawChannel, Reader};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::{Auth, Endpoint};

/// The endpoint of a Cliq or Zoho function channel.
pub(super) fn endpoint(
    r: &Reader<'_>,
    kind: ChannelKind,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
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
}
