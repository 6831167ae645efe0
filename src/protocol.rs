//! The two message types that cross the engine boundary.
//!
//! UI (or CLI) → engine: [`Command`], over a bounded tokio channel (`try_send`
//! from the UI thread, never blocking). Engine → UI: batched [`Event`]s over a
//! bounded crossbeam channel, followed by a call to the repaint waker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::sim::Scenario;

/// Identifies one TCP connection accepted by the tap (monotonic, never reused).
pub type ConnId = u64;

/// Which way a frame travelled through the tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Direction {
    /// From an MQTT client to the broker.
    #[serde(rename = "client_to_broker")]
    ClientToBroker,
    /// From the broker to an MQTT client.
    #[serde(rename = "broker_to_client")]
    BrokerToClient,
}

impl Direction {
    pub fn arrow(self) -> &'static str {
        match self {
            Direction::ClientToBroker => "→ broker",
            Direction::BrokerToClient => "→ client",
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::ClientToBroker => "client_to_broker",
            Direction::BrokerToClient => "broker_to_client",
        }
    }
}

/// MQTT 3.1.1 control packet kinds, plus the tap's own connection markers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PacketKind {
    Connect,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    PingReq,
    PingResp,
    Disconnect,
    /// Not a packet: the tap accepted a TCP connection.
    Opened,
    /// Not a packet: the TCP connection ended (see [`WireDetail::Closed`]).
    Closed,
}

impl PacketKind {
    pub fn name(self) -> &'static str {
        match self {
            PacketKind::Connect => "CONNECT",
            PacketKind::ConnAck => "CONNACK",
            PacketKind::Publish => "PUBLISH",
            PacketKind::PubAck => "PUBACK",
            PacketKind::PubRec => "PUBREC",
            PacketKind::PubRel => "PUBREL",
            PacketKind::PubComp => "PUBCOMP",
            PacketKind::Subscribe => "SUBSCRIBE",
            PacketKind::SubAck => "SUBACK",
            PacketKind::Unsubscribe => "UNSUBSCRIBE",
            PacketKind::UnsubAck => "UNSUBACK",
            PacketKind::PingReq => "PINGREQ",
            PacketKind::PingResp => "PINGRESP",
            PacketKind::Disconnect => "DISCONNECT",
            PacketKind::Opened => "(opened)",
            PacketKind::Closed => "(closed)",
        }
    }
}

/// Why a connection ended, as far as the tap can tell.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CloseReason {
    /// The client sent DISCONNECT before closing: the will is discarded.
    Graceful,
    /// The client's socket closed without DISCONNECT: the broker fires the will.
    ClientClosed,
    /// The broker closed the connection (keepalive expiry, takeover, protocol error).
    BrokerClosed,
    /// The tap cut the connection on command (abrupt drop: the will fires).
    DroppedByTap,
    /// An I/O or decode error ended the connection.
    Error(String),
}

impl CloseReason {
    pub fn label(&self) -> String {
        match self {
            CloseReason::Graceful => "graceful DISCONNECT".into(),
            CloseReason::ClientClosed => "client closed without DISCONNECT".into(),
            CloseReason::BrokerClosed => "closed by broker".into(),
            CloseReason::DroppedByTap => "dropped abruptly (injected)".into(),
            CloseReason::Error(e) => format!("error: {e}"),
        }
    }
    /// Whether the broker is expected to publish the client's will.
    pub fn fires_will(&self) -> bool {
        !matches!(self, CloseReason::Graceful)
    }
}

/// A last will as declared in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WillInfo {
    pub topic: String,
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// Packet-specific details the inspectors need beyond the common header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum WireDetail {
    #[default]
    None,
    Connect {
        clean_session: bool,
        keep_alive_s: u16,
        will: Option<WillInfo>,
        username: Option<String>,
    },
    ConnAck {
        session_present: bool,
        code: u8,
    },
    /// Requested filters with their requested QoS.
    Subscribe(Vec<(String, u8)>),
    /// Granted QoS per filter (None = failure 0x80).
    SubAck(Vec<Option<u8>>),
    Unsubscribe(Vec<String>),
    Opened {
        peer: std::net::SocketAddr,
    },
    Closed(CloseReason),
}

/// What an injected network fault did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// Discarded: frame loss, or a partition in cut mode.
    Dropped,
    /// Forwarded this many milliseconds late (latency, jitter, stall, bandwidth not included).
    Delayed(u32),
    /// Held by a partition until it heals.
    Held,
}

