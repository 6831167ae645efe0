//! `mqtt-workbench bench`: N virtual devices at R msg/s each through tap and
//! broker, with one subscriber taking everything. Prints delivered msgs/s,
//! CPU seconds per 1k messages, peak RSS and bytes per captured message.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::capture::Capture;
use crate::command::Command;
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::model::Model;
use crate::scenario::{
    DeviceSpec, Gen, Payload, Protocol, PublishSpec, Qos, Scenario, SubSpec, Transport,
};
use crate::sim::ramp::connect_limit;
use crate::time::Dur;

mod compare;
mod contract;
mod subscriptions;
pub use compare::transports_table;
pub use contract::contract;
pub use subscriptions::{SubscriptionsReport, run as subscriptions};

pub struct BenchOptions {
    pub devices: u32,
    pub rate_hz: f64,
    pub duration: Duration,
    pub qos: u8,
    /// The MQTT version every bench device speaks.
    pub protocol: Protocol,
    pub engine: EngineConfig,
    /// Run the publishing devices in a child process (its descriptors don't
    /// count against this process's open-file limit).
    pub devices_in_child: bool,
    /// Publishers connect straight to the broker, bypassing the tap (with
    /// `devices_in_child`): measures the broker alone, and so the tap's cost.
    pub direct: bool,
    /// Publishers are scripted devices: [`BENCH_SCRIPT`] publishes on each tick.
    pub script: bool,
    /// Give up when the fleet is not connected by then (None: [`connect_limit`]).
    pub connect_timeout: Option<Duration>,
    /// How the publishers connect (in-process): plain MQTT, or over a
    /// WebSocket (`Wss`: and TLS, which the engine must have). The
    /// subscriber, a backend, stays on TCP.
    pub transport: Transport,
}

/// The publishers of `s` connect over `transport`.
fn publishers_over(mut s: Scenario, transport: Transport) -> Scenario {
    for d in s.devices.iter_mut().filter(|d| d.id != SINK_ID) {
        d.transport = transport;
    }
    s
}

/// Wait until `want` virtual devices got their first CONNACK; say how far
/// they got every few seconds on stderr; after `limit`, an error naming how
/// many never did and why (what their last attempt failed with). Returns the
/// seconds it took.
pub async fn wait_for_fleet(
    handle: &EngineHandle,
    model: &mut Model,
    want: u64,
    limit: Duration,
) -> anyhow::Result<f64> {
    let t0 = Instant::now();
    let mut said = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(handle, None);
        let r = &model.ramp;
        if r.status.devices >= want && r.status.complete() {
            return Ok(t0.elapsed().as_secs_f64());
        }
        if t0.elapsed() >= limit {
            anyhow::bail!(
                "the fleet did not connect: {}",
                r.status.never_connected(limit)
            );
        }
        if said.elapsed() >= Duration::from_secs(5) {
            said = Instant::now();
            eprintln!("connecting: {}", r.line());
        }
    }
}

/// Wait (at most `limit`) until every virtual device ended.
async fn wait_for_no_devices(handle: &EngineHandle, model: &mut Model, limit: Duration) {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(handle, None);
        if model.ramp.status.devices == 0 {
            return;
        }
    }
    eprintln!(
        "warning: {} devices had not ended {:.0} s after the stop",
        model.ramp.status.devices,
        limit.as_secs_f64()
    );
}

/// The scripted publishers' logic (`bench --script`): a small `onTick` that
/// publishes JSON.
pub const BENCH_SCRIPT: &str = "let n = 0;
function onTick() {
  n += 1;
  device.publish('bench/' + device.index, { v: n, t: Date.now() });
}
";

