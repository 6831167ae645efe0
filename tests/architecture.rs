//! The layering ARCHITECTURE.md describes, checked on the source. The module
//! list comes from the source tree (`src/*.rs`, `src/*/`), so a new module is
//! checked the day it lands: the engine and the model never mention the GUI
//! toolkit, the leaf modules import nothing from the crate, no two modules
//! import each other (directly or round a circle), and every document a
//! comment cites is in the repository.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> = std::fs::read_dir(path)
            .expect("readable source folder")
            .map(|e| e.expect("dir entry").path())
            .collect();
        entries.sort();
        for p in entries {
            rust_files(&p, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// The crate's top-level modules, from the source tree, with their files.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(root().join("src")).expect("src") {
        let p = e.expect("dir entry").path();
        let name = p
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("a UTF-8 name")
            .to_string();
        let is_module = p.is_dir() || p.extension().is_some_and(|e| e == "rs");
        if name == "lib" || name == "main" || !is_module {
            continue;
        }
        let mut files = Vec::new();
        rust_files(&p, &mut files);
        out.entry(name).or_insert_with(Vec::new).extend(files);
    }
    out
}

/// Source text without `//` comments (doc comments name modules freely).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .expect("readable source file")
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `text` imports (`crate::name`).
fn imports(text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    text.match_indices("crate::")
        .filter(|(at, _)| {
            // `$crate::` (macros) names the crate too; `xcrate::` does not exist.
            !text[..*at].ends_with(|c: char| c.is_alphanumeric() || c == '_')
        })
        .filter_map(|(at, m)| {
            let rest = &text[at + m.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            known.contains(&name).then_some(name)
        })
        .collect()
}

#[test]
fn lib_rs_declares_every_module_of_the_tree() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).expect("lib.rs");
    let mods = modules();
    assert!(mods.len() >= 20, "found only {} modules", mods.len());
    for m in mods.keys() {
        assert!(
            lib.contains(&format!("pub mod {m};")),
            "src/lib.rs does not declare `{m}`"
        );
    }
}

#[test]
fn engine_modules_never_mention_egui_or_eframe() {
    let mut offenders = Vec::new();
    let mut files = 0;
    for (m, paths) in modules() {
        if m == "ui" {
            continue;
        }
        for f in paths {
            files += 1;
            let text = std::fs::read_to_string(&f).expect("readable source file");
            for (i, line) in text.lines().enumerate() {
                let l = line.to_lowercase();
                if l.contains("egui") || l.contains("eframe") {
                    offenders.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
                }
            }
        }
    }
    assert!(files >= 50, "found only {files} engine files");
    assert!(
        offenders.is_empty(),
        "engine code mentions the GUI toolkit:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn leaf_modules_import_nothing_from_the_crate() {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    for leaf in ["wire", "time", "struct_variant", "sys", "tls"] {
        let files = &mods[leaf];
        for f in files {
            let text = code(f);
            let mut deps = imports(&text, &known);
            deps.remove(leaf);
            assert!(
                deps.is_empty() && !text.contains("super::super"),
                "{} is a leaf but imports {deps:?}",
                f.display()
            );
        }
    }
}

#[test]
fn no_import_circle_between_modules() {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let graph: BTreeMap<String, BTreeSet<String>> = mods
        .iter()
        .map(|(m, files)| {
            let mut deps = BTreeSet::new();
            for f in files {
                deps.extend(imports(&code(f), &known));
            }
            deps.remove(m);
            (m.clone(), deps)
        })
        .collect();
    // Depth-first search; a back edge is a circle, reported with its path.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Result<(), String> {
        if let Some(at) = path.iter().position(|p| p == m) {
            return Err(format!("{} → {m}", path[at..].join(" → ")));
        }
        if done.contains(m) {
            return Ok(());
        }
        path.push(m.to_string());
        for d in &graph[m] {
            visit(d, graph, path, done)?;
        }
        path.pop();
        done.insert(m.to_string());
        Ok(())
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        let mut path = Vec::new();
        if let Err(circle) = visit(m, &graph, &mut path, &mut done) {
            panic!("modules import each other round a circle: {circle}");
        }
    }
    // The layers hold: the engine's parts never import the window, the model,
    // the CLI or the benchmarks, and the tap and the devices never the engine.
    for m in [
        "broker", "tap", "sim", "capture", "checks", "export", "engine", "scenario", "database",
    ] {
        for above in ["ui", "model", "cli", "bench"] {
            assert!(!graph[m].contains(above), "{m} imports {above}");
        }
    }
    for m in ["tap", "sim", "model", "database"] {
        assert!(!graph[m].contains("engine"), "{m} imports the engine");
    }
}

