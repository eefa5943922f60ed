//! The Cliq extension's commands and buttons: what a verified invocation (`server` checked the
//! signature, the timestamp and replays) asks, and the card that answers it.
//!
//! `/gitlab help | subscribe | unsubscribe | list | mute | unmute | status | setup`, the
//! *Mute* button of merge request and issue cards, and the *Retry* button of dead-letter
//! alerts (admins only; the dead letter is made due again through the outbox's writer).
//! Subscriptions and mutes are chat rules in the outbox store (written through its writer
//! thread, read by the router stage with every batch); a chat's first subscription starts its
//! delivery worker. Every refusal (another organisation or data centre, a path outside
//! `allowed_projects` or hidden from the GitLab token, a non-admin's `setup` or *Retry*, an
//! argument list too long) is answered with a card that says why, and changes nothing. Whoever
//! changed what is logged with their Cliq user id.

use crate::config::{CliqExtensionConfig, Config};
use crate::deliver::durable::DurableOutbox;
use crate::deliver::sender::{Attempt, Sender};
use crate::deliver::store::{ChatRule, RuleChange};
use crate::deliver::{Auth, Endpoint};
use crate::duration;
use crate::gitlab::{self, Client, DesiredHook, GitlabError, Mode, Op, ProjectRef, Visible};
use crate::render::cliq::{self, plain, Table};
use crate::route::{self, SubscriptionSpec, MUTE, SUBSCRIPTION};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Longest `arguments` text read; a longer one is refused whole.
pub const MAX_ARGUMENTS_CHARS: usize = 1_000;
/// Longest project or group path accepted (GitLab's own limit is 255 per segment).
pub const MAX_PATH_CHARS: usize = 255;
/// Longest mute accepted: `for` up to 90 days.
pub const MAX_MUTE: Duration = Duration::from_secs(90 * 86_400);

/// Starts the delivery worker of a chat (its id), if it has none yet.
pub type ChatStarter = Arc<dyn Fn(&str) + Send + Sync>;

/// What to answer Cliq: an HTTP status and the message (a Cliq message object).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// HTTP status: 200, or 403 for another organisation or data centre.
    pub status: u16,
    /// The message.
    pub body: Value,
}

impl Answer {
    fn ok(message: cliq::Message) -> Answer {
        Answer {
            status: 200,
            body: Value::Object(message.as_map().clone()),
        }
    }
}

/// The extension's backend.
pub struct Extension {
    cfg: CliqExtensionConfig,
    gitlab: Client,
    desired: Option<DesiredHook>,
    outbox: DurableOutbox,
    sender: Sender,
    chats: ChatStarter,
}

impl std::fmt::Debug for Extension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Extension").finish_non_exhaustive()
    }
}

/// Who invoked what, from the invocation's `params`.
#[derive(Debug, Clone, Default)]
struct Caller {
    user_id: String,
    email: Option<String>,
    chat_id: Option<String>,
    response_url: Option<String>,
}

impl Extension {
    /// From the configuration (`[cliq_extension]` and `[gitlab]`); `None` without the extension.
    pub fn new(
        cfg: &Config,
        outbox: DurableOutbox,
        chats: ChatStarter,
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
        Ok(Some(Extension {
            cfg: x.clone(),
            gitlab,
            desired,
            outbox,
            sender: Sender::new(cfg.retry.timeout)?,
            chats,
        }))
    }

