//! The scenario format (RON) and its validation.
//!
//! Every struct denies unknown fields and gives new fields defaults, so new
//! sections (a fault timeline, `expect` assertions) can be added without
//! breaking existing files.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::protocol::{DeviceState, Fault, ScenarioInfo, ScenarioSource, Target, TimelineItem};

/// A parse or validation error, located in its file.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
#[error("{}:{line}:{col}: {message}", path.display())]
pub struct ScenarioError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

pub use crate::protocol::Dur;

/// An MQTT QoS level, 0, 1 or 2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(transparent)]
pub struct Qos(pub u8);

impl<'de> Deserialize<'de> for Qos {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let q = u8::deserialize(d)?;
        if q > 2 {
            return Err(serde::de::Error::custom(format!(
                "expected QoS 0, 1 or 2, found {q}"
            )));
        }
        Ok(Qos(q))
    }
}

impl Qos {
    pub fn to_rumqttc(self) -> rumqttc::QoS {
        match self.0 {
            0 => rumqttc::QoS::AtMostOnce,
            1 => rumqttc::QoS::AtLeastOnce,
            _ => rumqttc::QoS::ExactlyOnce,
        }
    }

    pub fn to_rumqttc_v5(self) -> rumqttc::v5::mqttbytes::QoS {
        use rumqttc::v5::mqttbytes::QoS;
        match self.0 {
            0 => QoS::AtMostOnce,
            1 => QoS::AtLeastOnce,
            _ => QoS::ExactlyOnce,
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_count() -> u32 {
    1
}
fn default_keep_alive() -> Dur {
    Dur::secs(30)
}
fn default_decimals() -> u8 {
    2
}

/// A scenario: devices and fleets, and (later) a timeline of faults.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Seeds every generator: the same seed replays the same payloads.
    #[serde(default)]
    pub seed: u64,
    /// Virtual devices; none (`devices: []`, or no field) runs the broker,
    /// the tap and the inspectors for your own clients only.
    #[serde(default)]
    pub devices: Vec<DeviceSpec>,
    /// Faults scheduled at times or after device events.
    #[serde(default)]
    pub timeline: Vec<TimelineEntry>,
    /// Access rules the tap enforces while the scenario runs (replacing
    /// `--users`): usernames, passwords, publish/subscribe filters per user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<crate::tap::AuthSpec>,
    /// What the scenario expects to see: named checks with verdicts
    /// (`mqtt-workbench test` fails when one fails).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expect: Vec<crate::protocol::Expectation>,
    /// How long `mqtt-workbench test` runs it (unless `--duration` says
    /// otherwise); it stops earlier once every verdict is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// How payloads are encoded per topic filter, for the inspectors:
    /// `[(on: "meters/#", codec: Cbor)]` (Sparkplug B under `spBv1.0/` always).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decoders: Vec<crate::protocol::DecoderRule>,
}

/// One scheduled fault: `at` a time after the scenario starts, or `after` a
/// device event ("drone-3 connected", "car-7 offline"), plus an optional `delay`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    #[serde(default)]
    pub at: Option<Dur>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub delay: Dur,
    pub fault: FaultSpec,
}

impl TimelineEntry {
    /// The device event this entry waits for: (client id, state).
    pub fn trigger(&self) -> Option<(String, DeviceState)> {
        let after = self.after.as_deref()?;
        let (id, what) = after.trim().rsplit_once(' ')?;
        use DeviceState::*;
        let state = match what {
            "connected" => Connected,
            "offline" | "disconnected" => Offline,
            "reconnecting" => Reconnecting,
            _ => return None,
        };
        Some((id.trim().to_string(), state))
    }

    /// What the UI shows for this entry.
    pub fn item(&self) -> TimelineItem {
        TimelineItem {
            when: self.when(),
            label: self.fault.to_fault().label(),
        }
    }

    pub fn when(&self) -> String {
        match (&self.at, &self.after) {
            (Some(at), _) => format!("at {at}"),
            (None, Some(a)) if self.delay.0.is_zero() => format!("after {a}"),
            (None, Some(a)) => format!("{} after {a}", self.delay),
            _ => String::new(),
        }
    }
}

fn default_takeover_hold() -> Dur {
    Dur::secs(5)
}
fn default_hold() -> bool {
    true
}

/// Who a scheduled fault acts on, as written in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub enum TargetSpec {
    /// One virtual device by client id.
    Device(String),
    /// Every device of a scenario entry (fleet) by its template id.
    Fleet(String),
    /// Every virtual device.
    All,
}

impl TargetSpec {
    pub fn to_target(&self) -> Target {
        match self {
            TargetSpec::Device(d) => Target::Device(d.clone()),
            TargetSpec::Fleet(f) => Target::Fleet(f.clone()),
            TargetSpec::All => Target::All,
        }
    }
}

/// A fault in a scenario's timeline, as written in the file. The engine runs
/// [`protocol::Fault`](crate::protocol::Fault)s: see [`FaultSpec::to_fault`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum FaultSpec {
    /// Graceful DISCONNECT (no will).
    Disconnect(TargetSpec),
    /// Abrupt close without DISCONNECT (the will fires).
    Drop(TargetSpec),
    Reconnect(TargetSpec),
    Pause(TargetSpec),
    Resume(TargetSpec),
    /// Stop sending PUBACK/PUBREC: the broker redelivers with DUP after a reconnect.
    StopAcking(TargetSpec),
    ResumeAcking(TargetSpec),
    /// Added delay on every frame both ways; `duration` ends it (else until cleared).
    Latency {
        target: TargetSpec,
        ms: u32,
        #[serde(default)]
        jitter_ms: u32,
        #[serde(default)]
        duration: Option<Dur>,
    },
    /// `drop_pct`: frames discarded whole; `stall_pct`: frames held `stall_ms` (TCP-style loss).
    Loss {
        target: TargetSpec,
        #[serde(default)]
        drop_pct: f64,
        #[serde(default)]
        stall_pct: f64,
        #[serde(default)]
        stall_ms: u32,
        #[serde(default)]
        duration: Option<Dur>,
    },
    Bandwidth {
        target: TargetSpec,
        bytes_per_s: u64,
        #[serde(default)]
        duration: Option<Dur>,
    },
    /// Nothing passes for `duration`; `hold: true` delivers it afterwards, false discards it.
    Partition {
        target: TargetSpec,
        duration: Dur,
        #[serde(default = "default_hold")]
        hold: bool,
    },
    /// The tap stops reading: keepalive expires at the broker (1.5 × keepalive), the will fires.
    HalfDead {
        target: TargetSpec,
        #[serde(default)]
        duration: Option<Dur>,
    },
    /// Remove every network fault of a target.
    ClearNetwork(TargetSpec),
    /// A second client connects with the same id and holds the session for `hold`.
    Takeover {
        client: String,
        #[serde(default = "default_takeover_hold")]
        hold: Dur,
    },
    /// Restart the broker's listeners: every client is cut, sessions are kept.
    RestartBroker,
    /// Restart the broker from scratch: sessions, queued messages and retained messages are lost.
    ColdRestartBroker,
}

