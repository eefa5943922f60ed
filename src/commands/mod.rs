//! One composition root per subcommand, plus what they share: reading templates from disk and
//! building the renderer from the configuration.

pub mod check;
pub mod outbox;
pub mod render;
pub mod serve;
pub mod setup;

use crate::config::Config;
use crate::render::{DateSettings, Renderer, TemplateError, TemplateSource};
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;

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

/// Builds the renderer the config describes; template errors come back one per entry.
pub fn build_renderer(
    cfg: &Config,
    strict: bool,
) -> anyhow::Result<Result<Renderer, Vec<TemplateError>>> {
    let user = match &cfg.templates.dir {
        Some(dir) => read_template_dir(dir)?,
        None => Vec::new(),
    };
    Ok(Renderer::new(user, date_settings(cfg), strict))
}

/// Builds the renderer or fails with every template error listed.
pub fn renderer_or_fail(cfg: &Config) -> anyhow::Result<Renderer> {
    build_renderer(cfg, false)?.map_err(|errors| {
        let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
        anyhow::anyhow!("templates do not compile:\n{}", lines.join("\n"))
    })
}

/// Loads the config with the path in the error.
pub fn load_config(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}
