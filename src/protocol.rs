//! The two message types that cross the engine boundary, and the plain data
//! they carry. A leaf: this module imports nothing from the crate.
//!
//! UI (or CLI) → engine: [`Command`], over a bounded tokio channel (`try_send`
//! from the UI thread, never blocking). Engine → UI: batched [`Event`]s over a
//! channel bounded by count and bytes, followed by a call to the repaint waker.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Whether `topic` matches the subscription `filter` (`+` and `#` wildcards).
pub fn topic_matches(topic: &str, filter: &str) -> bool {
    // rumqttc's matcher slices the topic's first byte to apply the `$` rule:
    // a topic starting with a multi-byte character would panic there. Such a
    // topic cannot start with `$`, so match it behind a neutral first level.
    match topic.chars().next() {
        Some(c) if !c.is_ascii() => {
            #[expect(clippy::disallowed_methods, reason = "the one safe wrapper")]
            let m = rumqttc::mqttbytes::matches(&format!("x/{topic}"), &format!("x/{filter}"));
            m
        }
        #[expect(clippy::disallowed_methods, reason = "the one safe wrapper")]
        _ => rumqttc::mqttbytes::matches(topic, filter),
    }
}

/// Microseconds since the UNIX epoch: the clock of every `t_us` here.
pub fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Identifies one TCP connection accepted by the tap (monotonic, never reused).
pub type ConnId = u64;

/// The peer recorded for in-process connections (virtual devices reach the
/// tap without a socket); shown as "in-process".
pub const IN_PROCESS_PEER: std::net::SocketAddr =
    std::net::SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WillInfo {
    pub topic: String,
    #[serde(with = "b64")]
    pub payload: Bytes,
    pub qos: u8,
    pub retain: bool,
}

/// Packet-specific details the inspectors need beyond the common header.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum WireDetail {
    #[default]
    None,
    Connect {
        /// MQTT protocol level: 4 (3.1.1) or 5.
        protocol: u8,
        clean_session: bool,
        /// What the client asked for (0: no keepalive).
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
        /// Reached the tap's TLS listener.
        tls: bool,
    },
    Closed(CloseReason),
}

/// What an injected network fault did to a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Injected {
    /// Discarded: frame loss, or a partition in cut mode.
    Dropped,
    /// Forwarded this many milliseconds late (latency, jitter, stall, bandwidth not included).
    Delayed(u32),
    /// Held by a partition until it heals.
    Held,
    /// Not forwarded: the tap's access rules refused it (a PUBLISH or SUBSCRIBE).
    Denied,
    /// Written by the tap itself, not by the broker (its answer to a refused
    /// CONNECT, PUBLISH or SUBSCRIBE).
    FromTap,
}

/// How a subscription asked to be served (MQTT 5 subscription options).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubOptions {
    pub filter: String,
    pub no_local: bool,
    pub retain_as_published: bool,
    /// 0: send retained on subscribe; 1: only on a new subscription; 2: never.
    pub retain_handling: u8,
}

/// What an MQTT 5 frame carries beyond MQTT 3.1.1: its reason code(s) and
/// properties. Boxed on the event (most frames have none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct V5Props {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<u8>,
    /// SUBACK: one per filter.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub reason_codes: Vec<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_string: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub user_properties: Vec<(String, String)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Payload format indicator: true = UTF-8 text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_utf8: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_topic: Option<String>,
    /// Text when it is UTF-8, else hex.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_expiry_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic_alias: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_expiry_s: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receive_maximum: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_packet_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub assigned_client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_keep_alive_s: Option<u16>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions: Vec<SubOptions>,
}

impl V5Props {
    pub fn is_empty(&self) -> bool {
        *self == V5Props::default()
    }

