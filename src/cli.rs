//! The headless runner behind `mqtt-workbench run`, and the closing summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::{Capture, FlowState, SessionEventKind};
use crate::checks::{Verdict, VerdictState};
use crate::command::{Command, ScenarioSource};
use crate::engine::{self, EngineConfig, Readiness};
use crate::model::Model;
use crate::scenario::Scenario;

pub struct RunOptions {
    /// None: the broker and the tap only, for the user's own clients.
    pub scenario: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub export: Option<PathBuf>,
    /// Save the whole capture (every frame, faults, timing) for open/replay/test.
    pub record: Option<PathBuf>,
    /// Append a [`Stats`] JSON line to this file at this interval.
    pub stats: Option<(PathBuf, Duration)>,
    /// Keep at most this many captured frames (None: the default bound).
    pub capture_events: Option<usize>,
    pub engine: EngineConfig,
}

/// One line of `run --stats`: this process's resources and the message
/// accounting so far, for soak runs (scripts/soak.py).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Seconds since the run started.
    pub t_s: u64,
    pub rss_kib: u64,
    pub open_fds: u64,
    pub threads: u64,
    /// Live tokio tasks (devices, tap connections, engine).
    pub tasks: u64,
    pub clients_connected: u64,
    /// PUBLISH frames clients sent / the broker delivered, all topics.
    pub published: u64,
    pub delivered: u64,
    /// QoS 1/2 handshakes on both legs, by outcome.
    pub qos_completed: u64,
    pub qos_open: u64,
    /// Open for longer than a minute: neither completed nor explained by a
    /// fault (a closed connection, or a frame of it discarded by one).
    pub qos_stuck: u64,
    /// Open because an injected fault discarded one of their frames.
    pub qos_lost_to_faults: u64,
    pub qos_interrupted: u64,
    pub qos_superseded: u64,
    pub qos_abandoned: u64,
    pub qos_evicted: u64,
    pub faults: u64,
    pub captured: u64,
    pub capture_kib: u64,
    pub evicted: u64,
    pub dropped: u64,
}

impl Stats {
    pub fn now(model: &Model, elapsed: Duration) -> Stats {
        let c = &model.capture;
        let now = crate::time::now_us();
        let mut st = Stats {
            t_s: elapsed.as_secs(),
            rss_kib: crate::sys::rss_bytes().unwrap_or(0) / 1024,
            open_fds: crate::sys::open_fds().unwrap_or(0),
            threads: crate::sys::threads().unwrap_or(0),
            tasks: tokio::runtime::Handle::try_current()
                .map(|h| h.metrics().num_alive_tasks() as u64)
                .unwrap_or(0),
            clients_connected: c.connected_clients() as u64,
            published: c.topics.values().map(|t| t.published).sum(),
            delivered: c.topics.values().map(|t| t.delivered).sum(),
            qos_completed: c.flows.completed,
            qos_open: 0,
            qos_stuck: 0,
            qos_lost_to_faults: 0,
            qos_interrupted: 0,
            qos_superseded: 0,
            qos_abandoned: 0,
            qos_evicted: c.flows.evicted,
            faults: model.faults.total,
            captured: c.len() as u64,
            capture_kib: c.bytes() as u64 / 1024,
            evicted: c.evicted,
            dropped: c.dropped,
        };
        for f in c.flows.incomplete_iter() {
            match f.state {
                FlowState::Open if f.lost_to_fault => st.qos_lost_to_faults += 1,
                FlowState::Open => {
                    st.qos_open += 1;
                    let last = f.steps.last().map_or(0, |s| s.t_us);
                    st.qos_stuck += (now.saturating_sub(last) > 60_000_000) as u64;
                }
                FlowState::Interrupted => st.qos_interrupted += 1,
                FlowState::Superseded => st.qos_superseded += 1,
                FlowState::Abandoned => st.qos_abandoned += 1,
                FlowState::Complete => {}
            }
        }
        st
    }
}

fn append_stats(path: &std::path::Path, st: &Stats) -> anyhow::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(st)?)?;
    Ok(())
}

