//! One composition root per subcommand, plus what they share: reading templates from disk and
//! building the renderer from the configuration.

pub mod catchup;
pub mod check;
pub mod events;
pub mod outbox;
pub mod progress;
pub mod reminders;
pub mod render;
pub mod serve;
pub mod setup;
pub mod subscriptions;
pub mod watch;

use crate::config::{Config, Format};
use crate::deliver::clock::Clock;
use crate::deliver::durable::{DurableOutbox, DurableSettings};
use crate::deliver::pg::PgOptions;
use crate::deliver::{BoxFuture, OutboxError};
use crate::render::{
    DateSettings, Mentions, Platform, RenderSettings, Renderer, TemplateError, TemplateSource,
};
use crate::route::{self, Route, RouteTable};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// Reads every `*.hbs` in `dir` (not recursive). The file stem is the template name.
pub fn read_template_dir(dir: &Path) -> anyhow::Result<Vec<TemplateSource>> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read templates folder {}", dir.display()))?;
    let mut out = Vec::new();
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.extension().and_then(|e| e.to_str()) != Some("hbs") {
            continue;
        }
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read template {}", path.display()))?;
        out.push(TemplateSource {
            name: name.to_string(),
            origin: path.display().to_string(),
            text,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Date settings from the config, with the real clock.
pub fn date_settings(cfg: &Config) -> DateSettings {
    DateSettings {
        timezone: cfg.templates.timezone,
        date_format: cfg.templates.date_format.clone(),
        day_format: cfg.templates.day_format.clone(),
        clock: Arc::new(chrono::Utc::now),
    }
}

/// Date settings and `[mentions]` from the config: what every renderer is built with.
pub fn render_settings(cfg: &Config) -> RenderSettings {
    RenderSettings {
        dates: date_settings(cfg),
        mentions: Mentions::new(&cfg.mentions),
    }
}

/// The platforms other than Cliq that the config's card channels post to.
fn platforms(cfg: &Config) -> Vec<Platform> {
    let mut out = Vec::new();
    for c in &cfg.channels {
        let p = route::platform_of(c.kind);
        if c.format == Format::Card && p != Platform::Cliq && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// Each other platform's renderer.
type PlatformRenderers = Vec<(Platform, Arc<Renderer>)>;

/// The renderers of each platform in `platforms(cfg)`: the built-in templates overlaid with
/// `<dir>/<kind>/*.hbs` of each folder in `dirs` (in order), the zone `tz` and
/// `[mentions.<kind>]`.
fn platform_renderers(
    cfg: &Config,
    dirs: &[&Path],
    tz: chrono_tz::Tz,
    strict: bool,
) -> anyhow::Result<Result<PlatformRenderers, Vec<TemplateError>>> {
    let mut out = Vec::new();
    let mut errors = Vec::new();
    for p in platforms(cfg) {
        let mut sources: Vec<TemplateSource> = Vec::new();
        for dir in dirs {
            let sub = dir.join(p.as_str());
            if sub.is_dir() {
                for t in read_template_dir(&sub)? {
                    sources.retain(|s| s.name != t.name);
                    sources.push(t);
                }
            }
        }
        let mut settings = render_settings(cfg);
        settings.dates.timezone = tz;
        settings.mentions = match cfg.kind_mentions.get(p.as_str()) {
            Some(m) => Mentions::new(m),
            None => Mentions::default(),
        };
        match Renderer::new(sources, settings, strict) {
            Ok(r) => out.push((p, Arc::new(r))),
            Err(e) => errors.extend(e),
        }
    }
    Ok(if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    })
}

/// Builds the route table the config describes: one renderer per distinct (template folder,
/// time zone); a route's folder overlays `[templates] dir`, which overlays the built-in templates.
/// Template errors come back one per entry.
pub fn build_routes(
    cfg: &Config,
    strict: bool,
) -> anyhow::Result<Result<RouteTable, Vec<TemplateError>>> {
    let base = match &cfg.templates.dir {
        Some(dir) => read_template_dir(dir)?,
        None => Vec::new(),
    };
    let default = match Renderer::new(base.clone(), render_settings(cfg), strict) {
        Ok(r) => Arc::new(r),
        Err(e) => return Ok(Err(e)),
    };
    let base_dirs: Vec<&Path> = cfg.templates.dir.iter().map(PathBuf::as_path).collect();
    let default_platforms =
        match platform_renderers(cfg, &base_dirs, cfg.templates.timezone, strict)? {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
    if cfg.routes.is_empty() {
        return Ok(Ok(RouteTable::per_channel_with(
            cfg.channels.clone(),
            default,
            default_platforms,
        )));
    }
    // Renderers already built, by (template folder, zone name).
    type Built = Vec<((Option<PathBuf>, String), Arc<Renderer>)>;
    let mut built: Built = Vec::new();
    let mut routes = Vec::new();
    let mut errors = Vec::new();
    for rc in &cfg.routes {
        let tz = rc.timezone.unwrap_or(cfg.templates.timezone);
        let key = (rc.templates.clone(), tz.name().to_string());
        let renderer = if rc.templates.is_none() && rc.timezone.is_none() {
            Arc::clone(&default)
        } else if let Some((_, r)) = built.iter().find(|(k, _)| *k == key) {
            Arc::clone(r)
        } else {
            let mut sources = base.clone();
            if let Some(dir) = &rc.templates {
                for t in read_template_dir(dir)? {
                    sources.retain(|s| s.name != t.name);
                    sources.push(t);
                }
            }
            let mut settings = render_settings(cfg);
            settings.dates.timezone = tz;
            match Renderer::new(sources, settings, strict) {
                Ok(r) => {
                    let r = Arc::new(r);
                    built.push((key, Arc::clone(&r)));
                    r
                }
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            }
        };
        let platforms = if rc.templates.is_none() && rc.timezone.is_none() {
            default_platforms.clone()
        } else {
            let mut dirs = base_dirs.clone();
            dirs.extend(rc.templates.as_deref());
            match platform_renderers(cfg, &dirs, tz, strict)? {
                Ok(p) => p,
                Err(e) => {
                    errors.extend(e);
                    continue;
                }
            }
        };
        routes.push(Route {
            config: rc.clone(),
            renderer,
            platforms,
        });
    }
    if !errors.is_empty() {
        errors.dedup();
        return Ok(Err(errors));
    }
    Ok(Ok(RouteTable {
        channels: cfg.channels.clone(),
        routes,
        chats: Some(default),
    }))
}

/// Builds the routes or fails with every template error listed.
pub fn routes_or_fail(cfg: &Config) -> anyhow::Result<RouteTable> {
    build_routes(cfg, false)?.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("templates do not compile:\n{}", lines.join("\n"))
    })
}

/// Every template folder the config reads (for the reload watch), with the `<kind>/`
/// subfolders of the platforms its channels post to.
pub fn template_dirs(cfg: &Config) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = cfg.templates.dir.iter().cloned().collect();
    for r in &cfg.routes {
        if let Some(d) = &r.templates {
            if !dirs.contains(d) {
                dirs.push(d.clone());
            }
        }
    }
    let mut subs = Vec::new();
    for d in &dirs {
        for p in platforms(cfg) {
            subs.push(d.join(p.as_str()));
        }
    }
    dirs.extend(subs);
    dirs
}

/// A hash of every `*.hbs` file's name and content in `dirs` (small files; cheap to read): what
/// `serve`'s reload watch and the preview page compare.
pub fn template_fingerprint(dirs: &[PathBuf]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for dir in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().and_then(|e| e.to_str()) == Some("hbs"));
        files.sort();
        for f in files {
            f.hash(&mut h);
            std::fs::read(&f).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

/// Loads the config with the path in the error.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{}", config_error(path, &e)))
}

/// A configuration error as the command line prints it: with the file's path in front, once
/// (reading and syntax errors name it already).
pub fn config_error(path: &Path, e: &crate::config::ConfigError) -> String {
    use crate::config::ConfigError;
    match e {
        ConfigError::Read { .. } | ConfigError::Syntax { .. } => e.to_string(),
        ConfigError::Invalid { .. } => format!("{}: {e}", path.display()),
    }
}

/// The store the config names, opened for an operator's command beside the daemon (which
/// need not run): the SQLite file `serve` created (its leases left alone) or the PostgreSQL
/// database the replicas share. Either way the command goes through the engine's operations,
/// never starts a router and never leases a message.
pub struct CommandStore {
    outbox: Option<DurableOutbox>,
    runtime: Option<tokio::runtime::Runtime>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// How messages name the store: the SQLite file's path, or `host:port/db`.
    pub name: String,
}

impl std::fmt::Debug for CommandStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandStore")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl CommandStore {
    /// Opens the store with a runtime of its own, for a synchronous command ([`Self::run`]);
    /// a SQLite file must exist (`serve` made it).
    pub fn open(cfg: &Config) -> anyhow::Result<CommandStore> {
        CommandStore::open_with(cfg, false)
    }

    /// [`Self::open`], making the SQLite file when there is none yet (an import before the
    /// first `serve`).
    pub fn open_or_create(cfg: &Config) -> anyhow::Result<CommandStore> {
        CommandStore::open_with(cfg, true)
    }

    fn open_with(cfg: &Config, create: bool) -> anyhow::Result<CommandStore> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut store = runtime.block_on(CommandStore::open_async(cfg, create))?;
        store.runtime = Some(runtime);
        Ok(store)
    }

    /// Opens the store on the caller's runtime, for an asynchronous command; a SQLite file
    /// must exist unless `create`.
    pub async fn open_async(cfg: &Config, create: bool) -> anyhow::Result<CommandStore> {
        let settings = DurableSettings {
            dedupe_window_ms: cfg.outbox.dedupe_window.as_millis() as i64,
            full_sync: cfg.outbox.full_sync,
        };
        if let Some(pg) = &cfg.outbox.postgres {
            let opts = PgOptions {
                url: pg.url.clone(),
                password: pg.password.clone(),
                ca_file: pg.ca_file.clone(),
                pool_size: 2,
                // Holds no lease: the name only keeps a replica's leases out of reach.
                owner: format!("cli:{}", std::process::id()),
            };
            let (outbox, _) =
                DurableOutbox::open_postgres(&opts, settings.dedupe_window_ms, &[], Clock::new())
                    .await
                    .with_context(|| format!("cannot open the PostgreSQL store {}", pg.target()))?;
            return Ok(CommandStore {
                outbox: Some(outbox),
                runtime: None,
                writer: None,
                name: pg.target(),
            });
        }
        let path = &cfg.outbox.path;
        if !create && !path.exists() {
            anyhow::bail!(
                "no outbox at {} (has `serve` run with this config?)",
                path.display()
            );
        }
        let (outbox, writer) = DurableOutbox::attach(path, settings, Clock::new())
            .with_context(|| format!("cannot open the outbox {}", path.display()))?;
        Ok(CommandStore {
            outbox: Some(outbox),
            runtime: None,
            writer: Some(writer),
            name: path.display().to_string(),
        })
    }

    /// The outbox over the store's engine.
    pub fn outbox(&self) -> &DurableOutbox {
        // Set from `open` until `drop`.
        self.outbox.as_ref().unwrap_or_else(|| unreachable!())
    }

    /// Runs `f` on the store to completion (a store opened with [`Self::open`]).
    pub fn run<'a, T>(
        &'a self,
        f: impl FnOnce(&'a DurableOutbox) -> BoxFuture<'a, Result<T, OutboxError>>,
    ) -> anyhow::Result<T> {
        let runtime = self
            .runtime
            .as_ref()
            .context("the store was opened without a runtime of its own")?;
        Ok(runtime.block_on(f(self.outbox()))?)
    }
}

impl Drop for CommandStore {
    fn drop(&mut self) {
        // The SQLite writer thread ends once the last handle is gone: wait for it, so the
        // store is closed before the command exits.
        drop(self.outbox.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// Now, in unix milliseconds.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A unix-millisecond time for people, in UTC.
pub fn when(ms: i64) -> String {
    chrono::TimeZone::timestamp_millis_opt(&chrono::Utc, ms)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| ms.to_string())
}
