//! The model: everything the engine has reported, in one place, with one
//! [`Model::apply`] for every consumer (the window, the CLI, the benchmarks,
//! the tests). Plain data: no GUI toolkit, no sockets; indices kept on ingest so views
//! read them instead of recomputing per frame.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::capture::Capture;
use crate::event::{
    BrokerState, DeviceState, DeviceUpdate, DropCounts, Event, EventSource, ScenarioInfo,
};
use crate::fault::{FaultKey, NetFault, Target};

/// Notices kept until a consumer takes them.
const MAX_NOTICES: usize = 64;
/// Fault markers kept for the plots.
const MAX_MARKERS: usize = 500;

/// One virtual device as the engine last reported it.
#[derive(Debug, Clone, Default)]
pub struct DeviceEntry {
    /// Index of its fleet in [`DeviceList::fleets`].
    pub fleet: usize,
    pub state: Option<DeviceState>,
    /// Set when the user paused it (the engine only hears Pause/Resume).
    pub paused: bool,
    /// Publishes and acks its client refused (queue full): lost, never sent.
    pub publish_failed: u64,
    pub ack_failed: u64,
    /// A scripted device's script as last reported.
    pub script: Option<std::sync::Arc<crate::event::ScriptView>>,
}

/// A fleet: the devices of one scenario entry.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    pub id: String,
    pub members: Vec<String>,
    /// Members connected now (kept on every update).
    pub connected: usize,
}

/// Virtual devices of the running scenario, indexed by client id and by fleet.
#[derive(Debug, Default)]
pub struct DeviceList {
    fleets: Vec<Fleet>,
    devices: HashMap<String, DeviceEntry>,
    connected: usize,
    failures: u64,
    /// Bumped on every change (views cache by it).
    pub generation: u64,
}

impl DeviceList {
    /// The devices a scenario starts with, in scenario order.
    pub fn declare(&mut self, devices: &[(String, String)]) {
        self.clear();
        for (id, fleet) in devices {
            self.entry(id, fleet);
        }
    }

    /// A reloaded scenario's devices: the ones kept keep their state; the
    /// others start fresh; the removed ones go.
    pub fn redeclare(&mut self, devices: &[(String, String)], restarted: &[String]) {
        let old = std::mem::take(&mut self.devices);
        let failures = self.failures;
        self.declare(devices);
        self.failures = failures;
        for (id, e) in self.devices.iter_mut() {
            if restarted.contains(id) {
                continue;
            }
            if let Some(o) = old.get(id) {
                e.state = o.state;
                e.paused = o.paused;
                e.publish_failed = o.publish_failed;
                e.ack_failed = o.ack_failed;
                if o.state == Some(DeviceState::Connected) {
                    self.connected += 1;
                    self.fleets[e.fleet].connected += 1;
                }
            }
        }
    }

    fn entry(&mut self, id: &str, fleet: &str) -> &mut DeviceEntry {
        if !self.devices.contains_key(id) {
            let idx = match self.fleets.iter().position(|f| f.id == fleet) {
                Some(i) => i,
                None => {
                    self.fleets.push(Fleet {
                        id: fleet.to_string(),
                        ..Fleet::default()
                    });
                    self.fleets.len() - 1
                }
            };
            self.fleets[idx].members.push(id.to_string());
            self.devices.insert(
                id.to_string(),
                DeviceEntry {
                    fleet: idx,
                    ..DeviceEntry::default()
                },
            );
        }
        self.devices
            .get_mut(id)
            .expect("inserted above when missing")
    }

    pub fn update(&mut self, u: DeviceUpdate) {
        self.generation += 1;
        let entry = self.entry(&u.client_id, &u.fleet);
        let was = entry.state == Some(DeviceState::Connected);
        let now = u.state == DeviceState::Connected;
        let fleet = entry.fleet;
        let new_failures = (u.publish_failed + u.ack_failed)
            .saturating_sub(entry.publish_failed + entry.ack_failed);
        entry.state = Some(u.state);
        entry.publish_failed = u.publish_failed;
        entry.ack_failed = u.ack_failed;
        if u.script.is_some() {
            entry.script = u.script;
        }
        self.failures += new_failures;
        match (was, now) {
            (false, true) => {
                self.connected += 1;
                self.fleets[fleet].connected += 1;
            }
            (true, false) => {
                self.connected -= 1;
                self.fleets[fleet].connected -= 1;
            }
            _ => {}
        }
    }

