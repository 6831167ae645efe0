//! An AsyncAPI 3.0 document written from observed traffic (`mqtt-workbench
//! infer`, File → Export AsyncAPI…): channels from the topic tree, topic
//! levels that vary with a number in them (`car-1`, `car-2`) becoming
//! parameters (`cars/{carId}/telemetry`); a JSON Schema per channel from
//! its payloads (types, required fields, numeric ranges, small enums,
//! `date-time` strings, examples); QoS and retain bindings; who sends and
//! who receives.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use crate::wire::{Direction, PacketKind, WireEvent};

/// Channels written at most (the busiest first).
const MAX_CHANNELS: usize = 500;
/// Payloads read per channel.
const MAX_SAMPLES: u64 = 10_000;
/// Distinct strings remembered per field (enums are smaller).
const MAX_STRINGS: usize = 8;
/// A field with at most this many distinct strings, seen often enough, is an enum.
const MAX_ENUM: usize = 5;
const MAX_PROPS: usize = 64;
const MAX_DEPTH: usize = 8;
/// Clients named per operation.
const MAX_CLIENTS: usize = 20;

#[derive(Debug, Clone)]
pub struct InferOptions {
    pub title: String,
}

impl Default for InferOptions {
    fn default() -> Self {
        InferOptions {
            title: "Inferred by MQTT Workbench".into(),
        }
    }
}

/// What the payloads of one field (or a whole payload) looked like.
#[derive(Default)]
struct Shape {
    n: u64,
    nulls: u64,
    bools: u64,
    ints: u64,
    floats: u64,
    strings: u64,
    /// Strings past 200 characters (they rule out an enum).
    long_texts: u64,
    date_times: u64,
    objects: u64,
    arrays: u64,
    min: f64,
    max: f64,
    /// Distinct strings (up to MAX_STRINGS + 1: more means "many").
    texts: BTreeSet<String>,
    props: BTreeMap<String, (u64, Shape)>,
    items: Option<Box<Shape>>,
}

impl Shape {
    fn add(&mut self, v: &Value, depth: usize) {
        self.n += 1;
        match v {
            Value::Null => self.nulls += 1,
            Value::Bool(_) => self.bools += 1,
            Value::Number(x) => {
                let f = x.as_f64().unwrap_or(0.0);
                if x.is_i64() || x.is_u64() {
                    self.ints += 1;
                } else {
                    self.floats += 1;
                }
                if self.ints + self.floats == 1 {
                    (self.min, self.max) = (f, f);
                } else {
                    self.min = self.min.min(f);
                    self.max = self.max.max(f);
                }
            }
            Value::String(s) => {
                self.strings += 1;
                if is_date_time(s) {
                    self.date_times += 1;
                }
                // A long text is never an enum value (the set keeps 200 characters).
                if s.chars().count() > 200 {
                    self.long_texts += 1;
                }
                if self.texts.len() <= MAX_STRINGS {
                    self.texts.insert(s.chars().take(200).collect());
                }
            }
            Value::Array(a) => {
                self.arrays += 1;
                if depth < MAX_DEPTH {
                    let items = self.items.get_or_insert_with(Default::default);
                    for x in a {
                        items.add(x, depth + 1);
                    }
                }
            }
            Value::Object(m) => {
                self.objects += 1;
                if depth < MAX_DEPTH {
                    for (k, x) in m {
                        if self.props.len() >= MAX_PROPS && !self.props.contains_key(k) {
                            continue;
                        }
                        let (seen, shape) = self.props.entry(k.clone()).or_default();
                        *seen += 1;
                        shape.add(x, depth + 1);
                    }
                }
            }
        }
    }

    fn schema(&self) -> Value {
        let mut types: Vec<&str> = Vec::new();
        let mut s = Map::new();
        if self.objects > 0 {
            types.push("object");
            let mut props = Map::new();
            let mut required = Vec::new();
            for (k, (seen, shape)) in &self.props {
                props.insert(k.clone(), shape.schema());
                if *seen == self.objects {
                    required.push(Value::String(k.clone()));
                }
            }
            s.insert("properties".into(), Value::Object(props));
            if !required.is_empty() {
                s.insert("required".into(), Value::Array(required));
            }
        }
        if self.arrays > 0 {
            types.push("array");
            if let Some(items) = &self.items
                && items.n > 0
            {
                s.insert("items".into(), items.schema());
            }
        }
        if self.floats > 0 {
            types.push("number");
        } else if self.ints > 0 {
            types.push("integer");
        }
        if self.ints + self.floats > 0 {
            s.insert("minimum".into(), num(self.min));
            s.insert("maximum".into(), num(self.max));
        }
        if self.strings > 0 {
            types.push("string");
            let distinct = self.texts.len();
            if self.date_times == self.strings {
                s.insert("format".into(), "date-time".into());
            } else if distinct <= MAX_ENUM
                && self.long_texts == 0
                && self.strings >= 3 * distinct as u64
                && self.n == self.strings
            {
                s.insert(
                    "enum".into(),
                    self.texts.iter().cloned().map(Value::String).collect(),
                );
            }
            if !s.contains_key("enum") {
                let ex: Vec<Value> = self
                    .texts
                    .iter()
                    .take(3)
                    .cloned()
                    .map(Value::String)
                    .collect();
                s.insert("examples".into(), Value::Array(ex));
            }
        }
        if self.bools > 0 {
            types.push("boolean");
        }
        if self.nulls > 0 {
            types.push("null");
        }
        match types.as_slice() {
            [] => {}
            [one] => {
                s.insert("type".into(), (*one).into());
            }
            many => {
                s.insert(
                    "type".into(),
                    many.iter().map(|t| Value::from(*t)).collect(),
                );
            }
        }
        Value::Object(s)
    }
}