    /// Answers one verified invocation.
    pub async fn invoke(&self, inv: &Value) -> Answer {
        let params = &inv["params"];
        if let Some(refusal) = self.foreign(params) {
            tracing::warn!(%refusal, "refused a Cliq invocation");
            return Answer {
                status: 403,
                body: Value::Object(
                    cliq::answer("Refused", &plain(&refusal), None)
                        .as_map()
                        .clone(),
                ),
            };
        }
        let text = |v: &Value| v.as_str().map(str::to_string).filter(|s| !s.is_empty());
        let caller = Caller {
            user_id: text(&params["access"]["user_id"])
                .or_else(|| text(&params["user"]["id"]))
                .unwrap_or_else(|| "unknown".into()),
            email: text(&params["user"]["email"]).map(|e| e.to_lowercase()),
            chat_id: text(&params["access"]["chat_id"]).or_else(|| text(&params["chat"]["id"])),
            response_url: text(&inv["response_url"]),
        };
        match inv["type"].as_str() {
            Some("command") => {
                let arguments = match &params["arguments"] {
                    Value::String(s) => s.clone(),
                    _ => String::new(),
                };
                self.command(&caller, &arguments).await
            }
            Some("function") => {
                let key = text(&params["arguments"]["key"])
                    .or_else(|| text(&params["target"]["key"]))
                    .unwrap_or_default();
                self.button(&caller, &key).await
            }
            other => Answer::ok(cliq::answer(
                "Not handled",
                &format!(
                    "gitlab-chat-bridge answers the /gitlab command and its card buttons, not {}.",
                    plain(other.unwrap_or("this"))
                ),
                None,
            )),
        }
    }

    /// Why an invocation from another organisation or data centre is refused, if it is.
    fn foreign(&self, params: &Value) -> Option<String> {
        if let Some(dc) = &self.cfg.data_center {
            let got = params["environment"]["data_center"].as_str().unwrap_or("");
            if !got.eq_ignore_ascii_case(dc) {
                return Some(format!(
                    "this bridge serves the {dc} data centre, not {:?}",
                    got
                ));
            }
        }
        if let Some(org) = &self.cfg.organization_id {
            let got = params["access"]["organization"]["id"]
                .as_str()
                .or_else(|| params["user"]["organization_id"].as_str())
                .unwrap_or("");
            if got != org {
                return Some("this bridge serves another Cliq organisation".into());
            }
        }
        None
    }

    async fn command(&self, caller: &Caller, arguments: &str) -> Answer {
        if arguments.chars().count() > MAX_ARGUMENTS_CHARS {
            return Answer::ok(cliq::answer(
                "Too long",
                &format!(
                    "The arguments are longer than {MAX_ARGUMENTS_CHARS} characters; nothing was done."
                ),
                None,
            ));
        }
        let words: Vec<&str> = arguments.split_whitespace().collect();
        let Some((&sub, rest)) = words.split_first() else {
            return help(Some("You gave no subcommand."));
        };
        let message = match sub.to_ascii_lowercase().as_str() {
            "help" => return help(None),
            "subscribe" => self.subscribe(caller, rest).await,
            "unsubscribe" => self.unsubscribe(caller, rest).await,
            "list" => self.list(caller).await,
            "mute" => self.mute(caller, rest).await,
            "unmute" => self.unmute(caller, rest).await,
            "status" => self.status().await,
            "setup" => return self.setup(caller, rest).await,
            _ => {
                return help(Some(&format!(
                    "I did not understand `{}`.",
                    plain(&clip(sub, 40))
                )))
            }
        };
        Answer::ok(message)
    }

    async fn button(&self, caller: &Caller, key: &str) -> Answer {
        if let Some(subject) = key.strip_prefix(cliq::MUTE_KEY_PREFIX) {
            return Answer::ok(self.mute(caller, &[subject]).await);
        }
        if let Some(id) = key.strip_prefix(cliq::RETRY_KEY_PREFIX) {
            return Answer::ok(self.retry(caller, id).await);
        }
        Answer::ok(cliq::answer(
            "Unknown button",
            "This button is not one of gitlab-chat-bridge's; nothing was done.",
            None,
        ))
    }

    fn is_admin(&self, caller: &Caller) -> bool {
        self.cfg
            .admins
            .iter()
            .any(|a| *a == caller.user_id.to_lowercase() || Some(a) == caller.email.as_ref())
    }