    pub fn stop_all(&mut self) {
        self.generation += 1;
        for d in self.devices.values_mut() {
            d.state = Some(DeviceState::Stopped);
        }
        for f in &mut self.fleets {
            f.connected = 0;
        }
        self.connected = 0;
    }

    pub fn clear(&mut self) {
        let generation = self.generation + 1;
        *self = DeviceList::default();
        self.generation = generation;
    }

    pub fn state(&self, id: &str) -> Option<DeviceState> {
        self.devices.get(id).and_then(|d| d.state)
    }

    pub fn get(&self, id: &str) -> Option<&DeviceEntry> {
        self.devices.get(id)
    }

    pub fn is_virtual(&self, id: &str) -> bool {
        self.devices.contains_key(id)
    }

    pub fn fleets(&self) -> &[Fleet] {
        &self.fleets
    }

    pub fn len(&self) -> usize {
        self.devices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.devices.is_empty()
    }

    /// Devices connected now (kept on every update).
    pub fn connected(&self) -> usize {
        self.connected
    }

    /// Publishes and acks refused by the devices' clients, all devices together.
    pub fn failures(&self) -> u64 {
        self.failures
    }

    pub fn is_paused(&self, id: &str) -> bool {
        self.devices.get(id).is_some_and(|d| d.paused)
    }

    /// Whether any device of `target` is paused.
    pub fn any_paused(&self, target: &Target) -> bool {
        self.members(target).iter().any(|id| self.is_paused(id))
    }

    fn members(&self, target: &Target) -> Vec<String> {
        match target {
            Target::Device(id) => vec![id.clone()],
            Target::Fleet(f) => self
                .fleets
                .iter()
                .filter(|fl| fl.id == *f)
                .flat_map(|fl| fl.members.clone())
                .collect(),
            Target::All => self.devices.keys().cloned().collect(),
        }
    }

    pub fn set_paused(&mut self, target: &Target, paused: bool) {
        self.generation += 1;
        for id in self.members(target) {
            if let Some(d) = self.devices.get_mut(&id) {
                d.paused = paused;
            }
        }
    }
}

/// One injected fault, as a marker on the plots.
use crate::fault::FaultMarker;

/// Faults injected so far (markers for the plots) and the network faults in force.
#[derive(Debug, Default)]
pub struct FaultLog {
    /// Oldest first; at most `MAX_MARKERS`.
    pub markers: VecDeque<FaultMarker>,
    /// Every fault recorded (markers evicted included).
    pub total: u64,
    /// Timeline entry index → when it fired.
    pub fired: HashMap<usize, u64>,
    pub net: Vec<(FaultKey, NetFault)>,
}

impl FaultLog {
    pub fn record(&mut self, t_us: u64, label: String, timeline: Option<usize>) {
        if self.markers.len() >= MAX_MARKERS {
            self.markers.pop_front();
        }
        self.markers.push_back(FaultMarker {
            t_us,
            label,
            timeline,
        });
        self.total += 1;
        if let Some(i) = timeline {
            self.fired.insert(i, t_us);
        }
    }

    pub fn clear(&mut self) {
        *self = FaultLog::default();
    }

    /// The network fault in force for a client (its own rule, else the global one).
    pub fn net_for(&self, client_id: &str) -> Option<&NetFault> {
        self.net
            .iter()
            .find(|(k, _)| matches!(k, FaultKey::Client(c) if c == client_id))
            .or_else(|| self.net.iter().find(|(k, _)| *k == FaultKey::All))
            .map(|(_, f)| f)
    }
}

/// The scenario the engine is running.
#[derive(Debug, Clone)]
pub struct RunningScenario {
    pub info: ScenarioInfo,
    pub started: Instant,
}

/// An export under way on the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExportProgress {
    pub done: u64,
    pub total: u64,
}

/// Something the user should hear about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub error: bool,
    pub text: String,
}

/// The virtual devices' connect progress, from the engine's `Event::Ramp`.
#[derive(Debug, Clone, Default)]
pub struct RampView {
    pub status: crate::event::RampStatus,
    /// Since when devices have been waiting for their first CONNACK (None: none is).
    pub since: Option<Instant>,
    /// First CONNACKs a second, between the last two updates.
    pub rate: f64,
    /// The previous update: when, and how many devices had connected once.
    last: Option<(Instant, u64)>,
}

