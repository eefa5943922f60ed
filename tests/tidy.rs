//! Tidy: the repository's conventions, checked by reading the source tree (rust-analyzer's
//! `xtask/src/tidy.rs` is the model).
//!
//! - The layer table in `docs/ARCHITECTURE.md` ("Code map") is the truth about imports: every
//!   module of `src/` has a row, and every `crate::…` (or, in `main.rs`, `gitlab_chat_bridge::…`)
//!   path names a module of a lower layer that the row's "imports" column lists.
//! - Within a module, its files import each other without a cycle (the module's root file aside).
//! - Every Rust file starts with a `//!` module doc.
//! - No test is switched off with the ignore attribute.
//! - No source file has more than `MAX_CODE_LINES` lines before its unit tests.
//! - The two store engines (`deliver/store`, `deliver/pg`) keep each concern in a file of the
//!   same name, so one operation's two dialects sit side by side.
//!
//! The checks are plain functions over text, so the tests below also prove that each one catches
//! what it is for (an upward import, an unlisted one, a cycle).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A row of the layer table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    layer: u32,
    /// What the row's module may import: `None` for "everything below".
    imports: Option<BTreeSet<String>>,
}

/// One path into the crate, found in a source file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Import {
    line: usize,
    /// The top-level module it names (`deliver` for `crate::deliver::worker::Target`).
    module: String,
    /// The file it names inside that module, when there is one (`worker`).
    file: Option<String>,
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The backticked words of a table cell, or its bare words when it has none.
fn names_in(cell: &str) -> Vec<String> {
    let ticked: Vec<String> = cell
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect();
    if !ticked.is_empty() {
        return ticked;
    }
    cell.split(',')
        .map(|w| w.trim().to_string())
        .filter(|w| !w.is_empty())
        .collect()
}

/// `commands/{serve,…}` → `commands`, `main.rs` → `main`.
fn module_name(cell: &str) -> String {
    let first = names_in(cell).into_iter().next().unwrap_or_default();
    let top = first.split('/').next().unwrap_or_default();
    top.trim_end_matches(".rs").to_string()
}

/// Parses the "Code map" table of `docs/ARCHITECTURE.md`.
fn layer_table(markdown: &str) -> Result<BTreeMap<String, Row>, String> {
    let section = markdown
        .split("## Code map")
        .nth(1)
        .ok_or("docs/ARCHITECTURE.md has no \"## Code map\" section")?;
    let mut rows = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        // | layer | module | owns | imports |  → ["", layer, module, owns, imports, ""]
        if cells.len() < 6 {
            continue;
        }
        let Ok(layer) = cells[1].parse::<u32>() else {
            continue;
        };
        let imports_cell = cells[cells.len() - 2];
        let imports = if imports_cell.contains("everything below") {
            None
        } else {
            Some(
                names_in(imports_cell)
                    .into_iter()
                    .filter(|n| n != "—" && n != "-")
                    .collect(),
            )
        };
        let module = module_name(cells[2]);
        if rows
            .insert(module.clone(), Row { layer, imports })
            .is_some()
        {
            return Err(format!("module {module} has two rows"));
        }
    }
    if rows.is_empty() {
        return Err("the code map table has no rows".into());
    }
    Ok(rows)
}

/// The crate paths a file uses, outside comments. `prefix` is `crate` in the library and
/// `gitlab_chat_bridge` in `main.rs`; `super::x` in a file directly inside module `own` is
/// `crate::own::x`.
fn imports_of(source: &str, prefix: &str, own: Option<&str>) -> Vec<Import> {
    let mut out = Vec::new();
    let needle = format!("{prefix}::");
    for (i, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices(&needle) {
            let before = code[..at].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            let mut parts = code[at + needle.len()..]
                .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .next()
                .unwrap_or_default()
                .split("::");
            let module = parts.next().unwrap_or_default().to_string();
            if module.is_empty() {
                continue;
            }
            let file = parts.next().filter(|f| !f.is_empty()).map(str::to_string);
            out.push(Import {
                line: i + 1,
                module,
                file,
            });
        }
        if let Some(own) = own {
            for (at, _) in code.match_indices("super::") {
                if code[..at].ends_with("super::") {
                    continue;
                }
                let file = code[at + "super::".len()..]
                    .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .next()
                    .unwrap_or_default();
                if !file.is_empty() && file != "super" {
                    out.push(Import {
                        line: i + 1,
                        module: own.to_string(),
                        file: Some(file.to_string()),
                    });
                }
            }
        }
    }
    out
}

