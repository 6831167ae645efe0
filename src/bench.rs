//! `mqtt-workbench bench`: N virtual devices at R msg/s each through tap and
//! broker, with one subscriber taking everything. Prints delivered msgs/s,
//! CPU seconds per 1k messages, peak RSS and bytes per captured message.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::capture::Capture;
use crate::engine::{self, EngineConfig};
use crate::protocol::Command;
use crate::sim::scenario::{DeviceSpec, Dur, Gen, Payload, PublishSpec, Qos, Scenario, SubSpec};

pub struct BenchOptions {
    pub devices: u32,
    pub rate_hz: f64,
    pub duration: Duration,
    pub qos: u8,
    pub engine: EngineConfig,
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
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
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
            "CPU per 1k messages     {:.3} s (process user+sys / 1k delivered)",
            self.cpu_s_per_1k
        )?;
        writeln!(f, "peak RSS                {:.1} MiB", self.peak_rss_mib)?;
        writeln!(f, "bytes per captured msg  {:.0}", self.bytes_per_captured)?;
        writeln!(f, "dropped (consumer lag)  {}", self.dropped)
    }
}

pub fn scenario(devices: u32, rate_hz: f64, qos: u8) -> Scenario {
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
        }],
        react: vec![],
        vars: BTreeMap::new(),
        signals: BTreeMap::new(),
        tick: Dur::secs(60),
        states: None,
        username: None,
        password: None,
    };
    let sink = DeviceSpec {
        id: "bench-sink".into(),
        count: 1,
        subscribe: vec![SubSpec {
            filter: "bench/#".into(),
            qos: Qos(qos),
        }],
        publish: vec![],
        ..publisher.clone()
    };
    Scenario {
        name: format!("bench {devices} × {rate_hz} Hz"),
        description: String::new(),
        seed: 1,
        devices: vec![sink, publisher],
        timeline: Vec::new(),
    }
}

/// File descriptors one device costs in this process through the tap: the
/// device's socket, the tap's two, the broker's one.
pub const FDS_PER_DEVICE: u64 = 4;

pub async fn run(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let (soft, _) = crate::sys::raise_fd_limit();
    let fit = soft.saturating_sub(64) / FDS_PER_DEVICE;
    if soft > 0 && opts.devices as u64 > fit {
        eprintln!(
            "warning: the open-file limit is {soft} (it could not be raised): through the tap each device \
             needs {FDS_PER_DEVICE} descriptors in this process, so about {fit} of {} devices can connect",
            opts.devices
        );
    }
    let handle = engine::start(opts.engine.clone()).await?;
    let mut capture = Capture::default();
    let mut states = HashMap::new();
    handle
        .commands
        .send(Command::LoadScenario(Box::new(scenario(
            opts.devices,
            opts.rate_hz,
            opts.qos,
        ))))
        .await?;
    let want = opts.devices as usize + 1;
    let t0 = Instant::now();
    // Connect phase: bounded in time.
    let connect_limit = Duration::from_secs(30 + opts.devices as u64 / 200);
    while capture.connected_clients() < want && t0.elapsed() < connect_limit {
        tokio::time::sleep(Duration::from_millis(100)).await;
        crate::cli::drain(&handle, &mut capture, &mut states);
    }
    let connect_s = t0.elapsed().as_secs_f64();
    let connected = capture.connected_clients();
    // Let one publish period pass so every device is publishing.
    let settle = Duration::from_secs_f64((1.0 / opts.rate_hz).clamp(0.5, 5.0));
    let settle_end = Instant::now() + settle;
    while Instant::now() < settle_end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        crate::cli::drain(&handle, &mut capture, &mut states);
    }
    let count = |c: &Capture| {
        c.topics
            .values()
            .fold((0u64, 0u64), |(p, d), t| (p + t.published, d + t.delivered))
    };
    let (p0, d0) = count(&capture);
    let cpu0 = crate::sys::cpu_seconds();
    let w0 = Instant::now();
    while w0.elapsed() < opts.duration {
        tokio::time::sleep(Duration::from_millis(50)).await;
        crate::cli::drain(&handle, &mut capture, &mut states);
    }
    let window_s = w0.elapsed().as_secs_f64();
    let cpu = crate::sys::cpu_seconds() - cpu0;
    let (p1, d1) = count(&capture);
    let delivered = d1 - d0;
    let _ = handle.commands.send(Command::StopScenario).await;
    Ok(BenchReport {
        devices: opts.devices,
        rate_hz: opts.rate_hz,
        connected,
        connect_s,
        window_s,
        published: p1 - p0,
        delivered,
        delivered_per_s: delivered as f64 / window_s,
        cpu_s_per_1k: if delivered > 0 {
            cpu / (delivered as f64 / 1000.0)
        } else {
            f64::NAN
        },
        peak_rss_mib: crate::sys::peak_rss_bytes().unwrap_or(0) as f64 / (1024.0 * 1024.0),
        bytes_per_captured: if capture.is_empty() {
            0.0
        } else {
            capture.bytes() as f64 / capture.len() as f64
        },
        dropped: handle.dropped(),
    })
}