    /// The properties in a line, for tables ("reason 0x10 · user a=1 · …").
    pub fn summary(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.reason_code {
            parts.push(format!("reason 0x{c:02X}"));
        }
        if !self.reason_codes.is_empty() {
            let codes: Vec<String> = self
                .reason_codes
                .iter()
                .map(|c| format!("0x{c:02X}"))
                .collect();
            parts.push(format!("reasons {}", codes.join(",")));
        }
        if let Some(r) = &self.reason_string {
            parts.push(format!("“{r}”"));
        }
        for (k, v) in &self.user_properties {
            parts.push(format!("{k}={v}"));
        }
        if let Some(c) = &self.content_type {
            parts.push(format!("content-type {c}"));
        }
        if let Some(u) = self.payload_utf8 {
            parts.push(if u { "utf-8" } else { "binary" }.into());
        }
        if let Some(r) = &self.response_topic {
            parts.push(format!("response-topic {r}"));
        }
        if let Some(c) = &self.correlation_data {
            parts.push(format!("correlation {c}"));
        }
        if let Some(e) = self.message_expiry_s {
            parts.push(format!("expires {e} s"));
        }
        if let Some(a) = self.topic_alias {
            parts.push(format!("alias {a}"));
        }
        if let Some(e) = self.session_expiry_s {
            parts.push(format!("session expiry {e} s"));
        }
        if let Some(r) = self.receive_maximum {
            parts.push(format!("receive max {r}"));
        }
        if let Some(m) = self.max_packet_size {
            parts.push(format!("max packet {m} B"));
        }
        if let Some(a) = &self.assigned_client_id {
            parts.push(format!("assigned id {a}"));
        }
        if let Some(k) = self.server_keep_alive_s {
            parts.push(format!("server keepalive {k} s"));
        }
        for s in &self.subscriptions {
            let mut opts = Vec::new();
            if s.no_local {
                opts.push("no-local".to_string());
            }
            if s.retain_as_published {
                opts.push("retain-as-published".into());
            }
            if s.retain_handling != 0 {
                opts.push(format!("retain-handling {}", s.retain_handling));
            }
            if !opts.is_empty() {
                parts.push(format!("{}: {}", s.filter, opts.join(" ")));
            }
        }
        parts.join(" · ")
    }

    /// Approximate bytes held.
    fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .user_properties
                .iter()
                .map(|(k, v)| k.len() + v.len() + 48)
                .sum::<usize>()
            + [
                &self.reason_string,
                &self.content_type,
                &self.response_topic,
                &self.correlation_data,
                &self.assigned_client_id,
            ]
            .iter()
            .map(|s| s.as_ref().map_or(0, |s| s.len()))
            .sum::<usize>()
            + self.subscriptions.len() * 64
    }
}

/// One decoded frame (or connection marker) seen by the tap.
/// Recorded captures store these as JSON lines (payloads in base64).
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    #[serde(with = "b64_opt", default)]
    pub payload: Option<Bytes>,
    /// Frame size on the wire in bytes.
    pub size: u32,
    pub detail: WireDetail,
    /// Set when an injected network fault dropped, delayed or held this frame.
    pub injected: Option<Injected>,
    /// MQTT protocol level of the connection: 4 (3.1.1) or 5; 0 before its CONNECT.
    pub protocol: u8,
    /// MQTT 5 reason codes and properties (None for 3.1.1, or when it has none).
    pub v5: Option<Box<V5Props>>,
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
            protocol: 0,
            v5: None,
        }
    }

    /// Approximate bytes this event holds in memory (for the store's byte bound).
    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.payload.as_ref().map_or(0, |p| p.len())
            + self.topic.as_ref().map_or(0, |t| t.len())
            + self.v5.as_ref().map_or(0, |p| p.mem_bytes())
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

/// How a network partition treats the traffic it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionMode {
    /// Traffic is buffered and delivered when the partition heals.
    Hold,
    /// Traffic is discarded.
    Cut,
}

/// The network faults applied to one connection (both directions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetFault {
    pub latency_ms: u32,
    pub jitter_ms: u32,
    pub drop_pct: f64,
    pub stall_pct: f64,
    pub stall_ms: u32,
    pub bandwidth_bps: u64,
    pub partition: Option<PartitionMode>,
    pub stalled: bool,
}

