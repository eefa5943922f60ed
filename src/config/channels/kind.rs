//! `channels[].kind`: every kind of channel, its name in the config, its default rate and
//! whether its URL is a credential. A new kind starts here (and in the family of its URL rules:
//! `zoho`, `webhook` or a file of its own, chosen in `channels/mod.rs`).

/// Default per-credential post budget per minute (Cliq locks a user out above ~50).
pub const DEFAULT_RATE_PER_MINUTE: u32 = 45;

/// Default `rate_per_minute` of a console channel: no limit (a terminal has no quota, and a
/// backlog printed at once is still readable), so no digests either unless one is set.
pub const CONSOLE_RATE_PER_MINUTE: u32 = u32::MAX;

/// What a channel posts to (`channels[].kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum ChannelKind {
    /// A Zoho Cliq channel, chat, bot incoming or extension incoming URL (the default).
    #[default]
    Cliq,
    /// A Zoho CRM / Creator / Cliq REST API function URL called with a `zapikey`.
    ZohoFunction,
    /// A Slack incoming webhook (Block Kit).
    Slack,
    /// A Mattermost incoming webhook (`text` + `attachments`).
    Mattermost,
    /// A Microsoft Teams Workflows (Power Automate) webhook (an Adaptive Card).
    Teams,
    /// A Google Chat space webhook (`cardsV2`, a thread per object).
    GoogleChat,
    /// A Discord webhook (`embeds`).
    Discord,
    /// A generic JSON POST, signed per Standard Webhooks when `signing_secret` is set.
    Webhook,
    /// The daemon's standard output: each message drawn as text (`render::terminal`), for trying
    /// the bridge without a Cliq account. It takes no url or credential.
    Console,
}

impl ChannelKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [ChannelKind; 9] = [
        ChannelKind::Cliq,
        ChannelKind::ZohoFunction,
        ChannelKind::Slack,
        ChannelKind::Mattermost,
        ChannelKind::Teams,
        ChannelKind::GoogleChat,
        ChannelKind::Discord,
        ChannelKind::Webhook,
        ChannelKind::Console,
    ];

    /// The name used in the config (`kind = "google_chat"`) and in template folders.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Cliq => "cliq",
            ChannelKind::ZohoFunction => "zoho_function",
            ChannelKind::Slack => "slack",
            ChannelKind::Mattermost => "mattermost",
            ChannelKind::Teams => "teams",
            ChannelKind::GoogleChat => "google_chat",
            ChannelKind::Discord => "discord",
            ChannelKind::Webhook => "webhook",
            ChannelKind::Console => "console",
        }
    }

    /// The kind of this name.
    pub fn from_name(name: &str) -> Option<ChannelKind> {
        ChannelKind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    /// Default `rate_per_minute`: a little under each vendor's documented limit (see README).
    pub fn default_rate_per_minute(self) -> u32 {
        match self {
            ChannelKind::Cliq | ChannelKind::ZohoFunction => DEFAULT_RATE_PER_MINUTE,
            ChannelKind::Slack => 60,
            ChannelKind::Mattermost => 60,
            ChannelKind::Teams => 30,
            ChannelKind::GoogleChat => 60,
            ChannelKind::Discord => 30,
            ChannelKind::Webhook => 600,
            ChannelKind::Console => CONSOLE_RATE_PER_MINUTE,
        }
    }

    /// Whether the whole webhook URL is the credential (it is then a [`Secret`](crate::secret::Secret), never logged).
    pub fn secret_url(self) -> bool {
        matches!(
            self,
            ChannelKind::Slack
                | ChannelKind::Mattermost
                | ChannelKind::Teams
                | ChannelKind::GoogleChat
                | ChannelKind::Discord
                | ChannelKind::Webhook
        )
    }
}