/// One decoded frame (or connection marker) seen by the tap.
#[derive(Debug, Clone)]
pub struct WireEvent {
    /// Microseconds since the UNIX epoch when the tap read the frame.
    pub t_us: u64,
    pub conn: ConnId,
    /// Client id from the connection's CONNECT ("" before it arrived).
    pub client_id: Arc<str>,
    pub dir: Direction,
    pub kind: PacketKind,
    pub pkid: u16,
    pub qos: u8,
    pub retain: bool,
    pub dup: bool,
    pub topic: Option<Arc<str>>,
    pub payload: Option<Bytes>,
    /// Frame size on the wire in bytes.
    pub size: u32,
    pub detail: WireDetail,
    /// Set when an injected network fault dropped, delayed or held this frame.
    pub injected: Option<Injected>,
}

impl WireEvent {
    /// An event with the common header and nothing else set.
    pub fn new(
        t_us: u64,
        conn: ConnId,
        client_id: Arc<str>,
        dir: Direction,
        kind: PacketKind,
    ) -> Self {
        WireEvent {
            t_us,
            conn,
            client_id,
            dir,
            kind,
            pkid: 0,
            qos: 0,
            retain: false,
            dup: false,
            topic: None,
            payload: None,
            size: 0,
            detail: WireDetail::None,
            injected: None,
        }
    }

    /// Approximate bytes this event holds in memory (for the store's byte bound).
    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.payload.as_ref().map_or(0, |p| p.len())
            + self.topic.as_ref().map_or(0, |t| t.len())
    }
}

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

/// What a device command or fault acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// One virtual device by client id.
    Device(String),
    /// Every device of a scenario entry (fleet) by its template id.
    Fleet(String),
    /// Every virtual device.
    All,
}

/// Client-side faults and controls for virtual devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAction {
    /// Send DISCONNECT and close: the broker discards the will.
    Disconnect,
    /// Close the socket without DISCONNECT: the broker publishes the will.
    Drop,
    /// Connect again after Disconnect or Drop.
    Reconnect,
    /// Stop publishing (stay connected).
    Pause,
    /// Resume publishing.
    Resume,
    /// Stop acknowledging QoS 1/2 messages (the broker redelivers with DUP on reconnect).
    StopAcking,
    /// Acknowledge again.
    ResumeAcking,
}

/// UI/CLI → engine.
#[derive(Debug)]
pub enum Command {
    /// Stop the running scenario (if any) and start this one.
    LoadScenario(Box<Scenario>),
    /// Stop every virtual device of the running scenario (gracefully).
    StopScenario,
    /// Apply a device action.
    Device(Target, DeviceAction),
    /// Cut one tap connection abruptly (any client, external ones too).
    DropConnection(ConnId),
    /// Stop the embedded broker's listeners (sessions are kept by the router).
    StopBroker,
    /// Start the embedded broker's listeners again.
    StartBroker,
    /// Inject a fault (network, client or broker), from a click.
    Inject(crate::sim::scenario::Fault),
    /// Inject entry `index` of the running scenario's timeline.
    TimelineFault {
        index: usize,
        fault: crate::sim::scenario::Fault,
    },
    /// Write every captured message to a file (format from the extension).
    Export {
        path: PathBuf,
        rows: Arc<Vec<crate::export::ExportRow>>,
    },
}

/// A virtual device's new state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceUpdate {
    pub client_id: String,
    /// The template id of its scenario entry.
    pub fleet: String,
    pub state: DeviceState,
}

/// Broker run state, for the status bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BrokerState {
    Running {
        public: SocketAddr,
        upstream: String,
    },
    Stopped,
    Failed(String),
}

/// Engine → UI/CLI.
#[derive(Debug)]
pub enum Event {
    /// A batch of wire events, in order.
    Wire(Vec<WireEvent>),
    /// Virtual devices changed state (batched, in order).
    Devices(Vec<DeviceUpdate>),
    /// The scenario started with these devices (client id, fleet id).
    ScenarioStarted {
        name: String,
        devices: Vec<(String, String)>,
    },
    ScenarioStopped,
    Broker(BrokerState),
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
    NetFaults(Vec<(crate::tap::faults::FaultKey, crate::tap::faults::NetFault)>),
}