impl NetFault {
    pub fn is_clear(&self) -> bool {
        *self == NetFault::default()
    }

    /// Short description for the UI and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.latency_ms > 0 || self.jitter_ms > 0 {
            parts.push(format!(
                "latency {} ms ± {} ms",
                self.latency_ms, self.jitter_ms
            ));
        }
        if self.drop_pct > 0.0 {
            parts.push(format!("drop {:.0}% of frames", self.drop_pct));
        }
        if self.stall_pct > 0.0 {
            parts.push(format!(
                "stall {:.0}% of frames by {} ms",
                self.stall_pct, self.stall_ms
            ));
        }
        if self.bandwidth_bps > 0 {
            parts.push(format!("bandwidth {} B/s", self.bandwidth_bps));
        }
        match self.partition {
            Some(PartitionMode::Hold) => parts.push("partitioned (held)".into()),
            Some(PartitionMode::Cut) => parts.push("partitioned (cut)".into()),
            None => {}
        }
        if self.stalled {
            parts.push("half-dead (not reading)".into());
        }
        if parts.is_empty() {
            "no faults".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Which connections a network fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultKey {
    Client(String),
    Conn(ConnId),
    All,
}

/// A fault to inject, from a click or a scenario's timeline. (The scenario
/// file has its own, similar-looking schema; it converts into this.)
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Graceful DISCONNECT (no will).
    Disconnect(Target),
    /// Abrupt close without DISCONNECT (the will fires).
    Drop(Target),
    Reconnect(Target),
    Pause(Target),
    Resume(Target),
    /// Stop sending PUBACK/PUBREC: the broker redelivers with DUP after a reconnect.
    StopAcking(Target),
    ResumeAcking(Target),
    /// Added delay on every frame both ways; `duration` ends it (else until cleared).
    Latency {
        target: Target,
        ms: u32,
        jitter_ms: u32,
        duration: Option<Duration>,
    },
    /// `drop_pct`: frames discarded whole; `stall_pct`: frames held `stall_ms` (TCP-style loss).
    Loss {
        target: Target,
        drop_pct: f64,
        stall_pct: f64,
        stall_ms: u32,
        duration: Option<Duration>,
    },
    Bandwidth {
        target: Target,
        bytes_per_s: u64,
        duration: Option<Duration>,
    },
    /// Nothing passes for `duration`; `hold` delivers it afterwards, else it is discarded.
    Partition {
        target: Target,
        duration: Duration,
        hold: bool,
    },
    /// The tap stops reading: keepalive expires at the broker (1.5 × keepalive), the will fires.
    HalfDead {
        target: Target,
        duration: Option<Duration>,
    },
    /// Remove every network fault of a target.
    ClearNetwork(Target),
    /// A second client connects with the same id and holds the session for `hold`.
    Takeover {
        client: String,
        hold: Duration,
    },
    /// Restart the broker's listeners: every client is cut, sessions are kept.
    RestartBroker,
    /// Restart the broker from scratch: sessions, queued and retained messages are lost.
    ColdRestartBroker,
}

impl Fault {
    /// The fault a device action is (one path for clicks and the timeline).
    pub fn device(target: Target, action: DeviceAction) -> Fault {
        use DeviceAction as A;
        match action {
            A::Disconnect => Fault::Disconnect(target),
            A::Drop => Fault::Drop(target),
            A::Reconnect => Fault::Reconnect(target),
            A::Pause => Fault::Pause(target),
            A::Resume => Fault::Resume(target),
            A::StopAcking => Fault::StopAcking(target),
            A::ResumeAcking => Fault::ResumeAcking(target),
        }
    }

    /// The device action this fault is, if it is one.
    pub fn device_action(&self) -> Option<(&Target, DeviceAction)> {
        use DeviceAction as A;
        Some(match self {
            Fault::Disconnect(t) => (t, A::Disconnect),
            Fault::Drop(t) => (t, A::Drop),
            Fault::Reconnect(t) => (t, A::Reconnect),
            Fault::Pause(t) => (t, A::Pause),
            Fault::Resume(t) => (t, A::Resume),
            Fault::StopAcking(t) => (t, A::StopAcking),
            Fault::ResumeAcking(t) => (t, A::ResumeAcking),
            _ => return None,
        })
    }