/// Problems with `from`'s imports of other modules, against the table.
fn layer_problems(
    table: &BTreeMap<String, Row>,
    file: &str,
    from: &str,
    imports: &[Import],
) -> Vec<String> {
    let Some(row) = table.get(from) else {
        return vec![format!(
            "{file}: module {from} has no row in docs/ARCHITECTURE.md's code map"
        )];
    };
    let mut out = Vec::new();
    for imp in imports.iter().filter(|i| i.module != from) {
        let at = format!("{file}:{}", imp.line);
        match table.get(&imp.module) {
            None => out.push(format!(
                "{at}: imports {}, which has no row in the code map",
                imp.module
            )),
            Some(target) if target.layer >= row.layer => out.push(format!(
                "{at}: {from} (layer {}) imports {} (layer {}): imports must point down",
                row.layer, imp.module, target.layer
            )),
            Some(_) => {
                if let Some(listed) = &row.imports {
                    if !listed.contains(&imp.module) {
                        out.push(format!(
                            "{at}: {from} imports {}, which its row in the code map does not list",
                            imp.module
                        ));
                    }
                }
            }
        }
    }
    out
}

/// A cycle among the files of one module, as `a → b → a`, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<String> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<String> {
        if let Some(start) = path.iter().position(|n| n == node) {
            let mut cycle = path[start..].to_vec();
            cycle.push(node.to_string());
            return Some(cycle.join(" → "));
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
}

/// Every `.rs` file below `dir` (sorted), skipping build output.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// (top-level module, file inside it) of a file under `src/`: `src/deliver/worker.rs` →
/// (`deliver`, `worker`); a module's root file (`src/deliver/mod.rs`, `src/server.rs`) and
/// deeper files give (`deliver`, None) / their first level.
fn place(rel: &Path) -> (String, Option<String>) {
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    let top = parts.first().cloned().unwrap_or_default();
    let file = parts.get(1).filter(|f| *f != "mod").cloned();
    (top, file)
}

/// Every layering problem of the tree under `src/`, against `markdown`'s table.
fn tree_problems(src: &Path, markdown: &str) -> Vec<String> {
    let table = match layer_table(markdown) {
        Ok(t) => t,
        Err(e) => return vec![e],
    };
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    let mut edges: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for path in rust_files(src) {
        let Ok(rel) = path.strip_prefix(src) else {
            continue;
        };
        let shown = format!("src/{}", rel.display());
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let (top, file) = place(rel);
        if top == "lib" {
            continue;
        }
        seen.insert(top.clone());
        let imports = if top == "main" {
            imports_of(&text, "gitlab_chat_bridge", None)
        } else {
            // `super::` means the module's root only in files directly inside the module.
            let direct = rel.iter().count() == 2;
            imports_of(&text, "crate", direct.then_some(top.as_str()))
        };
        problems.extend(layer_problems(&table, &shown, &top, &imports));
        if let Some(from) = file {
            for imp in imports.iter().filter(|i| i.module == top) {
                if let Some(to) = imp.file.as_ref().filter(|to| **to != from) {
                    edges
                        .entry(top.clone())
                        .or_default()
                        .entry(from.clone())
                        .or_default()
                        .insert(to.clone());
                }
            }
        }
    }
    for (module, e) in &edges {
        if let Some(cycle) = find_cycle(e) {
            problems.push(format!(
                "src/{module}: files import each other in a cycle: {cycle}"
            ));
        }
    }
    for module in table.keys().filter(|m| !seen.contains(*m)) {
        problems.push(format!(
            "docs/ARCHITECTURE.md's code map has a row for {module}, which src/ does not have"
        ));
    }
    problems
}