impl RampView {
    fn apply(&mut self, status: crate::event::RampStatus, now: Instant) {
        let once = status.devices.saturating_sub(status.waiting);
        if status.waiting == 0 {
            self.since = None;
        } else if self.since.is_none() {
            self.since = Some(now);
        }
        self.rate = match self.last {
            Some((t, n)) if now > t => once.saturating_sub(n) as f64 / (now - t).as_secs_f64(),
            _ => 0.0,
        };
        self.last = Some((now, once));
        self.status = status;
    }

    /// Devices are still waiting for their first CONNACK.
    pub fn ramping(&self) -> bool {
        self.status.waiting > 0
    }

    /// "40,000 / 80,000 devices connected, 40,000 waiting [512/s, 78 s]".
    pub fn line(&self) -> String {
        let mut s = self.status.line();
        if let Some(since) = self.since {
            s.push_str(&format!(
                " [{:.0}/s, {:.0} s]",
                self.rate,
                since.elapsed().as_secs_f64()
            ));
        }
        s
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct Model {
    pub capture: Capture,
    pub devices: DeviceList,
    pub faults: FaultLog,
    pub broker: BrokerState,
    /// Set once the embedded broker stopped answering its health probe.
    pub broker_health: Option<crate::event::BrokerHealth>,
    pub scenario: Option<RunningScenario>,
    pub export: Option<ExportProgress>,
    /// What the engine dropped because a queue was full (updated by [`Model::drain`]).
    pub drops: DropCounts,
    notices: VecDeque<Notice>,
    /// Notices evicted before anyone took them.
    pub notices_dropped: u64,
    /// Scenarios started so far (views reset their selections on a new one).
    pub scenario_starts: u64,
    /// Clear the capture when a scenario starts (the window; the CLI and tests keep it).
    pub clear_on_scenario_start: bool,
    /// The running (or last) scenario's expectations and their verdicts.
    pub checks: Option<crate::checks::Checks>,
    /// The recording on show (File → Open capture), if one was opened.
    pub opened_capture: Option<std::path::PathBuf>,
    /// Device positions from published payloads, for the fleet map.
    pub positions: crate::positions::Positions,
    /// Payload decoders (codec per topic; Sparkplug aliases learned from BIRTHs).
    pub decoders: crate::codec::Decoders,
    /// The capture database's writer, while one is open (and its last status after).
    pub database: Option<crate::database::DbStatus>,
    /// The capture database is open (frames are being written).
    pub database_open: bool,
    /// The last page of a payload search over the database.
    pub search: Option<Result<Box<crate::database::SearchPage>, String>>,
    /// Search pages answered so far (a panel sees a new page by this count).
    pub searches: u64,
    /// The last query's answer.
    pub query: Option<Result<Box<crate::database::QueryResult>, String>>,
    pub queries: u64,
    /// How far the virtual devices got connecting.
    pub ramp: RampView,
    /// The running (or last) scenario's AsyncAPI contract: messages and
    /// violations per channel, undeclared topics (the Contract view).
    pub contract: Option<crate::contract::Tally>,
    /// Sparkplug B edge nodes, devices, metrics and hosts as the wire shows
    /// them (the Sparkplug view), for every client.
    pub sparkplug: crate::sparkplug::observe::Observer,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            capture: Capture::default(),
            devices: DeviceList::default(),
            faults: FaultLog::default(),
            broker: BrokerState::Starting,
            broker_health: None,
            scenario: None,
            export: None,
            drops: DropCounts::default(),
            notices: VecDeque::new(),
            notices_dropped: 0,
            checks: None,
            opened_capture: None,
            positions: Default::default(),
            decoders: Default::default(),
            scenario_starts: 0,
            clear_on_scenario_start: false,
            database: None,
            database_open: false,
            search: None,
            searches: 0,
            query: None,
            queries: 0,
            ramp: RampView::default(),
            contract: None,
            sparkplug: Default::default(),
        }
    }
}

/// A scenario's expectations, evaluated from `start_us`, reading payloads
/// with its decoders.
fn checks_for(info: &crate::event::ScenarioInfo, start_us: u64) -> crate::checks::Checks {
    let mut checks = crate::checks::Checks::new(&info.expectations, start_us);
    checks.set_decoders(&info.decoders);
    checks
}

impl Model {
    pub fn new(capture: Capture) -> Model {
        Model {
            capture,
            ..Model::default()
        }
    }