/// An RFC 3339 date-time with its offset (`Z` or `±hh:mm`), as JSON Schema's
/// `date-time` format asks.
fn is_date_time(s: &str) -> bool {
    let offset = s.ends_with(['Z', 'z'])
        || s.len() > 6 && {
            let tail = &s.as_bytes()[s.len() - 6..];
            (tail[0] == b'+' || tail[0] == b'-')
                && tail[1].is_ascii_digit()
                && tail[2].is_ascii_digit()
                && tail[3] == b':'
                && tail[4].is_ascii_digit()
                && tail[5].is_ascii_digit()
        };
    offset
        && s.contains('T')
        && humantime::parse_rfc3339_weak(s.trim_end_matches(['Z', 'z'])).is_ok()
}

fn num(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 9e15 {
        Value::from(x as i64)
    } else {
        serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
    }
}

/// A channel being learned.
#[derive(Default)]
struct Learned {
    topics: BTreeSet<String>,
    publishes: u64,
    qos: BTreeSet<u8>,
    retain: BTreeSet<bool>,
    binary: u64,
    shape: Shape,
    first: Option<Value>,
    senders: BTreeSet<String>,
    receivers: BTreeSet<String>,
}

/// A topic's shape: each level kept, or None where it varies (a number in it).
fn signature(topic: &str) -> Vec<Option<String>> {
    topic
        .split('/')
        .map(|l| (!l.bytes().any(|b| b.is_ascii_digit())).then(|| l.to_string()))
        .collect()
}

fn add_bounded(set: &mut BTreeSet<String>, s: &str) {
    if set.len() < MAX_CLIENTS + 1 {
        set.insert(s.to_string());
    }
}

/// The document for `events` (frames as captured or recorded).
pub fn infer<'a>(events: impl IntoIterator<Item = &'a WireEvent>, opts: &InferOptions) -> Value {
    let mut learned: BTreeMap<Vec<Option<String>>, Learned> = BTreeMap::new();
    let mut total = 0u64;
    for ev in events
        .into_iter()
        .filter(|e| e.kind == PacketKind::Publish && e.injected.is_none())
    {
        let Some(topic) = ev.topic.as_deref() else {
            continue;
        };
        let sig = signature(topic);
        if ev.dir == Direction::BrokerToClient {
            if let Some(l) = learned.get_mut(&sig) {
                add_bounded(&mut l.receivers, &ev.client_id);
            }
            continue;
        }
        if learned.len() >= MAX_CHANNELS && !learned.contains_key(&sig) {
            continue;
        }
        total += 1;
        let l = learned.entry(sig).or_default();
        if l.topics.len() < 1_000 {
            l.topics.insert(topic.to_string());
        }
        l.publishes += 1;
        l.qos.insert(ev.qos);
        l.retain.insert(ev.retain);
        add_bounded(&mut l.senders, &ev.client_id);
        if l.publishes > MAX_SAMPLES {
            continue;
        }
        match ev.payload.as_deref().and_then(super::payload_value) {
            Some(v) => {
                if l.first.is_none() {
                    l.first = Some(v.clone());
                }
                l.shape.add(&v, 0);
            }
            None => l.binary += 1,
        }
    }
    document(learned, total, opts)
}

/// [`infer`] as YAML text.
pub fn infer_yaml<'a>(
    events: impl IntoIterator<Item = &'a WireEvent>,
    opts: &InferOptions,
) -> String {
    super::yaml::write(&infer(events, opts))
}

/// A key AsyncAPI accepts for components (`^[a-zA-Z0-9.\-_]+$`), camel-cased from a topic.
fn key(parts: &[&str]) -> String {
    let mut out = String::new();
    for p in parts {
        let clean: String = p.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        let mut cs = clean.chars();
        if let Some(c) = cs.next() {
            if out.is_empty() {
                out.push(c.to_ascii_lowercase());
            } else {
                out.push(c.to_ascii_uppercase());
            }
            out.extend(cs);
        }
    }
    if out.is_empty() { "root".into() } else { out }
}

fn param_name(prev: Option<&str>, taken: &BTreeSet<String>) -> String {
    let base = match prev {
        Some(p) if !p.is_empty() => {
            let singular = p.strip_suffix('s').filter(|s| !s.is_empty()).unwrap_or(p);
            format!("{}Id", key(&[singular]))
        }
        _ => "id".into(),
    };
    let mut name = base.clone();
    let mut k = 2;
    while taken.contains(&name) {
        name = format!("{base}{k}");
        k += 1;
    }
    name
}