#[test]
fn imports_follow_the_layer_table() {
    let _turn = crate::support::turn::shared();
    let markdown = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap_or_default();
    let problems = tree_problems(&root().join("src"), &markdown);
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_rust_file_starts_with_a_module_doc() {
    let _turn = crate::support::turn::shared();
    let mut missing = Vec::new();
    for dir in ["src", "tests", "benches", "fuzz/src", "fuzz/fuzz_targets"] {
        for path in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
            if !first.starts_with("//!") {
                missing.push(path.display().to_string());
            }
        }
    }
    let build = root().join("build.rs");
    if let Ok(text) = std::fs::read_to_string(&build) {
        if !text.starts_with("//!") {
            missing.push(build.display().to_string());
        }
    }
    assert!(missing.is_empty(), "no //! module doc: {missing:#?}");
}

#[test]
fn no_test_is_ignored() {
    let _turn = crate::support::turn::shared();
    // Built from parts, so this file does not match itself.
    let attribute = format!("#[{}", "ignore");
    let mut found = Vec::new();
    for dir in ["src", "tests", "benches", "fuzz/src", "fuzz/fuzz_targets"] {
        for path in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            for (i, line) in text.lines().enumerate() {
                if line.trim_start().starts_with(&attribute) {
                    found.push(format!("{}:{}", path.display(), i + 1));
                }
            }
        }
    }
    assert!(found.is_empty(), "ignored tests: {found:#?}");
}

/// A small tree laid out in a temporary folder: (path under `src/`, text).
fn fake_tree(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gcb-tidy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    for (path, text) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_default();
        }
        std::fs::write(&p, text).unwrap_or_default();
    }
    dir
}

const FAKE_MAP: &str = "## Code map\n\n| layer | module | owns | imports |\n|---|---|---|---|\n\
    | 0 | `low` | x | — |\n| 1 | `mid` | x | `low` |\n| 2 | `high` | x | `mid` |\n\
    | 3 | `main.rs` | x | `high` |\n\n## Next\n";