#[test]
fn every_document_a_comment_cites_is_in_the_repository() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    rust_files(&root().join("tests"), &mut files);
    for extra in [
        "clippy.toml",
        "Cargo.toml",
        "build.rs",
        "scripts/test.sh",
        "scripts/setup.sh",
    ] {
        files.push(root().join(extra));
    }
    let mut missing = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable file");
        for word in text.split(|c: char| !(c.is_alphanumeric() || "_-./".contains(c))) {
            let word = word.trim_end_matches('.');
            // A document name, or a path to one (not an install path).
            if word.len() > 3 && word.ends_with(".md") && !word.starts_with("usr/") {
                let cited = root().join(word.trim_start_matches("./"));
                let beside = f.parent().map(|p| p.join(word));
                if !cited.is_file() && !beside.is_some_and(|b| b.is_file()) {
                    missing.push(format!("{}: {word}", f.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited documents not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn the_readme_lists_every_check_kind() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let listed: BTreeSet<&str> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once('(').map(|(kind, _)| kind))
        .filter(|k| k.chars().all(|c| c.is_ascii_alphanumeric()))
        .collect();
    for kind in mqtt_workbench::checks::Check::KINDS {
        assert!(
            listed.contains(kind),
            "README's check table has no `{kind}(…)` row"
        );
    }
}

#[test]
fn the_readme_lists_every_fault_kind() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let at = readme
        .find("\nFaults: `")
        .expect("the README's list of timeline faults");
    let list = &readme[at..at + readme[at..].find("\n\n").unwrap_or(readme.len() - at)];
    for kind in mqtt_workbench::fault::Fault::KINDS {
        assert!(
            list.contains(&format!("`{kind}(")) || list.contains(&format!("`{kind}`")),
            "the README's fault list has no `{kind}`"
        );
    }
}

#[test]
fn no_import_circle_between_the_files_of_a_module() {
    for dir in std::fs::read_dir(root().join("src")).expect("src") {
        let dir = dir.expect("dir entry").path();
        if !dir.is_dir() {
            continue;
        }
        // Sibling files and the `super::name` paths between them.
        let files: BTreeMap<String, PathBuf> = std::fs::read_dir(&dir)
            .expect("module folder")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.extension().is_some_and(|e| e == "rs"))
            .filter_map(|p| Some((p.file_stem()?.to_str()?.to_string(), p.clone())))
            .filter(|(n, _)| n != "mod" && n != "tests")
            .collect();
        let known: BTreeSet<String> = files.keys().cloned().collect();
        let graph: BTreeMap<String, BTreeSet<String>> = files
            .iter()
            .map(|(n, p)| {
                // Siblings are reached through `super::`; a `crate::name` is a
                // top-level module, even when a sibling shares its name.
                let text = code(p)
                    .replace("crate::", "top_level::")
                    .replace("super::", "crate::");
                let mut deps = imports(&text, &known);
                deps.remove(n);
                (n.clone(), deps)
            })
            .collect();
        // Remove files nothing in the rest depends on until none is left; what
        // cannot be removed sits on a circle.
        let mut left = graph.clone();
        loop {
            let leaf = left
                .iter()
                .find(|(_, deps)| deps.iter().all(|d| !left.contains_key(d)))
                .map(|(n, _)| n.clone());
            match leaf {
                Some(n) => {
                    left.remove(&n);
                }
                None => break,
            }
        }
        assert!(
            left.is_empty(),
            "{}: these files import each other round a circle: {:?}",
            dir.display(),
            left.keys().collect::<Vec<_>>()
        );
    }
}

/// Longest a source file may be, and a function outside tests.
const MAX_FILE_LINES: usize = 800;
const MAX_FN_LINES: usize = 150;

/// Functions (free, in impls and traits) with their first and last line,
/// leaving out `#[cfg(test)]` modules and `#[test]` functions.
#[derive(Default)]
struct Functions {
    found: Vec<(String, usize, usize)>,
}

fn is_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("test")
            || (a.path().is_ident("cfg") && a.parse_args::<syn::Ident>().is_ok_and(|i| i == "test"))
    })
}

impl Functions {
    fn add(&mut self, name: &syn::Ident, sig: &syn::Signature, block: &syn::Block) {
        let first = sig.fn_token.span.start().line;
        let last = block.brace_token.span.close().end().line;
        self.found.push((name.to_string(), first, last));
    }
}

impl<'ast> syn::visit::Visit<'ast> for Functions {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_test(&f.attrs) {
            self.add(&f.sig.ident, &f.sig, &f.block);
            syn::visit::visit_item_fn(self, f);
        }
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_test(&f.attrs) {
            self.add(&f.sig.ident, &f.sig, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
    }
    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.add(&f.sig.ident, &f.sig, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_file_over_800_lines_and_no_function_over_150() {
    let mut files = Vec::new();
    rust_files(&root().join("src"), &mut files);
    assert!(files.len() > 50, "the source tree was read");
    let mut too_long = Vec::new();
    let mut functions = 0;
    for path in files {
        let text = std::fs::read_to_string(&path).expect("readable source file");
        let shown = path
            .strip_prefix(root())
            .unwrap_or(&path)
            .display()
            .to_string();
        let lines = text.lines().count();
        if lines > MAX_FILE_LINES {
            too_long.push(format!("{shown}: {lines} lines (at most {MAX_FILE_LINES})"));
        }
        if path.file_stem().is_some_and(|s| s == "tests") {
            continue;
        }
        let file = syn::parse_file(&text).unwrap_or_else(|e| panic!("{shown}: {e}"));
        let mut found = Functions::default();
        syn::visit::Visit::visit_file(&mut found, &file);
        functions += found.found.len();
        for (name, first, last) in found.found {
            let n = last - first + 1;
            if n > MAX_FN_LINES {
                too_long.push(format!(
                    "{shown}:{first}: fn {name} is {n} lines (at most {MAX_FN_LINES})"
                ));
            }
        }
    }
    assert!(functions > 500, "functions were found ({functions})");
    assert!(
        too_long.is_empty(),
        "split these (ARCHITECTURE.md, \"Sizes\"):\n{}",
        too_long.join("\n")
    );
}
