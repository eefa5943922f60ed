//! `setup`: make the bridge's webhook present and current (or, with `--remove`, absent) on the
//! selected GitLab projects; and the GitLab part of `check`.
//!
//! Flow: select projects (explicit IDs/paths, groups with subgroups, or every project where the
//! token's user is Maintainer) → plan (list each project's hooks, [`reconcile`]) → print the plan
//! table → stop on `--dry-run` → apply with `[gitlab] concurrency` projects at a time (a progress
//! bar on a terminal, plain lines otherwise) → summary. One project's failure never stops the
//! others; the exit code is 1 when any project failed.

use super::progress::ProgressKind;
use crate::cli::SetupArgs;
use crate::config::{Config, GitlabConfig};
use crate::gitlab::{
    reconcile, Client, DesiredHook, GitlabError, Mode, Op, ProjectRef, RetryPolicy,
};
use anyhow::Context;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use tokio::task::JoinSet;

/// Runs `setup`. Returns the process exit code.
pub async fn run(args: &SetupArgs) -> anyhow::Result<i32> {
    let cfg = super::load_config(&args.config.config)?;
    let (gitlab, client, desired) = connect(&cfg)?;
    let mode = if args.remove {
        Mode::Remove
    } else {
        Mode::Install {
            delete_duplicates: args.yes,
        }
    };
    let progress = ProgressKind::detect();

    let targets = match select(&client, gitlab, args).await {
        Ok(t) => t,
        Err(e) => {
            println!("error: {e}");
            return Ok(1);
        }
    };
    if targets.is_empty() {
        println!("no projects selected: nothing to do");
        return Ok(0);
    }

    let plans = plan(
        &client,
        &desired,
        mode,
        targets,
        gitlab.concurrency,
        progress,
    )
    .await;
    print_table(&plans);
    let disabled = if args.repair {
        disabled_hooks(&plans)
    } else {
        Vec::new()
    };
    if args.dry_run {
        for (project, hook_id) in &disabled {
            println!(
                "{}: would re-enable hook #{hook_id} (a test request)",
                project.label
            );
        }
        let s = Summary::of_plan(&plans);
        println!(
            "dry run: would create {}, update {}, delete {}; {} unchanged, {} skipped, {} failed; \
             nothing was changed",
            s.created, s.updated, s.deleted, s.unchanged, s.skipped, s.failed
        );
        return Ok(i32::from(s.failed > 0));
    }

    let results = apply(&client, &desired, plans, gitlab.concurrency, progress).await;
    let s = Summary::of_results(&results);
    println!(
        "summary: {} created, {} updated, {} deleted, {} unchanged, {} skipped, {} failed \
         ({} project(s))",
        s.created,
        s.updated,
        s.deleted,
        s.unchanged,
        s.skipped,
        s.failed,
        results.len()
    );
    let mut failures: Vec<String> = results
        .iter()
        .flat_map(|r| r.errors.iter().cloned())
        .collect();
    let trigger = desired.test_trigger();
    for (project, hook_id) in &disabled {
        match client.test_hook(project, *hook_id, trigger).await {
            Ok(()) => println!(
                "{}: hook #{hook_id}: test request sent; GitLab re-enables the hook when the \
                 bridge answers it",
                project.label
            ),
            Err(e) => failures.push(e.to_string()),
        }
    }
    if !failures.is_empty() {
        println!("failures:");
        for f in &failures {
            println!("  {f}");
        }
    }
    Ok(i32::from(s.failed > 0 || !failures.is_empty()))
}

/// The bridge's hooks GitLab disabled after failures (`--repair` re-enables them).
fn disabled_hooks(plans: &[ProjectPlan]) -> Vec<(ProjectRef, u64)> {
    let mut out = Vec::new();
    for p in plans {
        if let Planned::Ops(ops) = &p.planned {
            for op in ops {
                if let Op::Unchanged {
                    hook_id,
                    disabled: true,
                } = op
                {
                    out.push((p.project.clone(), *hook_id));
                }
            }
        }
    }
    out
}

