//! The scenario format (RON): the schema a scenario file is read into.
//! A scenario written from an AsyncAPI contract is `import.rs` (payload
//! generators from JSON Schemas in `generate.rs`).
//! Its validation (`validate`), placeholder templating (`template`) and the
//! location of errors in the file (`error`) are their own files; running a
//! scenario is `sim`'s job (`sim::mqtt` turns these types into rumqttc's).
//!
//! Every struct denies unknown fields and gives new fields defaults, so new
//! sections (a fault timeline, `expect` assertions) can be added without
//! breaking existing files.

mod behaviour;
mod error;
mod generate;
mod import;
mod payload;
mod sparkplug;
mod template;
#[cfg(test)]
mod tests;
mod timeline;
mod validate;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer, Serialize};

pub use behaviour::{Action, Cond, Reaction, StateMachine, Transition};
pub use error::ScenarioError;
pub use import::{ImportOptions, Imported, import_contract};
pub use payload::{Gen, Payload, SpType};
pub use sparkplug::{EdgeNode, Metric as SpMetric, PrimaryHost, SpDevice, SparkplugRole};
pub use template::{expand, is_placeholder_name, placeholder_at, placeholders};
pub use timeline::TimelineEntry;

use crate::command::ScenarioSource;
use crate::event::ScenarioInfo;
use crate::time::Dur;
use error::describe_ron_error;

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
    pub expect: Vec<crate::checks::Expectation>,
    /// How long `mqtt-workbench test` runs it (unless `--duration` says
    /// otherwise); it stops earlier once every verdict is final.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Dur>,
    /// How payloads are encoded per topic filter, for the inspectors:
    /// `[(on: "meters/#", codec: Cbor)]` (Sparkplug B under `spBv1.0/` always).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decoders: Vec<crate::codec::DecoderRule>,
    /// An AsyncAPI document (2.6 or 3.0, YAML or JSON; relative to the
    /// scenario's folder): every PUBLISH on its channels is checked against
    /// its payload schemas and bindings as it passes the tap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PathBuf>,
    /// The document, once read ([`Scenario::load_contract`]).
    #[serde(skip)]
    pub contract: Option<std::sync::Arc<crate::contract::Contract>>,
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
    /// How the device reaches the tap: `Tcp` (default), `Ws` (MQTT over
    /// WebSockets) or `Wss` (over TLS too; the workbench must run with TLS).
    #[serde(default, skip_serializing_if = "Transport::is_tcp")]
    pub transport: Transport,
    /// The device's own logic in JavaScript (relative to the scenario's
    /// folder): hooks `onConnect`, `onTick`, `onMessage`, `onDisconnect`
    /// (`sim::script` lists what a script can do).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<PathBuf>,
    /// CPU time one script call may take (default 100 ms); past it the call
    /// is interrupted and the device marked faulty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_budget: Option<Dur>,
    /// Memory the script's heap may take, in MiB (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script_memory_mib: Option<u32>,
    /// The script's text, read when the scenario is loaded (a changed
    /// script makes a different device, so a reload restarts it).
    #[serde(skip)]
    pub script_source: Option<ScriptSource>,
    /// Its Sparkplug B role (`EdgeNode(…)`, `PrimaryHost(…)`): the
    /// workbench follows the session rules for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparkplug: Option<SparkplugRole>,
}

/// A device's script as loaded: where it came from and its text (run by
/// `sim::script`, which also checks its syntax).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptSource {
    pub path: PathBuf,
    pub text: std::sync::Arc<str>,
}

/// How a virtual device's connection is carried.
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum Transport {
    #[default]
    Tcp,
    /// MQTT over WebSockets (`ws://`, subprotocol `mqtt`).
    Ws,
    /// MQTT over WebSockets over TLS (`wss://`).
    Wss,
}

impl Transport {
    pub fn is_tcp(&self) -> bool {
        *self == Transport::Tcp
    }

    /// `tcp`, `ws` or `wss`, as on the command line and in reports.
    pub fn name(&self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
            Transport::Wss => "wss",
        }
    }
}

impl std::str::FromStr for Transport {
    type Err = String;

    fn from_str(s: &str) -> Result<Transport, String> {
        [Transport::Tcp, Transport::Ws, Transport::Wss]
            .into_iter()
            .find(|t| t.name() == s.to_ascii_lowercase())
            .ok_or_else(|| format!("`{s}`: expected tcp, ws or wss"))
    }
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

impl DeviceSpec {
    /// Client ids of every device this entry makes.
    pub fn client_ids(&self) -> Vec<String> {
        (1..=self.count).map(|i| expand(&self.id, i, "")).collect()
    }

    pub fn is_fleet(&self) -> bool {
        self.count > 1
    }
}

/// The RON extensions scenario files are read with. `implicit_some`:
/// `every: "1s"` instead of `every: Some("1s")` (Some(..) still works).
const RON_EXTENSIONS: ron::extensions::Extensions = ron::extensions::Extensions::IMPLICIT_SOME;

impl Scenario {
    /// Parse and validate RON text; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Scenario, ScenarioError> {
        let options = ron::Options::default().with_default_extension(RON_EXTENSIONS);
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