    /// The *Retry* button of a dead-letter alert: admins only; the dead letter `id` is made due
    /// again through the outbox's writer.
    async fn retry(&self, caller: &Caller, id: &str) -> cliq::Message {
        if !self.is_admin(caller) {
            tracing::warn!(user = %caller.user_id, message = %clip(id, 40), "refused a dead-letter retry from a non-admin");
            return cliq::answer(
                "Admins only",
                "Only the bridge's admins (`cliq_extension.admins`) may retry dead letters; nothing was done.",
                None,
            );
        }
        let Some(n) = id.parse::<i64>().ok().filter(|n| *n > 0) else {
            return cliq::answer(
                "Unknown message",
                &format!(
                    "`{}` is not a message id; nothing was done.",
                    plain(&clip(id, 40))
                ),
                None,
            );
        };
        match self.outbox.retry_dead(n).await {
            Ok(Some(channel)) => {
                tracing::info!(user = %caller.user_id, message = n, channel = %channel, "dead letter retried from Cliq");
                if let Some(chat) = route::chat_of(&channel) {
                    (self.chats)(chat);
                }
                cliq::answer(
                    "Retrying",
                    &format!(
                        "Dead letter {n} (channel {}) is due again; the bridge posts it now.",
                        plain(&channel)
                    ),
                    None,
                )
            }
            Ok(None) => cliq::answer(
                "Not a dead letter",
                &format!(
                    "Message {n} is not a dead letter (unknown, already retried, or delivered); nothing was done."
                ),
                None,
            ),
            Err(e) => store_failed(&e.to_string()),
        }
    }

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

    /// The path as GitLab spells it, if the bridge's token can see it.
    async fn visible(&self, path: &str) -> Result<String, cliq::Message> {
        match self.gitlab.visible(path).await {
            Ok(Some(Visible::Project(p) | Visible::Group(p))) => Ok(p),
            Ok(None) => Err(cliq::answer(
                "Not visible",
                &format!(
                    "The bridge's GitLab token cannot see a project or group `{}` (it does not exist, or is hidden from the token); nothing was done.",
                    plain(path)
                ),
                None,
            )),
            Err(e) => Err(cliq::answer(
                "GitLab did not answer",
                &format!("Could not ask GitLab about `{}`: {}; nothing was done.", plain(path), plain(&e.to_string())),
                None,
            )),
        }
    }

    async fn rules_of(&self, chat: &str) -> Result<Vec<ChatRule>, cliq::Message> {
        match self.outbox.chat_rules().await {
            Ok(rules) => Ok(rules.into_iter().filter(|r| r.chat == chat).collect()),
            Err(e) => Err(store_failed(&e.to_string())),
        }
    }