/// Print what the model learned since the last call: notices, injected faults.
fn report_news(model: &mut Model, faults_printed: &mut u64) {
    for n in model.take_notices() {
        eprintln!("{}{}", if n.error { "error: " } else { "" }, n.text);
    }
    let new = model.faults.total - *faults_printed;
    let shown = model.faults.markers.len() as u64;
    for m in model
        .faults
        .markers
        .iter()
        .skip(shown.saturating_sub(new) as usize)
    {
        eprintln!("fault: {}", m.label);
    }
    *faults_printed = model.faults.total;
}

/// Returns how many of the scenario's expectations failed.
pub async fn run(opts: RunOptions) -> anyhow::Result<usize> {
    let scenario = opts.scenario.as_deref().map(Scenario::load).transpose()?;
    let shard = opts.engine.shard;
    let count = |s: &Scenario| shard.map_or(s.device_count(), |k| k.device_count(s));
    let capacity = crate::sys::device_capacity_for(matches!(
        opts.engine.upstream,
        crate::broker::Upstream::External(_)
    ));
    if let Some(s) = &scenario
        && let Some(why) = capacity.refuse(count(s) as u64)
    {
        anyhow::bail!(
            "{}: {why}",
            opts.scenario
                .as_deref()
                .unwrap_or(std::path::Path::new(""))
                .display()
        );
    }
    let handle = engine::start(opts.engine.clone())
        .await
        .map_err(anyhow::Error::msg)?;
    let (tap, upstream) = match handle.readiness() {
        Readiness::Ready { tap, upstream, .. } => (tap, upstream),
        other => anyhow::bail!("the engine is not ready: {other:?}"),
    };
    match (&scenario, &opts.scenario) {
        (Some(s), Some(path)) => {
            eprintln!(
                "MQTT Workbench {}: broker on mqtt://{tap} (forwarding to {upstream}), scenario \"{}\" with {} devices{} \
                 (this machine holds about {} in one process)",
                crate::VERSION,
                s.name,
                count(s),
                shard.map_or(String::new(), |k| format!(
                    " (shard {k} of its {})",
                    s.device_count()
                )),
                capacity.devices()
            );
            handle
                .commands
                .send(Command::LoadScenario(ScenarioSource::File(path.clone())))
                .await
                .context("engine stopped")?;
        }
        _ => eprintln!(
            "MQTT Workbench {}: broker on mqtt://{tap} (forwarding to {upstream}), no scenario: connect your own clients",
            crate::VERSION
        ),
    }
    let mut model = match opts.capture_events {
        Some(n) => Model::new(crate::capture::Capture::new(
            crate::capture::Limits::scaled_to(n),
        )),
        None => Model::default(),
    };
    // The broker's state (with the TLS listener) went out before "ready".
    model.drain(&handle, None);
    if let crate::event::BrokerState::Running { tls: Some(t), .. } = &model.broker {
        eprintln!("{}", tls_summary(t));
    }
    let mut faults_printed = 0;
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_status = Instant::now();
    let mut last_stats = Instant::now();
    if let Some((path, _)) = &opts.stats {
        append_stats(path, &Stats::now(&model, started.elapsed()))?;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = loop {
        tokio::select! {
            _ = &mut ctrl_c => break true,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        model.drain(&handle, None);
        report_news(&mut model, &mut faults_printed);
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let line = status_line(&model, started.elapsed());
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
        }
        if let Some((path, every)) = &opts.stats
            && last_stats.elapsed() >= *every
        {
            last_stats += *every;
            append_stats(path, &Stats::now(&model, started.elapsed()))?;
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break false;
        }
    };
    if tty {
        eprintln!();
    }
    if interrupted {
        eprintln!("interrupted: stopping devices…");
    }
    let recorded_scenario = model
        .scenario
        .as_ref()
        .map(|s| (s.info.name.clone(), s.info.started_us));
    let _ = handle.commands.send(Command::StopScenario).await;
    // Until the devices' graceful DISCONNECTs and close events arrived (bounded).
    let settle = Instant::now();
    while scenario.is_some()
        && model.scenario.is_some()
        && settle.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(&handle, None);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    model.drain(&handle, None);
    report_news(&mut model, &mut faults_printed);
    print!("{}", summary(&model.capture, started.elapsed()));
    if let Some(checks) = &mut model.checks {
        checks.finish(crate::time::now_us());
        print!("\n{}", verdicts_text(checks.verdicts()));
    }
    if let Some(path) = &opts.export {
        let events = model.capture.snapshot();
        let n = tokio::task::spawn_blocking({
            let path = path.clone();
            move || crate::export::write_events(&path, events.iter(), |_| {})
        })
        .await??;
        eprintln!("exported {n} messages to {}", path.display());
    }
    if let Some(path) = &opts.record {
        let n = save_recording(&model, recorded_scenario, path).await?;
        eprintln!("recorded {n} frames to {}", path.display());
    }
    if let Some(k) = shard {
        println!(
            "\nshard {k}: the verdicts above see this shard's devices only; \
             `mqtt-workbench merge --scenario FILE` the shards' recordings for the whole fleet's"
        );
        return Ok(0);
    }
    let broker_failed = broker_health_failure(&model);
    if let Some(why) = &broker_failed {
        eprintln!("error: {why}");
    }
    Ok(model.checks.as_ref().map_or(0, |c| c.failed()) + broker_failed.is_some() as usize)
}

/// Write the model's whole capture and faults as a recording (off the async workers).
pub async fn save_recording(
    model: &Model,
    scenario: Option<(String, u64)>,
    path: &std::path::Path,
) -> anyhow::Result<usize> {
    let events = model.capture.snapshot();
    let faults = model.faults.markers.iter().cloned().collect::<Vec<_>>();
    let path = path.to_path_buf();
    let evicted = model.capture.evicted;
    let n = tokio::task::spawn_blocking(move || {
        let scenario = scenario.as_ref().map(|(n, t)| (n.as_str(), *t));
        crate::export::record::write_evicted(
            &path,
            events.iter(),
            events.len,
            &faults,
            scenario,
            evicted,
        )
    })
    .await??;
    Ok(n)
}

/// Evaluate a scenario's expectations over a recording, offline: the frames
/// and faults in their recorded order and time.
pub fn check_recording(
    expectations: &[crate::checks::Expectation],
    rec: &crate::export::record::Recording,
) -> Vec<Verdict> {
    let start = rec
        .started_us
        .or_else(|| rec.events.iter().map(|e| e.t_us).min())
        .unwrap_or(0);
    let mut checks = crate::checks::Checks::new(expectations, start);
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

/// One line per verdict: PASS / FAIL / SKIP (not triggered), name, evidence.
pub fn verdicts_text<'a>(verdicts: impl Iterator<Item = &'a Verdict>) -> String {
    let mut out = String::from("Expectations:\n");
    for v in verdicts {
        let tag = match v.state {
            VerdictState::Passed => "PASS",
            VerdictState::Failed => "FAIL",
            VerdictState::NotTriggered => "SKIP",
            VerdictState::Pending => "....",
        };
        let _ = writeln!(out, "  {tag}  {}: {}", v.name, v.evidence);
    }
    out
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
    pub engine: EngineConfig,
}

/// One scenario's verdicts, for the report.
pub struct SuiteResult {
    pub name: String,
    pub file: PathBuf,
    pub elapsed: Duration,
    pub verdicts: Vec<Verdict>,
    /// Why it could not run at all (then `verdicts` is empty).
    pub error: Option<String>,
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
    let scenario = match Scenario::load(path) {
        Ok(s) => s,
        Err(e) => {
            result.error = Some(e.to_string());
            return result;
        }
    };
    result.name = scenario.name.clone();
    if let Some(capture) = &opts.capture {
        match crate::export::record::read(capture) {
            Ok(rec) => {
                result.verdicts = check_recording(&scenario.expect, &rec);
                result.elapsed = started.elapsed();
            }
            Err(e) => result.error = Some(e),
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
            result.error = Some(e);
            return result;
        }
    };
    let _ = handle.ready().await;
    let mut model = Model::default();
    if handle
        .commands
        .send(Command::LoadScenario(ScenarioSource::File(
            path.to_path_buf(),
        )))
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
    let scenario = opts.scenario.as_deref().map(Scenario::load).transpose()?;
    let mut recordings = Vec::new();
    for path in &opts.recordings {
        let rec = crate::export::record::read(path).map_err(anyhow::Error::msg)?;
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
        verdicts: check_recording(&scenario.expect, &rec),
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

/// JUnit XML as CI systems read it: one testsuite per scenario, one testcase
/// per expectation; failures carry the evidence, not-triggered ones are skipped.
pub fn junit_xml(suites: &[SuiteResult]) -> anyhow::Result<String> {
    use quick_xml::events::{BytesDecl, BytesText, Event as X};
    let mut w = quick_xml::Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(X::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    let count =
        |s: &SuiteResult, st: VerdictState| s.verdicts.iter().filter(|v| v.state == st).count();
    let tests: usize = suites.iter().map(|s| s.verdicts.len().max(1)).sum();
    let failures: usize = suites.iter().map(|s| count(s, VerdictState::Failed)).sum();
    let errors: usize = suites.iter().filter(|s| s.error.is_some()).count();
    w.create_element("testsuites")
        .with_attribute(("name", "mqtt-workbench"))
        .with_attribute(("tests", tests.to_string().as_str()))
        .with_attribute(("failures", failures.to_string().as_str()))
        .with_attribute(("errors", errors.to_string().as_str()))
        .write_inner_content(|w| {
            for s in suites {
                let file = s.file.display().to_string();
                w.create_element("testsuite")
                    .with_attribute(("name", s.name.as_str()))
                    .with_attribute(("file", file.as_str()))
                    .with_attribute(("tests", s.verdicts.len().max(1).to_string().as_str()))
                    .with_attribute((
                        "failures",
                        count(s, VerdictState::Failed).to_string().as_str(),
                    ))
                    .with_attribute(("errors", (s.error.is_some() as usize).to_string().as_str()))
                    .with_attribute((
                        "skipped",
                        count(s, VerdictState::NotTriggered).to_string().as_str(),
                    ))
                    .with_attribute(("time", format!("{:.3}", s.elapsed.as_secs_f64()).as_str()))
                    .write_inner_content(|w| {
                        if let Some(e) = &s.error {
                            w.create_element("testcase")
                                .with_attribute(("name", "scenario"))
                                .with_attribute(("classname", s.name.as_str()))
                                .write_inner_content(|w| {
                                    w.create_element("error")
                                        .with_attribute(("message", e.as_str()))
                                        .write_text_content(BytesText::new(e))?;
                                    Ok(())
                                })?;
                        }
                        for v in &s.verdicts {
                            let case = w
                                .create_element("testcase")
                                .with_attribute(("name", v.name.as_str()))
                                .with_attribute(("classname", s.name.as_str()));
                            match v.state {
                                VerdictState::Failed => {
                                    case.write_inner_content(|w| {
                                        w.create_element("failure")
                                            .with_attribute(("message", v.evidence.as_str()))
                                            .write_text_content(BytesText::new(&v.evidence))?;
                                        Ok(())
                                    })?;
                                }
                                VerdictState::NotTriggered | VerdictState::Pending => {
                                    case.write_inner_content(|w| {
                                        w.create_element("skipped")
                                            .with_attribute(("message", v.evidence.as_str()))
                                            .write_empty()?;
                                        Ok(())
                                    })?;
                                }
                                VerdictState::Passed => {
                                    case.write_inner_content(|w| {
                                        w.create_element("system-out")
                                            .write_text_content(BytesText::new(&v.evidence))?;
                                        Ok(())
                                    })?;
                                }
                            }
                        }
                        Ok(())
                    })?;
            }
            Ok(())
        })?;
    Ok(String::from_utf8(w.into_inner())?)
}

pub fn status_line(model: &Model, elapsed: Duration) -> String {
    let now = crate::time::now_us();
    let c = &model.capture;
    let health = match &model.broker_health {
        Some(h) if !h.answering => format!(" | BROKER NOT ANSWERING: restart #{}", h.restarts),
        Some(h) => format!(" | broker restarted {}× (it stopped answering)", h.restarts),
        None => String::new(),
    };
    format!(
        "[{:>4}s] {} msg/s published, {} msg/s delivered | clients {} connected / {} seen | captured {} evicted {} dropped {}{health}",
        elapsed.as_secs(),
        c.rates.published_per_s(now),
        c.rates.delivered_per_s(now),
        c.connected_clients(),
        c.sessions.len(),
        c.len(),
        c.evicted,
        c.dropped,
    )
}

/// Why a run fails although its checks passed: the embedded broker had to be
/// restarted because it stopped answering (what a user's green run must not hide).
pub fn broker_health_failure(model: &Model) -> Option<String> {
    model.broker_health.as_ref().map(|h| {
        format!(
            "the embedded broker stopped answering and was restarted {}× ({}): failing the run",
            h.restarts, h.why
        )
    })
}

/// The closing summary: per-topic counts, per-client sessions, QoS flows.
pub fn summary(c: &Capture, elapsed: Duration) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "\n== Summary after {:.1}s ==", elapsed.as_secs_f64());
    let _ = writeln!(s, "\nTopics ({}):", c.topics.len());
    let _ = writeln!(
        s,
        "  {:<48} {:>9} {:>9} {:>8}",
        "topic", "published", "delivered", "retained"
    );
    const MAX_ROWS: usize = 40;
    for (t, st) in c.topics.iter().take(MAX_ROWS) {
        let _ = writeln!(
            s,
            "  {:<48} {:>9} {:>9} {:>8}",
            t,
            st.published,
            st.delivered,
            if st.retained.is_some() { "yes" } else { "" }
        );
    }
    if c.topics.len() > MAX_ROWS {
        let _ = writeln!(s, "  … and {} more topics", c.topics.len() - MAX_ROWS);
    }
    let _ = writeln!(s, "\nSessions ({}):", c.sessions.len());
    let _ = writeln!(
        s,
        "  {:<28} {:<10} {:<10} {:>5} {:>6} {:>6} {:>5}  last disconnect",
        "client", "state", "session", "subs", "sent", "recv", "conn"
    );
    for (id, ss) in c.sessions.iter().take(MAX_ROWS) {
        let connects = ss
            .history
            .iter()
            .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
            .count();
        let _ = writeln!(
            s,
            "  {:<28} {:<10} {:<10} {:>5} {:>6} {:>6} {:>5}  {}",
            id,
            if ss.connected { "connected" } else { "offline" },
            if ss.clean_session {
                "clean"
            } else {
                "persistent"
            },
            ss.subscriptions.len(),
            ss.published,
            ss.received,
            connects,
            ss.last_disconnect().map(|r| r.label()).unwrap_or_default()
        );
    }
    if c.sessions.len() > MAX_ROWS {
        let _ = writeln!(s, "  … and {} more clients", c.sessions.len() - MAX_ROWS);
    }
    let mut by_state: HashMap<FlowState, usize> = HashMap::new();
    let mut deviations = 0;
    for f in c.flows.iter() {
        *by_state.entry(f.state).or_default() += 1;
        deviations += f.deviation.is_some() as usize;
    }
    let _ = writeln!(
        s,
        "\nQoS flows: {} completed, {} incomplete ({} open, {} interrupted, {} superseded, {} abandoned), {} evicted",
        c.flows.completed,
        c.flows.incomplete(),
        by_state.get(&FlowState::Open).unwrap_or(&0),
        by_state.get(&FlowState::Interrupted).unwrap_or(&0),
        by_state.get(&FlowState::Superseded).unwrap_or(&0),
        by_state.get(&FlowState::Abandoned).unwrap_or(&0),
        c.flows.evicted,
    );
    if deviations > 0 {
        let _ = writeln!(
            s,
            "  {deviations} deliveries at a QoS other than min(published, granted): rumqttd delivers at the subscription's QoS"
        );
    }
    let _ = writeln!(
        s,
        "\nCaptured {} events ({} KiB), evicted {}, dropped {}",
        c.len(),
        c.bytes() / 1024,
        c.evicted,
        c.dropped
    );
    s
}

/// Where the tap listens: `--bind` address with `--port`.
pub fn listen_addr(bind: &str, port: u16) -> anyhow::Result<SocketAddr> {
    let ip: std::net::IpAddr = bind
        .parse()
        .with_context(|| format!("--bind {bind}: not an IP address"))?;
    Ok(SocketAddr::new(ip, port))
}

/// How to reach the TLS listener, in a few lines a user can copy from.
pub fn tls_summary(t: &crate::event::TlsInfo) -> String {
    let mut out = format!("TLS on mqtts://{}", t.addr);
    if let Some(ca) = &t.ca {
        out += &format!(
            " (generated certificate for localhost, 127.0.0.1 and ::1); trust this CA in your clients: {}",
            ca.display()
        );
    }
    if t.client_cert_required {
        out += "\nclients must present a certificate";
        if let (Some(c), Some(k)) = (&t.client_cert, &t.client_key) {
            out += &format!(
                " (one signed by the generated CA: --cert {} --key {})",
                c.display(),
                k.display()
            );
        }
    }
    out
}

/// `mqtt-workbench replay`: the broker and tap as `run` starts them, the
/// recording's publishes replayed through the tap, then the summary.
pub async fn replay(
    capture: PathBuf,
    speed: crate::replay::Speed,
    record: Option<PathBuf>,
    check: Option<PathBuf>,
    engine_cfg: EngineConfig,
) -> anyhow::Result<usize> {
    let expectations = match &check {
        Some(path) => Scenario::load(path)?.expect,
        None => Vec::new(),
    };
    let rec = tokio::task::spawn_blocking(move || crate::export::record::read(&capture))
        .await?
        .map_err(anyhow::Error::msg)?;
    let handle = engine::start(engine_cfg)
        .await
        .map_err(anyhow::Error::msg)?;
    let (tap, upstream) = match handle.readiness() {
        Readiness::Ready { tap, upstream, .. } => (tap, upstream),
        other => anyhow::bail!("the engine is not ready: {other:?}"),
    };
    eprintln!(
        "MQTT Workbench {}: replaying {} ({} frames) through mqtt://{tap} (forwarding to {upstream}) at {speed:?}",
        crate::VERSION,
        rec.path.display(),
        rec.events.len()
    );
    let mut model = Model::default();
    if !expectations.is_empty() {
        model.checks = Some(crate::checks::Checks::new(
            &expectations,
            crate::time::now_us(),
        ));
    }
    let started = Instant::now();
    let host = tap.ip().to_string();
    let work = crate::replay::replay(&rec, &host, tap.port(), speed);
    tokio::pin!(work);
    let report = loop {
        tokio::select! {
            r = &mut work => break r?,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                model.drain(&handle, None);
            }
        }
    };
    // Let the last deliveries and closes arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    model.drain(&handle, None);
    print!("{}", summary(&model.capture, started.elapsed()));
    eprintln!(
        "replayed {} messages from {} clients in {:.1} s ({} could not be sent)",
        report.published,
        report.clients,
        report.elapsed.as_secs_f64(),
        report.failed
    );
    if let Some(path) = &record {
        let n = save_recording(&model, None, path).await?;
        eprintln!("recorded {n} frames to {}", path.display());
    }
    Ok(match &mut model.checks {
        Some(checks) => {
            checks.finish(crate::time::now_us());
            print!("\n{}", verdicts_text(checks.verdicts()));
            checks.failed()
        }
        None => 0,
    })
}
