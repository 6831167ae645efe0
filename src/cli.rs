//! The headless runner behind `mqtt-workbench run`, and the closing summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::{Capture, FlowState, SessionEventKind};
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::protocol::{Command, DeviceState, Event};
use crate::sim::Scenario;

pub struct RunOptions {
    pub scenario: PathBuf,
    pub duration: Option<Duration>,
    pub export: Option<PathBuf>,
    pub engine: EngineConfig,
}

/// Drain every pending event into `capture`; returns device states seen.
pub fn drain(
    handle: &EngineHandle,
    capture: &mut Capture,
    devices: &mut HashMap<String, DeviceState>,
) {
    while let Ok(ev) = handle.events.try_recv() {
        apply(ev, capture, devices);
    }
    capture.dropped = handle.dropped();
}

fn apply(ev: Event, capture: &mut Capture, devices: &mut HashMap<String, DeviceState>) {
    match ev {
        Event::Wire(batch) => capture.ingest_batch(batch),
        Event::Devices(batch) => {
            for d in batch {
                devices.insert(d.client_id, d.state);
            }
        }
        Event::Fault { label, .. } => eprintln!("fault: {label}"),
        Event::NetFaults(_) => {}
        Event::Notice { error, text } => {
            eprintln!("{}{text}", if error { "error: " } else { "" });
        }
        Event::Broker(_) | Event::ScenarioStarted { .. } | Event::ScenarioStopped => {}
    }
}

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let scenario = Scenario::load(&opts.scenario)?;
    let (soft, _) = crate::sys::raise_fd_limit();
    let needed = scenario.device_count() as u64 * crate::bench::FDS_PER_DEVICE + 64;
    if soft > 0 && needed > soft {
        eprintln!(
            "warning: {} devices need about {needed} file descriptors through the tap; the limit is {soft}: some will fail to connect",
            scenario.device_count()
        );
    }
    let handle = engine::start(opts.engine.clone()).await?;
    eprintln!(
        "MQTT Workbench {}: broker on mqtt://{} (forwarding to {}), scenario \"{}\" with {} devices",
        crate::VERSION,
        handle.tap_addr,
        handle.upstream,
        scenario.name,
        scenario.device_count()
    );
    handle
        .commands
        .send(Command::LoadScenario(Box::new(scenario)))
        .await
        .context("engine stopped")?;
    let mut capture = Capture::default();
    let mut devices = HashMap::new();
    let started = Instant::now();
    let tty = std::io::stderr().is_terminal();
    let mut last_status = Instant::now();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = loop {
        tokio::select! {
            _ = &mut ctrl_c => break true,
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        drain(&handle, &mut capture, &mut devices);
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let line = status_line(&capture, started.elapsed());
            if tty {
                eprint!("\r\x1b[2K{line}");
            } else {
                eprintln!("{line}");
            }
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
    let _ = handle.commands.send(Command::StopScenario).await;
    // Let the graceful DISCONNECTs and their close events arrive.
    let settle = Instant::now();
    while settle.elapsed() < Duration::from_millis(800) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        drain(&handle, &mut capture, &mut devices);
    }
    print!("{}", summary(&capture, started.elapsed()));
    if let Some(path) = &opts.export {
        let rows = crate::export::rows(&capture);
        let n = tokio::task::spawn_blocking({
            let path = path.clone();
            move || crate::export::write(&path, &rows)
        })
        .await??;
        eprintln!("exported {n} messages to {}", path.display());
    }
    Ok(())
}

pub fn status_line(c: &Capture, elapsed: Duration) -> String {
    let now = crate::tap::now_us();
    format!(
        "[{:>4}s] {} msg/s published, {} msg/s delivered | clients {} connected / {} seen | captured {} evicted {} dropped {}",
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
