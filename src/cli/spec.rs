//! `import`, `infer` and the `--spec` of `run` and `test`: AsyncAPI in, a
//! scenario checked against a document, AsyncAPI out.

use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::checks::{Check, Conforms, Expectation};
use crate::command::ScenarioSource;
use crate::contract::{Contract, InferOptions};
use crate::scenario::ImportOptions;
use crate::scenario::Scenario;

/// `mqtt-workbench import SPEC -o scenario.ron`: prints the warnings, writes
/// the scenario (validated first). Returns the scenario's text.
pub fn import(spec: &Path, out: &Path, opts: ImportOptions) -> anyhow::Result<String> {
    let contract = Contract::load(spec)?;
    let out_dir = out
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let named = relative_to(spec, out_dir);
    let imported = crate::scenario::import_contract(&contract, &named.to_string_lossy(), opts);
    for w in &imported.warnings {
        eprintln!("warning: {}: {w}", spec.display());
    }
    // What it wrote must read back as a scenario (and its checks find their channels).
    let mut scenario = Scenario::parse(&imported.ron, out).with_context(|| {
        format!(
            "the scenario written from {} does not read back",
            spec.display()
        )
    })?;
    scenario.load_contract(out_dir)?;
    std::fs::write(out, &imported.ron).with_context(|| format!("writing {}", out.display()))?;
    eprintln!(
        "{}: {} devices from {} channels of {} (AsyncAPI {}); {} warnings",
        out.display(),
        scenario.device_count(),
        contract.channels.len(),
        spec.display(),
        contract.version,
        imported.warnings.len()
    );
    Ok(imported.ron)
}

/// `mqtt-workbench infer CAPTURE -o spec.yaml`: a recording (or message log
/// in JSON Lines) in, an AsyncAPI 3.0 document out.
pub fn infer(capture: &Path, out: &Path, title: Option<String>) -> anyhow::Result<()> {
    let rec = crate::export::record::read(capture)?;
    let opts = InferOptions {
        title: title.unwrap_or_else(|| {
            rec.scenario.clone().map_or_else(
                || "Inferred by MQTT Workbench".into(),
                |s| format!("{s} (inferred)"),
            )
        }),
    };
    let doc = crate::contract::infer(&rec.events, &opts);
    let text = if out.extension().is_some_and(|e| e == "json") {
        serde_json::to_string_pretty(&doc)? + "\n"
    } else {
        crate::contract::yaml::write(&doc)
    };
    std::fs::write(out, text).with_context(|| format!("writing {}", out.display()))?;
    let channels = doc
        .get("channels")
        .and_then(|c| c.as_object())
        .map_or(0, |c| c.len());
    eprintln!(
        "{}: {channels} channels from {} frames of {}",
        out.display(),
        rec.events.len(),
        capture.display()
    );
    Ok(())
}

/// `path` as seen from `dir` (both made absolute): `../specs/api.yaml`.
fn relative_to(path: &Path, dir: &Path) -> PathBuf {
    let abs = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (path, dir) = (abs(path), abs(dir));
    let p: Vec<_> = path.components().collect();
    let d: Vec<_> = dir.components().collect();
    let common = p.iter().zip(&d).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return path;
    }
    let mut out = PathBuf::new();
    for _ in common..d.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}

/// A scenario (or, without one, an empty scenario for your own clients)
/// checked against `spec`: its traffic marked live, and a `Conforms` check
/// per channel unless it has its own. The source the engine loads, and the
/// scenario as loaded.
pub fn with_spec(
    scenario: Option<&Path>,
    spec: &Path,
) -> anyhow::Result<(Scenario, ScenarioSource)> {
    let spec = std::fs::canonicalize(spec).with_context(|| format!("--spec {}", spec.display()))?;
    let (mut s, origin) = match scenario {
        Some(p) => (Scenario::load(p)?, p.to_path_buf()),
        None => {
            let contract = Contract::load(&spec)?;
            let title = if contract.title.is_empty() {
                "AsyncAPI"
            } else {
                &contract.title
            };
            let s = Scenario {
                description: format!(
                    "Your own clients' traffic checked against {}",
                    spec.display()
                ),
                ..Scenario::empty(format!("contract: {title}"))
            };
            (s, spec.with_extension("ron"))
        }
    };
    let dir = origin.parent().map(Path::to_path_buf).unwrap_or_default();
    s.spec = Some(spec.clone());
    for e in &mut s.expect {
        if let Check::Conforms(c) = &mut e.check {
            c.spec = Some(spec.clone());
        }
    }
    s.load_contract(&dir)?;
    let contract = s.contract.clone().context("the document was not read")?;
    if !s
        .expect
        .iter()
        .any(|e| matches!(e.check, Check::Conforms(_)))
    {
        for c in contract.channels.iter().filter(|c| !c.messages.is_empty()) {
            s.expect.push(Expectation {
                name: format!("{} conforms", c.address),
                check: Check::Conforms(Conforms {
                    spec: Some(spec.clone()),
                    channels: vec![c.address.to_string()],
                    contract: Some(contract.clone()),
                }),
            });
        }
    }
    for w in &contract.warnings {
        eprintln!("warning: {}: {w}", spec.display());
    }
    let source = ScenarioSource::Text {
        origin,
        ron: s.to_ron(),
    };
    Ok((s, source))
}
