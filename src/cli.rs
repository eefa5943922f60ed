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
    #[arg(long, value_name = "PAYLOAD.json")]
    pub event: PathBuf,
    /// The `X-Gitlab-Event` header it came with (default: inferred from the body).
    #[arg(long, value_name = "HEADER")]
    pub event_header: Option<String>,
    /// Only this channel; prints the bare body.
    #[arg(long, value_name = "NAME")]
    pub channel: Option<String>,
}
