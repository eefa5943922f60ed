//! Configuration errors as a user reads them: every mistake `Config::load` refuses (each
//! section's unknown keys, missing and bad values, each channel kind's URL and credential rules,
//! secrets given twice, not at all, from a missing file or an unset variable, `[outbox]`'s
//! PostgreSQL URL, routes, the Cliq extension, the preview page) loaded through the library's
//! one entry point and compared, message by message, with `tests/snapshots/config_errors.txt`.
//! A reshaping of `src/config/` must leave that file byte-identical; a deliberate change
//! re-records it with `UPDATE_SNAPSHOTS=1 cargo test --test tests config_errors::` and says why
//! in its commit.

use crate::support::turn;
use gitlab_chat_bridge::config::{Config, Environment};
use std::collections::HashMap;
use std::path::Path;

/// Where every case's config is read from.
const CONFIG: &str = "/etc/gcb/config.toml";

/// A `[server]` section that loads.
const SERVER: &str = "[server]\nsecret_token = 't'\n";

/// The file system and environment of the cases: the config file, a token file and a set
/// variable; everything else is missing.
struct FakeEnv(HashMap<String, String>);

impl FakeEnv {
    fn with_config(text: &str) -> FakeEnv {
        let mut all: HashMap<String, String> = [
            ("/etc/gcb/tok", "file-token\n"),
            ("/etc/gcb/key.pem", "TUlJQg==\n"),
            ("SET_VAR", "from-env"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        all.insert(CONFIG.to_string(), text.to_string());
        FakeEnv(all)
    }
}

impl Environment for FakeEnv {
    fn var(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.0
            .get(&path.display().to_string())
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
}

/// The message `Config::load` gives for `text`, or `ACCEPTED` when it loads.
fn load_error(text: &str) -> String {
    match Config::load_with(Path::new(CONFIG), &FakeEnv::with_config(text)) {
        Ok(_) => "ACCEPTED".to_string(),
        Err(e) => e.to_string(),
    }
}

/// `[server]` then one `[[channels]]` named `c` with `rest`.
fn channel(rest: &str) -> String {
    format!("{SERVER}[[channels]]\nname = 'c'\n{rest}\n")
}

/// `[server]` then `[outbox]` with `rest`.
fn outbox(rest: &str) -> String {
    format!("{SERVER}[outbox]\n{rest}\n")
}

/// `[server]`, a channel `c`, and `[[routes]]` with `rest`.
fn route(rest: &str) -> String {
    format!("{}[[routes]]\n{rest}\n", channel("kind = 'console'"))
}

/// `[server]`, `[gitlab]` with a token, and `[cliq_extension]` with `rest`.
fn extension(rest: &str) -> String {
    format!(
        "{SERVER}[gitlab]\nurl = 'https://gitlab.example.com'\ntoken = 'glpat'\n[cliq_extension]\n{rest}\n"
    )
}

/// A `[cliq_extension]` that loads, less what a case changes.
const EXT_OK: &str = "public_keys = ['TUlJQg==']\nallowed_projects = ['acme/*']\nzapikey = 'z'";

/// `[server]` and `[gitlab]` with `rest`.
fn gitlab(rest: &str) -> String {
    format!("{SERVER}[gitlab]\nurl = 'https://gitlab.example.com'\n{rest}\n")
}

/// Every case: a name and a config, one per distinct message or branch of `src/config`.
fn cases() -> Vec<(&'static str, String)> {
    let s = |x: &str| x.to_string();
    let mut c: Vec<(&'static str, String)> = vec![
        // The TOML itself and unknown keys, per section.
        ("toml.unclosed_table", s("[server\nsecret_token = 't'\n")),
        ("toml.bad_value", s("[server]\nsecret_token = t\n")),
        ("toml.duplicate_key", s("[server]\nsecret_token = 't'\nsecret_token = 'u'\n")),
        ("toml.unknown_section", format!("{SERVER}[srever]\nlisten = 'x'\n")),
        ("unknown.server", format!("{SERVER}listen_port = 1\n")),
        ("unknown.server_secret", s("[server]\nsecret_tokn = 'hunter2-server'\n")),
        ("unknown.templates", format!("{SERVER}[templates]\nfolder = 'x'\n")),
        ("unknown.outbox", outbox("file = 'x'")),
        ("unknown.events", format!("{SERVER}[events]\nretention = 1\n")),
        ("unknown.delivery", format!("{SERVER}[delivery]\nretries = 1\n")),
        ("unknown.channels", channel("kind = 'console'\ncolour = 'red'")),
        ("unknown.channels_secret", channel("url = 'https://cliq.zoho.com/x'\nzapikeyy = '1001.hunter2-zapikey'")),
        ("unknown.routes", route("channels = ['c']\nevent = ['push']")),
        ("unknown.gitlab", gitlab("project = 'x'")),
        ("unknown.gitlab_secret", gitlab("tokn = 'glpat-hunter2-gitlab'")),
        ("unknown.log", format!("{SERVER}[log]\nlevel = 'debug'\n")),
        ("unknown.preview", format!("{SERVER}[preview]\nport = 1\n")),
        ("unknown.cliq_extension", extension(&format!("{EXT_OK}\nadmin = ['x']"))),
        ("type.server_max_body_bytes", format!("{SERVER}max_body_bytes = 'big'\n")),
        ("type.channel_confidential", channel("kind = 'console'\nconfidential = 'hunter2-yes'")),
        ("type.mentions", format!("{SERVER}[mentions]\nalice = 1\n")),
        ("missing.channel_name", format!("{SERVER}[[channels]]\nkind = 'console'\n")),
        ("missing.gitlab_url", format!("{SERVER}[gitlab]\ntoken = 'glpat'\n")),
        ("missing.route_channels", route("name = 'r'")),
        // [server]
        ("server.no_token", s("")),
        ("server.empty_token", s("[server]\nsecret_token = ''\n")),
        ("server.token_twice", s("[server]\nsecret_token = 't'\nsecret_token_file = 'tok'\n")),
        ("server.token_file_missing", s("[server]\nsecret_token_file = 'missing'\n")),
        ("server.tokens_empty", format!("{SERVER}secret_tokens = ['']\n")),
        ("server.token_files_missing", format!("{SERVER}secret_token_files = ['tok', 'missing']\n")),
        ("server.signing_empty", format!("{SERVER}signing_token = ''\n")),
        ("server.signing_twice", format!("{SERVER}signing_token = 'whsec_a2V5'\nsigning_token_file = 'tok'\n")),
        ("server.signing_file_missing", format!("{SERVER}signing_token_file = 'missing'\n")),
        ("server.signing_files_missing", format!("{SERVER}signing_token_files = ['missing']\n")),
        ("server.signing_tokens_empty", format!("{SERVER}signing_tokens = [' ']\n")),
        ("server.listen", format!("{SERVER}listen = 'localhost'\n")),
        ("server.max_body_bytes", format!("{SERVER}max_body_bytes = 0\n")),
        ("server.signature_tolerance_secs", format!("{SERVER}signature_tolerance_secs = 0\n")),
        ("server.allow_networks_prefix", format!("{SERVER}allow_networks = ['10.0.0.0/8', '10.0.0.0/33']\n")),
        ("server.allow_networks_name", format!("{SERVER}allow_networks = ['intranet']\n")),
        ("server.request_timeout_secs", format!("{SERVER}request_timeout_secs = 0\n")),
        ("server.max_connections", format!("{SERVER}max_connections = 0\n")),
        ("server.tls_cert_only", format!("{SERVER}tls_cert_file = 'c.pem'\n")),
        ("server.tls_key_only", format!("{SERVER}tls_key_file = 'k.pem'\n")),
        // [log], [templates], [delivery]
        ("log.format", format!("{SERVER}[log]\nformat = 'xml'\n")),
        ("templates.timezone", format!("{SERVER}[templates]\ntimezone = 'Mars/Base'\n")),
        ("templates.date_format", format!("{SERVER}[templates]\ndate_format = '%Y %'\n")),
        ("templates.day_format", format!("{SERVER}[templates]\nday_format = '%d %'\n")),
        ("delivery.max_attempts", format!("{SERVER}[delivery]\nmax_attempts = 0\n")),
        ("delivery.timeout_secs", format!("{SERVER}[delivery]\ntimeout_secs = 0\n")),
        // [[channels]]: the common fields
        ("channels.name_empty", format!("{SERVER}[[channels]]\nname = ' '\nkind = 'console'\n")),
        ("channels.name_twice", format!("{}[[channels]]\nname = 'c'\nkind = 'console'\n", channel("kind = 'console'"))),
        ("channels.kind", channel("kind = 'skype'")),
        ("channels.format", channel("kind = 'console'\nformat = 'html'")),
        ("channels.events_empty", channel("kind = 'console'\nevents = ['push', '!']")),
        ("channels.rate_per_minute", channel("kind = 'console'\nrate_per_minute = 0")),
        // console
        ("console.url", channel("kind = 'console'\nurl = 'https://cliq.zoho.com/x'")),
        ("console.url_env", channel("kind = 'console'\nurl_env = 'SET_VAR'")),
        ("console.zapikey", channel("kind = 'console'\nzapikey = 'k'")),
        ("console.oauth_token_env", channel("kind = 'console'\noauth_token_env = 'T'")),
        ("console.signing_secret", channel("kind = 'console'\nsigning_secret = 'whsec_a2V5'")),
        ("console.format_event", channel("kind = 'console'\nformat = 'event'")),
        // cliq and zoho_function
        ("cliq.url_missing", channel("")),
        ("cliq.url_file", channel("url_file = 'tok'")),
        ("cliq.url_env", channel("url_env = 'SET_VAR'")),
        ("cliq.url_not_a_url", channel("url = 'not a url'")),
        ("cliq.url_ftp", channel("url = 'ftp://x'")),
        ("cliq.format_event_on_a_channel", channel("url = 'https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nformat = 'event'")),
        ("cliq.signing_secret", channel("url = 'https://cliq.zoho.com/x'\nsigning_secret = 'whsec_a2V5'")),
        ("cliq.signing_secret_env", channel("url = 'https://cliq.zoho.com/x'\nsigning_secret_env = 'SET_VAR'")),
        // Cliq's OAuth mode (the REST API: conversations)
        ("cliq_oauth.client_secret_missing", channel("client_id = 'i'\nrefresh_token = 'r'\nchannel = 'dev'")),
        ("cliq_oauth.refresh_token_env_unset", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token_env = 'UNSET'\nchannel = 'dev'")),
        ("cliq_oauth.channel_missing", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\n")),
        ("cliq_oauth.channel_and_url", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nchannel = 'dev'\nurl = 'https://cliq.zoho.com/api/v2/channelsbyname/dev/message'")),
        ("cliq_oauth.channel_name", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nchannel = 'dev ops'")),
        ("cliq_oauth.channel_host", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nchannel = 'dev'\naccounts_url = 'http://127.0.0.1:9'")),
        ("cliq_oauth.accounts_url_http", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nchannel = 'dev'\naccounts_url = 'http://accounts.zoho.com'")),
        ("cliq_oauth.zapikey", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nchannel = 'dev'\nzapikey = 'k'")),
        ("cliq_oauth.url_env", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nurl_env = 'SET_VAR'")),
        ("cliq_oauth.url_zapikey", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nurl = 'https://cliq.zoho.com/api/v2/channelsbyname/dev/message?zapikey=hunter2'")),
        ("cliq_oauth.format_event", channel("client_id = 'i'\nclient_secret = 's'\nrefresh_token = 'r'\nchannel = 'dev'\nformat = 'event'")),
        ("cliq_oauth.zoho_function", channel("kind = 'zoho_function'\nurl = 'https://www.zohoapis.com/crm/v7/functions/f/actions/execute'\nclient_id = 'i'")),
        ("cliq_oauth.slack", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nrefresh_token = 'r'")),
        ("cliq.appkey_not_extension", channel("url = 'https://cliq.zoho.com/api/v2/channelsbyname/a/message'\nappkey = 'A'")),
        ("cliq.appkey_in_url_not_extension", channel("url = 'https://cliq.zoho.com/api/v2/bots/b/incoming?appkey=A'")),
        ("cliq.extension_without_appkey", channel("url = 'https://cliq.zoho.com/api/v2/applications/9/incoming'")),
        ("cliq.extension_oauth", channel("url = 'https://cliq.zoho.com/api/v2/applications/9/incoming?appkey=A'\noauth_token = 'o'")),
        ("cliq.zapikey_and_oauth", channel("url = 'https://cliq.zoho.com/x'\nzapikey = 'k'\noauth_token = 'o'")),
        ("cliq.zapikey_twice", channel("url = 'https://cliq.zoho.com/x'\nzapikey = 'k'\nzapikey_env = 'SET_VAR'")),
        ("cliq.zapikey_file_missing", channel("url = 'https://cliq.zoho.com/x'\nzapikey_file = 'missing'")),
        ("cliq.zapikey_env_unset", channel("url = 'https://cliq.zoho.com/x'\nzapikey_env = 'UNSET'")),
        ("cliq.oauth_token_file_missing", channel("url = 'https://cliq.zoho.com/x'\noauth_token_file = 'missing'")),
        ("cliq.appkey_env_unset", channel("url = 'https://cliq.zoho.com/api/v2/applications/9/incoming'\nappkey_env = 'UNSET'")),
        ("zoho_function.url_missing", channel("kind = 'zoho_function'")),
        ("zoho_function.not_a_function", channel("kind = 'zoho_function'\nurl = 'https://www.zohoapis.com/crm/v7/x'")),
        // the kinds whose URL is the credential
        ("slack.zapikey", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nzapikey = 'k'")),
        ("slack.appkey_env", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nappkey_env = 'A'")),
        ("slack.format_event", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nformat = 'event'")),
        ("slack.url_missing", channel("kind = 'slack'")),
        ("slack.url_twice", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nurl_env = 'SET_VAR'")),
        ("slack.url_env_unset", channel("kind = 'slack'\nurl_env = 'UNSET'")),
        ("slack.url_file_missing", channel("kind = 'slack'\nurl_file = 'missing'")),
        ("slack.url_not_a_url", channel("kind = 'slack'\nurl = 'hooks.slack.com/services/T/B/hunter2'")),
        ("slack.url_http", channel("kind = 'slack'\nurl = 'http://hooks.slack.com/services/T/B/hunter2'")),
        ("slack.url_shape", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/x/hunter2'")),
        ("slack.signing_secret", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nsigning_secret = 'whsec_a2V5'")),
        ("discord.url_shape", channel("kind = 'discord'\nurl = 'https://discord.com/api/webhooks/hunter2'")),
        ("discord.format_event", channel("kind = 'discord'\nurl = 'https://discord.com/api/webhooks/1/t'\nformat = 'event'")),
        ("google_chat.url_shape", channel("kind = 'google_chat'\nurl = 'https://chat.googleapis.com/v1/spaces/S/messages?key=hunter2'")),
        ("mattermost.url_shape", channel("kind = 'mattermost'\nurl = 'https://mm.example.com/hooks/'")),
        ("teams.url_http", channel("kind = 'teams'\nurl = 'http://example.com/workflows/hunter2'")),
        ("teams.oauth_token", channel("kind = 'teams'\nurl = 'https://example.com/w'\noauth_token = 'o'")),
        ("webhook.url_scheme", channel("kind = 'webhook'\nurl = 'ftp://example.com/in'")),
        ("webhook.url_no_host", channel("kind = 'webhook'\nurl = 'https://'")),
        ("webhook.signing_secret_bad", channel("kind = 'webhook'\nurl = 'https://example.com/in'\nsigning_secret = 'nope!'")),
        ("webhook.signing_secret_twice", channel("kind = 'webhook'\nurl = 'https://example.com/in'\nsigning_secret = 'whsec_a2V5'\nsigning_secret_file = 'tok'")),
        ("webhook.signing_secret_env_unset", channel("kind = 'webhook'\nurl = 'https://example.com/in'\nsigning_secret_env = 'UNSET'")),
        // Telegram and Matrix: the other chat's keys, another family's credential, a url, the event.
        ("telegram.room", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nroom = '!r:x'")),
        ("telegram.zapikey", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nzapikey = 'k'")),
        ("telegram.url", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nurl = 'https://x.test/'")),
        ("telegram.format_event", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nformat = 'event'")),
        ("matrix.chat_id", channel("kind = 'matrix'\nhomeserver = 'https://m.test'\naccess_token = 't'\nroom = '!a:b'\nchat_id = 1")),
        ("matrix.token", channel("kind = 'matrix'\nhomeserver = 'https://m.test'\naccess_token = 't'\nroom = '!a:b'\ntoken_env = 'TG'")),
        ("matrix.url", channel("kind = 'matrix'\nhomeserver = 'https://m.test'\naccess_token = 't'\nroom = '!a:b'\nurl = 'https://x.test/'")),
        ("matrix.format_event", channel("kind = 'matrix'\nhomeserver = 'https://m.test'\naccess_token = 't'\nroom = '!a:b'\nformat = 'event'")),
        // Slack's bot-token mode and Mattermost's API mode: one mode or the other, ids, tokens.
        ("slack.token_and_url", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\ntoken = 'xoxb-1-hunter2'\nchannel = 'C0123456789'")),
        ("slack.token_no_channel", channel("kind = 'slack'\ntoken = 'xoxb-1-hunter2'")),
        ("slack.channel_no_token", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nchannel = 'C0123456789'")),
        ("slack.channel_name", channel("kind = 'slack'\ntoken = 'xoxb-1-hunter2'\nchannel = '#dev'")),
        ("slack.token_shape", channel("kind = 'slack'\ntoken = 'xoxp-1-hunter2'\nchannel = 'C0123456789'")),
        ("slack.token_env_unset", channel("kind = 'slack'\ntoken_env = 'UNSET'\nchannel = 'C0123456789'")),
        ("slack.api_url_http", channel("kind = 'slack'\ntoken = 'xoxb-1-hunter2'\nchannel = 'C0123456789'\napi_url = 'http://slack.example.com/api'")),
        ("slack.team", channel("kind = 'slack'\ntoken = 'xoxb-1-hunter2'\nchannel = 'C0123456789'\nteam = 'dev'")),
        ("slack.room", channel("kind = 'slack'\ntoken = 'xoxb-1-hunter2'\nchannel = 'C0123456789'\nroom = '!r:x'")),
        ("mattermost.url_missing_api", channel("kind = 'mattermost'\ntoken = 'hunter2'\nchannel_id = 'abcdefghijklmnopqrstuvwxyz'")),
        ("mattermost.hook_url_api", channel("kind = 'mattermost'\nurl = 'https://mm.example.com/hooks/hunter2'\ntoken = 'hunter2'\nchannel_id = 'abcdefghijklmnopqrstuvwxyz'")),
        ("mattermost.channel_id_missing", channel("kind = 'mattermost'\nurl = 'https://mm.example.com'\ntoken = 'hunter2'")),
        ("mattermost.channel_id_name", channel("kind = 'mattermost'\nurl = 'https://mm.example.com'\ntoken = 'hunter2'\nchannel_id = 'town-square'")),
        ("mattermost.channel_id_no_token", channel("kind = 'mattermost'\nurl = 'https://mm.example.com/hooks/KEY'\nchannel_id = 'abcdefghijklmnopqrstuvwxyz'")),
        ("mattermost.team", channel("kind = 'mattermost'\nurl = 'https://mm.example.com'\ntoken = 'hunter2'\nchannel_id = 'abcdefghijklmnopqrstuvwxyz'\nteam = 'Dev Team'")),
        ("mattermost.token_blank", channel("kind = 'mattermost'\nurl = 'https://mm.example.com'\ntoken = 'hunter 2'\nchannel_id = 'abcdefghijklmnopqrstuvwxyz'")),
        ("teams.channel", channel("kind = 'teams'\nurl = 'https://example.com/w'\nchannel = 'C0123456789'")),
        // Conversations: the mode, the kinds that can thread, the keys that need it.
        ("conversation.mode", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nconversation = 'threads'")),
        ("conversation.kind", channel("kind = 'teams'\nurl = 'https://example.com/workflows/K'\nconversation = 'thread'")),
        ("conversation.broadcast_off", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nbroadcast = ['merge_request.merge']")),
        ("conversation.days_off", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nconversation = 'off'\nconversation_days = 3")),
        ("conversation.days_zero", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nconversation = 'thread+edit'\nconversation_days = 0")),
        ("conversation.broadcast_empty", channel("kind = 'telegram'\ntoken = '1:T'\nchat_id = '-100'\nconversation = 'thread'\nbroadcast = ['!']")),
        ("conversation.teams", channel("kind = 'teams'\nurl = 'https://example.com/workflows/w'\nconversation = 'thread'")),
        ("conversation.google_chat_edit", channel("kind = 'google_chat'\nurl = 'https://chat.googleapis.com/v1/spaces/S/messages?key=k&token=t'\nconversation = 'thread+edit'")),
        ("discord.forum_kind", channel("kind = 'slack'\nurl = 'https://hooks.slack.com/services/T/B/K'\nforum = true")),
        // [mentions]
        ("mentions.kind_table", format!("{SERVER}[mentions.skype]\nalice = 'U1'\n")),
        ("mentions.empty_id", format!("{SERVER}[mentions]\nalice = ''\n")),
        ("mentions.braces", format!("{SERVER}[mentions]\nalice = '{{@all}}'\n")),
        ("mentions.blank", format!("{SERVER}[mentions]\nalice = '12 34'\n")),
        ("mentions.group", format!("{SERVER}[mentions]\nalice = 'all'\n")),
        ("mentions.empty_name", format!("{SERVER}[mentions]\n'@' = '1'\n")),
        ("mentions.twice", format!("{SERVER}[mentions]\nalice = '1'\nAlice = '2'\n")),
        ("mentions.kind_group", format!("{SERVER}[mentions.discord]\nalice = 'everyone'\n")),
        // [gitlab]
        ("gitlab.url_not_a_url", format!("{SERVER}[gitlab]\nurl = 'gitlab.example.com'\n")),
        ("gitlab.url_ftp", format!("{SERVER}[gitlab]\nurl = 'ftp://gitlab.example.com'\n")),
        ("gitlab.hook_url", gitlab("hook_url = '/hooks'")),
        ("gitlab.events_empty", gitlab("events = []")),
        ("gitlab.events_unknown", gitlab("events = ['push', 'pushes']")),
        ("gitlab.concurrency_zero", gitlab("concurrency = 0")),
        ("gitlab.concurrency_high", gitlab("concurrency = 33")),
        ("gitlab.watch_hooks_minutes", gitlab("watch_hooks_minutes = -1.0")),
        ("gitlab.watch_hooks_minutes_nan", gitlab("watch_hooks_minutes = nan")),
        ("gitlab.ops_channel", gitlab("ops_channel = 'ops'")),
        ("gitlab.token_twice", gitlab("token = 'glpat'\ntoken_env = 'SET_VAR'")),
        ("gitlab.token_env_unset", gitlab("token_env = 'UNSET'")),
        ("gitlab.token_file_missing", gitlab("token_file = 'missing'")),
        // [preview]
        ("preview.listen", format!("{SERVER}[preview]\nlisten = 'localhost'\n")),
        ("preview.public", s("[server]\nsecret_token = 't'\nlisten = '0.0.0.0:8080'\n[preview]\nenabled = true\n")),
        // [cliq_extension]
        ("cliq_extension.no_gitlab", format!("{SERVER}[cliq_extension]\n{EXT_OK}\n")),
        ("cliq_extension.gitlab_without_token", format!("{SERVER}[gitlab]\nurl = 'https://gitlab.example.com'\n[cliq_extension]\n{EXT_OK}\n")),
        ("cliq_extension.path_gitlab", extension(&format!("{EXT_OK}\npath = '/hooks/gitlab'"))),
        ("cliq_extension.path_relative", extension(&format!("{EXT_OK}\npath = 'hooks/cliq'"))),
        ("cliq_extension.public_keys_bad", extension("public_keys = ['not base64!']\nallowed_projects = ['*']\nzapikey = 'z'")),
        ("cliq_extension.public_key_files_missing", extension("public_key_files = ['key.pem', 'missing.pem']\nallowed_projects = ['*']\nzapikey = 'z'")),
        ("cliq_extension.public_keys_missing", extension("allowed_projects = ['*']\nzapikey = 'z'")),
        ("cliq_extension.allowed_projects_missing", extension("public_keys = ['TUlJQg==']\nallowed_projects = [' / ']\nzapikey = 'z'")),
        ("cliq_extension.api_url", extension(&format!("{EXT_OK}\napi_url = 'ftp://x'"))),
        ("cliq_extension.zapikey_missing", extension("public_keys = ['TUlJQg==']\nallowed_projects = ['*']")),
        ("cliq_extension.zapikey_and_oauth", extension(&format!("{EXT_OK}\noauth_token = 'o'"))),
        ("cliq_extension.zapikey_twice", extension(&format!("{EXT_OK}\nzapikey_env = 'SET_VAR'"))),
        ("cliq_extension.oauth_token_env_unset", extension("public_keys = ['TUlJQg==']\nallowed_projects = ['*']\noauth_token_env = 'UNSET'")),
        ("cliq_extension.rate_per_minute", extension(&format!("{EXT_OK}\nrate_per_minute = 0"))),
        ("cliq_extension.answer_within_ms", extension(&format!("{EXT_OK}\nanswer_within_ms = 6000"))),
        // [[routes]]
        ("routes.no_channel", route("channels = []")),
        ("routes.unknown_channel", route("channels = ['c', 'd']")),
        ("routes.events_empty", route("channels = ['c']\nevents = ['']")),
        ("routes.projects_empty", route("channels = ['c']\nprojects = ['!']")),
        ("routes.refs_empty", route("channels = ['c']\nrefs = [' ']")),
        ("routes.labels_any_empty", route("channels = ['c']\nlabels_any = ['']")),
        ("routes.labels_all_empty", route("channels = ['c']\nlabels_all = ['']")),
        ("routes.exclude_users_empty", route("channels = ['c']\nexclude_users = ['']")),
        ("routes.timezone", route("channels = ['c']\ntimezone = 'Mars/Base'")),
        // [outbox] and [events]
        ("outbox.synchronous", outbox("synchronous = 'sometimes'")),
        ("events.retention_days", format!("{SERVER}[events]\nretention_days = 0\n")),
    ];
    let pg = [
        (
            "outbox.url_and_path",
            "url = 'postgres://u@h/d'\npath = 'x.sqlite'",
        ),
        (
            "outbox.url_synchronous",
            "url = 'postgres://u@h/d'\nsynchronous = 'full'",
        ),
        ("outbox.url_scheme", "url = 'mysql://u@h/d'"),
        ("outbox.url_not_a_url", "url = 'not a url'"),
        ("outbox.url_no_host", "url = 'postgres:///d'"),
        ("outbox.url_no_user", "url = 'postgres://h/d'"),
        ("outbox.url_password", "url = 'postgres://u:hunter2@h/d'"),
        (
            "outbox.url_password_option",
            "url = 'postgres://u@h/d?password=hunter2'",
        ),
        (
            "outbox.url_sslmode",
            "url = 'postgres://u@h/d?sslmode=verify-full'",
        ),
        (
            "outbox.url_option",
            "url = 'postgres://u@h/d?sslrootcert=x'",
        ),
        (
            "outbox.password_twice",
            "url = 'postgres://u@h/d'\npassword_file = 'tok'\npassword_env = 'SET_VAR'",
        ),
        (
            "outbox.password_env_unset",
            "url = 'postgres://u@h/d'\npassword_env = 'UNSET'",
        ),
        (
            "outbox.password_file_missing",
            "url = 'postgres://u@h/d'\npassword_file = 'missing'",
        ),
        (
            "outbox.pool_size_zero",
            "url = 'postgres://u@h/d'\npool_size = 0",
        ),
        (
            "outbox.pool_size_high",
            "url = 'postgres://u@h/d'\npool_size = 257",
        ),
        (
            "outbox.ca_file_without_tls",
            "url = 'postgres://u@h/d?sslmode=disable'\nca_file = 'ca.pem'",
        ),
        ("outbox.password_file_without_url", "password_file = 'tok'"),
        (
            "outbox.password_env_without_url",
            "password_env = 'SET_VAR'",
        ),
        ("outbox.ca_file_without_url", "ca_file = 'ca.pem'"),
        ("outbox.pool_size_without_url", "pool_size = 4"),
    ];
    c.extend(pg.into_iter().map(|(name, rest)| (name, outbox(rest))));
    c
}

/// The snapshot's text: each case's name, then its message.
fn record() -> String {
    let mut out = String::new();
    let unreadable = match Config::load_with(
        Path::new("/etc/gcb/missing.toml"),
        &FakeEnv::with_config(""),
    ) {
        Ok(_) => "ACCEPTED".to_string(),
        Err(e) => e.to_string(),
    };
    out.push_str(&format!("== read.missing_file\n{unreadable}\n"));
    for (name, text) in cases() {
        out.push_str(&format!("== {name}\n{}\n", load_error(&text)));
    }
    out
}

#[test]
fn every_config_error_matches_the_recorded_snapshot() {
    let _turn = turn::shared();
    let got = record();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots/config_errors.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    for (i, (got, want)) in got.lines().zip(want.lines()).enumerate() {
        assert_eq!(got, want, "snapshot line {} differs", i + 1);
    }
    assert_eq!(got, want, "the snapshot differs in its length or line ends");
}

#[test]
fn every_case_is_refused_and_named_once() {
    let _turn = turn::shared();
    let all = cases();
    let mut names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), all.len(), "a case name is used twice");
    let accepted: Vec<&str> = all
        .iter()
        .filter(|(_, text)| load_error(text) == "ACCEPTED")
        .map(|(n, _)| *n)
        .collect();
    assert!(accepted.is_empty(), "accepted: {accepted:?}");
    // The base configs the cases change do load.
    let fine = [
        channel("kind = 'console'"),
        channel("url = 'https://cliq.zoho.com/x'"),
        extension(EXT_OK),
        gitlab("token_env = 'SET_VAR'"),
        route("channels = ['c']"),
        outbox("url = 'postgres://u@h/d'\npassword_file = 'tok'"),
    ];
    for text in fine {
        assert_eq!(load_error(&text), "ACCEPTED", "{text}");
    }
}

/// A misspelt key on a secret's line, or a secret given as the wrong type: the message names the
/// file, line, column and key, and never the value (which toml's own message used to quote
/// with its whole source line).
#[test]
fn a_mistake_on_a_secrets_line_never_shows_the_secret() {
    let _turn = turn::shared();
    let cases = [
        (
            "[server]\nsecret_tokn = \"hunter2-server\"\n".to_string(),
            "line 2, column 1: server.secret_tokn: unknown field `secret_tokn`",
        ),
        (
            channel("url = 'https://cliq.zoho.com/x'\nzapikeyy = \"1001.hunter2-channel\""),
            "line 6, column 1: channels[0].zapikeyy: unknown field `zapikeyy`",
        ),
        (
            gitlab("access_tokn = \"glpat-hunter2-gitlab\""),
            "line 5, column 1: gitlab.access_tokn: unknown field `access_tokn`",
        ),
        (
            format!("{SERVER}secret_tokens = \"hunter2-list\"\n"),
            "line 3, column 17: server.secret_tokens: invalid type: string, expected a sequence",
        ),
        (
            extension(&format!("{EXT_OK}\noauth_tokn = 'hunter2-extension'")),
            "line 10, column 1: cliq_extension.oauth_tokn: unknown field `oauth_tokn`",
        ),
        (
            outbox("url = 'postgres://u@h/d'\npasword = 'hunter2-outbox'"),
            "line 5, column 1: outbox.pasword: unknown field `pasword`",
        ),
        (
            channel("kind = 'webhook'\nurl = 'https://example.com/in'\nsigning_secret = 7\nsigning_secret = 'whsec_hunter2'"),
            "line 8, column 1: duplicate key",
        ),
    ];
    for (text, want) in cases {
        let msg = load_error(&text);
        assert!(
            msg.starts_with(&format!("{CONFIG}: {want}")),
            "{text}\n→ {msg}"
        );
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }
}

/// What an operator sees: `check` and `serve` on a config with a typo on its token's line.
#[test]
fn check_and_serve_name_the_key_but_not_the_secret() {
    let _turn = turn::shared();
    let dir = crate::support::temp::TempDir::new("config-errors");
    let cfg = dir.write(
        "config.toml",
        "[server]\nlisten = '127.0.0.1:0'\nsecret_token = 't'\n[[channels]]\nname = 'c'\n\
         url = 'https://cliq.zoho.com/api/v2/channelsbyname/c/message'\n\
         zapikeyy = '1001.hunter2-cli'\n",
    );
    for command in ["check", "serve"] {
        let out = crate::support::cli::run([
            std::ffi::OsStr::new(command),
            std::ffi::OsStr::new("--config"),
            cfg.as_os_str(),
        ]);
        assert_eq!(out.code, Some(1), "{command}: {out:?}");
        let all = format!("{}{}", out.stdout, out.stderr);
        assert!(
            all.contains("line 7, column 1: channels[0].zapikeyy: unknown field `zapikeyy`"),
            "{command}: {all}"
        );
        assert!(all.contains(&cfg.display().to_string()), "{command}: {all}");
        assert!(!all.contains("hunter2"), "{command}: {all}");
    }
}
