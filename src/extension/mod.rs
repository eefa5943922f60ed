//! The Cliq extension's commands and buttons: what a verified invocation (`server` checked the
//! signature, the timestamp and replays) asks, and the card that answers it.
//!
//! `/gitlab help | subscribe | unsubscribe | list | mute | unmute | status | setup | reviews |
//! remind`, the
//! *Mute* button of merge request and issue cards, and the *Retry* button of dead-letter
//! alerts (admins only; the dead letter is made due again through the outbox's writer).
//! Subscriptions and mutes are chat rules in the outbox store (written through its writer
//! thread, read by the router stage with every batch); a chat's first subscription starts its
//! delivery worker. Every refusal (another organisation or data centre, a path outside
//! `allowed_projects` or hidden from the GitLab token, a non-admin's `setup` or *Retry*, an
//! argument list too long) is answered with a card that says why, and changes nothing. Whoever
//! changed what is logged with their Cliq user id. Every invocation is answered within
//! `answer_within_ms`, even while GitLab hangs or is down (see `answers`).
//!
//! The files, each importing only those listed before it:
//! - `invocation`: reading an invocation (caller, command words or button key) and checking the
//!   words (paths, subjects);
//! - `answers`: [`Answer`], the shared cards, and answering in time (`Answers::in_time`, the
//!   `Deadline` GitLab calls are held to, follow-ups through the `response_url`);
//! - one file per command family: `help`, `subscribe` (subscribe, unsubscribe, list), `mute`
//!   (mute, unmute), `status`, `setup`, `reviews` (the review reminder's card, now), `remind` (this chat's review
//!   reminder, a chat rule `serve` runs on schedule);
//! - `buttons`: the card buttons (*Mute*, through `mute`; *Retry*).
//!
//! Adding a subcommand (say `/gitlab reviews`): write `reviews.rs` with
//! `pub(super) async fn reviews(ctx: Arc<Context>, caller: Caller, args: Vec<String>,
//! deadline: Deadline) -> cliq::Message` if it calls GitLab — every GitLab call through
//! `deadline.gitlab(…)`, its failure answered with `answers::gitlab_failed` — or
//! `(ctx: &Context, caller: &Caller, args: &[String])` if it does not; declare the module
//! below; add its word to the `match` in `Extension::command` (through `self.in_time(…)` with
//! a `Pending` card when it calls GitLab); add its line to `help.rs`; and add it to the
//! per-command table of `tests/extension/deadline.rs`.

mod answers;
mod buttons;
mod help;
mod invocation;
mod mute;
mod remind;
mod reviews;
mod setup;
mod status;
mod subscribe;

pub use answers::Answer;
pub use invocation::{MAX_ARGUMENTS_CHARS, MAX_PATH_CHARS};
pub use mute::MAX_MUTE;

use crate::config::{CliqExtensionConfig, Config};
use crate::deliver::durable::DurableOutbox;
use crate::deliver::sender::Sender;
use crate::deliver::store::ChatRule;
use crate::gitlab::{self, Client, DesiredHook};
use crate::render::cliq::{self, plain};
use crate::route;
use answers::{Answers, Deadline, Pending};
use invocation::{Caller, Request};
use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Starts the delivery worker of a chat (its id), if it has none yet.
pub type ChatStarter = Arc<dyn Fn(&str) + Send + Sync>;

/// The extension's backend.
pub struct Extension {
    ctx: Arc<Context>,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension").finish_non_exhaustive()
    }
}

/// What every command may use; shared with the work a command leaves running.
struct Context {
    cfg: CliqExtensionConfig,
    gitlab: Client,
    /// The hook `setup` installs (`None` without `gitlab.hook_url`).
    desired: Option<DesiredHook>,
    outbox: DurableOutbox,
    chats: ChatStarter,
    answers: Answers,
    /// The templates chats' cards are rendered with (`/gitlab reviews`).
    routes: route::SharedRoutes,
    /// `[gitlab] url`, for links to GitLab's pages.
    gitlab_url: String,
    /// `[templates] timezone`: a chat reminder's zone unless it names one.
    timezone: chrono_tz::Tz,
}

impl Extension {
    /// From the configuration (`[cliq_extension]` and `[gitlab]`); `None` without the extension.
    pub fn new(
        cfg: &Config,
        outbox: DurableOutbox,
        chats: ChatStarter,
        routes: route::SharedRoutes,
    ) -> anyhow::Result<Option<Extension>> {
        let Some(x) = &cfg.cliq_extension else {
            return Ok(None);
        };
        let g = cfg
            .gitlab
            .as_ref()
            .ok_or_else(|| anyhow::anyhow!("cliq_extension needs [gitlab]"))?;
        let token = g
            .token
            .clone()
            .ok_or_else(|| anyhow::anyhow!("cliq_extension needs gitlab.token"))?;
        let gitlab = Client::new(&g.url, token, gitlab::RetryPolicy::default())?;
        let desired = g.hook_url.clone().map(|url| DesiredHook {
            url,
            token: cfg.server.secret_token.clone(),
            signing_token: cfg.server.signing_token.clone(),
            events: g.events.clone(),
            push_events_branch_filter: g.push_events_branch_filter.clone(),
            enable_ssl_verification: g.enable_ssl_verification,
        });
        let answers = Answers {
            within: x.answer_within,
            api_url: x.api.url.clone(),
            sender: Sender::new(cfg.retry.timeout)?,
        };
        Ok(Some(Extension {
            ctx: Arc::new(Context {
                cfg: x.clone(),
                gitlab,
                desired,
                outbox,
                chats,
                answers,
                routes,
                gitlab_url: g.url.clone(),
                timezone: cfg.templates.timezone,
            }),
        }))
    }

