//! `reminders`: review reminders (`[[reminders]]`). `list` shows each with its next run in its
//! zone; `run NAME` reads GitLab now and queues the card for the reminder's channels through the
//! outbox (`--dry-run` prints each channel's body instead). [`card`] is the one way a reminder
//! becomes bodies: fetch ([`crate::gitlab::merge_requests::fetch_open`]), select
//! ([`crate::gitlab::reviews::select`]), render (`reminder.hbs` through the channel's route's
//! renderer for its platform, then that platform's body), shared with `serve`'s schedule.

use super::CommandStore;
use crate::cli::{RemindersAction, RemindersArgs};
use crate::config::{Config, Format, ReminderConfig};
use crate::deliver::{Batch, Delivery};
use crate::gitlab::merge_requests::{fetch_open, sources, FetchLimits};
use crate::gitlab::reviews::{select, worth_asking, Reviews, Rules};
use crate::gitlab::{Client, RetryPolicy};
use crate::render::{reminder, Rendered};
use crate::route::{self, RouteTable};
use anyhow::Context;
use chrono::{DateTime, Utc};
use std::io::Write;

/// Exit code of a usage error (an unknown reminder), as clap's.
const USAGE: i32 = 2;

/// A reminder's card, ready for its channels.
#[derive(Debug, Clone)]
pub struct Card {
    /// What was listed.
    pub reviews: Reviews,
    /// `(channel, body)` for each channel that takes it; empty when nothing waits (and the
    /// reminder wants no "all clear").
    pub bodies: Vec<(String, String)>,
}

impl Card {
    /// The outbox batch of these bodies: `dedupe_key` makes a scheduled run's card once only
    /// (`reminder:NAME:INSTANT`); `request_id` names it in logs and delivery ids.
    pub fn batch(&self, name: &str, request_id: &str, dedupe_key: Option<String>) -> Batch {
        Batch {
            dedupe_key,
            request_id: request_id.to_string(),
            deliveries: self
                .bodies
                .iter()
                .map(|(channel, body)| Delivery {
                    id: format!("{request_id}/{channel}"),
                    channel: channel.clone(),
                    ordering_key: format!("reminder/{name}"),
                    body: body.clone(),
                })
                .collect(),
        }
    }
}

/// Reads GitLab for reminder `r` and renders its card for each of its channels.
pub async fn card(cfg: &Config, table: &RouteTable, r: &ReminderConfig) -> anyhow::Result<Card> {
    let gitlab = cfg
        .gitlab
        .as_ref()
        .context("reminders need [gitlab] with a url and a token")?;
    let token = gitlab
        .token
        .clone()
        .context("reminders need [gitlab] token")?;
    let client = Client::new(&gitlab.url, token, RetryPolicy::default())?;
    let in_scope = |path: &str| r.projects.iter().any(|g| route::glob(g, path));
    let rules = |now: DateTime<Utc>| Rules {
        now,
        min_age: r.min_age,
        in_scope: &in_scope,
        max_per_reviewer: r.max_per_reviewer,
        gitlab_url: &gitlab.url,
        unassigned_after: r.unassigned_after,
    };
    let limits = FetchLimits {
        concurrency: gitlab.concurrency,
        budget: r.time_budget,
        pipelines: r.pipelines,
    };
    let asked = rules(Utc::now());
    let sources = sources(&r.projects);
    let fetched = fetch_open(&client, &sources, |mr| worth_asking(mr, &asked), limits).await;
    // Nothing could be read: a card would say "nothing waits" when GitLab did not answer. A
    // failure instead, so `serve` tries again (within `catch_up`) and `reminders run` exits 1.
    if !sources.is_empty() && fetched.unreadable.len() == sources.len() {
        let (source, why) = &fetched.unreadable[0];
        anyhow::bail!(
            "GitLab could not be read for any project of the reminder ({}: {why}); nothing was posted",
            source.label()
        );
    }
    // Ages count to when the list is complete.
    let reviews = select(&fetched, &rules(Utc::now()));
    let mut bodies = Vec::new();
    if reviews.is_empty() && !r.all_clear {
        return Ok(Card { reviews, bodies });
    }
    let context = reminder::context(&r.name, serde_json::to_value(&reviews)?);
    for name in &r.channels {
        // A chat's own reminder (`/gitlab remind`): the chats' templates, Cliq's card.
        if route::chat_of(name).is_some() {
            if let Some(renderer) = &table.chats {
                if let Rendered::Message(m, _) = renderer.render_reminder(&context)? {
                    bodies.push((name.clone(), m.to_json()));
                }
            }
            continue;
        }
        let Some(channel) = table.channels.iter().find(|c| &c.name == name) else {
            continue;
        };
        if channel.format == Format::Event {
            tracing::warn!(reminder = %r.name, channel = %name, "a reminder is a card: not posted to a format = \"event\" channel");
            continue;
        }
        let Some(route) = table
            .routes
            .iter()
            .find(|x| x.config.channels.contains(name))
            .or_else(|| table.routes.first())
        else {
            continue;
        };
        let platform = route::platform_of(channel.kind);
        match route.renderer_for(platform).render_reminder(&context)? {
            Rendered::Message(m, _) => {
                let thread = format!("reminder/{}", r.name);
                bodies.push((name.clone(), platform.body(&m, &thread).to_json()));
            }
            Rendered::Skipped(_) | Rendered::NoTemplate => {}
        }
    }
    Ok(Card { reviews, bodies })
}