    async fn subscribe(&self, caller: &Caller, args: &[&str]) -> cliq::Message {
        let chat = match self.chat(caller) {
            Ok(c) => c,
            Err(m) => return m,
        };
        let Some((&path, filters)) = args.split_first() else {
            return usage("subscribe <project-or-group path> [event globs…] [labels:a,b] [refs:main,release/*]");
        };
        let path = match check_path(path) {
            Ok(p) => p,
            Err(m) => return m,
        };
        let mut spec = SubscriptionSpec::default();
        for f in filters {
            if let Some(l) = f.strip_prefix("labels:") {
                spec.labels.extend(list(l));
            } else if let Some(r) = f.strip_prefix("refs:") {
                spec.refs.extend(list(r));
            } else if f
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '*' | '!' | '-'))
                && f.len() <= 100
            {
                spec.events.push(f.to_string());
            } else {
                return cliq::answer(
                    "Not understood",
                    &format!(
                        "`{}` is not an event glob (`issue.*`, `!note.*`), `labels:a,b` or `refs:main`; nothing was done.",
                        plain(&clip(f, 60))
                    ),
                    None,
                );
            }
        }
        if let Err(m) = self.allowed(&path) {
            return m;
        }
        let path = match self.visible(&path).await {
            Ok(p) => p,
            Err(m) => return m,
        };
        let existing = match self.rules_of(chat).await {
            Ok(r) => r,
            Err(m) => return m,
        };
        let updated = existing
            .iter()
            .any(|r| r.kind == SUBSCRIPTION && r.subject.eq_ignore_ascii_case(&path));
        // One row per subscription whatever the spelling: an old spelling gives way.
        for r in existing.iter().filter(|r| {
            r.kind == SUBSCRIPTION && r.subject.eq_ignore_ascii_case(&path) && r.subject != path
        }) {
            let _ = self
                .outbox
                .change_rules(RuleChange::Delete {
                    chat: chat.to_string(),
                    kind: SUBSCRIPTION.into(),
                    subject: r.subject.clone(),
                })
                .await;
        }
        let rule = ChatRule {
            chat: chat.to_string(),
            kind: SUBSCRIPTION.into(),
            subject: path.clone(),
            spec: serde_json::to_string(&spec).unwrap_or_else(|_| "{}".into()),
            until: None,
            created_by: caller.user_id.clone(),
            created_at: unix_ms(),
        };
        if let Err(e) = self.outbox.change_rules(RuleChange::Put(rule)).await {
            return store_failed(&e.to_string());
        }
        tracing::info!(user = %caller.user_id, chat = %chat, path = %path, events = ?spec.events, labels = ?spec.labels, refs = ?spec.refs, updated, "chat subscribed");
        (self.chats)(chat);
        let title = if updated {
            "Subscription updated"
        } else {
            "Subscribed"
        };
        cliq::answer(
            title,
            &format!(
                "This chat now receives events of `{}`{}.",
                plain(&path),
                plain(&describe(&spec))
            ),
            None,
        )
    }

    async fn unsubscribe(&self, caller: &Caller, args: &[&str]) -> cliq::Message {
        let chat = match self.chat(caller) {
            Ok(c) => c,
            Err(m) => return m,
        };
        let [path] = args else {
            return usage("unsubscribe <project-or-group path>");
        };
        let path = match check_path(path) {
            Ok(p) => p,
            Err(m) => return m,
        };
        let existing = match self.rules_of(chat).await {
            Ok(r) => r,
            Err(m) => return m,
        };
        let Some(rule) = existing
            .iter()
            .find(|r| r.kind == SUBSCRIPTION && r.subject.eq_ignore_ascii_case(&path))
        else {
            return cliq::answer(
                "Not subscribed",
                &format!(
                    "This chat has no subscription to `{}`; nothing was done.",
                    plain(&path)
                ),
                None,
            );
        };
        let change = RuleChange::Delete {
            chat: chat.to_string(),
            kind: SUBSCRIPTION.into(),
            subject: rule.subject.clone(),
        };
        if let Err(e) = self.outbox.change_rules(change).await {
            return store_failed(&e.to_string());
        }
        tracing::info!(user = %caller.user_id, chat = %chat, path = %rule.subject, "chat unsubscribed");
        cliq::answer(
            "Unsubscribed",
            &format!(
                "This chat no longer receives events of `{}`.",
                plain(&rule.subject)
            ),
            None,
        )
    }

    async fn list(&self, caller: &Caller) -> cliq::Message {
        let chat = match self.chat(caller) {
            Ok(c) => c,
            Err(m) => return m,
        };
        let rules = match self.rules_of(chat).await {
            Ok(r) => r,
            Err(m) => return m,
        };
        let now = unix_ms();
        let rules: Vec<&ChatRule> = rules
            .iter()
            .filter(|r| r.until.is_none_or(|u| u > now))
            .collect();
        if rules.is_empty() {
            return cliq::answer(
                "Subscriptions",
                "This chat has no subscriptions. Try `/gitlab subscribe group/project`.",
                None,
            );
        }
        let subs = rules.iter().filter(|r| r.kind == SUBSCRIPTION).count();
        let mutes = rules.iter().filter(|r| r.kind == MUTE).count();
        let table = Table {
            headers: vec!["What".into(), "Path".into(), "Details".into(), "By".into()],
            rows: rules.iter().map(|r| rule_row(r, now)).collect(),
        };
        cliq::answer(
            "Subscriptions",
            &format!("This chat has {subs} subscription(s) and {mutes} mute(s)."),
            Some(&table),
        )
    }

    async fn mute(&self, caller: &Caller, args: &[&str]) -> cliq::Message {
        let chat = match self.chat(caller) {
            Ok(c) => c,
            Err(m) => return m,
        };
        let (subject, dur) = match args {
            [s] => (*s, None),
            [s, f, d] if f.eq_ignore_ascii_case("for") => match duration::parse(d) {
                Some(d) if !d.is_zero() && d <= MAX_MUTE => (*s, Some(d)),
                _ => {
                    return cliq::answer(
                        "Not understood",
                        &format!(
                            "`{}` is not a duration such as `30m`, `2h` or `7d` (at most 90 days); nothing was done.",
                            plain(&clip(d, 40))
                        ),
                        None,
                    )
                }
            },
            _ => return usage("mute <path>!<iid> | <path>#<iid> [for 2h]"),
        };
        let subject = match check_subject(subject) {
            Ok(s) => s,
            Err(m) => return m,
        };
        let until = dur.map(|d| unix_ms() + d.as_millis() as i64);
        let rule = ChatRule {
            chat: chat.to_string(),
            kind: MUTE.into(),
            subject: subject.clone(),
            spec: "{}".into(),
            until,
            created_by: caller.user_id.clone(),
            created_at: unix_ms(),
        };
        if let Err(e) = self.outbox.change_rules(RuleChange::Put(rule)).await {
            return store_failed(&e.to_string());
        }
        tracing::info!(user = %caller.user_id, chat = %chat, subject = %subject, until = ?until, "muted in a chat");
        let how_long = match (dur, args.get(2)) {
            (Some(_), Some(d)) => format!(" for {}", plain(d)),
            _ => " until `/gitlab unmute`".into(),
        };
        cliq::answer(
            "Muted",
            &format!(
                "This chat hears nothing more about `{}`{how_long}.",
                plain(&subject),
            ),
            None,
        )
    }

    async fn unmute(&self, caller: &Caller, args: &[&str]) -> cliq::Message {
        let chat = match self.chat(caller) {
            Ok(c) => c,
            Err(m) => return m,
        };
        let [subject] = args else {
            return usage("unmute <path>!<iid> | <path>#<iid>");
        };
        let subject = match check_subject(subject) {
            Ok(s) => s,
            Err(m) => return m,
        };
        let change = RuleChange::Delete {
            chat: chat.to_string(),
            kind: MUTE.into(),
            subject: subject.clone(),
        };
        match self.outbox.change_rules(change).await {
            Ok(0) => cliq::answer(
                "Not muted",
                &format!(
                    "`{}` is not muted in this chat; nothing was done.",
                    plain(&subject)
                ),
                None,
            ),
            Ok(_) => {
                tracing::info!(user = %caller.user_id, chat = %chat, subject = %subject, "unmuted in a chat");
                cliq::answer(
                    "Unmuted",
                    &format!("This chat hears about `{}` again.", plain(&subject)),
                    None,
                )
            }
            Err(e) => store_failed(&e.to_string()),
        }
    }

    async fn status(&self) -> cliq::Message {
        let stats = match crate::deliver::Outbox::stats(&self.outbox).await {
            Ok(s) => s,
            Err(e) => return store_failed(&e.to_string()),
        };
        let last = match self.outbox.last_posts().await {
            Ok(l) => l,
            Err(e) => return store_failed(&e.to_string()),
        };
        let now = unix_ms();
        let mut channels: Vec<String> = stats.iter().map(|s| s.channel.clone()).collect();
        channels.extend(last.iter().map(|(c, _)| c.clone()));
        channels.sort();
        channels.dedup();
        let rows = channels
            .iter()
            .map(|c| {
                let s = stats.iter().find(|s| &s.channel == c);
                let posted = last.iter().find(|(x, _)| x == c).map(|(_, t)| *t);
                vec![
                    c.clone(),
                    s.map_or(0, |s| s.pending + s.retrying).to_string(),
                    s.and_then(|s| s.oldest_created_at)
                        .map_or("-".into(), |t| ago(now - t)),
                    s.map_or(0, |s| s.dead).to_string(),
                    posted.map_or("never".into(), |t| format!("{} ago", ago(now - t))),
                ]
            })
            .collect();
        let pending: u64 = stats.iter().map(|s| s.pending + s.retrying).sum();
        let dead: u64 = stats.iter().map(|s| s.dead).sum();
        let oldest = stats
            .iter()
            .filter_map(|s| s.oldest_created_at)
            .min()
            .map_or("nothing waiting".into(), |t| {
                format!("oldest waiting {}", ago(now - t))
            });
        cliq::answer(
            "Bridge status",
            &format!("Outbox: {pending} waiting ({oldest}), {dead} dead letter(s)."),
            Some(&Table {
                headers: vec![
                    "Channel".into(),
                    "Waiting".into(),
                    "Oldest".into(),
                    "Dead".into(),
                    "Last post".into(),
                ],
                rows,
            }),
        )
    }

    async fn setup(&self, caller: &Caller, args: &[&str]) -> Answer {
        if !self.is_admin(caller) {
            tracing::warn!(user = %caller.user_id, "refused /gitlab setup from a non-admin");
            return Answer::ok(cliq::answer(
                "Admins only",
                "Only the bridge's admins (`cliq_extension.admins`) may run setup; nothing was done.",
                None,
            ));
        }
        let dry_run = args.contains(&"--dry-run");
        let paths: Vec<&str> = args.iter().copied().filter(|a| *a != "--dry-run").collect();
        let [path] = paths.as_slice() else {
            return Answer::ok(usage("setup <project-or-group path> [--dry-run]"));
        };
        let path = match check_path(path) {
            Ok(p) => p,
            Err(m) => return Answer::ok(m),
        };
        if let Err(m) = self.allowed(&path) {
            return Answer::ok(m);
        }
        let Some(desired) = self.desired.clone() else {
            return Answer::ok(cliq::answer(
                "Not configured",
                "setup needs `gitlab.hook_url` (the URL GitLab calls) in the bridge's config; nothing was done.",
                None,
            ));
        };
        tracing::info!(user = %caller.user_id, path = %path, dry_run, "setup from Cliq");
        let client = self.gitlab.clone();
        let mut work =
            tokio::spawn(async move { setup_work(client, desired, path, dry_run).await });
        match tokio::time::timeout(self.cfg.answer_within, &mut work).await {
            Ok(Ok(message)) => Answer::ok(message),
            Ok(Err(e)) => Answer::ok(cliq::answer(
                "Setup failed",
                &plain(&format!("the setup task failed: {e}")),
                None,
            )),
            Err(_) => {
                let Some(url) = caller
                    .response_url
                    .clone()
                    .filter(|u| self.response_url_ok(u))
                else {
                    // Nowhere to send it later: wait for it (Cliq may have given up by then).
                    return match work.await {
                        Ok(m) => Answer::ok(m),
                        Err(e) => {
                            Answer::ok(cliq::answer("Setup failed", &plain(&e.to_string()), None))
                        }
                    };
                };
                let sender = self.sender.clone();
                tokio::spawn(async move {
                    let message = match work.await {
                        Ok(m) => m,
                        Err(e) => cliq::answer("Setup failed", &plain(&e.to_string()), None),
                    };
                    let body =
                        serde_json::json!({ "output": Value::Object(message.as_map().clone()) });
                    let endpoint = Endpoint {
                        url,
                        auth: Auth::None,
                    };
                    match sender
                        .post(&endpoint, "setup-answer", &body.to_string())
                        .await
                    {
                        Attempt::Delivered(_) => {
                            tracing::info!("setup result sent through the response URL")
                        }
                        other => {
                            tracing::warn!(answer = ?other, "cannot send the setup result through the response URL")
                        }
                    }
                });
                Answer::ok(cliq::answer(
                    "Setting up",
                    "GitLab is taking a while: the plan and its result will follow here.",
                    None,
                ))
            }
        }
    }

    /// Only Cliq's own host (`api_url`) is posted to as a response URL.
    fn response_url_ok(&self, url: &str) -> bool {
        url.starts_with(&format!("{}/", self.cfg.api.url))
    }
}

