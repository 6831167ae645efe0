//! `mqtt-workbench test`: scenarios run until their verdicts are final, or
//! checked against a recording; a report and JUnit XML.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::junit::{SuiteResult, junit_xml};
use super::report::{broker_health_failure, verdicts_text};
use super::run::{close_database, save_recording};
use crate::checks::{Verdict, VerdictState};
use crate::command::{Command, ScenarioSource};
use crate::engine::{self, EngineConfig};
use crate::model::Model;
use crate::scenario::Scenario;

/// Evaluate a scenario's expectations over a recording, offline: the frames
/// and faults in their recorded order and time.
pub fn check_recording(
    expectations: &[crate::checks::Expectation],
    decoders: &[crate::codec::DecoderRule],
    rec: &crate::export::record::Recording,
) -> Vec<Verdict> {
    let start = rec
        .started_us
        .or_else(|| rec.events.iter().map(|e| e.t_us).min())
        .unwrap_or(0);
    let mut checks = crate::checks::Checks::new(expectations, start);
    checks.set_decoders(decoders);
    let mut faults = rec.faults.iter().peekable();
    let mut last = start;
    for (seq, ev) in rec.events.iter().enumerate() {
        while let Some(f) = faults.next_if(|f| f.t_us <= ev.t_us) {
            checks.tick(f.t_us);
            checks.on_fault(f.t_us, f.timeline);
        }
        checks.tick(ev.t_us);
        checks.on_wire(ev, seq as u64);
        last = last.max(ev.t_us);
    }
    for f in faults {
        checks.on_fault(f.t_us, f.timeline);
    }
    checks.finish(last + 1);
    checks.verdicts().cloned().collect()
}

pub struct TestOptions {
    pub files: Vec<PathBuf>,
    /// Longest a scenario runs (it stops earlier once every verdict is
    /// final); None: the scenario's `duration`, or 60 s.
    pub duration: Option<Duration>,
    pub junit: Option<PathBuf>,
    /// Check the expectations against this recording instead of running the scenario.
    pub capture: Option<PathBuf>,
    /// Save the run's capture here (one scenario).
    pub record: Option<PathBuf>,
    /// Check the traffic against this AsyncAPI document: a `Conforms`
    /// testcase per channel unless the scenario has its own.
    pub spec: Option<PathBuf>,
    pub engine: EngineConfig,
}

/// Run one scenario headless until its verdicts are final (or `duration`).
async fn test_one(path: &std::path::Path, opts: &TestOptions) -> SuiteResult {
    let started = Instant::now();
    let mut result = SuiteResult {
        name: path.display().to_string(),
        file: path.to_path_buf(),
        elapsed: Duration::ZERO,
        verdicts: Vec::new(),
        error: None,
    };
    let loaded = match &opts.spec {
        Some(spec) => super::spec::with_spec(Some(path), spec).map_err(|e| format!("{e:#}")),
        None => Scenario::load_with_contract(path)
            .map(|s| (s, ScenarioSource::File(path.to_path_buf())))
            .map_err(|e| e.to_string()),
    };
    let (scenario, source) = match loaded {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(e);
            return result;
        }
    };
    result.name = scenario.name.clone();
    if let Some(capture) = &opts.capture {
        match crate::export::record::read(capture) {
            Ok(rec) => {
                result.verdicts = check_recording(&scenario.expect, &scenario.decoders, &rec);
                result.elapsed = started.elapsed();
            }
            Err(e) => result.error = Some(e.to_string()),
        }
        if scenario.expect.is_empty() {
            result.error = Some(format!(
                "{}: no `expect` section: nothing to test",
                path.display()
            ));
        }
        return result;
    }
    let duration = opts
        .duration
        .or(scenario.duration.map(|d| d.0))
        .unwrap_or(Duration::from_secs(60));
    if scenario.expect.is_empty() {
        result.error = Some(format!(
            "{}: no `expect` section: nothing to test",
            path.display()
        ));
        return result;
    }
    let mut handle = match engine::start(opts.engine.clone()).await {
        Ok(h) => h,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    let _ = handle.ready().await;
    let mut model = Model::default();
    if handle
        .commands
        .send(Command::LoadScenario(source))
        .await
        .is_err()
    {
        result.error = Some("the engine stopped".into());
        return result;
    }
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(&handle, None);
        for n in model.take_notices() {
            if n.error {
                eprintln!("{}: {}", path.display(), n.text);
            }
        }
        // A shard sees part of the fleet: its verdicts settle only in `merge`.
        let settled =
            opts.engine.shard.is_none() && model.checks.as_ref().is_some_and(|c| c.settled());
        if settled || started.elapsed() >= duration {
            break;
        }
    }
    let recorded = model
        .scenario
        .as_ref()
        .map(|s| (s.info.name.clone(), s.info.started_us));
    let _ = handle.commands.send(Command::StopScenario).await;
    if let Some(c) = &mut model.checks {
        c.finish(crate::time::now_us());
        result.verdicts = c.verdicts().cloned().collect();
    }
    if let Some(why) = broker_health_failure(&model) {
        result.error = Some(why);
    }
    close_database(&handle, &mut model).await;
    if let Some(path) = &opts.record {
        // Until the devices' graceful DISCONNECTs arrived (bounded).
        let settle = Instant::now();
        while model.scenario.is_some() && settle.elapsed() < Duration::from_secs(5) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            model.drain(&handle, None);
        }
        match save_recording(&model, recorded, path).await {
            Ok(n) => eprintln!("recorded {n} frames to {}", path.display()),
            Err(e) => result.error = Some(format!("{}: {e:#}", path.display())),
        }
    }
    result.elapsed = started.elapsed();
    result
}

/// `mqtt-workbench test`: every file in turn; prints the verdicts, writes
/// JUnit XML if asked. Returns how many expectations failed (or could not run).
pub async fn test(opts: TestOptions) -> anyhow::Result<usize> {
    let mut suites = Vec::new();
    for path in &opts.files {
        eprintln!("testing {} …", path.display());
        let r = test_one(path, &opts).await;
        match &r.error {
            Some(e) => println!("{}: ERROR {e}", path.display()),
            None => print!(
                "{} ({}, {:.1} s)\n{}",
                r.name,
                path.display(),
                r.elapsed.as_secs_f64(),
                verdicts_text(r.verdicts.iter())
            ),
        }
        suites.push(r);
    }
    // A shard's verdicts see part of the fleet: only `merge` fails on them.
    let counted = |v: &&Verdict| v.state == VerdictState::Failed && opts.engine.shard.is_none();
    let failed: usize = suites
        .iter()
        .map(|s| s.error.is_some() as usize + s.verdicts.iter().filter(counted).count())
        .sum();
    if let Some(k) = opts.engine.shard {
        println!(
            "\nshard {k}: the verdicts above see this shard's devices only; \
             `mqtt-workbench merge --scenario FILE` the shards' recordings for the whole fleet's"
        );
    }
    let total: usize = suites.iter().map(|s| s.verdicts.len().max(1)).sum();
    match opts.engine.shard {
        None => println!(
            "\n{failed} of {total} expectations failed in {} scenario(s)",
            suites.len()
        ),
        Some(k) => println!("\nshard {k} ran {} scenario(s)", suites.len()),
    }
    if let Some(path) = &opts.junit {
        let xml = junit_xml(&suites)?;
        std::fs::write(path, xml).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("JUnit report: {}", path.display());
    }
    Ok(failed)
}
