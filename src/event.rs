//! Engine → UI/CLI: batched [`Event`]s over a channel bounded by count and
//! bytes (`engine::channel`), followed by a call to the repaint waker; and
//! the plain data events carry.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::checks::Expectation;
use crate::codec::DecoderRule;
use crate::export::record::Recording;
use crate::fault::{FaultKey, NetFault};
use crate::wire::WireEvent;

/// Connection state of a virtual device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceState {
    Connecting,
    Connected,
    /// Disconnected on purpose (graceful or dropped) and not reconnecting.
    Offline,
    /// Lost its connection and retrying.
    Reconnecting,
    /// Finished (scenario stopped).
    Stopped,
}

impl DeviceState {
    pub fn label(self) -> &'static str {
        match self {
            DeviceState::Connecting => "connecting",
            DeviceState::Connected => "connected",
            DeviceState::Offline => "offline",
            DeviceState::Reconnecting => "reconnecting",
            DeviceState::Stopped => "stopped",
        }
    }
}
/// A virtual device's new state, with its running counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUpdate {
    pub client_id: String,
    /// The template id of its scenario entry.
    pub fleet: String,
    pub state: DeviceState,
    /// Publishes its client's request queue refused (full or closed): lost, never sent.
    pub publish_failed: u64,
    /// Acknowledgements its client's request queue refused.
    pub ack_failed: u64,
    /// A scripted device's vars, state, last log line and error.
    pub script: Option<std::sync::Arc<ScriptView>>,
}

/// What a scripted device's script holds now (the Devices panel shows it).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ScriptView {
    /// The script file, as the scenario names it.
    pub file: String,
    /// Why it stopped being called (file:line:column: what happened).
    pub error: Option<String>,
    /// The device's vars and signals, formatted.
    pub vars: Vec<(String, String)>,
    pub state: String,
    pub last_log: Option<String>,
}

/// What the embedded broker's health probe (`broker::health`) tells the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    /// Its messages come back (again).
    Answering,
    /// Nothing came back for its deadline; what the probe saw last.
    NotAnswering(String),
}

/// The embedded broker stopped answering its health probe at least once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerHealth {
    /// Its probe's messages come back now.
    pub answering: bool,
    /// Restarts the engine made because it stopped answering.
    pub restarts: u32,
    /// What the probe saw the last time it stopped answering.
    pub why: String,
}

/// Broker run state, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerState {
    /// The engine is binding its ports (the window draws meanwhile).
    Starting,
    Running {
        public: SocketAddr,
        upstream: String,
        /// The TLS listener beside the plain one, when there is one.
        tls: Option<Box<TlsInfo>>,
        /// The WebSocket listeners' URLs, when there are any.
        ws: WsUrls,
    },
    Stopped,
    Failed {
        error: String,
        /// The public port was taken: this one was free when the engine looked.
        free_port: Option<u16>,
    },
}

/// Where WebSocket clients connect (`ws://localhost:8083/mqtt`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct WsUrls {
    pub ws: Option<String>,
    pub wss: Option<String>,
}

/// The tap's TLS listener and the files a user's own clients need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub addr: SocketAddr,
    /// The CA to trust (generated), if the workbench made the certificate.
    pub ca: Option<std::path::PathBuf>,
    /// A client certificate and key signed by the generated CA.
    pub client_cert: Option<std::path::PathBuf>,
    pub client_key: Option<std::path::PathBuf>,
    /// Clients must present a certificate.
    pub client_cert_required: bool,
}

/// One entry of a running scenario's timeline, as the UI shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct TimelineItem {
    /// "at 10s", "after drone-3 offline", …
    pub when: String,
    pub label: String,
}

/// What the engine started.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioInfo {
    pub name: String,
    pub description: String,
    /// The file it came from (a name for in-memory scenarios).
    pub path: PathBuf,
    /// (client id, fleet id) of every device, in scenario order.
    pub devices: Vec<(String, String)>,
    pub timeline: Vec<TimelineItem>,
    /// What the scenario expects to see (evaluated by the consumer's model).
    pub expectations: Vec<Expectation>,
    /// When the engine started it (µs since the epoch; 0: unknown).
    pub started_us: u64,
    /// Waypoint routes of its devices' generators: (fleet, [(lat, lon)]).
    pub routes: Vec<(String, Vec<(f64, f64)>)>,
    /// How its topics' payloads are encoded (first match wins).
    pub decoders: Vec<DecoderRule>,
    /// The AsyncAPI document its traffic is checked against.
    pub contract: Option<std::sync::Arc<crate::contract::Contract>>,
    /// The scenario itself as RON (the window edits it live).
    pub ron: String,
}

