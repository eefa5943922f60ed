//! `kind = "console"`: the daemon's standard output; a console channel takes no URL and no
//! credential, and draws cards only.

use super::{given, Format, RawChannel, Reader};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::{Auth, Endpoint};

/// The endpoint URL a console channel's worker is given (for logs; nothing is fetched).
pub const CONSOLE_URL: &str = "console:stdout";

/// The endpoint of a console channel: none of its URL or credential keys may be set.
pub(super) fn endpoint(
    r: &Reader<'_>,
    c: &RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    let mut set = given(c);
    if c.url.is_some() || c.url_file.is_some() || c.url_env.is_some() {
        set.insert(0, "url");
    }
    if let Some(k) = set.first() {
        return Err(invalid(
            r.key(k),
            "a console channel prints to standard output: it takes no url or credential",
        ));
    }
    if format == Format::Event {
        return Err(invalid(
            r.key("format"),
            "a console channel draws cards only",
        ));
    }
    let endpoint = Endpoint {
        url: CONSOLE_URL.to_string(),
        auth: Auth::None,
    };
    Ok((endpoint, format))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::testing::parse;
    use crate::config::{ChannelKind, CONSOLE_RATE_PER_MINUTE, DEFAULT_RATE_PER_MINUTE};

    #[test]
    fn console_channels_take_no_url_or_credential() {
        let base = "[server]\nsecret_token='x'\n[[channels]]\nname='c'\n";
        let cfg = match parse(&format!("{base}kind='console'\n"), &[]) {
            Ok(c) => c,
            Err(e) => panic!("{e}"),
        };
        let c = &cfg.channels[0];
        assert_eq!(c.kind, ChannelKind::Console);
        assert_eq!(c.endpoint.url, CONSOLE_URL);
        assert_eq!(c.endpoint.auth, Auth::None);
        assert_eq!(c.rate_per_minute, CONSOLE_RATE_PER_MINUTE);
        let slow = parse(&format!("{base}kind='console'\nrate_per_minute=10\n"), &[]);
        assert_eq!(slow.map(|c| c.channels[0].rate_per_minute).ok(), Some(10));
        for (extra, key) in [
            ("url='https://cliq.zoho.com/x'", "channels[0].url"),
            ("zapikey='k'", "channels[0].zapikey"),
            ("oauth_token_env='T'", "channels[0].oauth_token_env"),
        ] {
            let e = parse(&format!("{base}kind='console'\n{extra}\n"), &[]).err();
            assert!(
                e.as_ref().is_some_and(|e| e.to_string().starts_with(key)),
                "{extra}: {e:?}"
            );
        }
        let e = parse(&format!("{base}kind='skype'\n"), &[]).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string().starts_with("channels[0].kind")),
            "{e:?}"
        );
        let e = parse(base, &[]).err();
        assert!(
            e.as_ref()
                .is_some_and(|e| e.to_string() == "channels[0].url: required for a Cliq channel"),
            "{e:?}"
        );
        let cliq = parse(
            &format!("{base}kind='cliq'\nurl='https://cliq.zoho.com/x'\n"),
            &[],
        );
        assert_eq!(
            cliq.map(|c| (c.channels[0].kind, c.channels[0].rate_per_minute))
                .ok(),
            Some((ChannelKind::Cliq, DEFAULT_RATE_PER_MINUTE))
        );
    }
}
