//! Payload decoders: every payload the inspectors show as a tree or plot goes
//! through here and comes out as a JSON value. JSON is read as is; topics
//! under `spBv1.0/` are Sparkplug B (the Eclipse Tahu protobuf schema), with
//! metric aliases resolved from the edge node's and device's BIRTH; topic
//! filters can be mapped to CBOR or MessagePack.

use std::collections::HashMap;

pub mod diff;

use serde_json::Value;

use crate::wire::topic_matches;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// How the payloads on a topic are encoded (for the inspectors' trees and plots).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Codec {
    Json,
    SparkplugB,
    Cbor,
    MessagePack,
    /// Protobuf with the rule's `.proto` and message type.
    Protobuf,
}

impl Codec {
    pub fn name(self) -> &'static str {
        match self {
            Codec::Json => "JSON",
            Codec::SparkplugB => "Sparkplug B",
            Codec::Cbor => "CBOR",
            Codec::MessagePack => "MessagePack",
            Codec::Protobuf => "Protobuf",
        }
    }
}

/// A scenario's decoder rule: payloads on topics matching `on` are `codec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecoderRule {
    pub on: String,
    pub codec: Codec,
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

use crate::sparkplug::proto as sparkplug;

/// Which codec each topic uses, and the Sparkplug aliases learned from BIRTHs.
#[derive(Debug, Clone)]
pub struct Decoders {
    /// (topic filter, codec), first match wins; unmatched topics are JSON.
    pub rules: Vec<(String, Codec)>,
    /// Protobuf message types by topic filter.
    protobuf: Vec<(String, prost_reflect::MessageDescriptor)>,
    /// (group, edge node, device or "") → alias → (name, data type).
    aliases: HashMap<NodeKey, HashMap<u64, (String, u32)>>,
    /// Bumped when aliases change (views cache by it).
    pub generation: u64,
}

impl Default for Decoders {
    fn default() -> Self {
        Decoders {
            rules: vec![("spBv1.0/#".into(), Codec::SparkplugB)],
            protobuf: Vec::new(),
            aliases: HashMap::new(),
            generation: 0,
        }
    }
}

/// (group, edge node, device or "").
type NodeKey = (String, String, String);

/// Edge nodes and devices whose aliases are remembered at most.
const MAX_ALIAS_BOOKS: usize = 10_000;

/// (group, edge node, device or "", message type) of a Sparkplug topic.
fn sparkplug_topic(topic: &str) -> Option<(&str, &str, &str, &'static str)> {
    match crate::sparkplug::Topic::parse(topic)? {
        crate::sparkplug::Topic::Node {
            group,
            kind,
            node,
            device,
        } => Some((group, node, device, kind.as_str())),
        crate::sparkplug::Topic::State { .. } => None,
    }
}

impl Decoders {
    /// A scenario's rules, then the default (Sparkplug B under `spBv1.0/`).
    pub fn set_rules(&mut self, rules: &[crate::codec::DecoderRule]) {
        self.rules = rules.iter().map(|r| (r.on.clone(), r.codec)).collect();
        self.protobuf = rules
            .iter()
            .filter_map(|r| {
                let spec = r.proto.as_ref()?;
                let pool = prost_reflect::DescriptorPool::decode(r.descriptors.as_slice()).ok()?;
                Some((r.on.clone(), pool.get_message_by_name(&spec.message)?))
            })
            .collect();
        self.rules.push(("spBv1.0/#".into(), Codec::SparkplugB));
        self.generation += 1;
    }

    pub fn codec(&self, topic: &str) -> Codec {
        self.rules
            .iter()
            .find(|(f, _)| topic_matches(topic, f))
            .map_or(Codec::Json, |(_, c)| *c)
    }