    /// Answers one verified invocation, within `answer_within_ms`.
    pub async fn invoke(&self, inv: &Value) -> Answer {
        if let Some(refusal) = invocation::foreign(&self.ctx.cfg, inv) {
            tracing::warn!(%refusal, "refused a Cliq invocation");
            return Answer::with(403, cliq::answer("Refused", &plain(&refusal), None));
        }
        match invocation::read(inv) {
            (caller, Request::Command(arguments)) => self.command(caller, &arguments).await,
            (caller, Request::Button(key)) => {
                Answer::ok(buttons::press(&self.ctx, &caller, &key).await)
            }
            (_, Request::Other(kind)) => Answer::ok(cliq::answer(
                "Not handled",
                &format!(
                    "gitlab-chat-bridge answers the /gitlab command and its card buttons, not {}.",
                    plain(kind.as_deref().unwrap_or("this"))
                ),
                None,
            )),
        }
    }

    /// `/gitlab <subcommand> …`: the dispatch.
    async fn command(&self, caller: Caller, arguments: &str) -> Answer {
        let words = match invocation::words(arguments) {
            Ok(w) => w,
            Err(m) => return Answer::ok(m),
        };
        let Some((sub, rest)) = words.split_first() else {
            return Answer::ok(help::help(Some("You gave no subcommand.")));
        };
        let ctx = &self.ctx;
        let message = match sub.to_ascii_lowercase().as_str() {
            "help" => help::help(None),
            // These call GitLab: answered in time, the result following if need be.
            "subscribe" => {
                return self
                    .in_time(caller, rest, subscribe::PENDING, subscribe::subscribe)
                    .await
            }
            "setup" => {
                return self
                    .in_time(caller, rest, setup::PENDING, setup::setup)
                    .await
            }
            "reviews" => {
                return self
                    .in_time(caller, rest, reviews::PENDING, reviews::reviews)
                    .await
            }
            "remind" => {
                return self
                    .in_time(caller, rest, remind::PENDING, remind::remind)
                    .await
            }
            // These use only the store.
            "unsubscribe" => subscribe::unsubscribe(ctx, &caller, rest).await,
            "list" => subscribe::list(ctx, &caller).await,
            "mute" => mute::mute(ctx, &caller, rest).await,
            "unmute" => mute::unmute(ctx, &caller, rest).await,
            "status" => status::status(ctx).await,
            _ => help::help(Some(&format!(
                "I did not understand `{}`.",
                plain(&invocation::clip(sub, 40))
            ))),
        };
        Answer::ok(message)
    }

    /// Runs a command that calls GitLab through [`Answers::in_time`].
    async fn in_time<F, Fut>(
        &self,
        caller: Caller,
        args: &[String],
        pending: Pending<'static>,
        run: F,
    ) -> Answer
    where
        F: FnOnce(Arc<Context>, Caller, Vec<String>, Deadline) -> Fut,
        Fut: Future<Output = cliq::Message> + Send + 'static,
    {
        let ctx = Arc::clone(&self.ctx);
        let url = caller.response_url.clone();
        let args = args.to_vec();
        self.ctx
            .answers
            .in_time(url.as_deref(), pending, move |deadline| {
                run(ctx, caller, args, deadline)
            })
            .await
    }
}

impl Context {
    /// Whether the caller is one of `cliq_extension.admins` (by user id or e-mail).
    fn is_admin(&self, caller: &Caller) -> bool {
        self.cfg
            .admins
            .iter()
            .any(|a| *a == caller.user_id.to_lowercase() || Some(a) == caller.email.as_ref())
    }

    /// The caller's chat id; the refusal when Cliq sent none (or not a chat id).
    fn chat<'a>(&self, caller: &'a Caller) -> Result<&'a str, cliq::Message> {
        let id = caller.chat_id.as_deref().filter(|c| route::is_chat_id(c));
        id.ok_or_else(|| {
            cliq::answer(
                "No chat",
                "Cliq did not say which chat this came from (or not as a chat id); nothing was done.",
                None,
            )
        })
    }

    /// Whether `path` is one chats may subscribe to; the refusal otherwise.
    fn allowed(&self, path: &str) -> Result<(), cliq::Message> {
        let lower = path.to_lowercase();
        if self
            .cfg
            .allowed_projects
            .iter()
            .any(|g| route::glob(&g.to_lowercase(), &lower))
        {
            Ok(())
        } else {
            Err(cliq::answer(
                "Not allowed",
                &format!(
                    "`{}` is not among the projects this bridge serves (`allowed_projects`); nothing was done.",
                    plain(path)
                ),
                None,
            ))
        }
    }

    /// The rules of `chat`; the store failure's card otherwise.
    async fn rules_of(&self, chat: &str) -> Result<Vec<ChatRule>, cliq::Message> {
        match self.outbox.chat_rules().await {
            Ok(rules) => Ok(rules.into_iter().filter(|r| r.chat == chat).collect()),
            Err(e) => Err(answers::store_failed(&e.to_string())),
        }
    }
}

/// Milliseconds since the Unix epoch (0 before it).
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
