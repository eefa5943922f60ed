//! gitlab-chat-bridge: GitLab webhooks in, Zoho Cliq messages out.
//!
//! Layers (imports point down only; the table in `docs/ARCHITECTURE.md` is the truth, and
//! `tests/tidy.rs` enforces it):
//! - 0: [`secret`] (wrapped credentials), [`signing`] (signature primitives), [`duration`] (`30s`/`2h`/`7d`), [`schedule`] (`weekdays 09:30` in a time zone), [`metrics`] (counters and `GET /metrics`), [`shutdown`],
//!   [`systemd`] (service notifications)
//! - 1: [`event`] (payload → typed event), [`deliver`] (outbox, retries, posting),
//!   [`gitlab`] (GitLab REST client and hook reconciling, for `setup` and `check`)
//! - 2: [`config`] (file → validated settings), [`render`] (event → Cliq message)
//! - 3: [`route`] (event × channels → deliveries)
//! - 4: [`server`] (HTTP), [`cli`] (argument types)
//! - 5: [`commands`] (one composition root per subcommand)

pub mod cli;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod duration;
pub mod event;
pub mod extension;
pub mod gitlab;
pub mod metrics;
pub mod pipeline;
pub mod preview;
pub mod render;
pub mod route;
pub mod schedule;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod signing;
pub mod systemd;