/// The scenario as the engine loads it; with `script`, its publishers run
/// [`BENCH_SCRIPT`] every `tick` (a file beside the scenario, in a folder
/// under the system's temporary directory: scripts are read from files).
fn source(
    mut s: Scenario,
    script: bool,
    tick: Duration,
) -> anyhow::Result<crate::command::ScenarioSource> {
    if !script {
        return Ok(s.to_source());
    }
    for d in s.devices.iter_mut().filter(|d| d.id == "bench-{i}") {
        d.publish.clear();
        d.tick = Dur(tick);
        d.script = Some("bench.js".into());
    }
    let dir = std::env::temp_dir().join(format!("mqtt-workbench-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("bench.js"), BENCH_SCRIPT)?;
    let path = dir.join(format!("{}.ron", s.devices.len()));
    std::fs::write(&path, s.to_ron())?;
    Ok(crate::command::ScenarioSource::File(path))
}

#[derive(Debug, Clone)]
pub struct BenchReport {
    pub devices: u32,
    pub rate_hz: f64,
    pub connected: usize,
    pub connect_s: f64,
    pub window_s: f64,
    pub published: u64,
    pub delivered: u64,
    pub delivered_per_s: f64,
    pub cpu_s_per_1k: f64,
    pub peak_rss_mib: f64,
    pub bytes_per_captured: f64,
    pub dropped: u64,
    /// RSS growth per connected idle device, KiB (None: not measured).
    pub idle_kib_per_device: Option<f64>,
    /// Open file descriptors of this process while the fleet ran.
    pub open_fds: Option<u64>,
    /// How the publishers were run, for the report.
    pub mode: String,
    /// "MQTT 3.1.1" or "MQTT 5".
    pub protocol: &'static str,
    /// With --capture-db: frames committed per second during the window,
    /// bytes per frame on disk (file and WAL over frames written), frames lost.
    pub database: Option<(f64, f64, u64)>,
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "mode                    {}", self.mode)?;
        writeln!(f, "protocol                {}", self.protocol)?;
        writeln!(
            f,
            "devices                 {} ({} connected in {:.1}s)",
            self.devices, self.connected, self.connect_s
        )?;
        writeln!(
            f,
            "offered                 {:.0} msg/s ({} × {} Hz)",
            self.devices as f64 * self.rate_hz,
            self.devices,
            self.rate_hz
        )?;
        writeln!(f, "window                  {:.1}s", self.window_s)?;
        writeln!(f, "published (tap saw)     {}", self.published)?;
        writeln!(
            f,
            "delivered               {} ({:.0} msg/s)",
            self.delivered, self.delivered_per_s
        )?;
        writeln!(
            f,
            "CPU per 1k messages     {:.3} s (user+sys of every process involved / 1k delivered)",
            self.cpu_s_per_1k
        )?;
        writeln!(f, "peak RSS                {:.1} MiB", self.peak_rss_mib)?;
        if let Some(k) = self.idle_kib_per_device {
            writeln!(
                f,
                "memory per idle device  {k:.1} KiB (RSS growth with the fleet connected, silent)"
            )?;
        }
        if let Some(n) = self.open_fds {
            writeln!(f, "open files              {n}")?;
        }
        writeln!(f, "bytes per captured msg  {:.0}", self.bytes_per_captured)?;
        if let Some((rate, per_frame, lost)) = self.database {
            writeln!(
                f,
                "capture database        {rate:.0} frames/s committed, {per_frame:.0} bytes/frame on disk, {lost} lost"
            )?;
        }
        writeln!(f, "dropped (consumer lag)  {}", self.dropped)
    }
}

/// The sink alone (it subscribes to every bench topic).
fn sink_only(qos: u8, protocol: Protocol) -> Scenario {
    let mut s = scenario(1, 1.0, qos, protocol);
    s.devices.truncate(1);
    s
}

/// The publishers alone.
fn publishers_only(devices: u32, rate_hz: f64, qos: u8, protocol: Protocol) -> Scenario {
    let mut s = scenario(devices, rate_hz, qos, protocol);
    s.devices.remove(0);
    s
}

/// The subscriber taking every bench message.
const SINK_ID: &str = "bench-sink";