    /// Learn aliases from a published BIRTH (call for every publish, in order).
    pub fn observe(&mut self, topic: &str, payload: &[u8]) {
        if self.codec(topic) != Codec::SparkplugB {
            return;
        }
        let Some((group, edge, device, kind)) = sparkplug_topic(topic) else {
            return;
        };
        if kind != "NBIRTH" && kind != "DBIRTH" {
            return;
        }
        let Ok(p) = <sparkplug::Payload as prost::Message>::decode(payload) else {
            return;
        };
        let key = (group.to_string(), edge.to_string(), device.to_string());
        if !self.aliases.contains_key(&key) && self.aliases.len() >= MAX_ALIAS_BOOKS {
            return;
        }
        let book = self.aliases.entry(key).or_default();
        book.clear();
        for m in &p.metrics {
            if let (Some(name), Some(alias)) = (&m.name, m.alias) {
                book.insert(alias, (name.clone(), m.datatype.unwrap_or(0)));
            }
        }
        self.generation += 1;
    }

    /// The payload as a JSON value (None when it does not decode).
    pub fn decode(&self, topic: &str, payload: &[u8]) -> Option<Value> {
        match self.codec(topic) {
            Codec::Json => serde_json::from_slice(payload).ok(),
            Codec::Cbor => ciborium::de::from_reader::<Value, _>(payload).ok(),
            Codec::MessagePack => rmp_serde::from_slice::<Value>(payload).ok(),
            Codec::SparkplugB => self.sparkplug_json(topic, payload),
            Codec::Protobuf => {
                let (_, desc) = self
                    .protobuf
                    .iter()
                    .find(|(f, _)| topic_matches(topic, f))?;
                let msg = prost_reflect::DynamicMessage::decode(desc.clone(), payload).ok()?;
                serde_json::to_value(&msg).ok()
            }
        }
    }

    fn sparkplug_json(&self, topic: &str, payload: &[u8]) -> Option<Value> {
        // 3.0 STATE messages are JSON.
        if let Some(crate::sparkplug::Topic::State { .. }) = crate::sparkplug::Topic::parse(topic) {
            return serde_json::from_slice(payload).ok();
        }
        let p = <sparkplug::Payload as prost::Message>::decode(payload).ok()?;
        let parts = sparkplug_topic(topic);
        let book = parts.and_then(|(g, e, d, _)| {
            self.aliases
                .get(&(g.to_string(), e.to_string(), d.to_string()))
        });
        Some(crate::sparkplug::json::payload(
            &p,
            parts.map(|(_, _, _, kind)| kind),
            book,
        ))
    }
}

