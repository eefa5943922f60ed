//! Command-line types (clap): the raw arguments, before any validation.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Turns GitLab webhooks into Zoho Cliq messages.
#[derive(Debug, Parser)]
#[command(name = "gitlab-chat-bridge", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the webhook receiver and delivery workers.
    Serve(ConfigArg),
    /// Validate the configuration and every template; exit 1 on problems.
    Check(ConfigArg),
    /// Print the message body `serve` would post for one payload, per channel.
    Render(RenderArgs),
    /// Create, update or remove the bridge's webhook on GitLab projects.
    Setup(SetupArgs),
    /// Inspect the durable outbox: counts, dead letters, retry, purge.
    Outbox(OutboxArgs),
    /// Stored webhook deliveries: list, show, replay through the current templates.
    Events(EventsArgs),
    /// Chats' own subscriptions and mutes (made with the Cliq extension's `/gitlab` command).
    Subscriptions(SubscriptionsArgs),
    /// Recover deliveries GitLab failed to make (read from each managed hook's delivery log).
    CatchUp(CatchUpArgs),
    /// Review reminders (`[[reminders]]`): list them with their next run, or run one now.
    Reminders(RemindersArgs),
}

/// Arguments of `reminders`.
#[derive(Debug, Args)]
pub struct RemindersArgs {
    /// Configuration file (its `[[reminders]]`, `[gitlab]` and `[outbox]`).
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub action: RemindersAction,
}

