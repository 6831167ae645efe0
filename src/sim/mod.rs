//! Scenario-driven virtual devices.

pub mod device;
pub mod generators;
pub mod scenario;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

pub use scenario::{DeviceSpec, Scenario, ScenarioError};

use crate::protocol::{DeviceUpdate, Event};
use device::{DeviceHandle, DevicePlan};

/// What travels on the devices' queue: their reports, and the engine's
/// markers between scenarios (started, stopped) in the same order, so a
/// stopped scenario's last reports never land after the next one began.
#[derive(Debug)]
pub enum DeviceMsg {
    Update(DeviceUpdate),
    /// Answered on the oneshot once the event went out.
    Marker(Event, tokio::sync::oneshot::Sender<()>),
}

/// Where devices report their state: a bounded queue; what does not fit is
/// dropped and counted (a device never waits for its observer).
#[derive(Clone)]
pub struct DeviceReporter {
    tx: mpsc::Sender<DeviceMsg>,
    dropped: Arc<AtomicU64>,
}

impl DeviceReporter {
    pub fn new(tx: mpsc::Sender<DeviceMsg>, dropped: Arc<AtomicU64>) -> DeviceReporter {
        DeviceReporter { tx, dropped }
    }

    pub fn report(&self, update: DeviceUpdate) {
        if self.tx.try_send(DeviceMsg::Update(update)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Queue a marker after every report sent so far (waits for room: a
    /// marker is never dropped) and wait until it went out, so that nothing
    /// sent after this call can overtake it. Returns it when nobody listens.
    pub async fn marker(&self, ev: Event) -> Result<(), Event> {
        let (done, sent) = tokio::sync::oneshot::channel();
        match self.tx.send(DeviceMsg::Marker(ev, done)).await {
            Ok(()) => {
                let _ = sent.await;
                Ok(())
            }
            Err(e) => Err(match e.0 {
                DeviceMsg::Marker(ev, _) => ev,
                DeviceMsg::Update(_) => Event::ScenarioStopped,
            }),
        }
    }
}

/// Connects per second when ramping up a big fleet (rumqttd paces accepts too).
const RAMP_CONNECTS_PER_S: u64 = 500;

/// Spawn every device of `scenario`, connecting to `host:port`.
/// Where devices connect: the tap (or the broker, in direct runs).
#[derive(Clone)]
pub struct Target {
    pub host: String,
    pub port: u16,
    /// The tap's TLS listener, for devices with `tls: true`.
    pub tls: Option<DeviceTls>,
    /// For devices without a username of their own.
    pub credentials: Option<(String, String)>,
}

impl Target {
    pub fn plain(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
            tls: None,
            credentials: None,
        }
    }
}

/// The TLS listener devices reach and the configuration they trust it with.
#[derive(Clone)]
pub struct DeviceTls {
    pub port: u16,
    pub config: Arc<rustls::ClientConfig>,
}

pub fn start(scenario: &Scenario, target: &Target, sink: &DeviceReporter) -> Vec<DeviceHandle> {
    start_some(scenario, target, sink, |_| true)
}

/// Start the scenario's devices whose client id `wanted` accepts.
pub fn start_some(
    scenario: &Scenario,
    target: &Target,
    sink: &DeviceReporter,
    wanted: impl Fn(&str) -> bool,
) -> Vec<DeviceHandle> {
    let total = scenario.device_count() as u64;
    let ramp = if total > 50 {
        Duration::from_micros(1_000_000 / RAMP_CONNECTS_PER_S)
    } else {
        Duration::ZERO
    };
    let mut handles = Vec::with_capacity(total as usize);
    let mut n: u32 = 0;
    for spec in &scenario.devices {
        let spec = Arc::new(spec.clone());
        for (k, client_id) in spec.client_ids().into_iter().enumerate() {
            if !wanted(&client_id) {
                continue;
            }
            let plan = DevicePlan {
                client_id,
                fleet: spec.id.clone(),
                index: k as u32 + 1,
                spec: spec.clone(),
                seed: scenario.seed,
                target: target.clone(),
                start_delay: ramp * n,
            };
            n += 1;
            handles.push(device::spawn(plan, sink.clone()));
        }
    }
    handles
}

/// Stop devices gracefully (DISCONNECT), waiting at most `grace` before aborting.
pub async fn stop(handles: Vec<DeviceHandle>, grace: Duration) {
    let tasks: Vec<_> = handles
        .into_iter()
        .map(|h| {
            drop(h.ctl);
            h.task
        })
        .collect();
    let aborts: Vec<_> = tasks.iter().map(|t| t.abort_handle()).collect();
    let all = async {
        for t in tasks {
            let _ = t.await;
        }
    };
    if tokio::time::timeout(grace, all).await.is_err() {
        for a in aborts {
            a.abort();
        }
    }
}

/// Folders where shipped scenarios may be, most specific first: `$MQTT_WORKBENCH_SCENARIOS`,
/// next to the executable, the installed share folder (.deb, macOS bundle), the
/// source tree (development builds), the current folder.
pub fn scenario_dirs() -> Vec<std::path::PathBuf> {
    use std::path::PathBuf;
    let mut dirs = Vec::new();
    if let Some(d) = std::env::var_os("MQTT_WORKBENCH_SCENARIOS") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(|p| p.to_path_buf()))
    {
        dirs.push(exe_dir.join("scenarios"));
        dirs.push(exe_dir.join("../share/mqtt-workbench/scenarios"));
        dirs.push(exe_dir.join("../Resources/scenarios"));
    }
    dirs.push(PathBuf::from("/usr/share/mqtt-workbench/scenarios"));
    dirs.push(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scenarios"));
    dirs.push(PathBuf::from("scenarios"));
    dirs
}

/// The shipped scenarios (`*.ron` in the first folder of [`scenario_dirs`] that has any), sorted.
pub fn shipped_scenarios() -> Vec<std::path::PathBuf> {
    for dir in scenario_dirs() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut files: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "ron"))
            .collect();
        if !files.is_empty() {
            files.sort();
            return files;
        }
    }
    Vec::new()
}
