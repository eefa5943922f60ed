//! The `gitlab-chat-bridge` binary: parse arguments, set up logging, run one subcommand, and turn
//! its outcome into an exit code (0 ok, 1 problems or failure, 2 bad usage, from clap).

use clap::Parser;
use gitlab_chat_bridge::cli::{Cli, Command};
use gitlab_chat_bridge::commands;
use gitlab_chat_bridge::config::LogFormat;
use std::process::ExitCode;

/// mimalloc: the receive path allocates many small JSON values per request, and glibc's malloc
/// took a quarter of its CPU time under load (see the README's performance section).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `RUST_LOG` (default `info`). Handlebars' own debug lines print payload values, so they stay
/// off unless `RUST_LOG` names handlebars explicitly.
fn log_filter() -> tracing_subscriber::EnvFilter {
    let spec = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    let spec = if spec.contains("handlebars") {
        spec
    } else {
        format!("{spec},handlebars=warn")
    };
    tracing_subscriber::EnvFilter::try_new(&spec)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,handlebars=warn"))
}

fn main() -> ExitCode {
    // mimalloc asks for transparent huge pages (2 MiB) for its segments, so a few small
    // allocations kept 12 MiB resident: 30 MiB idle instead of 19. Refused (an old kernel, a
    // seccomp filter): only memory is lost.
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let cli = Cli::parse();
    let format = match &cli.command {
        Command::Serve(a) => commands::serve::log_format(&a.config),
        _ => LogFormat::Text,
    };
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(log_filter())
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        // One JSON object per line: timestamp, level, target and the event's fields at the top.
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_env_filter(log_filter())
            .with_writer(std::io::stderr)
            .init(),
    }
    let result = match &cli.command {
        Command::Serve(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(commands::serve::run(&a.config))),
        Command::Check(a) => commands::check::run(&a.config),
        Command::Render(a) => commands::render::run(a),
        Command::Outbox(a) => commands::outbox::run(a),
        Command::Events(a) => commands::events::run(a),
        Command::Subscriptions(a) => commands::subscriptions::run(a),
        Command::CatchUp(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(commands::catchup::run(a))),
        Command::Reminders(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(commands::reminders::run(a))),
        Command::Setup(a) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(commands::setup::run(a))),
    };
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