/// Plans (and, unless `dry_run`, applies) the bridge's hook on the project `path`, or on each
/// project of the group `path`, with `gitlab::reconcile` as `setup` does; the card that says so.
async fn setup_work(
    client: Client,
    desired: DesiredHook,
    path: String,
    dry_run: bool,
) -> cliq::Message {
    let failed = |e: GitlabError| cliq::answer("Setup failed", &plain(&e.to_string()), None);
    let projects = match client.visible(&path).await {
        Ok(Some(Visible::Project(p))) => vec![ProjectRef {
            id_or_path: p.clone(),
            label: p,
        }],
        Ok(Some(Visible::Group(g))) => match client.group_projects(&g).await {
            Ok(list) => list.iter().map(ProjectRef::from_project).collect(),
            Err(e) => return failed(e),
        },
        Ok(None) => {
            return cliq::answer(
                "Not visible",
                &format!(
                    "The bridge's GitLab token cannot see `{}`; nothing was done.",
                    plain(&path)
                ),
                None,
            )
        }
        Err(e) => return failed(e),
    };
    let mode = Mode::Install {
        delete_duplicates: false,
    };
    let mut rows = Vec::new();
    let (mut changed, mut errors) = (0, 0);
    for p in &projects {
        let ops = match client.hooks(p).await {
            Ok(hooks) => gitlab::reconcile(&hooks, &desired, mode),
            Err(e) => {
                errors += 1;
                rows.push(vec![
                    p.label.clone(),
                    "-".into(),
                    e.to_string(),
                    "failed".into(),
                ]);
                continue;
            }
        };
        for op in ops {
            // A hook GitLab disabled after failures is re-enabled as `setup --repair` does.
            let disabled = match op {
                Op::Unchanged {
                    hook_id,
                    disabled: true,
                } => Some(hook_id),
                _ => None,
            };
            let result = if let Some(hook_id) = disabled {
                if dry_run {
                    format!("would re-enable #{hook_id} (a test request)")
                } else {
                    match client.test_hook(p, hook_id, desired.test_trigger()).await {
                        Ok(()) => {
                            changed += 1;
                            format!("test request sent to #{hook_id}: GitLab re-enables it")
                        }
                        Err(e) => {
                            errors += 1;
                            format!("failed: {e}")
                        }
                    }
                }
            } else if dry_run || !op.writes() {
                if op.writes() { "planned" } else { "-" }.to_string()
            } else {
                let done = match &op {
                    Op::Create => client
                        .create_hook(p, &desired)
                        .await
                        .map(|h| format!("created #{}", h.id)),
                    Op::Update { hook_id, .. } => client
                        .update_hook(p, *hook_id, &desired)
                        .await
                        .map(|_| format!("updated #{hook_id}")),
                    Op::Delete { hook_id, .. } => client
                        .delete_hook(p, *hook_id)
                        .await
                        .map(|()| format!("deleted #{hook_id}")),
                    _ => Ok("-".into()),
                };
                match done {
                    Ok(d) => {
                        changed += 1;
                        d
                    }
                    Err(e) => {
                        errors += 1;
                        format!("failed: {e}")
                    }
                }
            };
            rows.push(vec![
                p.label.clone(),
                op.action().into(),
                op.reason(),
                result,
            ]);
        }
    }
    let summary = if dry_run {
        format!(
            "Plan for `{}` ({} project(s)); dry run, nothing was changed.",
            plain(&path),
            projects.len()
        )
    } else {
        format!(
            "Setup of `{}`: {} project(s), {changed} change(s), {errors} error(s).",
            plain(&path),
            projects.len()
        )
    };
    cliq::answer(
        if dry_run { "Setup plan" } else { "Setup done" },
        &summary,
        Some(&Table {
            headers: vec![
                "Project".into(),
                "Action".into(),
                "Why".into(),
                "Result".into(),
            ],
            rows,
        }),
    )
}

