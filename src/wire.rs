//! What the tap sees on the wire: one [`WireEvent`] per decoded frame or
//! connection marker, with the MQTT packet kinds, details and MQTT 5
//! properties the inspectors and checks read. Recorded captures store these
//! as JSON lines. A leaf: imports nothing from the crate.

use std::sync::Arc;

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

/// Whether `filter` is a valid subscription filter (`#` last and alone in
/// its level, `+` alone in its level).
pub fn valid_filter(filter: &str) -> bool {
    rumqttc::mqttbytes::valid_filter(filter)
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
        /// (Boxed, as `peer` below: most frames are PUBLISHes, and every
        /// captured frame is as big as its largest kind.)
        will: Option<Box<WillInfo>>,
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
        peer: Box<std::net::SocketAddr>,
        /// Reached the tap's TLS listener.
        tls: bool,
        /// What the handshakes said: the TLS session, the WebSocket request
        /// (None: plain MQTT over TCP, or a connection that failed before).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        link: Option<Box<LinkInfo>>,
    },
    Closed(CloseReason),
}

/// How a connection reached the tap, beyond its address.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LinkInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSession>,
    /// MQTT over WebSockets (ws://, or wss:// with `tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ws: Option<WsInfo>,
}

impl LinkInfo {
    /// `ws`, `wss`, `tls` or `tcp`.
    pub fn scheme(link: Option<&LinkInfo>, tls: bool) -> &'static str {
        match (link.is_some_and(|l| l.ws.is_some()), tls) {
            (true, true) => "wss",
            (true, false) => "ws",
            (false, true) => "tls",
            (false, false) => "tcp",
        }
    }
}

/// A TLS client's session, as the tap's handshake ended.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TlsSession {
    /// `TLS 1.3`, `TLS 1.2`.
    pub version: String,
    /// The negotiated cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// The server name the client asked for (SNI), if it sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni: Option<String>,
    /// The subject of the certificate the client presented, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
}

/// A WebSocket client's opening request.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WsInfo {
    /// The request path, e.g. `/mqtt`.
    pub path: String,
    /// The subprotocol agreed (`mqtt`, `mqttv3.1`), None when the client offered none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subprotocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
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
    /// A client's PUBLISH checked against the run's AsyncAPI contract
    /// (`contract::Contract::check`): its channel, or none, and what broke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contract: Option<Box<ContractMark>>,
}

/// What the run's AsyncAPI contract says of one PUBLISH.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContractMark {
    /// The declared channel its topic is on (its address, `cars/{carId}/telemetry`);
    /// None: no channel of the contract declares the topic.
    pub channel: Option<Arc<str>>,
    /// Empty: the payload and the bindings conform.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub violations: Vec<Violation>,
}

impl ContractMark {
    /// On a declared channel, and nothing broke.
    pub fn conforms(&self) -> bool {
        self.channel.is_some() && self.violations.is_empty()
    }

    fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self
                .violations
                .iter()
                .map(|v| {
                    std::mem::size_of::<Violation>()
                        + v.pointer.len()
                        + v.keyword.len()
                        + v.message.len()
                })
                .sum::<usize>()
    }
}

/// One way a PUBLISH breaks its channel's contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    /// Where in the payload, as a JSON pointer (`/battery`; "" for the whole payload,
    /// or the binding: `qos`, `retain`).
    pub pointer: String,
    /// The schema keyword that failed (`required`, `type`, `maximum`, …), or
    /// `qos` / `retain` / `json` (the payload is not JSON).
    pub keyword: String,
    /// What was wrong, in words.
    pub message: String,
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
            contract: None,
        }
    }

    /// Approximate bytes this event holds in memory (for the store's byte bound).
    pub fn mem_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.payload.as_ref().map_or(0, |p| p.len())
            + self.topic.as_ref().map_or(0, |t| t.len())
            + self.v5.as_ref().map_or(0, |p| p.mem_bytes())
            + self.contract.as_ref().map_or(0, |c| c.mem_bytes())
            + self.detail.heap_bytes()
    }
}

impl WireDetail {
    /// Bytes the details hold on the heap (for the capture's byte bound).
    fn heap_bytes(&self) -> usize {
        use std::mem::size_of;
        match self {
            WireDetail::Connect { will, username, .. } => {
                will.as_ref().map_or(0, |w| {
                    size_of::<WillInfo>() + w.topic.len() + w.payload.len()
                }) + username.as_ref().map_or(0, String::len)
            }
            WireDetail::Subscribe(filters) => filters
                .iter()
                .map(|(f, _)| size_of::<(String, u8)>() + f.len())
                .sum(),
            WireDetail::SubAck(codes) => codes.len() * size_of::<Option<u8>>(),
            WireDetail::Unsubscribe(filters) => {
                filters.iter().map(|f| size_of::<String>() + f.len()).sum()
            }
            WireDetail::Opened { link, .. } => {
                size_of::<std::net::SocketAddr>()
                    + link.as_ref().map_or(0, |_| size_of::<LinkInfo>())
            }
            WireDetail::Closed(CloseReason::Error(e)) => e.len(),
            _ => 0,
        }
    }
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