/// The `[gitlab]` section, a client for it, and the hook the config describes; errors name the
/// missing key.
pub(super) fn connect(cfg: &Config) -> anyhow::Result<(&GitlabConfig, Client, DesiredHook)> {
    let gitlab = cfg.gitlab.as_ref().with_context(|| {
        format!(
            "{}: no [gitlab] section: setup needs gitlab.url, gitlab.token and gitlab.hook_url",
            cfg.path.display()
        )
    })?;
    let token = gitlab.token.clone().context(
        "gitlab.token: required by setup and check (or gitlab.token_file / gitlab.token_env); \
         a token with the `api` scope",
    )?;
    let hook_url = gitlab.hook_url.clone().context(
        "gitlab.hook_url: required by setup and check: the URL GitLab calls, ending in /hooks/gitlab",
    )?;
    let client = Client::new(&gitlab.url, token, RetryPolicy::default())?;
    let desired = DesiredHook {
        url: hook_url,
        token: cfg.server.secret_token.clone(),
        signing_token: cfg.server.signing_token.clone(),
        events: gitlab.events.clone(),
        push_events_branch_filter: gitlab.push_events_branch_filter.clone(),
        enable_ssl_verification: gitlab.enable_ssl_verification,
    };
    Ok((gitlab, client, desired))
}

/// One selected project.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub(super) project: ProjectRef,
    pub(super) archived: bool,
}

/// The projects named by the arguments, each once: explicit ones first (as given, not looked
/// up), then those of the groups, then the member projects.
async fn select(
    client: &Client,
    gitlab: &GitlabConfig,
    args: &SetupArgs,
) -> Result<Vec<Target>, GitlabError> {
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    let mut paths = HashSet::new();
    let prefix = format!("{}/", gitlab.url);
    for given in &args.project {
        // A pasted project URL works too.
        let p = given.trim().strip_prefix(&prefix).unwrap_or(given.trim());
        let p = p.trim_matches('/');
        if p.is_empty() {
            continue;
        }
        let fresh = match p.parse::<u64>() {
            Ok(id) => ids.insert(id),
            Err(_) => paths.insert(p.to_lowercase()),
        };
        if fresh {
            out.push(Target {
                project: ProjectRef {
                    id_or_path: p.to_string(),
                    label: p.to_string(),
                },
                archived: false,
            });
        }
    }
    let mut listed = Vec::new();
    for g in &args.group {
        listed.extend(client.group_projects(g.trim().trim_matches('/')).await?);
    }
    if args.all_member_projects {
        listed.extend(client.member_projects().await?);
    }
    for p in listed {
        let path = p.path_with_namespace.as_ref().map(|s| s.to_lowercase());
        if ids.contains(&p.id) || path.as_ref().is_some_and(|s| paths.contains(s)) {
            continue;
        }
        ids.insert(p.id);
        if let Some(path) = path {
            paths.insert(path);
        }
        out.push(Target {
            project: ProjectRef::from_project(&p),
            archived: p.archived == Some(true),
        });
    }
    Ok(out)
}

/// What will happen to one project.
#[derive(Debug)]
pub(super) enum Planned {
    /// Steps from [`reconcile`].
    Ops(Vec<Op>),
    /// Left alone, with the reason.
    Skip(String),
    /// The hooks could not be read.
    Failed(GitlabError),
}

/// One project's plan.
#[derive(Debug)]
pub(super) struct ProjectPlan {
    pub(super) project: ProjectRef,
    pub(super) planned: Planned,
}

/// Lists every target's hooks and reconciles them, `concurrency` projects at a time.
pub(super) async fn plan(
    client: &Client,
    desired: &DesiredHook,
    mode: Mode,
    targets: Vec<Target>,
    concurrency: usize,
    progress: ProgressKind,
) -> Vec<ProjectPlan> {
    let bar = progress.bar(targets.len(), "planning");
    let fallback: Vec<ProjectRef> = targets.iter().map(|t| t.project.clone()).collect();
    let results = bounded(
        targets,
        concurrency,
        |t| {
            let client = client.clone();
            let desired = desired.clone();
            async move {
                let planned = if t.archived {
                    Planned::Skip("archived".into())
                } else {
                    match client.hooks(&t.project).await {
                        Ok(hooks) => Planned::Ops(reconcile(&hooks, &desired, mode)),
                        Err(e) => Planned::Failed(e),
                    }
                };
                ProjectPlan {
                    project: t.project,
                    planned,
                }
            }
        },
        |_, _| {
            if let Some(b) = &bar {
                b.inc(1);
            }
        },
    )
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    results
        .into_iter()
        .zip(fallback)
        .map(|(r, project)| {
            r.unwrap_or_else(|| ProjectPlan {
                planned: Planned::Failed(GitlabError::Unexpected {
                    what: format!("planning project {}", project.label),
                    message: "internal error: the task stopped".into(),
                }),
                project,
            })
        })
        .collect()
}