impl FaultSpec {
    /// The fault the engine runs for this entry.
    pub fn to_fault(&self) -> Fault {
        let d = |d: &Option<Dur>| d.map(|d| d.0);
        match self {
            FaultSpec::Disconnect(t) => Fault::Disconnect(t.to_target()),
            FaultSpec::Drop(t) => Fault::Drop(t.to_target()),
            FaultSpec::Reconnect(t) => Fault::Reconnect(t.to_target()),
            FaultSpec::Pause(t) => Fault::Pause(t.to_target()),
            FaultSpec::Resume(t) => Fault::Resume(t.to_target()),
            FaultSpec::StopAcking(t) => Fault::StopAcking(t.to_target()),
            FaultSpec::ResumeAcking(t) => Fault::ResumeAcking(t.to_target()),
            FaultSpec::Latency {
                target,
                ms,
                jitter_ms,
                duration,
            } => Fault::Latency {
                target: target.to_target(),
                ms: *ms,
                jitter_ms: *jitter_ms,
                duration: d(duration),
            },
            FaultSpec::Loss {
                target,
                drop_pct,
                stall_pct,
                stall_ms,
                duration,
            } => Fault::Loss {
                target: target.to_target(),
                drop_pct: *drop_pct,
                stall_pct: *stall_pct,
                stall_ms: *stall_ms,
                duration: d(duration),
            },
            FaultSpec::Bandwidth {
                target,
                bytes_per_s,
                duration,
            } => Fault::Bandwidth {
                target: target.to_target(),
                bytes_per_s: *bytes_per_s,
                duration: d(duration),
            },
            FaultSpec::Partition {
                target,
                duration,
                hold,
            } => Fault::Partition {
                target: target.to_target(),
                duration: duration.0,
                hold: *hold,
            },
            FaultSpec::HalfDead { target, duration } => Fault::HalfDead {
                target: target.to_target(),
                duration: d(duration),
            },
            FaultSpec::ClearNetwork(t) => Fault::ClearNetwork(t.to_target()),
            FaultSpec::Takeover { client, hold } => Fault::Takeover {
                client: client.clone(),
                hold: hold.0,
            },
            FaultSpec::RestartBroker => Fault::RestartBroker,
            FaultSpec::ColdRestartBroker => Fault::ColdRestartBroker,
        }
    }

    /// The target named by this entry (for validation).
    pub fn target(&self) -> Option<&TargetSpec> {
        match self {
            FaultSpec::Disconnect(t)
            | FaultSpec::Drop(t)
            | FaultSpec::Reconnect(t)
            | FaultSpec::Pause(t)
            | FaultSpec::Resume(t)
            | FaultSpec::StopAcking(t)
            | FaultSpec::ResumeAcking(t)
            | FaultSpec::ClearNetwork(t) => Some(t),
            FaultSpec::Latency { target, .. }
            | FaultSpec::Loss { target, .. }
            | FaultSpec::Bandwidth { target, .. }
            | FaultSpec::Partition { target, .. }
            | FaultSpec::HalfDead { target, .. } => Some(target),
            FaultSpec::Takeover { .. }
            | FaultSpec::RestartBroker
            | FaultSpec::ColdRestartBroker => None,
        }
    }
}

/// One device, or a fleet of `count` devices built from the same template.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DeviceSpec {
    /// Client id; in a fleet `{i}` is the device's index (1-based).
    pub id: String,
    #[serde(default = "default_count")]
    pub count: u32,
    /// false = persistent session: the broker keeps subscriptions and queues
    /// QoS 1/2 messages while the device is offline.
    #[serde(default = "default_true")]
    pub clean_session: bool,
    #[serde(default = "default_keep_alive")]
    pub keep_alive: Dur,
    #[serde(default)]
    pub will: Option<WillSpec>,
    #[serde(default)]
    pub subscribe: Vec<SubSpec>,
    #[serde(default)]
    pub publish: Vec<PublishSpec>,
    #[serde(default)]
    pub react: Vec<Reaction>,
    /// Named numbers the device keeps (set by reactions, read by `Var`).
    #[serde(default)]
    pub vars: BTreeMap<String, f64>,
    /// Named generators sampled every `tick`, readable by `Var` and conditions.
    #[serde(default)]
    pub signals: BTreeMap<String, Gen>,
    #[serde(default = "default_tick")]
    pub tick: Dur,
    #[serde(default)]
    pub states: Option<StateMachine>,
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    /// MQTT version the device speaks: `V311` (default) or `V5`.
    #[serde(default)]
    pub protocol: Protocol,
    /// MQTT 5: how long the broker keeps the session after a disconnect
    /// (`"0s"` or absent: it ends with the connection).
    #[serde(default)]
    pub session_expiry: Option<Dur>,
    /// MQTT 5: user properties sent with the CONNECT.
    #[serde(default)]
    pub user_properties: Vec<(String, String)>,
    /// Connect to the tap's TLS listener (the workbench must run with TLS).
    #[serde(default)]
    pub tls: bool,
}

/// The MQTT version a virtual device speaks.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Protocol {
    #[default]
    V311,
    V5,
}