pub fn scenario(devices: u32, rate_hz: f64, qos: u8, protocol: Protocol) -> Scenario {
    let period = Duration::from_secs_f64(1.0 / rate_hz.max(0.001));
    let publisher = DeviceSpec {
        id: "bench-{i}".into(),
        count: devices,
        clean_session: true,
        keep_alive: Dur::secs(60),
        will: None,
        subscribe: vec![],
        publish: vec![PublishSpec {
            topic: "bench/{i}".into(),
            every: Some(Dur(period)),
            qos: Qos(qos),
            retain: false,
            payload: Payload::Json(BTreeMap::from([(
                "v".to_string(),
                Gen::Sequence {
                    start: 0.0,
                    step: 1.0,
                },
            )])),
            when: None,
            on_change: false,
            decimals: 0,
            properties: Default::default(),
        }],
        react: vec![],
        vars: BTreeMap::new(),
        signals: BTreeMap::new(),
        tick: Dur::secs(60),
        states: None,
        username: None,
        password: None,
        protocol,
        session_expiry: None,
        user_properties: vec![],
        tls: false,
        transport: Default::default(),
        script: None,
        script_budget: None,
        script_memory_mib: None,
        script_source: None,
        sparkplug: None,
    };
    let sink = DeviceSpec {
        id: SINK_ID.into(),
        count: 1,
        subscribe: vec![SubSpec {
            filter: "bench/#".into(),
            qos: Qos(qos),
        }],
        publish: vec![],
        ..publisher.clone()
    };
    Scenario {
        seed: 1,
        devices: vec![sink, publisher],
        ..Scenario::empty(format!("bench {devices} × {rate_hz} Hz"))
    }
}

/// `mqtt-workbench bench-devices`: run the publishers only, printing
/// "connected N" lines on stdout, until killed.
pub async fn run_devices(
    host: &str,
    port: u16,
    devices: u32,
    rate_hz: f64,
    qos: u8,
    protocol: Protocol,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    crate::sys::raise_fd_limit();
    let (tx, mut updates) = tokio::sync::mpsc::channel(65_536);
    let sink = crate::sim::DeviceReporter::new(tx, std::sync::Arc::default());
    let _handles = crate::sim::start(
        &publishers_only(devices, rate_hz, qos, protocol),
        &crate::sim::Target::plain(host, port),
        &sink,
    );
    let mut states: HashMap<String, crate::event::DeviceState> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            u = updates.recv() => match u {
                Some(crate::sim::DeviceMsg::Update(u)) => { states.insert(u.client_id, u.state); }
                Some(crate::sim::DeviceMsg::Marker(..) | crate::sim::DeviceMsg::Note(_)) => {}
                None => return Ok(()),
            },
            _ = tick.tick() => {
                let n = states.values().filter(|s| **s == crate::event::DeviceState::Connected).count();
                let mut out = std::io::stdout().lock();
                writeln!(out, "connected {n}")?;
                out.flush()?;
            }
        }
    }
}

/// CPU seconds (user + system) and peak RSS of another process, from /proc.
fn proc_usage(pid: u32) -> (f64, u64) {
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            // Fields after the ")" that closes the command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1.split_whitespace().collect::<Vec<_>>();
            Some((rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?) / ticks)
        })
        .unwrap_or(0.0);
    let hwm = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
            line.split_whitespace().nth(1)?.parse::<u64>().ok()
        })
        .unwrap_or(0)
        * 1024;
    (cpu, hwm)
}

pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    if opts.devices_in_child {
        anyhow::ensure!(
            opts.transport.is_tcp(),
            "bench --devices-process runs its publishers over TCP only"
        );
        return run_with_child(opts).await;
    }
    let external = matches!(opts.engine.upstream, crate::broker::Upstream::External(_));
    if let Some(why) = crate::sys::device_capacity_for(external).refuse(opts.devices as u64 + 1) {
        eprintln!("warning: {why}");
    }
    let handle = engine::start(opts.engine.clone()).await?;
    let mut model = Model::default();
    let idle_kib_per_device = idle_memory(&handle, &mut model, &opts).await?;
    let period = Duration::from_secs_f64(1.0 / opts.rate_hz.max(0.001));
    handle
        .commands
        .send(Command::LoadScenario(source(
            publishers_over(
                scenario(opts.devices, opts.rate_hz, opts.qos, opts.protocol),
                opts.transport,
            ),
            opts.script,
            period,
        )?))
        .await?;
    // Connect phase: bounded in time (the publishers and the subscriber).
    let want = opts.devices as u64 + 1;
    let limit = opts.connect_timeout.unwrap_or(connect_limit(want));
    let connect_s = wait_for_fleet(&handle, &mut model, want, limit).await?;
    let connected = model.ramp.status.connected as usize;
    // Let one publish period pass so every device is publishing.
    let settle = Duration::from_secs_f64((1.0 / opts.rate_hz).clamp(0.5, 5.0));
    let settle_end = Instant::now() + settle;
    while Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(&handle, None);
    }
    let written = |m: &Model| m.database.as_ref().map_or(0, |d| d.written);
    let db0 = written(&model);
    let w = measure(&handle, &mut model, opts.duration, || 0.0).await;
    let db_rate = (written(&model) - db0) as f64 / w.seconds;
    let open_fds = crate::sys::open_fds();
    let _ = handle.commands.send(Command::StopScenario).await;
    let peak = crate::sys::peak_rss_bytes().unwrap_or(0);
    let database = if model.database_open {
        crate::cli::close_database(&handle, &mut model).await;
        model
            .database
            .as_ref()
            .map(|d| (db_rate, d.bytes as f64 / d.written.max(1) as f64, d.lost()))
    } else {
        None
    };
    Ok(BenchReport {
        idle_kib_per_device,
        open_fds,
        database,
        ..report(
            &opts,
            connected,
            connect_s,
            w,
            &model.capture,
            handle.drops().total(),
            peak,
            &format!(
                "{}, tap and broker in one process; publishers over {}",
                if opts.script {
                    "scripted devices (JavaScript)"
                } else {
                    "devices"
                },
                opts.transport.name()
            ),
        )
    })
}