/// The plan table: one row per step (project, action, reason).
fn print_table(plans: &[ProjectPlan]) {
    let mut rows: Vec<(String, &'static str, String)> = Vec::new();
    for p in plans {
        let label = p.project.label.clone();
        match &p.planned {
            Planned::Ops(ops) => {
                for op in ops {
                    rows.push((label.clone(), op.action(), op.reason()));
                }
            }
            Planned::Skip(reason) => rows.push((label, "skip", reason.clone())),
            Planned::Failed(e) => rows.push((label, "error", e.to_string())),
        }
    }
    let width = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max("PROJECT".len());
    println!("{:<width$}  {:<9}  REASON", "PROJECT", "ACTION");
    for (project, action, reason) in rows {
        println!("{project:<width$}  {action:<9}  {reason}");
    }
}

/// A step that succeeded.
#[derive(Debug, Clone, Copy)]
enum Done {
    Created(u64),
    Updated(u64),
    Deleted(u64),
}

/// What applying one project's plan did.
#[derive(Debug)]
struct ProjectResult {
    /// Steps that succeeded.
    done: Vec<Done>,
    /// Steps that needed no request.
    idle: Vec<Op>,
    /// Whether the project was skipped (archived).
    skipped: bool,
    /// Whether any changing request was due.
    attempted: bool,
    /// What failed, one line each, naming the project.
    errors: Vec<String>,
}

/// Applies the plans, `concurrency` projects at a time; each project's steps run in order and a
/// failed step does not stop the next.
async fn apply(
    client: &Client,
    desired: &DesiredHook,
    plans: Vec<ProjectPlan>,
    concurrency: usize,
    progress: ProgressKind,
) -> Vec<ProjectResult> {
    let writing = plans
        .iter()
        .filter(|p| matches!(&p.planned, Planned::Ops(ops) if ops.iter().any(Op::writes)))
        .count();
    let bar = progress.bar(writing, "applying");
    let labels: Vec<String> = plans.iter().map(|p| p.project.label.clone()).collect();
    let mut finished = 0;
    let results = bounded(
        plans,
        concurrency,
        |p| {
            let client = client.clone();
            let desired = desired.clone();
            async move { apply_one(&client, &desired, p).await }
        },
        |i, r| {
            let Some(r) = r else {
                return;
            };
            if !r.attempted {
                return;
            }
            finished += 1;
            let line = result_line(&labels[i], r);
            match &bar {
                Some(b) => {
                    b.inc(1);
                    if !r.errors.is_empty() {
                        b.println(line);
                    }
                }
                None => println!("[{finished}/{writing}] {line}"),
            }
        },
    )
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    results
        .into_iter()
        .zip(labels)
        .map(|(r, label)| {
            r.unwrap_or_else(|| ProjectResult {
                done: Vec::new(),
                idle: Vec::new(),
                skipped: false,
                attempted: false,
                errors: vec![format!(
                    "applying project {label}: internal error: the task stopped"
                )],
            })
        })
        .collect()
}

async fn apply_one(client: &Client, desired: &DesiredHook, p: ProjectPlan) -> ProjectResult {
    let mut r = ProjectResult {
        done: Vec::new(),
        idle: Vec::new(),
        skipped: false,
        attempted: false,
        errors: Vec::new(),
    };
    let ops = match p.planned {
        Planned::Ops(ops) => ops,
        Planned::Skip(_) => {
            r.skipped = true;
            return r;
        }
        Planned::Failed(e) => {
            r.errors.push(e.to_string());
            return r;
        }
    };
    r.attempted = ops.iter().any(Op::writes);
    for op in ops {
        let outcome = match &op {
            Op::Create => client
                .create_hook(&p.project, desired)
                .await
                .map(|h| Done::Created(h.id)),
            Op::Update { hook_id, .. } => client
                .update_hook(&p.project, *hook_id, desired)
                .await
                .map(|_| Done::Updated(*hook_id)),
            Op::Delete { hook_id, .. } => client
                .delete_hook(&p.project, *hook_id)
                .await
                .map(|()| Done::Deleted(*hook_id)),
            Op::Unchanged { .. } | Op::KeepDuplicate { .. } | Op::NothingToRemove => {
                r.idle.push(op);
                continue;
            }
        };
        match outcome {
            Ok(done) => r.done.push(done),
            Err(e) => r.errors.push(e.to_string()),
        }
    }
    r
}

/// One line about what happened to a project.
fn result_line(label: &str, r: &ProjectResult) -> String {
    let mut parts: Vec<String> = r
        .done
        .iter()
        .map(|d| match d {
            Done::Created(id) => format!("created hook #{id}"),
            Done::Updated(id) => format!("updated hook #{id}"),
            Done::Deleted(id) => format!("deleted hook #{id}"),
        })
        .collect();
    if !r.errors.is_empty() {
        parts.push(format!("FAILED: {}", r.errors.join("; ")));
    }
    format!("{label}: {}", parts.join(", "))
}

/// Counts for the closing line.
#[derive(Debug, Default)]
struct Summary {
    created: usize,
    updated: usize,
    deleted: usize,
    unchanged: usize,
    skipped: usize,
    failed: usize,
}

impl Summary {
    fn count(&mut self, op: &Op) {
        match op {
            Op::Create => self.created += 1,
            Op::Update { .. } => self.updated += 1,
            Op::Delete { .. } => self.deleted += 1,
            Op::Unchanged { .. } | Op::NothingToRemove => self.unchanged += 1,
            Op::KeepDuplicate { .. } => self.skipped += 1,
        }
    }

    fn of_plan(plans: &[ProjectPlan]) -> Summary {
        let mut s = Summary::default();
        for p in plans {
            match &p.planned {
                Planned::Ops(ops) => ops.iter().for_each(|op| s.count(op)),
                Planned::Skip(_) => s.skipped += 1,
                Planned::Failed(_) => s.failed += 1,
            }
        }
        s
    }

    fn of_results(results: &[ProjectResult]) -> Summary {
        let mut s = Summary::default();
        for r in results {
            r.idle.iter().for_each(|op| s.count(op));
            for d in &r.done {
                match d {
                    Done::Created(_) => s.created += 1,
                    Done::Updated(_) => s.updated += 1,
                    Done::Deleted(_) => s.deleted += 1,
                }
            }
            s.skipped += usize::from(r.skipped);
            s.failed += usize::from(!r.errors.is_empty());
        }
        s
    }
}

/// Runs `f` on every item, at most `limit` at once; results come back in input order (`None`
/// for a task that panicked). `done` is called as each finishes, with its index.
async fn bounded<T, R, F, Fut>(
    items: Vec<T>,
    limit: usize,
    f: F,
    mut done: impl FnMut(usize, Option<&R>),
) -> Vec<Option<R>>
where
    T: Send + 'static,
    R: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: Future<Output = R> + Send + 'static,
{
    let mut results: Vec<Option<R>> = items.iter().map(|_| None).collect();
    let mut index = HashMap::new();
    let mut set = JoinSet::new();
    let mut pending = items.into_iter().enumerate();
    loop {
        while set.len() < limit.max(1) {
            let Some((i, item)) = pending.next() else {
                break;
            };
            let handle = set.spawn(f(item));
            index.insert(handle.id(), i);
        }
        match set.join_next_with_id().await {
            None => break,
            Some(Ok((id, r))) => {
                if let Some(&i) = index.get(&id) {
                    done(i, Some(&r));
                    results[i] = Some(r);
                }
            }
            Some(Err(e)) => {
                if let Some(&i) = index.get(&e.id()) {
                    done(i, None);
                }
            }
        }
    }
    results
}