    /// What the fault does, in a few words (plot markers, logs, timeline).
    pub fn label(&self) -> String {
        let dur = |d: &Option<Duration>| {
            d.map(|d| format!(" for {}", humantime::format_duration(d)))
                .unwrap_or_default()
        };
        match self {
            Fault::Disconnect(x) => format!("disconnect {}", x.label()),
            Fault::Drop(x) => format!("drop {}", x.label()),
            Fault::Reconnect(x) => format!("reconnect {}", x.label()),
            Fault::Pause(x) => format!("pause {}", x.label()),
            Fault::Resume(x) => format!("resume {}", x.label()),
            Fault::StopAcking(x) => format!("{} stops acking", x.label()),
            Fault::ResumeAcking(x) => format!("{} acks again", x.label()),
            Fault::Latency {
                target,
                ms,
                jitter_ms,
                duration,
            } => format!(
                "latency {ms}±{jitter_ms} ms on {}{}",
                target.label(),
                dur(duration)
            ),
            Fault::Loss {
                target,
                drop_pct,
                stall_pct,
                stall_ms,
                duration,
            } => format!(
                "loss on {}: drop {drop_pct}%, stall {stall_pct}% by {stall_ms} ms{}",
                target.label(),
                dur(duration)
            ),
            Fault::Bandwidth {
                target,
                bytes_per_s,
                duration,
            } => format!(
                "bandwidth {bytes_per_s} B/s on {}{}",
                target.label(),
                dur(duration)
            ),
            Fault::Partition {
                target,
                duration,
                hold,
            } => format!(
                "partition {} for {} ({})",
                target.label(),
                humantime::format_duration(*duration),
                if *hold { "held" } else { "cut" }
            ),
            Fault::HalfDead { target, duration } => {
                format!("{} half-dead{}", target.label(), dur(duration))
            }
            Fault::ClearNetwork(x) => format!("clear network faults of {}", x.label()),
            Fault::Takeover { client, hold } => format!(
                "client-id takeover of {client} for {}",
                humantime::format_duration(*hold)
            ),
            Fault::RestartBroker => "broker restart (sessions kept)".into(),
            Fault::ColdRestartBroker => "broker cold restart (sessions lost)".into(),
        }
    }
}

impl Target {
    pub fn label(&self) -> String {
        match self {
            Target::Device(d) => d.clone(),
            Target::Fleet(f) => format!("fleet {f}"),
            Target::All => "everyone".into(),
        }
    }
}

/// Where a scenario comes from. The engine parses and validates it (off the UI thread).
#[derive(Debug, Clone)]
pub enum ScenarioSource {
    /// A RON file on disk.
    File(PathBuf),
    /// RON text built in memory (benchmarks, tests); `origin` names it in errors.
    Text { origin: PathBuf, ron: String },
}

/// Stored wire events handed to the engine without copying them: shared,
/// immutable chunks of the capture's store, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventsSnapshot {
    pub chunks: Vec<Arc<Vec<WireEvent>>>,
    /// Events at the front of the first chunk that were already evicted.
    pub skip: usize,
    /// Events in the snapshot.
    pub len: usize,
}

impl EventsSnapshot {
    pub fn iter(&self) -> impl Iterator<Item = &WireEvent> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip(self.skip)
            .take(self.len)
    }
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

    /// As rumqttc's MQTT 5 publish properties.
    pub fn to_v5(&self) -> rumqttc::v5::mqttbytes::v5::PublishProperties {
        let text = |s: &str| (!s.trim().is_empty()).then(|| s.to_string());
        rumqttc::v5::mqttbytes::v5::PublishProperties {
            payload_format_indicator: self.payload_utf8.then_some(1),
            message_expiry_interval: (self.message_expiry_s > 0).then_some(self.message_expiry_s),
            response_topic: text(&self.response_topic),
            correlation_data: text(&self.correlation_data).map(Bytes::from),
            user_properties: self
                .user_properties
                .iter()
                .filter(|(k, _)| !k.trim().is_empty())
                .cloned()
                .collect(),
            content_type: text(&self.content_type),
            ..Default::default()
        }
    }
}

