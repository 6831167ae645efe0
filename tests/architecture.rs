//! The layering the README describes ("How it works"), checked on the source: the engine and the
//! model never mention the GUI toolkit, and the protocol is a leaf.

use std::path::{Path, PathBuf};

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

fn src(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(rel)
}

#[test]
fn engine_modules_never_mention_egui_or_eframe() {
    let mut files = Vec::new();
    for m in [
        "broker",
        "tap",
        "sim",
        "capture",
        "export",
        "engine.rs",
        "protocol.rs",
        "model.rs",
    ] {
        rust_files(&src(m), &mut files);
    }
    assert!(files.len() >= 15, "found only {} engine files", files.len());
    let mut offenders = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source file");
        for (i, line) in text.lines().enumerate() {
            let l = line.to_lowercase();
            if l.contains("egui") || l.contains("eframe") {
                offenders.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "engine code mentions the GUI toolkit:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn protocol_is_a_leaf() {
    let text = std::fs::read_to_string(src("protocol.rs")).expect("protocol.rs");
    let imports: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("crate::") || l.contains("super::"))
        .collect();
    assert!(
        imports.is_empty(),
        "protocol.rs must not import the crate's other modules: {imports:?}"
    );
}

#[test]
fn tap_and_sim_never_import_the_engine() {
    let mut files = Vec::new();
    rust_files(&src("tap"), &mut files);
    rust_files(&src("sim"), &mut files);
    for f in &files {
        let text = std::fs::read_to_string(f).expect("readable source file");
        assert!(
            !text.contains("crate::engine"),
            "{} imports the engine (the engine depends on it, not the reverse)",
            f.display()
        );
        assert!(
            !text.contains("crate::ui"),
            "{} imports the UI",
            f.display()
        );
    }
}
