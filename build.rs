//! Build script: embeds every `templates/*.hbs` in the binary as a built-in template, named for
//! its file without `.hbs`, so a new template is a new file and nothing else
//! (`src/render/mod.rs` includes the generated list).

use std::error::Error;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

fn main() -> Result<(), Box<dyn Error>> {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("templates");
    // A directory here makes Cargo re-run this script when any file in it changes or appears.
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut templates = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "hbs") {
            if let Some(name) = path.file_stem().and_then(|s| s.to_str()) {
                templates.push((name.to_string(), path.display().to_string()));
            }
        }
    }
    templates.sort();
    let mut out = String::from(
        "/// Built-in templates, `(name, text)`: every `templates/*.hbs`, embedded by `build.rs`.\n\
         const BUILTIN: &[(&str, &str)] = &[\n",
    );
    for (name, path) in &templates {
        writeln!(out, "    ({name:?}, include_str!({path:?})),")?;
    }
    out.push_str("];\n");
    fs::write(
        PathBuf::from(env::var("OUT_DIR")?).join("builtin_templates.rs"),
        out,
    )?;
    Ok(())
}
