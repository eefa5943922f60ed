//! gitlab-chat-bridge: GitLab webhooks in, Zoho Cliq messages out.
//!
//! Layers (imports point down only; see `docs/ARCHITECTURE.md`):
//! - 0: [`event`] (payload → typed event), [`deliver`] (outbox, retries, posting), [`shutdown`]
//! - 0: [`metrics`] (counters and `GET /metrics`), [`systemd`] (service notifications)
//! - 0: [`gitlab`] (GitLab REST client and hook reconciling, for `setup` and `check`)
//! - 1: [`config`] (file → validated settings), [`render`] (event → Cliq message)
//! - 2: [`route`] (event × channels → deliveries)
//! - 3: [`server`] (HTTP), [`cli`] (argument types)
//! - 4: [`commands`] (one composition root per subcommand)

pub mod cli;
pub mod commands;
pub mod config;
pub mod deliver;
pub mod event;
pub mod gitlab;
pub mod metrics;
pub mod render;
pub mod route;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod systemd;