    /// Apply one engine event.
    pub fn apply(&mut self, ev: Event) {
        match ev {
            Event::Wire(batch) => {
                for ev in &batch {
                    self.positions.on_event(ev);
                    self.sparkplug.observe(ev);
                    if ev.kind == crate::wire::PacketKind::Publish
                        && ev.dir == crate::wire::Direction::ClientToBroker
                        && let (Some(t), Some(p)) = (ev.topic.as_deref(), ev.payload.as_deref())
                        && t.starts_with("spBv1.0/")
                    {
                        self.decoders.observe(t, p);
                    }
                }
                if self.checks.is_none() && self.contract.is_none() {
                    self.capture.ingest_batch(batch);
                } else {
                    // Each frame's sequence number as the capture gives it (it skips pings).
                    for ev in batch {
                        let seq = self.capture.end_seq();
                        if let Some(tally) = &mut self.contract {
                            tally.on_wire(&ev, seq);
                        }
                        if let Some(checks) = &mut self.checks {
                            checks.on_wire(&ev, seq);
                        }
                        self.capture.ingest(ev);
                    }
                }
            }
            Event::Devices(batch) => {
                for d in batch {
                    self.devices.update(d);
                }
            }
            Event::ScenarioStarted(info) => {
                if self.clear_on_scenario_start {
                    self.capture.clear();
                    self.sparkplug.clear();
                }
                self.positions.clear();
                self.decoders.set_rules(&info.decoders);
                self.scenario_starts += 1;
                self.opened_capture = None;
                self.devices.declare(&info.devices);
                self.faults.clear();
                self.contract = info.contract.clone().map(crate::contract::Tally::new);
                self.checks = (!info.expectations.is_empty()).then(|| {
                    let start = match info.started_us {
                        0 => crate::time::now_us(),
                        t => t,
                    };
                    checks_for(&info, start)
                });
                self.scenario = Some(RunningScenario {
                    info: *info,
                    started: Instant::now(),
                });
            }
            Event::CaptureOpened(rec) => {
                let rec = *rec;
                self.capture.clear_all();
                self.positions.clear();
                self.sparkplug.clear();
                for ev in &rec.events {
                    self.positions.on_event(ev);
                    self.sparkplug.observe(ev);
                }
                self.capture.ingest_batch(rec.events);
                self.faults.clear();
                for f in rec.faults {
                    self.faults.record(f.t_us, f.label, f.timeline);
                }
                self.checks = None;
                self.notice(
                    false,
                    format!(
                        "opened {}: {} frames{}",
                        rec.path.display(),
                        self.capture.len(),
                        rec.scenario
                            .map(|s| format!(" from \"{s}\""))
                            .unwrap_or_default()
                    ),
                );
                self.opened_capture = Some(rec.path);
                self.scenario_starts += 1;
            }
            Event::ScenarioReloaded { info, restarted } => {
                self.devices.redeclare(&info.devices, &restarted);
                if let Some(running) = &mut self.scenario {
                    // New expectations start over; unchanged ones keep their verdicts.
                    if running.info.contract != info.contract {
                        self.contract = info.contract.clone().map(crate::contract::Tally::new);
                    }
                    if running.info.expectations != info.expectations {
                        self.checks = (!info.expectations.is_empty())
                            .then(|| checks_for(&info, crate::time::now_us()));
                    }
                    running.info = *info;
                }
            }
            Event::ScenarioStopped => {
                // Its verdicts stay on show, final.
                if let Some(c) = &mut self.checks {
                    c.finish(crate::time::now_us());
                }
                self.devices.stop_all();
                self.scenario = None;
            }
            Event::Broker(state) => self.broker = state,
            Event::BrokerHealth(health) => self.broker_health = Some(health),
            Event::Notice { error, text } => self.notice(error, text),
            Event::Fault {
                t_us,
                label,
                timeline,
            } => {
                if let Some(c) = &mut self.checks {
                    c.on_fault(t_us, timeline);
                }
                self.faults.record(t_us, label, timeline)
            }
            Event::NetFaults(rules) => self.faults.net = rules,
            Event::ExportProgress { done, total } => {
                self.export = Some(ExportProgress { done, total })
            }
            Event::ExportFinished => self.export = None,
            Event::Database(status) => {
                self.database = Some(status);
                self.database_open = true;
            }
            Event::DatabaseClosed(status) => {
                self.database = Some(status);
                self.database_open = false;
            }
            Event::SearchResults(page) => {
                self.search = Some(page);
                self.searches += 1;
            }
            Event::QueryResult(result) => {
                self.query = Some(result);
                self.queries += 1;
            }
            Event::Ramp(status) => self.ramp.apply(status, Instant::now()),
        }
    }