/// Drain events for `ms` milliseconds.
async fn settle(model: &mut Model, handle: &EngineHandle, ms: u64) {
    let until = Instant::now() + Duration::from_millis(ms);
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(handle, None);
    }
}

/// The fleet connected but silent: RSS growth per device (KiB). The devices
/// then leave, and the measured run starts from the same engine.
async fn idle_memory(
    handle: &EngineHandle,
    model: &mut Model,
    opts: &BenchOptions,
) -> anyhow::Result<Option<f64>> {
    settle(model, handle, 300).await;
    let before = crate::sys::rss_bytes();
    let mut idle = publishers_over(
        publishers_only(opts.devices, opts.rate_hz, opts.qos, opts.protocol),
        opts.transport,
    );
    for d in &mut idle.devices {
        d.publish.clear();
    }
    // Scripted: their runtimes loaded, their first tick an hour away.
    let idle = source(idle, opts.script, Duration::from_secs(3600))?;
    handle.commands.send(Command::LoadScenario(idle)).await?;
    let want = opts.devices as u64;
    let limit = opts.connect_timeout.unwrap_or(connect_limit(want));
    wait_for_fleet(handle, model, want, limit).await?;
    let connected = model.ramp.status.connected as usize;
    settle(model, handle, 1000).await;
    let after = crate::sys::rss_bytes();
    handle.commands.send(Command::StopScenario).await?;
    wait_for_no_devices(handle, model, connect_limit(want)).await;
    Ok(match (before, after) {
        (Some(b), Some(a)) if connected > 0 => {
            Some(a.saturating_sub(b) as f64 / 1024.0 / connected as f64)
        }
        _ => None,
    })
}

/// The tap's address and the upstream broker's, once the engine listens.
fn ready_addrs(handle: &EngineHandle) -> anyhow::Result<(SocketAddr, String)> {
    match handle.readiness() {
        engine::Readiness::Ready { tap, upstream, .. } => Ok((tap, upstream)),
        other => anyhow::bail!("the engine is not ready: {other:?}"),
    }
}

/// What the measurement window saw.
struct Window {
    seconds: f64,
    published: u64,
    delivered: u64,
    cpu_s: f64,
}

/// Drain events for `duration`, counting messages and CPU (this process plus `other_cpu`).
async fn measure(
    handle: &EngineHandle,
    model: &mut Model,
    duration: Duration,
    other_cpu: impl Fn() -> f64,
) -> Window {
    let count = |c: &Capture| {
        c.topics
            .values()
            .fold((0u64, 0u64), |(p, d), t| (p + t.published, d + t.delivered))
    };
    let (p0, d0) = count(&model.capture);
    let cpu0 = crate::sys::cpu_seconds() + other_cpu();
    let w0 = Instant::now();
    while w0.elapsed() < duration {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(handle, None);
    }
    let (p1, d1) = count(&model.capture);
    Window {
        seconds: w0.elapsed().as_secs_f64(),
        published: p1 - p0,
        delivered: d1 - d0,
        cpu_s: crate::sys::cpu_seconds() + other_cpu() - cpu0,
    }
}

