//! `kind = "matrix"`: the `homeserver` (plain http only on loopback), an `access_token` (or
//! `access_token_file` / `access_token_env`; sent as `Authorization: Bearer`) and the `room`: a
//! room id (`!abc:example.org`; `!abc` from room version 12 on), or an alias (`#dev:example.org`) that the sender resolves once
//! (`serve` asks at start). Cards only.

use super::{base_url, refuse_foreign, Format, RawChannel, Reader};
use crate::config::errors::{invalid, ConfigError};
use crate::deliver::Endpoint;

/// The endpoint of a Matrix channel.
pub(super) fn endpoint(
    r: &Reader<'_>,
    c: &mut RawChannel,
    format: Format,
) -> Result<(Endpoint, Format), ConfigError> {
    refuse_foreign(
        r,
        c,
        format,
        "matrix",
        &[
            "homeserver",
            "access_token",
            "access_token_file",
            "access_token_env",
            "room",
        ],
        "homeserver, access_token (or access_token_file / access_token_env) and room",
        "give homeserver and room",
    )?;
    let Some(homeserver) = c.homeserver.take() else {
        return Err(invalid(
            r.key("homeserver"),
            "required for a matrix channel (https://matrix.example.org)",
        ));
    };
    let homeserver = base_url(&homeserver).map_err(|m| invalid(r.key("homeserver"), m))?;
    let Some(token) = r.secret(
        "access_token",
        c.access_token.take(),
        c.access_token_file.take(),
        c.access_token_env.take(),
    )?
    else {
        return Err(invalid(
            r.key("access_token"),
            "required for a matrix channel (or access_token_file / access_token_env)",
        ));
    };
    if token
        .expose()
        .chars()
        .any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(invalid(r.key("access_token"), "must not contain blanks"));
    }
    let Some(room) = c.room.take().map(|r| r.trim().to_string()) else {
        return Err(invalid(
            r.key("room"),
            "required for a matrix channel (!id:server or #alias:server)",
        ));
    };
    // Room versions up to 11 have ids `!opaque:server`; version 12 drops the server part.
    let well_formed = match room.chars().next() {
        Some('!') => room.len() > 1,
        Some('#') => room[1..]
            .split_once(':')
            .is_some_and(|(l, s)| !l.is_empty() && !s.is_empty()),
        _ => false,
    } && !room.chars().any(|c| c.is_whitespace() || c.is_control());
    if !well_formed {
        return Err(invalid(
            r.key("room"),
            format!("{room:?} is neither a room id (!id) nor an alias (#name:server)"),
        ));
    }
    Ok((Endpoint::matrix(&homeserver, &room, token), format))
}

#[cfg(test)]
mod tests {
    use crate::config::testing::{one_channel, one_channel_error_no_secret};
    use crate::config::ChannelKind;
    use crate::deliver::Auth;

    #[test]
    fn a_matrix_channel_takes_a_homeserver_a_token_and_a_room() {
        let env = [("MX", "syt_SECRET")];
        let block = |extra: &str| format!("name='mx'\nkind='matrix'\n{extra}");
        let ok = |extra: &str| one_channel(&block(extra), &env);
        let err = |extra: &str| one_channel_error_no_secret(&block(extra), &env);
        let c = ok("homeserver='https://matrix.example.org/'\naccess_token_env='MX'\nroom='!abc:example.org'");
        assert_eq!(c.kind, ChannelKind::Matrix);
        assert_eq!(c.rate_per_minute, 10);
        assert_eq!(
            c.endpoint.url,
            "https://matrix.example.org/_matrix/client/v3/rooms/%21abc%3Aexample.org/send/m.room.message"
        );
        assert!(
            matches!(&c.endpoint.auth, Auth::Matrix { token, .. } if token.expose() == "syt_SECRET")
        );
        assert!(!format!("{c:?}").contains("SECRET"));
        let c = ok("homeserver='http://127.0.0.1:8008'\naccess_token='syt_SECRET'\nroom='#dev:example.org'");
        assert!(c.endpoint.url.contains("/rooms/%23dev%3Aexample.org/"));
        // A room of version 12: no server part.
        let c = ok("homeserver='https://m.test'\naccess_token='syt_SECRET'\nroom='!LWgyl0GBYuLSrahCHTeh4jw1XiQj-SaRe607Tu2GM9M'");
        assert!(c
            .endpoint
            .url
            .contains("/rooms/%21LWgyl0GBYuLSrahCHTeh4jw1XiQj-SaRe607Tu2GM9M/"));
        assert!(
            err("homeserver='https://m.test'\naccess_token_env='MX'\nroom='#dev'")
                .starts_with("channels[0].room")
        );
        assert!(
            err("homeserver='https://m.test'\naccess_token_env='MX'\nroom='!'")
                .starts_with("channels[0].room")
        );
        assert!(err("access_token_env='MX'\nroom='!a:b'")
            .starts_with("channels[0].homeserver: required"));
        assert!(
            err("homeserver='http://matrix.example.org'\naccess_token_env='MX'\nroom='!a:b'")
                .starts_with("channels[0].homeserver: must be an https URL")
        );
        assert!(err("homeserver='https://m.test'\nroom='!a:b'")
            .starts_with("channels[0].access_token: required"));
        assert!(err("homeserver='https://m.test'\naccess_token_env='MX'")
            .starts_with("channels[0].room: required"));
        assert!(
            err("homeserver='https://m.test'\naccess_token_env='MX'\nroom='dev'")
                .starts_with("channels[0].room")
        );
        assert!(err(
            "homeserver='https://m.test'\naccess_token_env='MX'\nroom='!a:b'\nformat='event'"
        )
        .starts_with("channels[0].format"));
        assert!(
            err("homeserver='https://m.test'\naccess_token_env='MX'\nroom='!a:b'\nchat_id=1")
                .starts_with("channels[0].chat_id")
        );
        assert!(err("homeserver='https://m.test'\naccess_token_env='MX'\nroom='!a:b'\nsigning_secret='whsec_AAAA'").starts_with("channels[0].signing_secret"));
    }
}