/// MQTT 5 properties of a published message (ignored by nothing: a 3.1.1
/// device with properties is a validation error).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MessageProps {
    /// The broker discards the message if undelivered after this long.
    #[serde(default)]
    pub message_expiry: Option<Dur>,
    #[serde(default)]
    pub content_type: Option<String>,
    #[serde(default)]
    pub user_properties: Vec<(String, String)>,
    /// Request/response: the topic the answer should go to (templated).
    #[serde(default)]
    pub response_topic: Option<String>,
    /// Request/response: correlation data echoed by the responder (templated text).
    #[serde(default)]
    pub correlation: Option<String>,
    /// Send the topic once with this alias, then only the alias.
    #[serde(default)]
    pub topic_alias: Option<u16>,
}

impl MessageProps {
    pub fn is_empty(&self) -> bool {
        *self == MessageProps::default()
    }
}

fn default_tick() -> Dur {
    Dur::secs(1)
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WillSpec {
    pub topic: String,
    pub payload: Payload,
    #[serde(default)]
    pub qos: Qos,
    #[serde(default)]
    pub retain: bool,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubSpec {
    pub filter: String,
    #[serde(default)]
    pub qos: Qos,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PublishSpec {
    pub topic: String,
    /// Period; without it the message is published once after each connect.
    #[serde(default)]
    pub every: Option<Dur>,
    #[serde(default)]
    pub qos: Qos,
    #[serde(default)]
    pub retain: bool,
    pub payload: Payload,
    /// Publish only while this holds.
    #[serde(default)]
    pub when: Option<Cond>,
    /// With `when`: publish once each time the condition becomes true.
    #[serde(default)]
    pub on_change: bool,
    /// Digits after the decimal point for generated numbers.
    #[serde(default = "default_decimals")]
    pub decimals: u8,
    /// MQTT 5 message properties (devices with `protocol: V5`).
    #[serde(default, skip_serializing_if = "MessageProps::is_empty")]
    pub properties: MessageProps,
}

/// A message body.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Payload {
    /// Text with `{id}`, `{i}`, `{seq}`, `{state}` and `{var}` placeholders.
    Text(String),
    /// One generated value, as text (numbers) or JSON (objects).
    Value(Gen),
    /// A JSON object whose fields are generated.
    Json(BTreeMap<String, Gen>),
    /// A Sparkplug B payload (protobuf): metrics as (name, type, generator),
    /// aliased 1, 2, … in order. `birth: true` (NBIRTH/DBIRTH) names them
    /// and starts the sequence number at 0; data messages send aliases only.
    SparkplugB {
        metrics: Vec<(String, SpType, Gen)>,
        #[serde(default)]
        birth: bool,
    },
}

/// A Sparkplug B metric data type.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
pub enum SpType {
    Int32,
    Int64,
    Float,
    Double,
    Boolean,
    String,
}

impl SpType {
    /// Its number in the Sparkplug B specification.
    pub fn code(self) -> u32 {
        match self {
            SpType::Int32 => 3,
            SpType::Int64 => 4,
            SpType::Float => 9,
            SpType::Double => 10,
            SpType::Boolean => 11,
            SpType::String => 12,
        }
    }
}

/// A value generator. Seeded per device: the same seed gives the same values.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Gen {
    Const(f64),
    Text(String),
    Bool(bool),
    /// Uniformly random in [min, max].
    Uniform {
        min: f64,
        max: f64,
    },
    /// Random walk: each sample moves by at most `step`, clamped to [min, max].
    RandomWalk {
        start: f64,
        step: f64,
        min: f64,
        max: f64,
    },
    /// center + amplitude·sin(2π·t/period), t counted in samples × period of the publish.
    Sine {
        center: f64,
        amplitude: f64,
        period: Dur,
    },
    /// start, start+step, start+2·step, …
    Sequence {
        start: f64,
        step: f64,
    },
    /// A random pick from the list.
    Choice(Vec<String>),
    /// Moves toward the named var by `rate` of the gap per sample, plus ±noise.
    Follow {
        target: String,
        start: f64,
        rate: f64,
        noise: f64,
    },
    /// The named var, signal, or "state".
    Var(String),
    /// Position along waypoints (lat, lon, alt_m) at `speed_mps`, looping;
    /// a JSON object {lat, lon, alt, heading, leg}. Fleets start at staggered legs.
    Waypoints {
        points: Vec<(f64, f64, f64)>,
        speed_mps: f64,
    },
}

impl Gen {
    /// Its numeric parameters, by name, for editing live.
    pub fn params_mut(&mut self) -> Vec<(&'static str, &mut f64)> {
        match self {
            Gen::Const(x) => vec![("value", x)],
            Gen::Uniform { min, max } => vec![("min", min), ("max", max)],
            Gen::RandomWalk {
                start,
                step,
                min,
                max,
            } => vec![("start", start), ("step", step), ("min", min), ("max", max)],
            Gen::Sine {
                center, amplitude, ..
            } => vec![("center", center), ("amplitude", amplitude)],
            Gen::Sequence { start, step } => vec![("start", start), ("step", step)],
            Gen::Follow {
                start, rate, noise, ..
            } => vec![("start", start), ("rate", rate), ("noise", noise)],
            Gen::Waypoints { speed_mps, .. } => vec![("speed m/s", speed_mps)],
            Gen::Text(_) | Gen::Bool(_) | Gen::Choice(_) | Gen::Var(_) => vec![],
        }
    }
}

impl Payload {
    /// Its generators by field name ("" for a single value), for editing live.
    pub fn generators_mut(&mut self) -> Vec<(String, &mut Gen)> {
        match self {
            Payload::Text(_) => vec![],
            Payload::Value(g) => vec![(String::new(), g)],
            Payload::Json(fields) => fields.iter_mut().map(|(k, g)| (k.clone(), g)).collect(),
            Payload::SparkplugB { metrics, .. } => {
                metrics.iter_mut().map(|(k, _, g)| (k.clone(), g)).collect()
            }
        }
    }
}

/// A condition on device state.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Cond {
    Above { var: String, value: f64 },
    Below { var: String, value: f64 },
    Outside { var: String, min: f64, max: f64 },
    Inside { var: String, min: f64, max: f64 },
    StateIs(String),
}

/// A reaction to a message on a topic.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reaction {
    /// Topic filter (templated): reacts to messages matching it.
    pub on: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Action {
    /// Set a var from the message: a number, or a JSON object's field of that name or "value".
    SetVarFromPayload(String),
    SetVar(String, f64),
    SetState(String),
    /// Publish a message (templated; `{payload}` is the received payload).
    Publish {
        topic: String,
        payload: Payload,
        #[serde(default)]
        qos: Qos,
        #[serde(default)]
        retain: bool,
    },
    /// MQTT 5 request/response: publish to the received message's response
    /// topic, echoing its correlation data (templated; `{payload}` is the request).
    Respond {
        payload: Payload,
        #[serde(default)]
        qos: Qos,
    },
}