#[allow(clippy::too_many_arguments)]
fn report(
    opts: &BenchOptions,
    connected: usize,
    connect_s: f64,
    w: Window,
    capture: &Capture,
    dropped: u64,
    peak_rss_bytes: u64,
    mode: &str,
) -> BenchReport {
    BenchReport {
        devices: opts.devices,
        rate_hz: opts.rate_hz,
        connected,
        connect_s,
        window_s: w.seconds,
        published: w.published,
        delivered: w.delivered,
        delivered_per_s: w.delivered as f64 / w.seconds,
        cpu_s_per_1k: if w.delivered > 0 {
            w.cpu_s / (w.delivered as f64 / 1000.0)
        } else {
            f64::NAN
        },
        peak_rss_mib: peak_rss_bytes as f64 / (1024.0 * 1024.0),
        bytes_per_captured: if capture.is_empty() {
            0.0
        } else {
            capture.bytes() as f64 / capture.len() as f64
        },
        dropped,
        idle_kib_per_device: None,
        open_fds: None,
        mode: mode.into(),
        protocol: match opts.protocol {
            Protocol::V311 => "MQTT 3.1.1",
            Protocol::V5 => "MQTT 5",
        },
        database: None,
    }
}

async fn run_with_child(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    use tokio::io::AsyncBufReadExt;
    crate::sys::raise_fd_limit();
    let handle = engine::start(opts.engine.clone()).await?;
    let mut model = Model::default();
    handle
        .commands
        .send(Command::LoadScenario(
            sink_only(opts.qos, opts.protocol).to_source(),
        ))
        .await?;
    let t_sink = Instant::now();
    while model.capture.connected_clients() < 1 && t_sink.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(&handle, None);
    }
    let (tap, upstream) = ready_addrs(&handle)?;
    let (host, port) = if opts.direct {
        let up: SocketAddr = upstream
            .parse()
            .map_err(|e| anyhow::anyhow!("the broker address {upstream}: {e}"))?;
        (up.ip().to_string(), up.port())
    } else {
        (tap.ip().to_string(), tap.port())
    };
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "bench-devices",
            "--host",
            &host,
            "--port",
            &port.to_string(),
        ])
        .args([
            "--devices",
            &opts.devices.to_string(),
            "--rate",
            &opts.rate_hz.to_string(),
        ])
        .args(["--qos", &opts.qos.to_string()])
        .args(if opts.protocol == Protocol::V5 {
            &["--mqtt5"][..]
        } else {
            &[]
        })
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no child stdout"))?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let t0 = Instant::now();
    let limit = opts
        .connect_timeout
        .unwrap_or(connect_limit(opts.devices as u64));
    let mut connected = 0usize;
    while connected < opts.devices as usize && t0.elapsed() < limit {
        tokio::select! {
            l = lines.next_line() => match l? {
                Some(l) => connected = l.trim_start_matches("connected ").parse().unwrap_or(connected),
                None => anyhow::bail!("the device process ended"),
            },
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
        model.drain(&handle, None);
    }
    if connected < opts.devices as usize {
        anyhow::bail!(
            "the fleet did not connect: {} of {} devices in the device process never got a CONNACK within {:.0} s",
            opts.devices as usize - connected,
            opts.devices,
            limit.as_secs_f64()
        );
    }
    let connect_s = t0.elapsed().as_secs_f64();
    // Keep reading the child's lines so its stdout never fills.
    let reader = tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let settle_end = Instant::now() + Duration::from_secs_f64((1.0 / opts.rate_hz).clamp(0.5, 5.0));
    while Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        model.drain(&handle, None);
    }
    let w = measure(&handle, &mut model, opts.duration, || proc_usage(pid).0).await;
    let child_hwm = proc_usage(pid).1;
    let _ = child.kill().await;
    reader.abort();
    let peak = crate::sys::peak_rss_bytes().unwrap_or(0) + child_hwm;
    let mode = if opts.direct {
        "devices in a child process straight to the broker (no tap); the subscriber through the tap"
    } else {
        "devices in a child process, through tap and broker"
    };
    Ok(report(
        &opts,
        connected,
        connect_s,
        w,
        &model.capture,
        handle.drops().total(),
        peak,
        mode,
    ))
}