/// Dotted paths of every numeric field in a decoded value ("metrics.Temperature.value").
pub fn numeric_fields(v: &Value) -> Vec<String> {
    fn walk(v: &Value, prefix: &str, out: &mut Vec<String>) {
        match v {
            Value::Number(_) => out.push(prefix.to_string()),
            Value::Object(m) => {
                for (k, v) in m {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(v, &p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, "", &mut out);
    out
}

/// The number at a dotted path of a decoded value.
pub fn field(v: &Value, path: &str) -> Option<f64> {
    // Metric names may contain dots or slashes: try the longest keys first.
    fn find(v: &Value, parts: &[&str]) -> Option<f64> {
        if parts.is_empty() {
            return v.as_f64();
        }
        let obj = v.as_object()?;
        for n in (1..=parts.len()).rev() {
            if let Some(next) = obj.get(&parts[..n].join("."))
                && let Some(x) = find(next, &parts[n..])
            {
                return Some(x);
            }
        }
        None
    }
    find(v, &path.split('.').collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A protobuf varint.
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        loop {
            let b = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(b);
                return;
            }
            out.push(b | 0x80);
        }
    }

    /// Sparkplug payloads written by hand from the protobuf wire format (an
    /// encoder independent of prost): Payload{timestamp=1, metrics=2, seq=3},
    /// Metric{name=1, alias=2, datatype=4, float_value=12, int_value=10}.
    fn metric(name: Option<&str>, alias: u64, datatype: u32, value: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        if let Some(n) = name {
            m.push(0x0a); // field 1, length-delimited
            varint(n.len() as u64, &mut m);
            m.extend(n.as_bytes());
        }
        m.push(0x10); // field 2, varint
        varint(alias, &mut m);
        m.push(0x20); // field 4, varint
        varint(datatype as u64, &mut m);
        m.extend(value);
        m
    }

    fn payload(timestamp: u64, seq: u64, metrics: &[Vec<u8>]) -> Vec<u8> {
        let mut p = vec![0x08]; // field 1, varint
        varint(timestamp, &mut p);
        for m in metrics {
            p.push(0x12); // field 2, length-delimited
            varint(m.len() as u64, &mut p);
            p.extend(m);
        }
        p.push(0x18); // field 3, varint
        varint(seq, &mut p);
        p
    }

    #[test]
    fn sparkplug_ndata_metrics_get_their_names_from_the_birth() {
        let float = |x: f32| {
            let mut v = vec![0x65]; // field 12, 32-bit
            v.extend(x.to_le_bytes());
            v
        };
        let int = |x: i32| {
            let mut v = vec![0x50]; // field 10, varint
            varint(x as u32 as u64, &mut v);
            v
        };
        let birth = payload(
            1_700_000_000_000,
            0,
            &[
                metric(Some("Temperature"), 1, 9, &float(21.5)),
                metric(Some("Line/Speed"), 2, 3, &int(-3)),
            ],
        );
        let data = payload(
            1_700_000_001_000,
            1,
            &[
                metric(None, 1, 9, &float(22.25)),
                metric(None, 2, 3, &int(-7)),
            ],
        );
        let mut d = Decoders::default();
        // Before any BIRTH the alias is shown as such.
        let v = d.decode("spBv1.0/plant/NDATA/edge-1", &data).unwrap();
        assert!(v["metrics"].get("alias 1 (no BIRTH seen)").is_some(), "{v}");
        d.observe("spBv1.0/plant/NBIRTH/edge-1", &birth);
        let v = d.decode("spBv1.0/plant/NDATA/edge-1", &data).unwrap();
        assert_eq!(v["message"], "NDATA");
        assert_eq!(v["seq"], 1);
        assert_eq!(v["metrics"]["Temperature"]["value"], 22.25);
        assert_eq!(v["metrics"]["Temperature"]["type"], "Float");
        assert_eq!(v["metrics"]["Line/Speed"]["value"], -7, "Int32 is signed");
        assert_eq!(
            numeric_fields(&v)
                .into_iter()
                .filter(|f| f.ends_with(".value"))
                .collect::<Vec<_>>(),
            ["metrics.Line/Speed.value", "metrics.Temperature.value"]
        );
        assert_eq!(field(&v, "metrics.Temperature.value"), Some(22.25));
        // Another edge node's aliases are its own.
        let v = d.decode("spBv1.0/plant/NDATA/edge-2", &data).unwrap();
        assert!(v["metrics"].get("Temperature").is_none());
    }

    #[test]
    fn cbor_and_messagepack_by_topic_filter() {
        let mut d = Decoders::default();
        d.rules.push(("cbor/#".into(), Codec::Cbor));
        d.rules.push(("mp/#".into(), Codec::MessagePack));
        let value = json!({"temp": 21.5, "on": true});
        let mut cbor = Vec::new();
        ciborium::ser::into_writer(&value, &mut cbor).unwrap();
        let mp = rmp_serde::to_vec_named(&value).unwrap();
        assert_eq!(d.decode("cbor/x", &cbor).unwrap(), value);
        assert_eq!(d.decode("mp/x", &mp).unwrap(), value);
        assert_eq!(d.codec("other"), Codec::Json);
        // Fixed bytes from the specifications: {"a": 1}.
        assert_eq!(
            d.decode("cbor/x", &[0xa1, 0x61, b'a', 0x01]),
            Some(json!({"a": 1}))
        );
        assert_eq!(
            d.decode("mp/x", &[0x81, 0xa1, b'a', 0x01]),
            Some(json!({"a": 1}))
        );
        assert!(d.decode("cbor/x", b"\xff\xff").is_none());
    }
}
