//! The headless runner behind `mqtt-workbench run`, and the closing summary.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::capture::{Capture, FlowState, SessionEventKind};
use crate::engine::{self, EngineConfig, Readiness};
use crate::model::Model;
use crate::protocol::{Command, ScenarioSource};
use crate::sim::Scenario;

pub struct RunOptions {
    /// None: the broker and the tap only, for the user's own clients.
    pub scenario: Option<PathBuf>,
    pub duration: Option<Duration>,
    pub export: Option<PathBuf>,
    pub engine: EngineConfig,
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

pub async fn run(opts: RunOptions) -> anyhow::Result<()> {
    let scenario = opts.scenario.as_deref().map(Scenario::load).transpose()?;
    if let Some(s) = &scenario
        && let Some(why) = crate::sys::device_capacity().refuse(s.device_count() as u64)
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
                "MQTT Workbench {}: broker on mqtt://{tap} (forwarding to {upstream}), scenario \"{}\" with {} devices \
                 (this machine holds about {} in one process)",
                crate::VERSION,
                s.name,
                s.device_count(),
                crate::sys::device_capacity().devices()
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
    let mut model = Model::default();
    // The broker's state (with the TLS listener) went out before "ready".
    model.drain(&handle, None);
    if let crate::protocol::BrokerState::Running { tls: Some(t), .. } = &model.broker {
        eprintln!("{}", tls_summary(t));
    }
    let mut faults_printed = 0;
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
        model.drain(&handle, None);
        report_news(&mut model, &mut faults_printed);
        if last_status.elapsed() >= Duration::from_secs(1) {
            last_status = Instant::now();
            let line = status_line(&model.capture, started.elapsed());
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
    if let Some(path) = &opts.export {
        let events = model.capture.snapshot();
        let n = tokio::task::spawn_blocking({
            let path = path.clone();
            move || crate::export::write_events(&path, events.iter(), |_| {})
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

/// How to reach the TLS listener, in a few lines a user can copy from.
pub fn tls_summary(t: &crate::protocol::TlsInfo) -> String {
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