fn help(note: Option<&str>) -> Answer {
    let mut text = String::new();
    if let Some(n) = note {
        text.push_str(n);
        text.push_str("\n\n");
    }
    text.push_str(
        "*/gitlab subscribe* group/project [issue.* merge_request.*] [labels:bug,ui] [refs:main,release/*]: this chat receives that project's (or group's) events\n\
         */gitlab unsubscribe* group/project\n\
         */gitlab list*: this chat's subscriptions and mutes\n\
         */gitlab mute* group/project!12 or group/project#34 [for 2h]: nothing more about that merge request or issue here\n\
         */gitlab unmute* group/project!12\n\
         */gitlab status*: what the bridge still has to post\n\
         */gitlab setup* group/project [--dry-run]: install the bridge's GitLab hook (admins)",
    );
    Answer::ok(cliq::answer("gitlab-chat-bridge", &text, None))
}

fn usage(syntax: &str) -> cliq::Message {
    cliq::answer("Usage", &format!("/gitlab {}", plain(syntax)), None)
}

fn store_failed(error: &str) -> cliq::Message {
    tracing::error!(%error, "cannot read or change the chat rules");
    cliq::answer(
        "Not saved",
        &format!(
            "The bridge could not use its store ({}); nothing was done.",
            plain(error)
        ),
        None,
    )
}

