//! The small GitLab REST client used by `setup` and `check`, and the pure rules deciding what to
//! do with a project's hooks.
//!
//! - [`client`]: requests with `PRIVATE-TOKEN`, `Link`-header (keyset) pagination, 429 and 5xx
//!   handling. The token is exposed only when a request is built.
//! - [`error`]: [`GitlabError`], one variant per cause (401, 403, 404, 400/422, 429, 5xx,
//!   network), each message naming what was being done and on which project.
//! - [`hooks`]: hook event kinds, the hook the bridge wants, URL matching, and [`reconcile`]
//!   (pure: hooks + desired hook → plan).
//! - [`merge_requests`]: open merge requests, their approvals and head pipeline, and fetching
//!   them for a review reminder with bounded concurrency and a time budget.
//! - [`reviews`]: which of them a review reminder lists, grouped by reviewer (pure).
//!
//! Layer 0: knows nothing of events, templates or delivery; it takes [`crate::secret::Secret`]
//! for the tokens, like `deliver` does.

pub mod client;
pub mod error;
pub mod hooks;
pub mod merge_requests;
pub mod reviews;

pub use client::{Client, ProjectRef, RetryPolicy, Visible};
pub use error::GitlabError;
pub use hooks::{
    normalize_hook_url, reconcile, same_hook_url, DesiredHook, HookEvent, HookLogEntry, Mode, Op,
    Project, ProjectHook, User,
};