/// `bench --checks N`: the expectation evaluator alone, on synthetic traffic
/// (publishes on 1,000 topics from 100 clients, each delivered to one
/// subscriber): N expectations of every kind; prints frames per second and
/// CPU per frame.
pub fn checks(expectations: usize, frames: usize) -> String {
    use crate::checks::{self, Anchor, Check, Expectation, PayloadCheck};
    use crate::time::Dur;
    use crate::wire::{Direction, PacketKind, WireEvent};
    use std::sync::Arc;
    let kinds = |k: usize| -> Check {
        let on = format!("bench/{}/+", k % 100);
        match k % 8 {
            0 => checks::Count {
                on,
                payload: Some(PayloadCheck::Json {
                    field: "v".into(),
                    equals: None,
                    above: Some(1e12),
                    below: None,
                    outside: None,
                    inside: None,
                }),
                at_least: None,
                at_most: Some(0),
                after: Anchor::Start,
                within: None,
                delivered: false,
            }
            .into(),
            1 => checks::Message {
                on: "never/#".into(),
                payload: None,
                after: Anchor::Message {
                    on: "never/+".into(),
                    payload: None,
                },
                within: Dur(Duration::from_secs(1)),
                delivered: false,
            }
            .into(),
            2 => checks::AtLeastOnce { on }.into(),
            3 => checks::ExactlyOnce { on }.into(),
            4 => checks::Ordered { on }.into(),
            5 => checks::Latency {
                on,
                percentile: 99.0,
                under: Dur(Duration::from_secs(1)),
            }
            .into(),
            6 => checks::QueuedDelivered {
                client: format!("c{}", k % 100),
            }
            .into(),
            _ => checks::Count {
                on: "bench/#".into(),
                payload: Some(PayloadCheck::Regex("^\\{\"v\":[0-9]+\\}$".into())),
                at_least: None,
                at_most: Some(u64::MAX),
                after: Anchor::Start,
                within: None,
                delivered: true,
            }
            .into(),
        }
    };
    let specs: Vec<Expectation> = (0..expectations)
        .map(|k| Expectation {
            name: format!("check {k}"),
            check: kinds(k),
        })
        .collect();
    let topics: Vec<Arc<str>> = (0..1000)
        .map(|t| Arc::from(format!("bench/{}/{}", t % 100, t)))
        .collect();
    let clients: Vec<Arc<str>> = (0..100).map(|c| Arc::from(format!("c{c}"))).collect();
    let sub: Arc<str> = Arc::from("sub");
    let mut checks = crate::checks::Checks::new(&specs, 0);
    let cpu0 = crate::sys::cpu_seconds();
    let t0 = Instant::now();
    let mut seq = 0u64;
    for n in 0..frames / 2 {
        let topic = topics[n % topics.len()].clone();
        let payload = bytes::Bytes::from(format!("{{\"v\":{n}}}"));
        let mut p = WireEvent::new(
            n as u64 * 10,
            1,
            clients[n % 100].clone(),
            Direction::ClientToBroker,
            PacketKind::Publish,
        );
        p.topic = Some(topic);
        p.payload = Some(payload);
        p.qos = 1;
        let mut d = p.clone();
        d.dir = Direction::BrokerToClient;
        d.client_id = sub.clone();
        d.t_us += 5;
        checks.on_wire(&p, seq);
        checks.on_wire(&d, seq + 1);
        seq += 2;
        if n % 1000 == 0 {
            checks.tick(n as u64 * 10);
        }
    }
    checks.finish(frames as u64 * 10);
    let wall = t0.elapsed().as_secs_f64();
    let cpu = crate::sys::cpu_seconds() - cpu0;
    format!(
        "expectation evaluator: {expectations} expectations over {frames} frames (publish + delivery pairs, 1,000 topics, 100 clients)\n\
         {:.0} frames/s, {:.2} µs CPU per frame ({:.3} CPU-s per 1k messages delivered), {} failed\n",
        frames as f64 / wall,
        cpu / frames as f64 * 1e6,
        cpu / (frames as f64 / 2.0 / 1000.0),
        checks.failed()
    )
}