/// Engine → UI/CLI.
#[derive(Debug)]
pub enum Event {
    /// A batch of wire events, in order.
    Wire(Vec<WireEvent>),
    /// Virtual devices changed state (batched, in order).
    Devices(Vec<DeviceUpdate>),
    /// A scenario was loaded and its devices are starting.
    ScenarioStarted(Box<ScenarioInfo>),
    /// The running scenario's file changed and was applied: unchanged devices
    /// kept their connections; `restarted` lists the changed ones (new ones
    /// are in `info` only, removed ones are gone from it).
    ScenarioReloaded {
        info: Box<ScenarioInfo>,
        restarted: Vec<String>,
    },
    /// A recording was read: it replaces the capture (for inspection).
    CaptureOpened(Box<Recording>),
    ScenarioStopped,
    Broker(BrokerState),
    /// The embedded broker stopped answering, was restarted, answers again.
    BrokerHealth(BrokerHealth),
    /// Something the user should hear about (shown as a toast).
    Notice {
        error: bool,
        text: String,
    },
    /// A fault was injected (by a click or the timeline): a marker for the plots.
    Fault {
        t_us: u64,
        label: String,
        /// Index in the scenario's timeline when the timeline fired it.
        timeline: Option<usize>,
    },
    /// The network faults now in force, after any change.
    NetFaults(Vec<(FaultKey, NetFault)>),
    /// An export is under way: `done` of `total` messages written.
    ExportProgress {
        done: u64,
        total: u64,
    },
    /// The export ended (written or failed); the notice says which.
    ExportFinished,
    /// The capture database's writer: what it wrote and lost so far (about
    /// once a second while frames flow).
    Database(crate::database::DbStatus),
    /// The virtual devices' connect counts (when they changed, at most ten times a second).
    Ramp(RampStatus),
    /// The capture database was closed; everything queued was committed.
    DatabaseClosed(crate::database::DbStatus),
    /// A page of a payload search over the capture database.
    SearchResults(Result<Box<crate::database::SearchPage>, String>),
    /// The answer to a read-only SQL query over the capture database.
    QueryResult(Result<Box<crate::database::QueryResult>, String>),
}

impl Event {
    /// Approximate bytes this event holds (for the channel's byte bound).
    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + match self {
                Event::Wire(batch) => batch.iter().map(WireEvent::mem_bytes).sum(),
                Event::Devices(batch) => batch
                    .iter()
                    .map(|d| {
                        std::mem::size_of::<DeviceUpdate>() + d.client_id.len() + d.fleet.len()
                    })
                    .sum(),
                Event::ScenarioStarted(info) => info
                    .devices
                    .iter()
                    .map(|(a, b)| 48 + a.len() + b.len())
                    .sum(),
                Event::Notice { text, .. } | Event::Fault { label: text, .. } => text.len(),
                Event::NetFaults(rules) => rules.len() * 96,
                Event::SearchResults(Ok(page)) => {
                    page.rows.iter().map(|(_, e)| e.mem_bytes()).sum()
                }
                Event::QueryResult(Ok(q)) => q
                    .rows
                    .iter()
                    .map(|r| r.iter().map(|v| 32 + v.to_string().len()).sum::<usize>())
                    .sum(),
                _ => 0,
            }
    }

    /// How many items (wire events, device updates) this event carries.
    pub fn items(&self) -> u64 {
        match self {
            Event::Wire(batch) => batch.len() as u64,
            Event::Devices(batch) => batch.len() as u64,
            _ => 1,
        }
    }
}

/// How far the virtual devices got connecting, at one moment (counted by
/// `sim::ramp`, which also formats it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RampStatus {
    /// Devices of the running scenario(s).
    pub devices: u64,
    pub connected: u64,
    /// Devices still waiting for their first CONNACK.
    pub waiting: u64,
    /// Why the waiting devices' last attempt failed, most common first.
    pub failing: Vec<(String, u64)>,
}

/// What the engine dropped because a queue was full, at one moment: the
/// tap's queue, the devices' queue, the channel to the consumer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounts {
    pub tap_queue: u64,
    pub device_queue: u64,
    pub consumer: u64,
}

impl DropCounts {
    pub fn total(&self) -> u64 {
        self.tap_queue + self.device_queue + self.consumer
    }
}

/// Where a consumer's events come from: the engine's channel
/// (`engine::EngineHandle`), or anything that queues [`Event`]s.
pub trait EventSource {
    /// The next event, if one is waiting.
    fn try_recv(&self) -> Option<Event>;
    /// Nothing is waiting.
    fn is_empty(&self) -> bool;
    /// What was dropped so far.
    fn drops(&self) -> DropCounts;
}
