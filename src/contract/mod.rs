//! AsyncAPI contracts: a document read (`document.rs`, YAML or JSON with
//! `$ref`s resolved) into channels, messages and operations (`read.rs`, 2.6
//! and 3.0); every PUBLISH checked against its channel's payload schemas and
//! MQTT bindings ([`Contract::check`], JSON Schema through the `jsonschema`
//! crate, compiled once per message); a contract written from observed
//! traffic (`infer.rs`). A scenario written from a contract is
//! `scenario::import_contract` (the scenario format is that module's).
//!
//! Plain data: the engine marks frames with [`Contract::check`]'s answer
//! (`wire::ContractMark`), the `Conforms` check and the Contract view read
//! the marks.

mod document;
mod infer;
mod read;
mod tally;
pub mod yaml;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

pub use document::escape;
pub use infer::{InferOptions, infer, infer_yaml};
pub use tally::{ChannelTally, Offence, Tally, describe};

use crate::wire::{ContractMark, Violation};

/// Violations kept per frame (a payload can break many rules at once).
const MAX_VIOLATIONS: usize = 8;

/// A document that cannot be read, located in its file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{col}: {message}", path.display())]
pub struct ContractError {
    pub path: PathBuf,
    pub line: usize,
    pub col: usize,
    pub message: String,
}

/// Something in the document the workbench does not use, named by its JSON
/// pointer (never dropped silently).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub pointer: String,
    pub what: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}: {}", self.pointer, self.what)
    }
}

/// One channel: a topic (with `{parameters}`), its messages and bindings.
#[derive(Debug, Clone)]
pub struct Channel {
    /// Its key in the document (3.0) or its address (2.6).
    pub id: String,
    /// The topic, `cars/{carId}/telemetry`.
    pub address: Arc<str>,
    pub params: Vec<Param>,
    pub messages: Vec<MessageSpec>,
    /// The QoS the operations on it bind (None: not bound, or they disagree).
    pub qos: Option<u8>,
    pub retain: Option<bool>,
    /// None only if the address could not be made a regex (it always can).
    pattern: Option<regex::Regex>,
}

/// A channel parameter (`{carId}`).
#[derive(Debug, Clone, Default)]
pub struct Param {
    pub name: String,
    pub enum_values: Vec<String>,
    pub default: Option<String>,
    pub examples: Vec<String>,
}

/// A message a channel carries, with its payload schema compiled.
#[derive(Clone)]
pub struct MessageSpec {
    pub name: String,
    /// The payload's JSON Schema, references resolved (None: any payload).
    pub schema: Option<Value>,
    validator: Option<Arc<jsonschema::Validator>>,
}

impl std::fmt::Debug for MessageSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MessageSpec")
            .field("name", &self.name)
            .field("schema", &self.schema)
            .finish()
    }
}

/// What an application does on a channel.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    pub id: String,
    /// It sends (publishes) on the channel; false: it receives (subscribes).
    pub send: bool,
    /// Index into [`Contract::channels`].
    pub channel: usize,
    /// Indices into the channel's messages (empty: all of them).
    pub messages: Vec<usize>,
    pub qos: Option<u8>,
    pub retain: Option<bool>,
    /// Request/reply: the channel the reply goes to, and its messages.
    pub reply: Option<Reply>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub channel: usize,
    pub messages: Vec<usize>,
}

/// An AsyncAPI document as the workbench uses it.
#[derive(Debug, Clone)]
pub struct Contract {
    pub path: PathBuf,
    /// `asyncapi:` of the document, `3.0.0` or `2.6.0`.
    pub version: String,
    pub title: String,
    pub channels: Vec<Channel>,
    pub operations: Vec<Operation>,
    pub warnings: Vec<Warning>,
}

impl PartialEq for Contract {
    fn eq(&self, other: &Contract) -> bool {
        self.path == other.path
            && self.version == other.version
            && self.title == other.title
            && self.operations == other.operations
            && self.channels.len() == other.channels.len()
            && self.channels.iter().zip(&other.channels).all(|(a, b)| {
                a.address == b.address
                    && a.messages
                        .iter()
                        .map(|m| &m.schema)
                        .eq(b.messages.iter().map(|m| &m.schema))
            })
    }
}

impl Contract {
    /// Read an AsyncAPI 2.6 or 3.0 document (YAML or JSON).
    pub fn load(path: &Path) -> Result<Contract, ContractError> {
        read::read(path)
    }

    /// The channel a topic is on: the one with the fewest parameters among
    /// those whose address matches.
    pub fn channel_for(&self, topic: &str) -> Option<&Channel> {
        self.channels
            .iter()
            .filter(|c| c.pattern.as_ref().is_some_and(|p| p.is_match(topic)))
            .min_by_key(|c| c.params.len())
    }

    /// Check one PUBLISH a client sent: the channel its topic is on, then its
    /// payload against the channel's messages (it conforms if one of them
    /// accepts it; otherwise the closest one's errors are given) and its QoS
    /// and retain flag against the bindings.
    pub fn check(&self, topic: &str, payload: &[u8], qos: u8, retain: bool) -> ContractMark {
        let Some(channel) = self.channel_for(topic) else {
            return ContractMark {
                channel: None,
                violations: Vec::new(),
            };
        };
        let mut violations = payload_violations(channel, payload);
        if let Some(want) = channel.qos
            && want != qos
        {
            violations.push(Violation {
                pointer: String::new(),
                keyword: "qos".into(),
                message: format!("published at QoS {qos}; the contract binds QoS {want}"),
            });
        }
        if let Some(want) = channel.retain
            && want != retain
        {
            violations.push(Violation {
                pointer: String::new(),
                keyword: "retain".into(),
                message: format!(
                    "published {}; the contract binds retain: {want}",
                    if retain { "retained" } else { "not retained" }
                ),
            });
        }
        violations.truncate(MAX_VIOLATIONS);
        ContractMark {
            channel: Some(channel.address.clone()),
            violations,
        }
    }
}

