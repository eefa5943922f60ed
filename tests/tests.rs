//! Every integration test, in one binary (one link step, one place for helpers, as ripgrep's
//! `tests/tests.rs`): one module per area, and `support` for what they share. Run one area with
//! `cargo test --test tests AREA::` (e.g. `cargo test --test tests render::`), or everything with
//! `scripts/test.sh`. Each module's doc says what it covers. As they share one process, every
//! test first takes its turn (`support::turn`): the durability tests run alone, the others side
//! by side.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod cliq_schema;
mod config_errors;
mod console;
mod conversations;
mod conversations_cliq;
mod conversations_crash;
mod conversations_discord;
mod conversations_mattermost;
mod conversations_slack;
mod delivery;
mod docs;
mod durability;
mod e2e;
mod events;
mod extension;
mod kinds;
mod matrix;
mod parity;
mod postgres;
mod preview;
mod properties;
mod reliability;
mod reload;
mod reminders;
mod render;
mod replicas;
mod routes;
mod security;
mod setup;
mod targets;
mod telegram;
mod tidy;