/// UI/CLI → engine.
#[derive(Debug)]
pub enum Command {
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
    /// Publish a message by hand; answered by a notice (sent or why not).
    Publish(PublishRequest),
    /// Clear these topics' retained messages: the workbench's client publishes
    /// an empty retained payload to each (QoS 1).
    ClearRetained(Vec<String>),
    /// From the embedded broker's health probe (`broker::health`): not
    /// answering restarts it (warm; cold when a warm restart did not help).
    BrokerHealth(Health),
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
    },
    Stopped,
    Failed {
        error: String,
        /// The public port was taken: this one was free when the engine looked.
        free_port: Option<u16>,
    },
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

/// A duration written as a string: "250ms", "2s", "1m 30s".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Serialize)]
#[serde(transparent)]
pub struct Dur(#[serde(with = "dur_string")] pub Duration);

mod dur_string {
    use std::time::Duration;
    pub fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(s.trim()).map(Dur).map_err(|e| {
            serde::de::Error::custom(format!(
                "expected a duration like \"500ms\", \"2s\" or \"1m\", found \"{s}\" ({e})"
            ))
        })
    }
}

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
}

/// One named expectation of a scenario: what must (or must not) be seen on
/// the wire. Evaluated live by the `checks` module.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub name: String,
    pub check: Check,
}

/// What an expectation checks. Filters (`on`) are MQTT topic filters;
/// "published" means a PUBLISH a client sent (not one a fault dropped or the
/// access rules refused), "delivered" one the broker sent a subscriber.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Check {
    /// A message published on `on` (matching `payload`) within `within` after `after`.
    Message {
        on: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<PayloadCheck>,
        #[serde(default)]
        after: Anchor,
        within: Dur,
        /// Look at deliveries to subscribers instead of publishes (wills and
        /// retained messages are delivered without being published).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        delivered: bool,
    },
    /// How many messages are published on `on` from `after` on (for `within`,
    /// or until the run ends): `at_least`, `at_most` (0: none).
    Count {
        on: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<PayloadCheck>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_least: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_most: Option<u64>,
        #[serde(default)]
        after: Anchor,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        within: Option<Dur>,
        /// Count deliveries to subscribers (each subscriber's) instead of publishes.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        delivered: bool,
    },
    /// After `client`'s connection ends the `after` way, its will is (or is
    /// not) delivered to a subscriber within `within` (default 5 s).
    Will {
        client: String,
        #[serde(default = "yes")]
        published: bool,
        #[serde(default)]
        after: DisconnectKind,
        #[serde(default = "five_seconds")]
        within: Dur,
    },
    /// Every reconnect of `client` with a persistent session finds its session.
    SessionPresent { client: String },
    /// Every QoS 1/2 message published on `client`'s subscriptions while it
    /// was offline is delivered to it after it comes back.
    QueuedDelivered { client: String },
    /// No subscriber receives a QoS 2 message published on `on` twice.
    ExactlyOnce { on: String },
    /// Every QoS 1/2 message published on `on` is delivered at least once
    /// (duplicates are counted and shown).
    AtLeastOnce { on: String },
    /// Publish → delivery latency on `on` at `percentile` is under `under`.
    Latency {
        on: String,
        percentile: f64,
        under: Dur,
    },
    /// Each subscriber receives each publisher's messages on `on` in the order published.
    Ordered { on: String },
}

impl Check {
    /// When its window opens, for the checks that have a window.
    pub fn after(&self) -> Option<&Anchor> {
        match self {
            Check::Message { after, .. } | Check::Count { after, .. } => Some(after),
            _ => None,
        }
    }
}

fn yes() -> bool {
    true
}

fn five_seconds() -> Dur {
    Dur(Duration::from_secs(5))
}

