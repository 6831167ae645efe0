//! `mqtt-workbench run`: the broker, the tap and a scenario headless, with a
//! status line, until a duration or Ctrl-C; then the summary and verdicts.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::report::{broker_health_failure, status_line, summary, tls_summary, verdicts_text};
use super::stats::{Stats, append_stats};
use crate::command::{Command, ScenarioSource};
use crate::engine::{self, EngineConfig, EngineHandle, Readiness};
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
    /// When a fleet still connecting is reported as an error (None:
    /// [`crate::sim::ramp::connect_limit`] for its size).
    pub connect_timeout: Option<Duration>,
    /// Check the traffic against this AsyncAPI document (`--spec`).
    pub spec: Option<PathBuf>,
    pub engine: EngineConfig,
}

/// How much of the model's news `run` has printed.
#[derive(Default)]
struct Printed {
    faults: u64,
    failed: u64,
}

/// Print what the model learned since the last call: notices, injected
/// faults, connections that failed before their CONNECT (a TLS handshake,
/// a WebSocket upgrade, the wrong protocol on a port).
fn report_news(model: &mut Model, printed: &mut Printed) {
    for n in model.take_notices() {
        eprintln!("{}{}", if n.error { "error: " } else { "" }, n.text);
    }
    let new = model.faults.total - printed.faults;
    let shown = model.faults.markers.len() as u64;
    for m in model
        .faults
        .markers
        .iter()
        .skip(shown.saturating_sub(new) as usize)
    {
        eprintln!("fault: {}", m.label);
    }
    printed.faults = model.faults.total;
    let capture = &model.capture;
    let new = capture.failed_total - printed.failed;
    let kept = capture.failed_connections.len() as u64;
    for f in capture
        .failed_connections
        .iter()
        .skip(kept.saturating_sub(new) as usize)
    {
        eprintln!("connection failed: {}: {}", f.origin(), f.why());
    }
    printed.failed = capture.failed_total;
}