/// A project or group path as GitLab allows them: segments of letters, digits, `_`, `-`, `.`.
fn check_path(raw: &str) -> Result<String, cliq::Message> {
    let path = raw.trim().trim_matches('/');
    let ok = !path.is_empty()
        && path.chars().count() <= MAX_PATH_CHARS
        && path.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        });
    if ok {
        Ok(path.to_string())
    } else {
        Err(cliq::answer(
            "Not a path",
            &format!(
                "`{}` is not a GitLab project or group path such as `group/project`; nothing was done.",
                plain(&clip(raw, 60))
            ),
            None,
        ))
    }
}

/// `path!iid` (a merge request) or `path#iid` (an issue).
fn check_subject(raw: &str) -> Result<String, cliq::Message> {
    let split = raw.rfind(['!', '#']);
    let parsed = split.and_then(|i| {
        let (path, iid) = (&raw[..i], &raw[i + 1..]);
        let iid: u64 = iid.parse().ok()?;
        let path = check_path(path).ok()?;
        Some(format!("{path}{}{iid}", &raw[i..=i]))
    });
    parsed.ok_or_else(|| {
        cliq::answer(
            "Not understood",
            &format!(
                "`{}` is not a merge request (`group/project!12`) or an issue (`group/project#34`); nothing was done.",
                plain(&clip(raw, 60))
            ),
            None,
        )
    })
}