    /// The database searches and queries read: the open capture database,
    /// else a database opened with File → Open capture.
    pub fn database_path(&self) -> Option<&std::path::Path> {
        match &self.database {
            Some(db) if self.database_open => Some(&db.path),
            _ => self.opened_capture.as_deref().filter(|p| {
                p.extension()
                    .and_then(|e| e.to_str())
                    .is_some_and(|e| matches!(e, "sqlite" | "sqlite3" | "db"))
            }),
        }
    }

    /// Queue a notice for the consumer (bounded: the oldest goes first).
    pub fn notice(&mut self, error: bool, text: impl Into<String>) {
        if self.notices.len() >= MAX_NOTICES {
            self.notices.pop_front();
            self.notices_dropped += 1;
        }
        self.notices.push_back(Notice {
            error,
            text: text.into(),
        });
    }

    /// Notices not yet taken, oldest first.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        self.notices.drain(..).collect()
    }

    /// Apply the engine's pending events, for at most `budget` (None: all of
    /// them). True if more are waiting.
    pub fn drain(&mut self, source: &impl EventSource, budget: Option<Duration>) -> bool {
        let t0 = Instant::now();
        let mut more = false;
        while let Some(ev) = source.try_recv() {
            self.apply(ev);
            if budget.is_some_and(|b| t0.elapsed() >= b) {
                more = !source.is_empty();
                break;
            }
        }
        self.drops = source.drops();
        self.capture.dropped = self.drops.total();
        if let Some(c) = &mut self.checks {
            c.tick(crate::time::now_us());
        }
        more
    }

    /// The tap's address, once the engine listens.
    pub fn tap_addr(&self) -> Option<std::net::SocketAddr> {
        match &self.broker {
            BrokerState::Running { public, .. } => Some(*public),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn update(id: &str, fleet: &str, state: DeviceState, failed: u64) -> Event {
        Event::Devices(vec![DeviceUpdate {
            client_id: id.into(),
            fleet: fleet.into(),
            state,
            publish_failed: failed,
            ack_failed: 0,
            script: None,
        }])
    }

    #[test]
    fn device_counts_are_kept_on_every_update() {
        let mut m = Model::default();
        m.apply(Event::ScenarioStarted(Box::new(ScenarioInfo {
            name: "s".into(),
            description: String::new(),
            path: "s.ron".into(),
            devices: vec![
                ("d-1".into(), "d-{i}".into()),
                ("d-2".into(), "d-{i}".into()),
            ],
            timeline: vec![],
            expectations: vec![],
            started_us: 0,
            routes: vec![],
            decoders: vec![],
            contract: None,
            ron: String::new(),
        })));
        assert_eq!((m.devices.len(), m.devices.connected()), (2, 0));
        m.apply(update("d-1", "d-{i}", DeviceState::Connected, 0));
        m.apply(update("d-2", "d-{i}", DeviceState::Connected, 0));
        m.apply(update("d-2", "d-{i}", DeviceState::Connected, 3));
        assert_eq!(m.devices.connected(), 2);
        assert_eq!(m.devices.fleets()[0].connected, 2);
        assert_eq!(m.devices.failures(), 3);
        assert_eq!(m.devices.get("d-2").map(|d| d.publish_failed), Some(3));
        m.apply(update("d-1", "d-{i}", DeviceState::Offline, 0));
        assert_eq!(m.devices.connected(), 1);
        m.apply(Event::ScenarioStopped);
        assert_eq!(m.devices.connected(), 0);
        assert!(m.scenario.is_none());
    }

    #[test]
    fn notices_are_bounded_and_counted() {
        let mut m = Model::default();
        for i in 0..(MAX_NOTICES + 5) {
            m.apply(Event::Notice {
                error: false,
                text: i.to_string(),
            });
        }
        assert_eq!(m.notices_dropped, 5);
        let n = m.take_notices();
        assert_eq!(n.len(), MAX_NOTICES);
        assert_eq!(n[0].text, "5");
        assert!(m.take_notices().is_empty());
    }
}