/// When an expectation's window opens.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub enum Anchor {
    /// When the scenario starts.
    #[default]
    Start,
    /// This long after the start.
    At(Dur),
    /// When the scenario's timeline entry number N (1-based) fires.
    Fault(usize),
    /// When a message matching this is first published.
    Message {
        on: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<PayloadCheck>,
    },
}

/// How a connection ended, for [`Check::Will`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum DisconnectKind {
    /// Without DISCONNECT: dropped, timed out, closed by a fault.
    #[default]
    Abrupt,
    /// With DISCONNECT.
    Graceful,
    Any,
}

/// A predicate on a payload.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum PayloadCheck {
    Equals(String),
    Contains(String),
    /// A regular expression (Rust `regex` syntax) found in the text.
    Regex(String),
    /// A field of a JSON object (dots for nested fields: "pos.lat").
    Json {
        field: String,
        /// The field's text (strings without quotes, numbers as written).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        above: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        below: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        outside: Option<(f64, f64)>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        inside: Option<(f64, f64)>,
    },
}

/// Where an expectation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictState {
    Pending,
    Passed,
    Failed,
    /// What it waits for never happened (no reconnect, no trigger): neither passed nor failed.
    NotTriggered,
}

/// An expectation's verdict with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub state: VerdictState,
    /// What was seen (or not): the frame, the time, the value.
    pub evidence: String,
    /// The capture sequence number of the frame that decided it, if one did.
    pub seq: Option<u64>,
    /// When it was decided (µs since the epoch).
    pub t_us: Option<u64>,
}

/// Bytes as base64 text (recorded captures).
mod b64 {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map(Bytes::from)
            .map_err(|e| serde::de::Error::custom(format!("expected base64: {e}")))
    }
}

mod b64_opt {
    use base64::Engine as _;
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(b: &Option<Bytes>, s: S) -> Result<S::Ok, S::Error> {
        b.as_ref()
            .map(|b| base64::engine::general_purpose::STANDARD.encode(b))
            .serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Bytes>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| {
                base64::engine::general_purpose::STANDARD
                    .decode(text.as_bytes())
                    .map(Bytes::from)
                    .map_err(|e| serde::de::Error::custom(format!("expected base64: {e}")))
            })
            .transpose()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultMarker {
    pub t_us: u64,
    pub label: String,
    /// Its index in the scenario's timeline, when the timeline fired it.
    pub timeline: Option<usize>,
}

/// A recorded capture read back (see `export::record`).
#[derive(Debug, Default)]
pub struct Recording {
    pub path: PathBuf,
    pub scenario: Option<String>,
    pub started_us: Option<u64>,
    pub events: Vec<WireEvent>,
    pub faults: Vec<FaultMarker>,
    /// Frames the capture had evicted (its bound) before it was saved: the
    /// recording starts later than the run did.
    pub evicted: u64,
}

/// How the payloads on a topic are encoded (for the inspectors' trees and plots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PayloadCodec {
    Json,
    SparkplugB,
    Cbor,
    MessagePack,
    /// Protobuf with the rule's `.proto` and message type.
    Protobuf,
}

impl PayloadCodec {
    pub fn name(self) -> &'static str {
        match self {
            PayloadCodec::Json => "JSON",
            PayloadCodec::SparkplugB => "Sparkplug B",
            PayloadCodec::Cbor => "CBOR",
            PayloadCodec::MessagePack => "MessagePack",
            PayloadCodec::Protobuf => "Protobuf",
        }
    }
}

/// A scenario's decoder rule: payloads on topics matching `on` are `codec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderRule {
    pub on: String,
    pub codec: PayloadCodec,
    /// Protobuf: the `.proto` file (relative to the scenario's folder) and
    /// the message type, e.g. `(file: "meter.proto", message: "energy.Reading")`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<ProtoSpec>,
    /// The compiled `.proto` (a serialized FileDescriptorSet), filled when
    /// the engine loads the scenario.
    #[serde(skip)]
    pub descriptors: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProtoSpec {
    pub file: PathBuf,
    pub message: String,
}