fn list(s: &str) -> impl Iterator<Item = String> + '_ {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_string)
}

fn describe(spec: &SubscriptionSpec) -> String {
    let mut parts = Vec::new();
    if !spec.events.is_empty() {
        parts.push(format!("events {}", spec.events.join(" ")));
    }
    if !spec.labels.is_empty() {
        parts.push(format!("labels {}", spec.labels.join(",")));
    }
    if !spec.refs.is_empty() {
        parts.push(format!("refs {}", spec.refs.join(",")));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

fn rule_row(r: &ChatRule, now: i64) -> Vec<String> {
    let details = if r.kind == SUBSCRIPTION {
        let spec: SubscriptionSpec = serde_json::from_str(&r.spec).unwrap_or_default();
        let d = describe(&spec);
        if d.is_empty() {
            "every event".into()
        } else {
            d.trim_start_matches(" (").trim_end_matches(')').to_string()
        }
    } else {
        r.until
            .map_or("until unmuted".into(), |u| format!("{} left", ago(u - now)))
    };
    vec![
        r.kind.clone(),
        r.subject.clone(),
        details,
        r.created_by.clone(),
    ]
}

/// A span of milliseconds as `2h 5m`, `40s`.
fn ago(ms: i64) -> String {
    let s = (ms / 1000).max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3_599 => format!("{}m {}s", s / 60, s % 60),
        3_600..=86_399 => format!("{}h {}m", s / 3_600, (s % 3_600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3_600),
    }
}

fn clip(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_subjects_and_durations() {
        assert!(check_path("group/sub/project.x").is_ok());
        for bad in ["", "/", "a//b", "a/../b", "a b", "a/b?c", &"x".repeat(300)] {
            assert!(check_path(bad).is_err(), "{bad:?}");
        }
        assert_eq!(check_subject("g/p!12").ok().as_deref(), Some("g/p!12"));
        assert_eq!(check_subject("g/p#3").ok().as_deref(), Some("g/p#3"));
        for bad in ["g/p", "g/p!x", "!3", "g/p#-1"] {
            assert!(check_subject(bad).is_err(), "{bad:?}");
        }
    }
}