    /// A scenario with this name and nothing in it (no devices, checks or
    /// timeline): the broker, the tap and the inspectors alone.
    pub fn empty(name: impl Into<String>) -> Scenario {
        Scenario {
            name: name.into(),
            description: String::new(),
            seed: 0,
            devices: Vec::new(),
            timeline: Vec::new(),
            auth: None,
            expect: Vec::new(),
            duration: None,
            decoders: Vec::new(),
            spec: None,
            contract: None,
        }
    }

    /// [`Scenario::load`], with the AsyncAPI document it names read too
    /// (to evaluate its checks).
    pub fn load_with_contract(path: &Path) -> Result<Scenario, ScenarioError> {
        let mut s = Scenario::load(path)?;
        s.load_contract(path.parent().unwrap_or(Path::new("")))?;
        Ok(s)
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
            contract: self.contract.clone(),
            ron: self.to_ron(),
            started_us: crate::time::now_us(),
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

    /// Compile the `.proto` files of Protobuf decoder rules (relative to
    /// `dir`, the scenario's folder). Reads files: call off the UI thread.
    pub fn compile_protos(&mut self, dir: &Path) -> Result<(), String> {
        for r in &mut self.decoders {
            let Some(spec) = &r.proto else {
                if r.codec == crate::codec::Codec::Protobuf {
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

    /// The script files its devices run (as read by [`Scenario::load_scripts`]).
    pub fn script_paths(&self) -> Vec<PathBuf> {
        self.devices
            .iter()
            .filter_map(|d| d.script_source.as_ref().map(|s| s.path.clone()))
            .collect()
    }

    /// Read every device's script (relative to `dir`); `sim::script::check`
    /// then checks their syntax.
    pub fn load_scripts(&mut self, dir: &Path) -> Result<(), String> {
        for d in &mut self.devices {
            let Some(file) = &d.script else {
                continue;
            };
            let path = dir.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("{}: device {}: script: {e}", path.display(), d.id))?;
            let source = ScriptSource {
                path: path.clone(),
                text: text.into(),
            };
            d.script_source = Some(source);
        }
        Ok(())
    }

    /// Read the AsyncAPI document the scenario or its `Conforms` checks name
    /// (relative to `dir`): one per scenario. Reads files: call off the UI thread.
    pub fn load_contract(&mut self, dir: &Path) -> Result<(), ScenarioError> {
        use crate::checks::Check;
        let at = |message: String| ScenarioError {
            path: PathBuf::from(format!("<{}>", self.name)),
            line: 0,
            col: 0,
            message,
        };
        let resolve = |p: &Path| {
            let p = dir.join(p);
            std::fs::canonicalize(&p).unwrap_or(p)
        };
        let mut named: Vec<PathBuf> = self.spec.iter().map(|p| resolve(p)).collect();
        for e in &self.expect {
            if let Check::Conforms(c) = &e.check
                && let Some(p) = &c.spec
            {
                named.push(resolve(p));
            }
        }
        named.dedup();
        if let Some(other) = named.iter().find(|p| **p != named[0]) {
            return Err(at(format!(
                "one AsyncAPI document per scenario: {} and {} are named",
                named[0].display(),
                other.display()
            )));
        }
        let Some(path) = named.first().cloned() else {
            if self
                .expect
                .iter()
                .any(|e| matches!(e.check, Check::Conforms(_)))
            {
                return Err(at("a `Conforms` check needs a document: `spec: \"api.yaml\"` in the scenario or the check".into()));
            }
            return Ok(());
        };
        let contract = match &self.contract {
            Some(c) if c.path == path => c.clone(),
            _ => std::sync::Arc::new(crate::contract::Contract::load(&path).map_err(|e| {
                ScenarioError {
                    path: e.path.clone(),
                    line: e.line,
                    col: e.col,
                    message: e.message.clone(),
                }
            })?),
        };
        for e in &mut self.expect {
            if let Check::Conforms(c) = &mut e.check {
                if let Some(missing) = c
                    .channels
                    .iter()
                    .find(|a| !contract.channels.iter().any(|ch| *ch.address == ***a))
                {
                    let known: Vec<&str> = contract.channels.iter().map(|c| &*c.address).collect();
                    return Err(at(format!(
                        "expectation \"{}\": {} has no channel \"{missing}\" (channels: {})",
                        e.name,
                        path.display(),
                        known.join(", ")
                    )));
                }
                c.contract = Some(contract.clone());
            }
        }
        self.spec = Some(path);
        self.contract = Some(contract);
        Ok(())
    }

    /// Total number of devices (fleets expanded).
    pub fn device_count(&self) -> usize {
        self.devices.iter().map(|d| d.count as usize).sum()
    }
}