/// A small state machine for appliances: timed transitions, reactions set states.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateMachine {
    pub initial: String,
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub after: Dur,
}

/// Expand `{i}` and `{id}` in a template for device `i` (1-based) with client id `id`.
pub fn expand(template: &str, i: u32, id: &str) -> String {
    template.replace("{i}", &i.to_string()).replace("{id}", id)
}

impl DeviceSpec {
    /// Client ids of every device this entry makes.
    pub fn client_ids(&self) -> Vec<String> {
        (1..=self.count).map(|i| expand(&self.id, i, "")).collect()
    }

    pub fn is_fleet(&self) -> bool {
        self.count > 1
    }
}

impl Scenario {
    /// Parse and validate RON text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        // implicit_some: `every: "1s"` instead of `every: Some("1s")` (Some(..) still works).
        let options = ron::Options::default()
            .with_default_extension(ron::extensions::Extensions::IMPLICIT_SOME);
        let scenario: Scenario = options.from_str(text).map_err(|e| ScenarioError {
            path: path.to_path_buf(),
            line: e.span.start.line,
            col: e.span.start.col,
            message: describe_ron_error(&e.code),
        })?;
        scenario.validate(text, path)?;
        Ok(scenario)
    }

    /// Read, parse and validate a scenario file.
    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let bytes = std::fs::read(path).map_err(|e| ScenarioError {
            path: path.to_path_buf(),
            line: 0,
            col: 0,
            message: format!("cannot read the file: {e}"),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let at = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let before = &bytes[..at];
            let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
            let line_start = before.iter().rposition(|&b| b == b'\n').map_or(0, |p| p + 1);
            let col = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
            ScenarioError {
                path: path.to_path_buf(),
                line,
                col,
                message: format!(
                    "not UTF-8 text: invalid byte 0x{:02X} at byte offset {at} (save the file as UTF-8)",
                    bytes.get(at).copied().unwrap_or(0)
                ),
            }
        })?;
        Scenario::parse(&text, path)
    }

    /// Load a scenario from a file or from in-memory RON text.
    pub fn from_source(source: &ScenarioSource) -> Result<Scenario, ScenarioError> {
        match source {
            ScenarioSource::File(path) => Scenario::load(path),
            ScenarioSource::Text { origin, ron } => Scenario::parse(ron, origin),
        }
    }

    /// This scenario as RON text that [`Scenario::parse`] reads back unchanged.
    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .unwrap_or_else(|e| format!("// cannot write this scenario as RON: {e}"))
    }

    /// An in-memory scenario as a source the engine loads (benchmarks, tests).
    pub fn to_source(&self) -> ScenarioSource {
        ScenarioSource::Text {
            origin: PathBuf::from(format!("<{}>", self.name)),
            ron: self.to_ron(),
        }
    }

    /// What the UI is told about this scenario once it runs.
    pub fn info(&self, path: &Path) -> ScenarioInfo {
        ScenarioInfo {
            name: self.name.clone(),
            description: self.description.clone(),
            path: path.to_path_buf(),
            devices: self
                .devices
                .iter()
                .flat_map(|d| d.client_ids().into_iter().map(|id| (id, d.id.clone())))
                .collect(),
            timeline: self.timeline.iter().map(TimelineEntry::item).collect(),
            expectations: self.expect.clone(),
            decoders: self.decoders.clone(),
            ron: self.to_ron(),
            started_us: crate::protocol::now_us(),
            routes: self
                .devices
                .iter()
                .flat_map(|d| {
                    d.publish.iter().flat_map(move |p| {
                        let gens: Vec<&Gen> = match &p.payload {
                            Payload::Value(g) => vec![g],
                            Payload::Json(fields) => fields.values().collect(),
                            Payload::SparkplugB { metrics, .. } => {
                                metrics.iter().map(|(_, _, g)| g).collect()
                            }
                            Payload::Text(_) => vec![],
                        };
                        gens.into_iter().filter_map(move |g| match g {
                            Gen::Waypoints { points, .. } => Some((
                                d.id.clone(),
                                points.iter().map(|(lat, lon, _)| (*lat, *lon)).collect(),
                            )),
                            _ => None,
                        })
                    })
                })
                .collect(),
        }
    }

    /// Names are unique, filters valid, clients known, timeline entries
    /// exist, bounds make sense. (Without devices, any client id is the
    /// user's own.)
    fn check_expectations(
        &self,
        devices: &HashSet<String>,
        err: &dyn Fn(&str, String) -> ScenarioError,
    ) -> Result<(), ScenarioError> {
        use crate::protocol::{Anchor, Check};
        let mut names = HashSet::new();
        for e in &self.expect {
            let here = |m: String| {
                err(
                    &format!("\"{}\"", e.name),
                    format!("expectation \"{}\": {m}", e.name),
                )
            };
            if e.name.trim().is_empty() {
                return Err(err("expect", "an expectation needs a name".into()));
            }
            if !names.insert(e.name.as_str()) {
                return Err(here("the name is used twice".into()));
            }
            let filter = |f: &str| -> Result<(), ScenarioError> {
                if rumqttc::mqttbytes::valid_filter(f) {
                    Ok(())
                } else {
                    Err(here(format!("\"{f}\" is not a valid topic filter")))
                }
            };
            let client = |c: &str| -> Result<(), ScenarioError> {
                if c.contains('{') {
                    return Err(here(format!(
                        "\"{c}\": name one client (e.g. \"drone-3\"), not a template"
                    )));
                }
                if devices.contains(c) || self.devices.is_empty() {
                    return Ok(());
                }
                let mut known: Vec<&str> = devices.iter().map(String::as_str).collect();
                known.sort();
                let more = if known.len() > 8 { ", …" } else { "" };
                known.truncate(8);
                Err(here(format!(
                    "no client \"{c}\" in this scenario (devices: {}{more})",
                    known.join(", ")
                )))
            };
            let anchor = |a: &Anchor| -> Result<(), ScenarioError> {
                match a {
                    Anchor::Fault(n) if *n == 0 || *n > self.timeline.len() => Err(here(format!(
                        "`after: Fault({n})`: the timeline has {} entries (numbered from 1)",
                        self.timeline.len()
                    ))),
                    Anchor::Message { on, .. } => filter(on),
                    _ => Ok(()),
                }
            };
            match &e.check {
                Check::Message { on, after, .. } => {
                    filter(on)?;
                    anchor(after)?;
                }
                Check::Count {
                    on,
                    after,
                    at_least,
                    at_most,
                    ..
                } => {
                    filter(on)?;
                    anchor(after)?;
                    if at_least.is_none() && at_most.is_none() {
                        return Err(here("expected `at_least`, `at_most` or both".into()));
                    }
                    if let (Some(l), Some(h)) = (at_least, at_most)
                        && l > h
                    {
                        return Err(here(format!("at_least {l} is more than at_most {h}")));
                    }
                }
                Check::Will { client: c, .. }
                | Check::SessionPresent { client: c }
                | Check::QueuedDelivered { client: c } => client(c)?,
                Check::Latency { on, percentile, .. } => {
                    filter(on)?;
                    if !(*percentile > 0.0 && *percentile <= 100.0) {
                        return Err(here(format!(
                            "percentile {percentile}: expected more than 0 and at most 100"
                        )));
                    }
                }
                Check::ExactlyOnce { on } | Check::AtLeastOnce { on } | Check::Ordered { on } => {
                    filter(on)?
                }
            }
            let payloads = match &e.check {
                Check::Message { payload, after, .. } | Check::Count { payload, after, .. } => {
                    let mut v = vec![payload];
                    if let Anchor::Message { payload, .. } = after {
                        v.push(payload);
                    }
                    v
                }
                _ => vec![],
            };
            for p in payloads {
                if let Some(crate::protocol::PayloadCheck::Regex(r)) = p
                    && let Err(x) = regex::Regex::new(r)
                {
                    return Err(here(format!("Regex(\"{r}\"): {x}")));
                }
            }
        }
        Ok(())
    }

    /// Compile the `.proto` files of Protobuf decoder rules (relative to
    /// `dir`, the scenario's folder). Reads files: call off the UI thread.
    pub fn compile_protos(&mut self, dir: &Path) -> Result<(), String> {
        for r in &mut self.decoders {
            let Some(spec) = &r.proto else {
                if r.codec == crate::protocol::PayloadCodec::Protobuf {
                    return Err(format!(
                        "{}: decoder rule for \"{}\": Protobuf needs `proto: (file: \"….proto\", message: \"package.Message\")`",
                        self.name, r.on
                    ));
                }
                continue;
            };
            let file = dir.join(&spec.file);
            let include = file.parent().unwrap_or(dir).to_path_buf();
            let set = protox::compile([&file], [&include])
                .map_err(|e| format!("{}: {e}", file.display()))?;
            let bytes = prost::Message::encode_to_vec(&set);
            let pool = prost_reflect::DescriptorPool::decode(bytes.as_slice())
                .map_err(|e| format!("{}: {e}", file.display()))?;
            if pool.get_message_by_name(&spec.message).is_none() {
                return Err(format!(
                    "{}: no message type \"{}\" (expected a full name such as \"package.Message\")",
                    file.display(),
                    spec.message
                ));
            }
            r.descriptors = bytes;
        }
        Ok(())
    }

    /// Total number of devices (fleets expanded).
    pub fn device_count(&self) -> usize {
        self.devices.iter().map(|d| d.count as usize).sum()
    }

    fn validate(&self, text: &str, path: &Path) -> Result<(), ScenarioError> {
        let err = |needle: &str, message: String| {
            let (line, col) = locate(text, needle);
            ScenarioError {
                path: path.to_path_buf(),
                line,
                col,
                message,
            }
        };
        let mut seen = HashSet::new();
        for d in &self.devices {
            let quoted = format!("\"{}\"", d.id);
            if d.id.trim().is_empty() {
                return Err(err("id", "expected a non-empty client id".into()));
            }
            if d.count == 0 {
                return Err(err(
                    &quoted,
                    format!("device \"{}\": count must be at least 1", d.id),
                ));
            }
            if d.count > 1 && !d.id.contains("{i}") {
                return Err(err(
                    &quoted,
                    format!(
                        "fleet \"{}\" of {} devices: expected `{{i}}` in the id so each client id is unique",
                        d.id, d.count
                    ),
                ));
            }
            for id in d.client_ids() {
                if !seen.insert(id.clone()) {
                    return Err(err(&quoted, format!("client id \"{id}\" is used twice")));
                }
            }
            if d.tick.0 < Duration::from_millis(10) {
                return Err(err(
                    &quoted,
                    format!("device \"{}\": tick must be at least 10ms", d.id),
                ));
            }
            if !d.keep_alive.0.is_zero() && d.keep_alive.0 < Duration::from_secs(1) {
                return Err(err(
                    &quoted,
                    format!(
                        "device \"{}\": keep_alive must be \"0s\" (no keepalive) or at least 1s: MQTT counts it in whole seconds",
                        d.id
                    ),
                ));
            }
            let v5_only = |what: &str, needle: &str| {
                err(
                    needle,
                    format!(
                        "device \"{}\": {what} is MQTT 5; expected `protocol: V5` on this device",
                        d.id
                    ),
                )
            };
            if d.protocol != Protocol::V5 {
                if d.session_expiry.is_some() {
                    return Err(v5_only("session_expiry", "session_expiry"));
                }
                if !d.user_properties.is_empty() {
                    return Err(v5_only("user_properties", "user_properties"));
                }
                if d.publish.iter().any(|p| !p.properties.is_empty()) {
                    return Err(v5_only("properties", "properties"));
                }
                if d.react
                    .iter()
                    .flat_map(|r| &r.actions)
                    .any(|a| matches!(a, Action::Respond { .. }))
                {
                    return Err(v5_only("Respond (request/response)", "Respond"));
                }
            }
            for p in &d.publish {
                if p.properties.topic_alias == Some(0) {
                    return Err(err(
                        "topic_alias",
                        "topic_alias: expected 1 or more (0 is not a valid alias)".into(),
                    ));
                }
                let probe = expand(&p.topic, 1, "x");
                if probe.contains(['+', '#']) || probe.is_empty() {
                    return Err(err(
                        &format!("\"{}\"", p.topic),
                        format!(
                            "publish topic \"{}\": expected a topic without wildcards",
                            p.topic
                        ),
                    ));
                }
                if let Some(every) = p.every
                    && every.0 < Duration::from_millis(1)
                {
                    return Err(err(
                        &format!("\"{}\"", p.topic),
                        format!("publish to \"{}\": `every` must be at least 1ms", p.topic),
                    ));
                }
            }
            for s in &d.subscribe {
                if !rumqttc::mqttbytes::valid_filter(&expand(&s.filter, 1, "x")) {
                    return Err(err(
                        &format!("\"{}\"", s.filter),
                        format!("subscription \"{}\": not a valid topic filter", s.filter),
                    ));
                }
            }
            check_templates(d, text, path)?;
            check_states(d, text, path)?;
            if let Some(sm) = &d.states {
                for t in &sm.transitions {
                    if t.after.0.is_zero() {
                        return Err(err(
                            &format!("\"{}\"", t.from),
                            "transition `after` must be more than 0s".into(),
                        ));
                    }
                }
            }
        }
        if let Some(auth) = &self.auth {
            auth.check()
                .map_err(|e| err("auth", format!("auth: {e}")))?;
        }
        self.check_expectations(&seen, &err)?;
        for r in &self.decoders {
            if !rumqttc::mqttbytes::valid_filter(&r.on) {
                return Err(err(
                    &format!("\"{}\"", r.on),
                    format!("decoder rule: \"{}\" is not a valid topic filter", r.on),
                ));
            }
        }
        let fleets: HashSet<&str> = self.devices.iter().map(|d| d.id.as_str()).collect();
        for (k, entry) in self.timeline.iter().enumerate() {
            let here = |message: String| {
                let needle = entry
                    .after
                    .as_ref()
                    .map(|a| format!("\"{a}\""))
                    .or_else(|| entry.at.map(|_| "at:".to_string()))
                    .unwrap_or_else(|| "timeline".into());
                err(&needle, format!("timeline entry {}: {message}", k + 1))
            };
            match (&entry.at, &entry.after) {
                (Some(_), Some(_)) => {
                    return Err(here("expected either `at` or `after`, not both".into()));
                }
                (None, None) => {
                    return Err(here(
                        "expected `at: \"30s\"` or `after: \"<client id> connected\"`".into(),
                    ));
                }
                (None, Some(a)) => match entry.trigger() {
                    Some((id, _)) if seen.contains(&id) => {}
                    Some((id, _)) => {
                        return Err(here(format!(
                            "`after` names \"{id}\", which is not a device of this scenario"
                        )));
                    }
                    None => {
                        return Err(here(format!(
                            "`after: \"{a}\"`: expected \"<client id> connected\", \"<client id> offline\" or \"<client id> reconnecting\""
                        )));
                    }
                },
                (Some(_), None) => {}
            }
            match entry.fault.target() {
                Some(TargetSpec::Device(d)) if !seen.contains(d) => {
                    return Err(here(format!("no device \"{d}\" in this scenario")));
                }
                Some(TargetSpec::Fleet(f)) if !fleets.contains(f.as_str()) => {
                    return Err(here(format!(
                        "no fleet \"{f}\" in this scenario (use the device entry's id, e.g. \"drone-{{i}}\")"
                    )));
                }
                _ => {}
            }
            if let FaultSpec::Takeover { client, .. } = &entry.fault
                && !seen.contains(client)
            {
                return Err(here(format!("no device \"{client}\" in this scenario")));
            }
        }
        Ok(())
    }
}