/// The `reminders` actions.
#[derive(Debug, Subcommand)]
pub enum RemindersAction {
    /// Each reminder with its schedule and its next run in its time zone.
    List,
    /// Reads GitLab now and queues the reminder's card for its channels through the outbox
    /// (a running `serve` posts it); nothing is queued when no merge request waits.
    Run {
        /// The reminder's `name`.
        name: String,
        /// Print each channel's body and queue nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Arguments of `subscriptions`.
#[derive(Debug, Args)]
pub struct SubscriptionsArgs {
    /// Configuration file (its `[outbox] path` names the store).
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub action: SubscriptionsAction,
}

/// The `subscriptions` actions.
#[derive(Debug, Subcommand)]
pub enum SubscriptionsAction {
    /// Every chat's subscriptions and mutes, as a table.
    List,
    /// Every subscription and mute as JSON, on standard output (for `import`).
    Export,
    /// Adds (or replaces, by chat, kind and path) the subscriptions and mutes of a JSON file
    /// written by `export`: all of them, or none when one is invalid.
    Import {
        /// The JSON file.
        file: std::path::PathBuf,
    },
}

/// Arguments of `catch-up`.
#[derive(Debug, Args)]
pub struct CatchUpArgs {
    /// Configuration file (its `[gitlab]` section and `[outbox] path`).
    #[command(flatten)]
    pub config: ConfigArg,
    /// How far back to look (`30s`, `15m`, `2h`, `7d`; GitLab keeps 7 days of log): each
    /// hook's log is read back to the last delivery the bridge received before then.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub since: std::time::Duration,
    /// A project ID or full path (`group/project`); repeatable. Default: every project where
    /// the token's user is Maintainer.
    #[arg(long, value_name = "ID_OR_PATH")]
    pub project: Vec<String>,
    /// Print what would be recovered and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Arguments of `events`.
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// Configuration file (its `[outbox] path` names the store).
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub action: EventsAction,
}

/// The `events` actions.
#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Stored events, newest first.
    List {
        /// Only this kind (`issue`, `merge_request`, `pipeline`, …).
        #[arg(long)]
        kind: Option<String>,
        /// Only projects whose path contains this.
        #[arg(long)]
        project: Option<String>,
        /// Only events received within this duration (`30s`, `15m`, `2h`, `7d`).
        #[arg(long, value_parser = parse_duration)]
        since: Option<std::time::Duration>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// One event: its headers, its body, and what it was routed to with each delivery's status.
    Show {
        /// The event id (from `events list`).
        id: i64,
    },
    /// Route and render stored events again through the current templates and queue the
    /// messages: a new delivery, deduplicated against nothing.
    Replay {
        /// The event id.
        #[arg(required_unless_present = "since", conflicts_with = "since")]
        id: Option<i64>,
        /// Every event received within this duration (`30s`, `15m`, `2h`, `7d`).
        #[arg(long, value_parser = parse_duration)]
        since: Option<std::time::Duration>,
        /// Send to this channel only (even one that does not subscribe to the event).
        #[arg(long, value_name = "NAME")]
        channel: Option<String>,
        /// Print what would be posted; store and post nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Arguments of `outbox`.
#[derive(Debug, Args)]
pub struct OutboxArgs {
    /// Configuration file (its `[outbox] path` names the store).
    #[command(flatten)]
    pub config: ConfigArg,
    /// What to do.
    #[command(subcommand)]
    pub action: OutboxAction,
}

/// The `outbox` actions.
#[derive(Debug, Subcommand)]
pub enum OutboxAction {
    /// Pending, retrying and dead messages per channel, and the oldest waiting one.
    Stats,
    /// Messages not yet posted, newest first.
    List {
        /// Only dead letters.
        #[arg(long)]
        dead: bool,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Make dead letters pending again.
    Retry {
        /// The message id (from `outbox list`).
        #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
        id: Option<i64>,
        /// Every dead letter.
        #[arg(long)]
        all_dead: bool,
    },
    /// Delete dead letters received before a given age.
    Purge {
        /// Only dead letters are ever purged; this flag says so explicitly.
        #[arg(long, required = true)]
        dead: bool,
        /// Age such as `7d`, `12h`, `30m`, `45s` (default 7d).
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        older_than: std::time::Duration,
    },
}

/// Parses a duration: a whole number and one unit, `30s`, `15m`, `2h` or `7d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    crate::duration::parse(s)
        .ok_or_else(|| format!("{s:?} is not a duration like 30s, 15m, 2h or 7d"))
}

/// The configuration file option shared by every subcommand.
#[derive(Debug, Args)]
pub struct ConfigArg {
    /// Configuration file (TOML).
    #[arg(
        long,
        short = 'c',
        env = "GITLAB_CHAT_BRIDGE_CONFIG",
        value_name = "FILE"
    )]
    pub config: PathBuf,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Configuration file.
    #[command(flatten)]
    pub config: ConfigArg,
    /// A GitLab webhook payload (JSON file).
    #[arg(
        long,
        value_name = "PAYLOAD.json",
        required_unless_present_any = ["all_fixtures", "event_id"]
    )]
    pub event: Option<PathBuf>,
    /// A stored event (from `events list`), with the header it came with.
    #[arg(long, value_name = "ID", conflicts_with_all = ["event", "all_fixtures"])]
    pub event_id: Option<i64>,
    /// Render every `*.json` in a folder (headers from its INDEX.tsv when present), flagging
    /// empty fields; exit 1 on any problem.
    #[arg(long, value_name = "DIR", conflicts_with = "event")]
    pub all_fixtures: Option<PathBuf>,
    /// The `X-Gitlab-Event` header it came with (default: inferred from the body).
    #[arg(long, value_name = "HEADER")]
    pub event_header: Option<String>,
    /// Only this channel; prints the bare body.
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
}

/// Arguments of `setup`. At least one of `--project`, `--group`, `--all-member-projects`.
#[derive(Debug, Args)]
#[command(group(
    clap::ArgGroup::new("selection")
        .required(true)
        .multiple(true)
        .args(["project", "group", "all_member_projects"])
))]
pub struct SetupArgs {
    /// Configuration file (its `[gitlab]` section and `server.secret_token`).
    #[command(flatten)]
    pub config: ConfigArg,
    /// Print the plan and stop: send no changing request.
    #[arg(long)]
    pub dry_run: bool,
    /// A project ID or full path (`group/project`); repeatable.
    #[arg(long, value_name = "ID_OR_PATH")]
    pub project: Vec<String>,
    /// Every project of this group and its subgroups (ID or full path); repeatable.
    #[arg(long, value_name = "PATH")]
    pub group: Vec<String>,
    /// Every project where the token's user is Maintainer or Owner.
    #[arg(long)]
    pub all_member_projects: bool,
    /// Delete the bridge's hooks (and no other) instead of creating or updating them.
    #[arg(long)]
    pub remove: bool,
    /// Also delete duplicates of the bridge's hook.
    #[arg(long)]
    pub yes: bool,
    /// Re-enable the bridge's hooks GitLab disabled after failures (by a test request, which
    /// GitLab answers by re-enabling a hook whose test succeeds).
    #[arg(long)]
    pub repair: bool,
}