#[test]
fn the_layer_check_catches_upward_unlisted_and_cyclic_imports() {
    let _turn = crate::support::turn::shared();
    let clean = fake_tree(
        "clean",
        &[
            ("low.rs", "//! l\n"),
            ("mid/mod.rs", "//! m\nmod a;\nmod b;\nuse crate::low::X;\n"),
            (
                "mid/a.rs",
                "//! a\nuse super::b::Y; // crate::high in a comment is fine\n",
            ),
            ("mid/b.rs", "//! b\nuse super::Z;\n"),
            ("high.rs", "//! h\nuse crate::mid::a::Y;\n"),
            ("main.rs", "//! main\nuse gitlab_chat_bridge::high;\n"),
        ],
    );
    assert_eq!(tree_problems(&clean, FAKE_MAP), Vec::<String>::new());

    let upward = fake_tree(
        "upward",
        &[
            ("low.rs", "//! l\nuse crate::high::Thing;\n"),
            ("mid/mod.rs", "//! m\n"),
            ("high.rs", "//! h\nfn f() { crate::low::g(); }\n"),
            ("main.rs", "//! main\n"),
        ],
    );
    let problems = tree_problems(&upward, FAKE_MAP);
    assert_eq!(problems.len(), 2, "{problems:#?}");
    assert!(problems[0].contains("src/high.rs:2: high imports low, which its row"));
    assert!(problems[1].contains("src/low.rs:2: low (layer 0) imports high (layer 2)"));

    let cyclic = fake_tree(
        "cyclic",
        &[
            ("low.rs", "//! l\n"),
            ("mid/mod.rs", "//! m\n"),
            ("mid/a.rs", "//! a\nuse super::b::Y;\n"),
            ("mid/b.rs", "//! b\nuse crate::mid::a::X;\n"),
            ("high.rs", "//! h\n"),
            ("main.rs", "//! main\n"),
            ("stray.rs", "//! s\n"),
        ],
    );
    let problems = tree_problems(&cyclic, FAKE_MAP);
    assert_eq!(
        problems,
        [
            "src/stray.rs: module stray has no row in docs/ARCHITECTURE.md's code map",
            "src/mid: files import each other in a cycle: a → b → a",
        ],
    );
    for d in [clean, upward, cyclic] {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// Most lines a source file may have before its unit tests: past it, the file carries more than
/// one concern (issue 21 split `config.rs`, `deliver/store.rs` and `extension.rs` at this size).
const MAX_CODE_LINES: usize = 1_200;

/// Lines of `text` before its unit tests (a `#[cfg(test)]` line at the left margin followed by an
/// inline `mod …{`): the code a reader must hold, tests aside.
fn code_lines(text: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if *line == "#[cfg(test)]" {
            let next = lines[i + 1..].iter().find(|l| !l.trim().is_empty());
            if next.is_some_and(|l| l.starts_with("mod ") && l.trim_end().ends_with('{')) {
                return i;
            }
        }
    }
    lines.len()
}

#[test]
fn no_source_file_is_over_the_size_of_one_concern() {
    let _turn = crate::support::turn::shared();
    let mut big = Vec::new();
    for path in rust_files(&root().join("src")) {
        // A module's unit tests kept in a file of their own (`#[cfg(test)] mod tests;`).
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let n = code_lines(&std::fs::read_to_string(&path).unwrap_or_default());
        if n > MAX_CODE_LINES {
            big.push(format!("{}: {n} lines before its tests", path.display()));
        }
    }
    assert!(
        big.is_empty(),
        "over {MAX_CODE_LINES} lines: split by concern {big:#?}"
    );
    let sample = "//! x\nfn a() {}\n\n#[cfg(test)]\n\nmod tests {\n    #[test]\n    fn t() {}\n}\n";
    assert_eq!(code_lines(sample), 3);
    assert_eq!(
        code_lines("//! x\n#[cfg(test)]\nmod tests;\nfn b() {}\n"),
        4
    );
}

/// Files one store engine has and the other has not, each with the reason: everything else in
/// `src/deliver/store/` has a namesake in `src/deliver/pg/` holding the same operations.
const ENGINE_ONLY: [(&str, &str); 4] = [
    (
        "store/tests.rs",
        "SQLite's unit tests; PostgreSQL's run on a real cluster in tests/postgres",
    ),
    (
        "pg/engine.rs",
        "PgEngine; SQLite's engine is the writer thread, deliver/writer.rs",
    ),
    (
        "pg/window.rs",
        "the rate window replicas share; one SQLite process keeps it in memory",
    ),
    (
        "store/mod.rs",
        "Store and Reader; pg/mod.rs is the module's root (both have one)",
    ),
];

#[test]
fn both_store_engines_keep_each_concern_at_the_same_path() {
    let _turn = crate::support::turn::shared();
    let names = |dir: &str| -> BTreeSet<String> {
        rust_files(&root().join("src/deliver").join(dir))
            .iter()
            .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
            .collect()
    };
    let (sqlite, pg) = (names("store"), names("pg"));
    assert!(sqlite.len() > 3 && pg.len() > 3, "{sqlite:?} {pg:?}");
    let exempt = |engine: &str, f: &str| {
        f == "mod.rs"
            || ENGINE_ONLY
                .iter()
                .any(|(p, _)| *p == format!("{engine}/{f}"))
    };
    let mut lone = Vec::new();
    for f in sqlite.difference(&pg).filter(|f| !exempt("store", f)) {
        lone.push(format!("src/deliver/store/{f} has no src/deliver/pg/{f}"));
    }
    for f in pg.difference(&sqlite).filter(|f| !exempt("pg", f)) {
        lone.push(format!("src/deliver/pg/{f} has no src/deliver/store/{f}"));
    }
    assert!(
        lone.is_empty(),
        "one operation's two dialects sit at the same path in each engine \
         (or say why in ENGINE_ONLY): {lone:#?}"
    );
}