/// The placeholder at the start of `after` (the text just after a `{`): a
/// name (letters, digits, `_`, `%`, starting with a letter or `_`) closed by
/// `}`. None when the brace is literal text, as in JSON.
pub fn placeholder_at(after: &str) -> Option<&str> {
    let end = after
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '%'))
        .unwrap_or(after.len());
    let key = &after[..end];
    (after[end..].starts_with('}') && is_placeholder_name(key)).then_some(key)
}

/// The placeholder names in a template: `{name}`. Any other brace is literal
/// text (so JSON such as `{"on": true, "n": {seq}}` keeps its braces and
/// fills `{seq}`); `{{` is a literal `{`.
pub fn placeholders(template: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        if let Some(escaped) = after.strip_prefix('{') {
            rest = escaped;
            continue;
        }
        match placeholder_at(after) {
            Some(key) => {
                out.push(key);
                rest = &after[key.len() + 1..];
            }
            None => rest = after,
        }
    }
    out
}

pub fn is_placeholder_name(key: &str) -> bool {
    key.chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '%')
}

/// Which placeholders a template field is filled with when it runs.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Client ids, subscribe filters, will topics, reaction filters: `{i}` and `{id}` only.
    Identity,
    /// The will's payload: rendered once at connect, before any signal is sampled.
    Will,
    /// Published topics and payloads: every built-in, var and signal.
    Full,
    /// A reaction's actions: `Full` plus `{payload}`.
    Reaction,
}