/// Runs `reminders`. Returns the process exit code.
pub async fn run(args: &RemindersArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let mut out = std::io::stdout().lock();
    match &args.action {
        RemindersAction::List => {
            if cfg.reminders.is_empty() {
                writeln!(out, "no [[reminders]] in {}", cfg.path.display())?;
                return Ok(0);
            }
            let now = Utc::now();
            for r in &cfg.reminders {
                let next = r.schedule.next_after(now, r.timezone);
                writeln!(
                    out,
                    "{}: {} ({}), next run {} ({}), projects {}, to {}",
                    r.name,
                    r.schedule,
                    r.timezone,
                    next.with_timezone(&r.timezone)
                        .format("%a %Y-%m-%d %H:%M %Z"),
                    next.format("%Y-%m-%d %H:%M UTC"),
                    r.projects.join(", "),
                    r.channels.join(", "),
                )?;
            }
            Ok(0)
        }
        RemindersAction::Run { name, dry_run } => {
            let Some(r) = cfg.reminders.iter().find(|r| &r.name == name) else {
                let known: Vec<&str> = cfg.reminders.iter().map(|r| r.name.as_str()).collect();
                eprintln!(
                    "no reminder named {name:?} (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                );
                return Ok(USAGE);
            };
            let table = super::routes_or_fail(&cfg)?;
            let card = card(&cfg, &table, r).await?;
            for u in &card.reviews.unreadable {
                writeln!(out, "warning: cannot read {u}: the list may be incomplete")?;
            }
            if card.bodies.is_empty() {
                writeln!(out, "no merge request waits for review: nothing to post")?;
                return Ok(0);
            }
            if *dry_run {
                for (channel, body) in &card.bodies {
                    writeln!(out, "--- {channel} ---\n{body}")?;
                }
                writeln!(
                    out,
                    "dry run: {} merge request(s) for {} channel(s), nothing queued",
                    card.reviews.count,
                    card.bodies.len()
                )?;
                return Ok(0);
            }
            let store = CommandStore::open_async(&cfg, true).await?;
            let request_id = format!("reminder-{}-{}", r.name, super::now_ms());
            store
                .outbox()
                .enqueue(card.batch(&r.name, &request_id, None))
                .await?;
            drop(store);
            writeln!(
                out,
                "queued: {} merge request(s) for {} channel(s) ({request_id})",
                card.reviews.count,
                card.bodies.len()
            )?;
            Ok(0)
        }
    }
}

/// How often a replica that does not lead asks whether it does now.
const LEAD_POLL: std::time::Duration = std::time::Duration::from_secs(5);
/// Longest sleep between two looks at the schedule (a clock change is noticed within it).
const MAX_SLEEP: std::time::Duration = std::time::Duration::from_secs(30);

/// `serve`'s reminder schedule, until `stop`: on the leading replica only, each reminder due
/// ([`crate::schedule::Schedule::due`] against its last run in the store) is read from GitLab
/// and its card claimed with its run ([`crate::deliver::durable::DurableOutbox::reminder_run`]), so it is queued once
/// across restarts and replicas; a run missed by more than `catch_up` is recorded as skipped
/// and logged.
pub async fn schedule(
    cfg: Config,
    routes: route::SharedRoutes,
    outbox: crate::deliver::durable::DurableOutbox,
    stop: tokio_util::sync::CancellationToken,
) {
    if cfg.reminders.is_empty() && cfg.cliq_extension.is_none() {
        return;
    }
    loop {
        let pause = if outbox.leads() {
            let all = tick(&cfg, &routes, &outbox).await;
            let now = Utc::now();
            all.iter()
                .map(|(_, r)| r.schedule.next_after(now, r.timezone) - now)
                .filter_map(|d| d.to_std().ok())
                .min()
                .unwrap_or(MAX_SLEEP)
                .clamp(std::time::Duration::from_millis(200), MAX_SLEEP)
        } else {
            LEAD_POLL
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// Every reminder with the key of its runs in the store: the configured ones (by name) and
/// the chats' own (`chat:<id>`, from their `/gitlab remind` rules).
async fn all_reminders(
    cfg: &Config,
    outbox: &crate::deliver::durable::DurableOutbox,
) -> Vec<(String, ReminderConfig)> {
    let mut all: Vec<(String, ReminderConfig)> = cfg
        .reminders
        .iter()
        .map(|r| (r.name.clone(), r.clone()))
        .collect();
    if cfg.cliq_extension.is_none() {
        return all;
    }
    let rules = match outbox.chat_rules().await {
        Ok(r) => r,
        Err(error) => {
            tracing::warn!(%error, "reminders: cannot read the chats' reminders");
            return all;
        }
    };
    for rule in rules.iter().filter(|r| r.kind == route::REMINDER) {
        let Ok(spec) = serde_json::from_str::<route::ReminderSpec>(&rule.spec) else {
            continue;
        };
        let (Ok(schedule), Ok(timezone)) = (
            crate::schedule::Schedule::parse(&spec.schedule),
            spec.timezone.parse::<chrono_tz::Tz>(),
        ) else {
            continue;
        };
        all.push((
            route::chat_channel(&rule.chat),
            ReminderConfig {
                name: spec.projects.trim_end_matches("/*").to_string(),
                channels: vec![route::chat_channel(&rule.chat)],
                schedule,
                timezone,
                projects: vec![spec.projects.clone()],
                min_age: crate::config::DEFAULT_MIN_AGE,
                catch_up: crate::config::DEFAULT_CATCH_UP,
                max_per_reviewer: crate::config::DEFAULT_MAX_PER_REVIEWER,
                unassigned_after: None,
                pipelines: false,
                all_clear: false,
                time_budget: crate::config::DEFAULT_TIME_BUDGET,
            },
        ));
    }
    all
}

/// One look at every reminder: runs what is due, records what was missed; returns every
/// reminder seen (for the time of the next look).
async fn tick(
    cfg: &Config,
    routes: &route::SharedRoutes,
    outbox: &crate::deliver::durable::DurableOutbox,
) -> Vec<(String, ReminderConfig)> {
    let all = all_reminders(cfg, outbox).await;
    let runs: std::collections::HashMap<String, i64> = match outbox.reminder_runs().await {
        Ok(r) => r.into_iter().collect(),
        Err(error) => {
            tracing::warn!(%error, "reminders: cannot read the last runs; trying again later");
            return all;
        }
    };
    for (key, r) in &all {
        let last = runs
            .get(key)
            .and_then(|ms| chrono::TimeZone::timestamp_millis_opt(&Utc, *ms).single());
        let due = r.schedule.due(r.timezone, last, Utc::now(), r.catch_up);
        let (at, batch) = match due {
            crate::schedule::Due::No => continue,
            crate::schedule::Due::Missed(at) => {
                tracing::warn!(reminder = %key, scheduled = %at.with_timezone(&r.timezone), catch_up_s = r.catch_up.as_secs(), "reminder: missed by more than catch_up; skipped");
                (
                    at,
                    Card {
                        reviews: Reviews::default(),
                        bodies: Vec::new(),
                    }
                    .batch(&r.name, "skipped", None),
                )
            }
            crate::schedule::Due::Run(at) => {
                let table = routes.get();
                let card = match card(cfg, &table, r).await {
                    Ok(c) => c,
                    Err(error) => {
                        tracing::error!(reminder = %key, error = %format!("{error:#}"), "reminder: cannot make the card; trying again later");
                        continue;
                    }
                };
                let ms = at.timestamp_millis();
                let request_id = format!("reminder-{key}-{ms}");
                tracing::info!(reminder = %key, scheduled = %at.with_timezone(&r.timezone), merge_requests = card.reviews.count, channels = card.bodies.len(), incomplete = card.reviews.incomplete, "reminder: due");
                (
                    at,
                    card.batch(&r.name, &request_id, Some(format!("reminder:{key}:{ms}"))),
                )
            }
        };
        match outbox
            .reminder_run(&r.name, at.timestamp_millis(), batch)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(reminder = %key, "reminder: already run (by another replica, or before a restart)")
            }
            Err(error) => {
                tracing::error!(reminder = %key, %error, "reminder: cannot record the run; trying again later")
            }
        }
    }
    all
}
