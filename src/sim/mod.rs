//! Scenario-driven virtual devices.

mod client;
pub mod device;
pub mod generators;
pub mod mqtt;
pub mod ramp;
pub mod script;
pub mod sparkplug;
mod timers;
pub mod watch;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::mpsc;

use crate::event::{DeviceUpdate, Event};
use crate::scenario::Scenario;
use device::{DeviceHandle, DevicePlan};

/// What travels on the devices' queue: their reports, and the engine's
/// markers between scenarios (started, stopped) in the same order, so a
/// stopped scenario's last reports never land after the next one began.
#[derive(Debug)]
pub enum DeviceMsg {
    Update(DeviceUpdate),
    /// Answered on the oneshot once the event went out.
    Marker(Event, tokio::sync::oneshot::Sender<()>),
    /// A note for the timeline (a script's `device.log`); dropped when the queue is full.
    Note(Event),
}

/// Where devices report their state: a bounded queue; what does not fit is
/// dropped and counted (a device never waits for its observer).
#[derive(Clone)]
pub struct DeviceReporter {
    tx: mpsc::Sender<DeviceMsg>,
    dropped: Arc<AtomicU64>,
    /// The devices' connect counts (exact even when reports are dropped).
    ramp: Arc<ramp::Ramp>,
    /// The clock every device reporting here wakes by.
    clock: Arc<timers::Clock>,
}

impl DeviceReporter {
    pub fn new(tx: mpsc::Sender<DeviceMsg>, dropped: Arc<AtomicU64>) -> DeviceReporter {
        DeviceReporter {
            tx,
            dropped,
            ramp: Arc::default(),
            clock: Arc::default(),
        }
    }

    /// The clock the devices reporting here wake by (`timers::Clock`).
    pub(crate) fn clock(&self) -> &Arc<timers::Clock> {
        &self.clock
    }

    /// The connect counts of every device reporting here.
    pub fn ramp(&self) -> &Arc<ramp::Ramp> {
        &self.ramp
    }

    pub fn report(&self, update: DeviceUpdate) {
        if self.tx.try_send(DeviceMsg::Update(update)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Put a note on the timeline (never waits; dropped and counted when full).
    pub fn note(&self, t_us: u64, label: String) {
        let ev = Event::Fault {
            t_us,
            label,
            timeline: None,
        };
        if self.tx.try_send(DeviceMsg::Note(ev)).is_err() {
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
                DeviceMsg::Update(_) | DeviceMsg::Note(_) => Event::ScenarioStopped,
            }),
        }
    }
}

/// One part of every fleet, for a run spread over processes or machines
/// (`--shard K/N`, K from 1): shard K runs the K-th contiguous slice of each
/// fleet, with the same client ids, seeds and payloads as the whole run, so
/// N shards together run exactly the unsharded fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// 1..=count.
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// The device positions (0-based) of a fleet of `n` this shard runs.
    pub fn range(&self, n: u32) -> std::ops::Range<u32> {
        let (k, total) = (u64::from(self.index - 1), u64::from(self.count));
        let at = |k: u64| (u64::from(n) * k / total) as u32;
        at(k)..at(k + 1)
    }

    /// The client ids this shard runs, fleet by fleet.
    pub fn client_ids(&self, scenario: &Scenario) -> std::collections::HashSet<String> {
        scenario
            .devices
            .iter()
            .flat_map(|d| {
                let r = self.range(d.count);
                d.client_ids()
                    .into_iter()
                    .skip(r.start as usize)
                    .take(r.len())
            })
            .collect()
    }

    /// How many devices of `scenario` this shard runs.
    pub fn device_count(&self, scenario: &Scenario) -> usize {
        scenario
            .devices
            .iter()
            .map(|d| self.range(d.count).len())
            .sum()
    }
}

impl std::str::FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> Result<Shard, String> {
        let bad = || format!("\"{s}\": expected K/N with 1 <= K <= N, e.g. 2/4");
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let (index, count): (u32, u32) = (
            k.trim().parse().map_err(|_| bad())?,
            n.trim().parse().map_err(|_| bad())?,
        );
        if index == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// Connects per second when ramping up a big fleet: 80,000 devices in 80 s.
/// (The embedded broker's router takes about 900 a second while the fleet
/// already connected idles, `bench --devices 80000 --rate 0.01875`.)
const RAMP_CONNECTS_PER_S: u64 = 1000;

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
    /// Reach the tap in-process, without a socket (devices without `tls`).
    pub door: Option<crate::tap::TapDoor>,
}

impl Target {
    pub fn plain(host: &str, port: u16) -> Target {
        Target {
            host: host.to_string(),
            port,
            tls: None,
            credentials: None,
            door: None,
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
            drop(h.mail);
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

#[cfg(test)]
mod tests {
    use super::Shard;

    #[test]
    fn shards_partition_every_fleet_exactly() {
        for n in [0u32, 1, 2, 3, 7, 100, 20_000] {
            for count in [1u32, 2, 3, 4, 7] {
                let mut next = 0;
                for index in 1..=count {
                    let r = Shard { index, count }.range(n);
                    assert_eq!(r.start, next, "fleet {n}, shard {index}/{count}");
                    assert!(r.len() as u32 <= n.div_ceil(count));
                    next = r.end;
                }
                assert_eq!(next, n, "fleet {n} in {count} shards");
            }
        }
    }

    #[test]
    fn shard_syntax() {
        assert_eq!("2/4".parse::<Shard>(), Ok(Shard { index: 2, count: 4 }));
        for bad in ["0/4", "5/4", "2", "a/b", "1/0"] {
            let e = bad.parse::<Shard>().unwrap_err();
            assert!(e.contains("expected K/N"), "{bad}: {e}");
        }
    }
}