/// Every `{name}` in the device's templates must be something that field is
/// filled with when it runs (see [`Fill`]).
fn check_templates(d: &DeviceSpec, text: &str, path: &Path) -> Result<(), ScenarioError> {
    // Vars the device's actions set exist from then on.
    let set_vars: HashSet<&str> = d
        .react
        .iter()
        .flat_map(|r| &r.actions)
        .filter_map(|a| match a {
            Action::SetVar(v, _) | Action::SetVarFromPayload(v) => Some(v.as_str()),
            _ => None,
        })
        .collect();
    let check = |template: &str, fill: Fill| -> Result<(), ScenarioError> {
        for key in placeholders(template) {
            let identity = matches!(key, "id" | "i");
            let known = identity
                || (fill != Fill::Identity
                    && (matches!(key, "seq" | "state")
                        || key
                            .strip_prefix("seq%")
                            .is_some_and(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
                        || d.vars.contains_key(key)
                        || set_vars.contains(key)))
                || (matches!(fill, Fill::Full | Fill::Reaction) && d.signals.contains_key(key))
                || (fill == Fill::Reaction && key == "payload");
            if known {
                continue;
            }
            let mut names: Vec<String> = vec!["id".into(), "i".into()];
            if fill != Fill::Identity {
                names.extend(["seq", "seq%N", "state"].map(String::from));
                names.extend(d.vars.keys().cloned());
                names.extend(set_vars.iter().map(|v| v.to_string()));
            }
            if matches!(fill, Fill::Full | Fill::Reaction) {
                names.extend(d.signals.keys().cloned());
            }
            if fill == Fill::Reaction {
                names.push("payload".into());
            }
            names.sort();
            names.dedup();
            let (line, col) = locate_in_device(text, &d.id, &format!("{{{key}}}"));
            let only = if fill == Fill::Identity {
                " (this field is filled when the device starts: only {i} and {id})"
            } else if fill == Fill::Will {
                " (the will is written at connect, before signals are sampled)"
            } else {
                ""
            };
            return Err(ScenarioError {
                path: path.to_path_buf(),
                line,
                col,
                message: format!(
                    "unknown placeholder `{{{key}}}` in \"{template}\" (device \"{}\"): expected one of {}{only}; write `{{{{` for a literal brace",
                    d.id,
                    names
                        .iter()
                        .map(|n| format!("{{{n}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            });
        }
        Ok(())
    };
    // Every text a payload renders: Text, and Text generators inside Value/Json.
    let texts = |p: &Payload| -> Vec<String> {
        match p {
            Payload::Text(t) | Payload::Value(Gen::Text(t)) => vec![t.clone()],
            Payload::Value(_) => vec![],
            Payload::SparkplugB { .. } => vec![],
            Payload::Json(fields) => fields
                .values()
                .filter_map(|g| match g {
                    Gen::Text(t) => Some(t.clone()),
                    _ => None,
                })
                .collect(),
        }
    };
    check(&d.id, Fill::Identity)?;
    for s in &d.subscribe {
        check(&s.filter, Fill::Identity)?;
    }
    if let Some(w) = &d.will {
        check(&w.topic, Fill::Identity)?;
        for t in texts(&w.payload) {
            check(&t, Fill::Will)?;
        }
    }
    for p in &d.publish {
        check(&p.topic, Fill::Full)?;
        for t in texts(&p.payload) {
            check(&t, Fill::Full)?;
        }
        for t in [&p.properties.response_topic, &p.properties.correlation]
            .into_iter()
            .flatten()
        {
            check(t, Fill::Full)?;
        }
    }
    for r in &d.react {
        check(&r.on, Fill::Identity)?;
        for a in &r.actions {
            match a {
                Action::SetState(s) => check(s, Fill::Reaction)?,
                Action::Publish { topic, payload, .. } => {
                    check(topic, Fill::Reaction)?;
                    // Generators in a reaction's payload are filled without `{payload}`.
                    for t in texts(payload) {
                        let fill = if matches!(payload, Payload::Text(_)) {
                            Fill::Reaction
                        } else {
                            Fill::Full
                        };
                        check(&t, fill)?;
                    }
                }
                Action::Respond { payload, .. } => {
                    for t in texts(payload) {
                        let fill = if matches!(payload, Payload::Text(_)) {
                            Fill::Reaction
                        } else {
                            Fill::Full
                        };
                        check(&t, fill)?;
                    }
                }
                Action::SetVarFromPayload(_) | Action::SetVar(..) => {}
            }
        }
    }
    Ok(())
}

/// Like [`locate`], but the first occurrence after the device's `id: "…"`
/// (an error names the device it is in, not another one).
fn locate_in_device(text: &str, device_id: &str, needle: &str) -> (usize, usize) {
    let start = text.find(&format!("\"{device_id}\"")).unwrap_or(0);
    match text[start..].find(needle) {
        Some(at) => position(text, start + at),
        None => locate(text, needle),
    }
}

/// 1-based line and column of byte offset `at` in `text`.
fn position(text: &str, at: usize) -> (usize, usize) {
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// States named by transitions, `SetState` and `StateIs` must be states of
/// the device's state machine (its initial state and its transitions' ends).
/// A templated `SetState("{payload}")` is checked when it runs, not here.
fn check_states(d: &DeviceSpec, text: &str, path: &Path) -> Result<(), ScenarioError> {
    let mut known: Vec<&str> = Vec::new();
    if let Some(sm) = &d.states {
        known.push(&sm.initial);
        for t in &sm.transitions {
            known.extend([t.from.as_str(), t.to.as_str()]);
        }
    }
    let set_literal: Vec<&str> = d
        .react
        .iter()
        .flat_map(|r| &r.actions)
        .filter_map(|a| match a {
            Action::SetState(s) if placeholders(s).is_empty() => Some(s.as_str()),
            _ => None,
        })
        .collect();
    let unknown = |state: &str, what: &str| {
        let (line, col) = locate_in_device(text, &d.id, &format!("{what}(\"{state}\")"));
        let (line, col) = if (line, col) == (1, 1) {
            locate_in_device(text, &d.id, &format!("\"{state}\""))
        } else {
            (line, col)
        };
        let list = if known.is_empty() {
            format!("device \"{}\" has no `states`", d.id)
        } else {
            format!("its states are {}", known.join(", "))
        };
        ScenarioError {
            path: path.to_path_buf(),
            line,
            col,
            message: format!(
                "{what}: unknown state \"{state}\" (device \"{}\"; {list})",
                d.id
            ),
        }
    };
    // A state a transition leaves must be one the device can be in.
    if let Some(sm) = &d.states {
        for t in &sm.transitions {
            let entered = t.from == sm.initial
                || sm.transitions.iter().any(|u| u.to == t.from)
                || set_literal.contains(&t.from.as_str());
            if !entered {
                return Err(unknown(&t.from, "transition `from`"));
            }
        }
    }
    for s in &set_literal {
        if !known.contains(s) {
            return Err(unknown(s, "SetState"));
        }
    }
    let mut conds: Vec<&Cond> = d.publish.iter().filter_map(|p| p.when.as_ref()).collect();
    conds.retain(|c| matches!(c, Cond::StateIs(_)));
    for c in conds {
        if let Cond::StateIs(s) = c
            && !known.contains(&s.as_str())
            && !set_literal.contains(&s.as_str())
        {
            return Err(unknown(s, "StateIs"));
        }
    }
    Ok(())
}

/// 1-based line and column of the first occurrence of `needle` (1:1 if absent).
fn locate(text: &str, needle: &str) -> (usize, usize) {
    match text.find(needle) {
        Some(at) => {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            (line, col)
        }
        None => (1, 1),
    }
}

fn describe_ron_error(code: &ron::Error) -> String {
    match code {
        ron::Error::NoSuchStructField {
            expected,
            found,
            outer,
        } => format!(
            "unknown field `{found}`{}; expected one of: {}",
            outer
                .as_ref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default(),
            expected.join(", ")
        ),
        ron::Error::MissingStructField { field, outer } => format!(
            "missing field `{field}`{}",
            outer
                .as_ref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default()
        ),
        ron::Error::NoSuchEnumVariant {
            expected,
            found,
            outer,
        } => format!(
            "unknown variant `{found}`{}; expected one of: {}",
            outer
                .as_ref()
                .map(|o| format!(" in {o}"))
                .unwrap_or_default(),
            expected.join(", ")
        ),
        other => other.to_string(),
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(s, Path::new("t.ron"))
    }

    #[test]
    fn every_shipped_scenario_round_trips_through_ron() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(dir).expect("scenarios folder") {
            let path = entry.expect("dir entry").path();
            if path.extension().is_some_and(|e| e == "ron") {
                let s = Scenario::load(&path).expect("shipped scenario loads");
                let back = Scenario::from_source(&s.to_source()).unwrap_or_else(|e| {
                    let ron = s.to_ron();
                    panic!("{}: written RON does not parse: {e}\n{ron}", path.display())
                });
                assert_eq!(back, s, "{}", path.display());
                n += 1;
            }
        }
        assert!(n >= 5, "only {n} shipped scenarios found");
    }

    #[test]
    fn mqtt5_fields_on_a_311_device_are_located_errors() {
        let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n  session_expiry: \"1m\")])")
            .unwrap_err();
        assert_eq!((e.line, e.col), (2, 3), "{e}");
        assert!(e.message.contains("expected `protocol: V5`"), "{e}");
        let e = parse(
            "Scenario(name: \"x\", devices: [(id: \"a\", subscribe: [(filter: \"q\")],\n  react: [(on: \"q\", actions: [Respond(payload: Text(\"ok\"))])])])",
        )
        .unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("Respond"), "{e}");
        let ok = parse(
            "Scenario(name: \"x\", devices: [(id: \"a\", protocol: V5, session_expiry: \"1m\",\n publish: [(topic: \"t\", payload: Text(\"1\"), properties: (response_topic: \"r/{id}\", correlation: \"c-{seq}\", topic_alias: 2))])])",
        )
        .unwrap();
        assert_eq!(ok.devices[0].protocol, Protocol::V5);
        let e = parse(
            "Scenario(name: \"x\", devices: [(id: \"a\", protocol: V5,\n publish: [(topic: \"t\", payload: Text(\"1\"), properties: (correlation: \"{nope}\"))])])",
        )
        .unwrap_err();
        assert!(e.message.contains("unknown placeholder `{nope}`"), "{e}");
    }

    #[test]
    fn minimal_and_defaults() {
        let s = parse(r#"Scenario(name: "x", devices: [(id: "a")])"#).unwrap();
        let d = &s.devices[0];
        assert!(d.clean_session);
        assert_eq!(d.count, 1);
        assert_eq!(d.keep_alive, Dur::secs(30));
    }

    #[test]
    fn unknown_field_names_line_and_column() {
        let e = parse("Scenario(\n  name: \"x\",\n  devices: [(id: \"a\", colour: 3)],\n)")
            .unwrap_err();
        assert_eq!((e.line, e.col), (3, 23), "{e}");
        assert!(e.message.contains("unknown field `colour`"), "{e}");
        assert!(e.to_string().starts_with("t.ron:3:23: "), "{e}");
    }

    #[test]
    fn bad_duration_and_qos_are_located() {
        let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n publish: [(topic: \"t\", every: \"soon\", payload: Text(\"1\"))])])").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("expected a duration"), "{e}");
        let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n\n subscribe: [(filter: \"t\", qos: 3)])])").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        assert!(e.message.contains("expected QoS 0, 1 or 2"), "{e}");
    }

    #[test]
    fn semantic_errors_are_located() {
        let e = parse("Scenario(name: \"x\", devices: [\n (id: \"car\", count: 3)])").unwrap_err();
        assert_eq!((e.line, e.col), (2, 7), "{e}");
        assert!(e.message.contains("{i}"), "{e}");
        let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n publish: [(topic: \"a/+\", payload: Text(\"1\"))])])").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("wildcards"), "{e}");
    }

    #[test]
    fn timeline_entries_parse_and_are_checked() {
        let ok = parse(
            r#"Scenario(name: "x", devices: [(id: "d-{i}", count: 2)], timeline: [
                (at: "2s", fault: Partition(target: Fleet("d-{i}"), duration: "5s")),
                (after: "d-1 connected", delay: "1s", fault: Drop(Device("d-2"))),
                (at: "9s", fault: Latency(target: All, ms: 200, duration: "3s")),
                (at: "10s", fault: ColdRestartBroker),
            ])"#,
        )
        .unwrap();
        assert_eq!(ok.timeline.len(), 4);
        assert_eq!(
            ok.timeline[1].trigger(),
            Some(("d-1".into(), DeviceState::Connected))
        );
        assert!(matches!(
            ok.timeline[0].fault,
            FaultSpec::Partition { hold: true, .. }
        ));
        let e = parse("Scenario(name: \"x\", devices: [(id: \"a\")], timeline: [\n (after: \"b connected\", fault: Drop(Device(\"a\")))])")
            .unwrap_err();
        assert_eq!(e.line, 2, "{e}");
        assert!(e.message.contains("not a device"), "{e}");
        let e = parse("Scenario(name: \"x\", devices: [(id: \"a\")], timeline: [(at: \"1s\", fault: Drop(Device(\"zz\")))])")
            .unwrap_err();
        assert!(e.message.contains("no device \"zz\""), "{e}");
    }

    #[test]
    fn syntax_error_is_located() {
        let e = parse("Scenario(name: \"x\",\n devices: [(id: \"a\"]\n)").unwrap_err();
        assert_eq!(e.line, 2, "{e}");
    }
}
