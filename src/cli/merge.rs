//! `mqtt-workbench merge`: shards' recordings as one.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;

use super::junit::{SuiteResult, junit_xml};
use super::report::verdicts_text;
use super::test::check_recording;
use crate::checks::VerdictState;
use crate::scenario::Scenario;

pub struct MergeOptions {
    pub recordings: Vec<PathBuf>,
    pub scenario: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub export: Option<PathBuf>,
    pub junit: Option<PathBuf>,
}

/// `mqtt-workbench merge`: the shards' recordings as one capture, one log and
/// one report. Returns how many expectations failed.
pub fn merge(opts: MergeOptions) -> anyhow::Result<usize> {
    let started = Instant::now();
    let scenario = opts
        .scenario
        .as_deref()
        .map(Scenario::load_with_contract)
        .transpose()?;
    let mut recordings = Vec::new();
    for path in &opts.recordings {
        let rec = crate::export::record::read(path)?;
        let clients: std::collections::HashSet<&str> = rec
            .events
            .iter()
            .map(|e| &*e.client_id)
            .filter(|c| !c.is_empty())
            .collect();
        eprintln!(
            "{}: {} frames, {} clients, {} faults",
            path.display(),
            rec.events.len(),
            clients.len(),
            rec.faults.len()
        );
        if rec.evicted > 0 {
            eprintln!(
                "warning: {} starts late: its capture had evicted its oldest {} frames \
                 (raise the bound with `run --capture-events N`, or run shorter); \
                 checks over the start of the run see less than happened",
                path.display(),
                rec.evicted
            );
        }
        if let (Some(s), Some(r)) = (&scenario, &rec.scenario)
            && *r != s.name
        {
            eprintln!(
                "warning: {} recorded scenario \"{r}\", not \"{}\"",
                path.display(),
                s.name
            );
        }
        recordings.push(rec);
    }
    let merged = crate::export::record::merge(recordings);
    if !merged.shared_clients.is_empty() {
        eprintln!(
            "warning: {} client id(s) appear in more than one recording (overlapping shards?): {}",
            merged.shared_clients.len(),
            merged
                .shared_clients
                .iter()
                .take(5)
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let rec = merged.recording;
    let clients: std::collections::HashSet<&str> = rec
        .events
        .iter()
        .map(|e| &*e.client_id)
        .filter(|c| !c.is_empty())
        .collect();
    let messages = rec
        .events
        .iter()
        .filter(|e| e.kind == crate::wire::PacketKind::Publish)
        .count();
    println!(
        "merged {} recordings: {} frames ({messages} PUBLISH), {} clients, {} faults",
        opts.recordings.len(),
        rec.events.len(),
        clients.len(),
        rec.faults.len()
    );
    if let Some(path) = &opts.record {
        let scenario = rec.scenario.as_deref().zip(rec.started_us);
        let n = crate::export::record::write(
            path,
            rec.events.iter(),
            rec.events.len(),
            &rec.faults,
            scenario,
        )
        .with_context(|| format!("writing {}", path.display()))?;
        eprintln!("merged capture: {n} frames in {}", path.display());
    }
    if let Some(path) = &opts.export {
        let n = crate::export::write_events(path, rec.events.iter(), |_| {})?;
        eprintln!("merged message log: {n} messages in {}", path.display());
    }
    let Some(scenario) = scenario else {
        return Ok(0);
    };
    let suite = SuiteResult {
        name: scenario.name.clone(),
        file: opts.scenario.clone().unwrap_or_default(),
        elapsed: started.elapsed(),
        verdicts: check_recording(&scenario.expect, &scenario.decoders, &rec),
        error: scenario
            .expect
            .is_empty()
            .then(|| format!("{}: no `expect` section: nothing to check", scenario.name)),
    };
    print!("{}", verdicts_text(suite.verdicts.iter()));
    let failed = suite.error.is_some() as usize
        + suite
            .verdicts
            .iter()
            .filter(|v| v.state == VerdictState::Failed)
            .count();
    if let Some(path) = &opts.junit {
        let xml = junit_xml(std::slice::from_ref(&suite))?;
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("JUnit report: {}", path.display());
    }
    Ok(failed)
}