fn clients(set: &BTreeSet<String>) -> String {
    let shown: Vec<&str> = set.iter().take(MAX_CLIENTS).map(String::as_str).collect();
    let more = if set.len() > MAX_CLIENTS { ", …" } else { "" };
    format!("{}{more}", shown.join(", "))
}

fn document(
    learned: BTreeMap<Vec<Option<String>>, Learned>,
    total: u64,
    opts: &InferOptions,
) -> Value {
    let mut channels = Map::new();
    let mut operations = Map::new();
    let mut messages = Map::new();
    let mut used = BTreeSet::new();
    for (sig, l) in learned {
        // One topic only: it stays literal.
        let literal = l.topics.len() == 1;
        let mut levels = Vec::new();
        let mut params = Map::new();
        let mut names = BTreeSet::new();
        let first_topic: Vec<&str> = l
            .topics
            .iter()
            .next()
            .map(|t| t.split('/').collect())
            .unwrap_or_default();
        for (k, level) in sig.iter().enumerate() {
            match level {
                Some(text) => levels.push(text.clone()),
                None if literal => {
                    levels.push(first_topic.get(k).copied().unwrap_or("").to_string())
                }
                None => {
                    let prev = k.checked_sub(1).and_then(|p| sig[p].as_deref());
                    let name = param_name(prev, &names);
                    names.insert(name.clone());
                    let seen: BTreeSet<&str> = l
                        .topics
                        .iter()
                        .filter_map(|t| t.split('/').nth(k))
                        .collect();
                    let examples: Vec<Value> =
                        seen.iter().take(3).map(|s| Value::from(*s)).collect();
                    params.insert(
                        name.clone(),
                        json!({"description": format!("{} values seen", seen.len()), "examples": examples}),
                    );
                    levels.push(format!("{{{name}}}"));
                }
            }
        }
        let address = levels.join("/");
        let literal_parts: Vec<&str> = levels
            .iter()
            .filter(|l| !l.starts_with('{'))
            .map(String::as_str)
            .collect();
        let mut id = key(&literal_parts);
        let base = id.clone();
        let mut n = 2;
        while !used.insert(id.clone()) {
            id = format!("{base}{n}");
            n += 1;
        }
        let mut payload = l.shape.schema();
        let mut message = Map::new();
        message.insert("name".into(), id.clone().into());
        if l.binary > 0 && l.shape.n == 0 {
            payload = json!({"type": "string", "format": "binary"});
            message.insert("contentType".into(), "application/octet-stream".into());
        } else if let Some(first) = &l.first {
            message.insert("examples".into(), json!([{"payload": first}]));
        }
        message.insert("payload".into(), payload);
        messages.insert(id.clone(), Value::Object(message));
        let mut channel = Map::new();
        channel.insert("address".into(), address.clone().into());
        channel.insert(
            "description".into(),
            format!("{} messages on {} topic(s)", l.publishes, l.topics.len()).into(),
        );
        if !params.is_empty() {
            channel.insert("parameters".into(), Value::Object(params));
        }
        channel.insert(
            "messages".into(),
            json!({ id.clone(): {"$ref": format!("#/components/messages/{id}")} }),
        );
        channels.insert(id.clone(), Value::Object(channel));
        let mut mqtt = Map::new();
        if l.qos.len() == 1 {
            mqtt.insert(
                "qos".into(),
                Value::from(l.qos.iter().next().copied().unwrap_or(0)),
            );
        }
        if l.retain.len() == 1 {
            mqtt.insert(
                "retain".into(),
                Value::from(l.retain.iter().next().copied().unwrap_or(false)),
            );
        }
        mqtt.insert("bindingVersion".into(), "0.2.0".into());
        let refs = json!({
            "channel": {"$ref": format!("#/channels/{id}")},
            "messages": [{"$ref": format!("#/channels/{id}/messages/{id}")}],
        });
        let mut send = json!({
            "action": "send",
            "summary": format!("Sent by {}", clients(&l.senders)),
            "bindings": {"mqtt": Value::Object(mqtt)},
        });
        merge(&mut send, &refs);
        operations.insert(format!("send{}", capitalized(&id)), send);
        if !l.receivers.is_empty() {
            let mut receive = json!({
                "action": "receive",
                "summary": format!("Received by {}", clients(&l.receivers)),
            });
            merge(&mut receive, &refs);
            operations.insert(format!("receive{}", capitalized(&id)), receive);
        }
    }
    json!({
        "asyncapi": "3.0.0",
        "info": {
            "title": opts.title,
            "version": "1.0.0",
            "description": format!("Inferred by MQTT Workbench from {total} published messages."),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    })
}

fn merge(into: &mut Value, from: &Value) {
    if let (Some(a), Some(b)) = (into.as_object_mut(), from.as_object()) {
        for (k, v) in b {
            a.insert(k.clone(), v.clone());
        }
    }
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
        None => String::new(),
    }
}