/// A payload as the JSON value a schema judges: its JSON, or (text that is
/// not JSON) a JSON string.
pub fn payload_value(payload: &[u8]) -> Option<Value> {
    let text = std::str::from_utf8(payload).ok()?;
    Some(serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_string())))
}

fn payload_violations(channel: &Channel, payload: &[u8]) -> Vec<Violation> {
    // A message without a schema accepts any payload.
    if channel.messages.is_empty() || channel.messages.iter().any(|m| m.validator.is_none()) {
        return Vec::new();
    }
    let validators: Vec<&jsonschema::Validator> = channel
        .messages
        .iter()
        .filter_map(|m| m.validator.as_deref())
        .collect();
    let Some(value) = payload_value(payload) else {
        // Bytes that are not text: only a schema that asks nothing of the
        // payload's type, or says it is binary, accepts them.
        let binary_ok = channel.messages.iter().any(|m| {
            m.schema.as_ref().is_some_and(|s| {
                s.get("type").is_none() || s.get("format").and_then(Value::as_str) == Some("binary")
            })
        });
        if binary_ok {
            return Vec::new();
        }
        return vec![Violation {
            pointer: String::new(),
            keyword: "json".into(),
            message: format!("{} bytes of binary, not JSON or text", payload.len()),
        }];
    };
    let mut best: Option<Vec<Violation>> = None;
    for v in validators {
        if v.is_valid(&value) {
            return Vec::new();
        }
        let errors: Vec<Violation> = v
            .iter_errors(&value)
            .take(MAX_VIOLATIONS)
            .map(|e| Violation {
                pointer: e.instance_path().as_str().to_string(),
                keyword: e.kind().keyword().to_string(),
                message: shorten(&e.to_string()),
            })
            .collect();
        if best.as_ref().is_none_or(|b| errors.len() < b.len()) {
            best = Some(errors);
        }
    }
    best.unwrap_or_default()
}

/// Characters of a violation's message kept (it quotes the offending value,
/// which may be the whole payload).
const MAX_MESSAGE: usize = 200;

fn shorten(message: &str) -> String {
    if message.chars().count() <= MAX_MESSAGE {
        return message.to_string();
    }
    let mut out: String = message.chars().take(MAX_MESSAGE).collect();
    out.push('…');
    out
}

impl Channel {
    fn new(id: String, address: &str, params: Vec<Param>, messages: Vec<MessageSpec>) -> Channel {
        Channel {
            id,
            address: address.into(),
            params,
            messages,
            qos: None,
            retain: None,
            pattern: address_pattern(address),
        }
    }

    /// The values of its parameters in `topic` (name, value), if it matches.
    pub fn params_of(&self, topic: &str) -> Option<Vec<(String, String)>> {
        let caps = self.pattern.as_ref()?.captures(topic)?;
        Some(
            self.params
                .iter()
                .enumerate()
                .filter_map(|(i, p)| Some((p.name.clone(), caps.get(i + 1)?.as_str().to_string())))
                .collect(),
        )
    }
}

/// `cars/{carId}/telemetry` as a regex: a parameter is one topic level or part of one.
fn address_pattern(address: &str) -> Option<regex::Regex> {
    let mut re = String::from("^");
    let mut rest = address;
    while let Some(open) = rest.find('{') {
        re.push_str(&regex::escape(&rest[..open]));
        match rest[open..].find('}') {
            Some(close) => {
                re.push_str("([^/]+)");
                rest = &rest[open + close + 1..];
            }
            None => {
                re.push_str(&regex::escape(&rest[open..]));
                rest = "";
            }
        }
    }
    re.push_str(&regex::escape(rest));
    re.push('$');
    regex::Regex::new(&re).ok()
}

/// The parameter names of an address, in order.
pub fn address_params(address: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = address;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(rest[open + 1..open + close].to_string());
        rest = &rest[open + close + 1..];
    }
    out
}

impl MessageSpec {
    /// A message with its schema compiled (JSON Schema draft 7, the base of
    /// AsyncAPI's schema format; `format` asserted). A schema that does not
    /// compile is a warning and the message accepts any payload.
    fn new(
        name: String,
        schema: Option<Value>,
        pointer: &str,
        warnings: &mut Vec<Warning>,
    ) -> MessageSpec {
        let validator = schema.as_ref().and_then(|s| {
            match jsonschema::options()
                .with_draft(jsonschema::Draft::Draft7)
                .should_validate_formats(true)
                .build(s)
            {
                Ok(v) => Some(Arc::new(v)),
                Err(e) => {
                    warnings.push(Warning {
                        pointer: pointer.to_string(),
                        what: format!(
                            "the payload schema does not compile ({e}): payloads are not checked"
                        ),
                    });
                    None
                }
            }
        });
        MessageSpec {
            name,
            schema,
            validator,
        }
    }
}

#[cfg(test)]
mod tests;
