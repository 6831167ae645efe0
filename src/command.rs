//! UI (or CLI) → engine: [`Command`], over a bounded tokio channel (`try_send`
//! from the UI thread, never blocking), and the plain data commands carry.

use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::capture::EventsSnapshot;
use crate::event::Health;
use crate::fault::{DeviceAction, Fault, FaultMarker, Target};
use crate::wire::ConnId;

/// Where a scenario comes from. The engine parses and validates it (off the UI thread).
#[derive(Debug, Clone)]
pub enum ScenarioSource {
    /// A RON file on disk.
    File(PathBuf),
    /// RON text built in memory (benchmarks, tests); `origin` names it in errors.
    Text { origin: PathBuf, ron: String },
}
/// Who sends a message published by hand.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Publisher {
    /// The workbench's own MQTT client (client id [`WORKBENCH_CLIENT_ID`]),
    /// connected through the tap like any other client.
    Workbench,
    /// A running virtual device, on its own connection.
    Device(String),
}

/// Client id of the workbench's own MQTT client.
pub const WORKBENCH_CLIENT_ID: &str = "mqtt-workbench";

/// A message to publish by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    pub from: Publisher,
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties (the workbench's client and MQTT 5 devices send them).
    pub properties: MessageProperties,
    /// Read the payload from this file (on the engine; at most 1 MiB) instead.
    pub payload_file: Option<PathBuf>,
}

/// MQTT 5 properties of a message published by hand.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageProperties {
    pub content_type: String,
    pub response_topic: String,
    pub correlation_data: String,
    /// Seconds; 0: no expiry.
    pub message_expiry_s: u32,
    pub payload_utf8: bool,
    pub user_properties: Vec<(String, String)>,
}

impl MessageProperties {
    pub fn is_empty(&self) -> bool {
        *self == MessageProperties::default()
    }
}

/// UI/CLI → engine.
#[derive(Debug)]
pub enum Command {
    /// Open the capture database (every frame from now on is written to it)
    /// or, with None, commit what is queued and close it; answered by
    /// [`crate::event::Event::Database`] / [`crate::event::Event::DatabaseClosed`]
    /// or an error notice.
    CaptureDb(Option<crate::database::DbOptions>),
    /// Search the capture database's PUBLISH frames (the live one, or the
    /// database last opened); answered by `Event::SearchResults`.
    SearchCapture {
        spec: crate::database::SearchSpec,
        /// Rows older than this id (None: from the newest).
        before: Option<i64>,
    },
    /// Run read-only SQL over the capture database; answered by `Event::QueryResult`.
    Query(String),
    /// Store the verdicts as they stand in the capture database.
    RecordVerdicts(Vec<crate::checks::Verdict>),
    /// Stop the running scenario (if any), then parse, validate and start this one.
    /// Answered by [`Event::ScenarioStarted`] or an error [`Event::Notice`].
    LoadScenario(ScenarioSource),
    /// Stop every virtual device of the running scenario (gracefully).
    StopScenario,
    /// Apply a device action (marked on the plots like any fault).
    Device(Target, DeviceAction),
    /// Cut one tap connection abruptly (any client, external ones too).
    DropConnection(ConnId),
    /// Stop the embedded broker's listeners (sessions are kept by the router).
    StopBroker,
    /// Start the embedded broker's listeners again.
    StartBroker,
    /// Inject a fault (network, client or broker), from a click.
    Inject(Fault),
    /// Inject entry `index` of the running scenario's timeline.
    TimelineFault { index: usize, fault: Fault },
    /// Save the whole capture (every frame, both legs, timing, protocol and
    /// properties) and the faults as a recording; answered by a notice.
    SaveCapture {
        path: PathBuf,
        events: EventsSnapshot,
        faults: Vec<FaultMarker>,
        /// The scenario's name and start (µs), for offline checks.
        scenario: Option<(String, u64)>,
    },
    /// Apply a changed scenario to the running one: unchanged devices keep
    /// their connections and sessions, changed ones restart, removed ones
    /// disconnect gracefully, new ones connect. A file with an error keeps
    /// the running scenario and says where the error is.
    ReloadScenario(ScenarioSource),
    /// Write a scenario (RON, validated first) to a file; answered by a notice.
    SaveScenario { path: PathBuf, ron: String },
    /// Read a recording; answered by [`Event::CaptureOpened`] or an error notice.
    OpenCapture(PathBuf),
    /// Copy a file (the generated CA certificate, saved where the user
    /// chose); answered by a notice.
    CopyFile { from: PathBuf, to: PathBuf },
    /// Write the PUBLISH frames of `events` to a file (format from the
    /// extension), reporting [`Event::ExportProgress`] and a closing notice.
    Export {
        path: PathBuf,
        events: EventsSnapshot,
    },
    /// Write a scenario from an AsyncAPI document (beside it, as
    /// `<name>.scenario.ron`) and run it; answered by a notice with what
    /// was not carried over.
    ImportSpec(PathBuf),
    /// Write an AsyncAPI 3.0 document inferred from `events`; answered by a notice.
    ExportSpec {
        path: PathBuf,
        events: EventsSnapshot,
        title: String,
    },
    /// Publish a message by hand; answered by a notice (sent or why not).
    Publish(PublishRequest),
    /// Clear these topics' retained messages: the workbench's client publishes
    /// an empty retained payload to each (QoS 1).
    ClearRetained(Vec<String>),
    /// From the embedded broker's health probe (`broker::health`): not
    /// answering restarts it (warm; cold when a warm restart did not help).
    BrokerHealth(Health),
}