/// Returns how many of the scenario's expectations failed.
pub async fn run(opts: RunOptions) -> anyhow::Result<usize> {
    let (scenario, source) = match &opts.spec {
        Some(spec) => {
            let (s, source) = super::spec::with_spec(opts.scenario.as_deref(), spec)?;
            (Some(s), Some(source))
        }
        None => {
            let s = opts.scenario.as_deref().map(Scenario::load).transpose()?;
            (s, opts.scenario.clone().map(ScenarioSource::File))
        }
    };
    let handle = start(&opts, scenario.as_ref(), source).await?;
    let mut model = match opts.capture_events {
        Some(n) => Model::new(crate::capture::Capture::new(
            crate::capture::Limits::scaled_to(n),
        )),
        None => Model::default(),
    };
    // The broker's state (with the TLS listener) went out before "ready".
    model.drain(&handle, None);
    if let crate::event::BrokerState::Running { tls, ws, .. } = &model.broker {
        if let Some(t) = tls {
            eprintln!("{}", tls_summary(t));
        }
        for url in ws.ws.iter().chain(&ws.wss) {
            eprintln!("WebSocket clients connect to {url}");
        }
    }
    let started = Instant::now();
    let mut printed = Printed::default();
    let interrupted = watch(&opts, &handle, &mut model, &mut printed, started).await?;
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
    report_news(&mut model, &mut printed);
    print!("{}", summary(&model.capture, started.elapsed()));
    if let Some(checks) = &mut model.checks {
        checks.finish(crate::time::now_us());
        print!("\n{}", verdicts_text(checks.verdicts()));
    }
    if let Some(tally) = &model.contract {
        print!("\n{}", tally.summary());
    }
    close_database(&handle, &mut model).await;
    write_outputs(&opts, &model, recorded_scenario).await?;
    if let Some(k) = opts.engine.shard {
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

/// Refuse a fleet this machine cannot hold, start the engine, say where it
/// listens and load the scenario.
async fn start(
    opts: &RunOptions,
    scenario: Option<&Scenario>,
    source: Option<ScenarioSource>,
) -> anyhow::Result<EngineHandle> {
    let shard = opts.engine.shard;
    let count = |s: &Scenario| shard.map_or(s.device_count(), |k| k.device_count(s));
    let capacity = crate::sys::device_capacity_for(matches!(
        opts.engine.upstream,
        crate::broker::Upstream::External(_)
    ));
    if let Some(s) = scenario
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
    let handle = engine::start(opts.engine.clone()).await?;
    let (tap, upstream) = match handle.readiness() {
        Readiness::Ready { tap, upstream, .. } => (tap, upstream),
        other => anyhow::bail!("the engine is not ready: {other:?}"),
    };
    match (scenario, source) {
        (Some(s), Some(source)) => {
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
                .send(Command::LoadScenario(source))
                .await
                .context("engine stopped")?;
        }
        _ => eprintln!(
            "MQTT Workbench {}: broker on mqtt://{tap} (forwarding to {upstream}), no scenario: connect your own clients",
            crate::VERSION
        ),
    }
    Ok(handle)
}

/// Until Ctrl-C (true) or the run's duration (false): the news, a status line
/// a second and the `--stats` lines.
async fn watch(
    opts: &RunOptions,
    handle: &EngineHandle,
    model: &mut Model,
    printed: &mut Printed,
    started: Instant,
) -> anyhow::Result<bool> {
    let tty = std::io::stderr().is_terminal();
    let mut last_status = Instant::now();
    let mut last_stats = Instant::now();
    if let Some((path, _)) = &opts.stats {
        append_stats(path, &Stats::now(model, started.elapsed()))?;
    }
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    // The ramp (devices waiting for their first CONNACK) said to be stuck, once a ramp.
    let mut stuck_said = false;
    let interrupted = loop {
        tokio::select! {
            _ = &mut ctrl_c => break true,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        // A budget: the status line and Ctrl-C keep their pace when events
        // come faster than the model applies them (the channel then drops
        // and counts what does not fit).
        model.drain(handle, Some(Duration::from_millis(250)));
        report_news(model, printed);
        match model.ramp.since {
            None => stuck_said = false,
            Some(since) if !stuck_said => {
                let limit = opts
                    .connect_timeout
                    .unwrap_or(crate::sim::ramp::connect_limit(model.ramp.status.devices));
                if since.elapsed() >= limit {
                    stuck_said = true;
                    let why = model.ramp.status.never_connected(limit);
                    if tty {
                        eprintln!();
                    }
                    eprintln!("error: {why} (they keep trying)");
                }
            }
            Some(_) => {}
        }
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let line = status_line(model, started.elapsed());
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
            append_stats(path, &Stats::now(model, started.elapsed()))?;
        }
        if opts.duration.is_some_and(|d| started.elapsed() >= d) {
            break false;
        }
    };
    if tty {
        eprintln!();
    }
    Ok(interrupted)
}

/// Store the verdicts in the capture database, commit what is queued and
/// close it (bounded: 15 s), then say what it holds.
pub async fn close_database(handle: &EngineHandle, model: &mut Model) {
    if !model.database_open {
        return;
    }
    if let Some(checks) = &model.checks {
        let verdicts = checks.verdicts().cloned().collect();
        let _ = handle
            .commands
            .send(Command::RecordVerdicts(verdicts))
            .await;
    }
    let _ = handle.commands.send(Command::CaptureDb(None)).await;
    let settle = Instant::now();
    while model.database_open && settle.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(handle, None);
    }
    if let Some(db) = &model.database {
        eprintln!("{}", super::report::database_line(db));
    }
}

/// `--export` (the message log) and `--record` (the whole capture).
async fn write_outputs(
    opts: &RunOptions,
    model: &Model,
    scenario: Option<(String, u64)>,
) -> anyhow::Result<()> {
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
        let n = save_recording(model, scenario, path).await?;
        eprintln!("recorded {n} frames to {}", path.display());
    }
    Ok(())
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
