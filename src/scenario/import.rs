//! A scenario written from a contract (`mqtt-workbench import`), for a user
//! to edit: a fleet per channel parameter the spec's applications send on
//! (`cars/{carId}/telemetry` → devices `car-1` … publishing on
//! `cars/car-1/telemetry`), payloads generated from each message's schema,
//! QoS and retain from the bindings, replies as reactions, a sender for the
//! channels only received on, and a `Conforms` check per channel.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::Payload;
use super::generate::{self, DECIMALS};
use crate::contract::{Channel, Contract, Warning};

/// Where a device's publish entries start, in the written scenario.
const PUBLISH_INDENT: &str = "                ";

/// What `import` wrote.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The scenario, RON text with comments.
    pub ron: String,
    /// The document's own warnings and what the generators could not follow.
    pub warnings: Vec<Warning>,
}

/// How big and how fast the generated fleet is.
#[derive(Debug, Clone, Copy)]
pub struct ImportOptions {
    /// Devices per fleet.
    pub count: u32,
    /// Seconds between publishes.
    pub every_s: u32,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            count: 3,
            every_s: 2,
        }
    }
}

/// One device entry being written: a fleet (by its id parameter) or a single client.
#[derive(Default)]
struct Entry {
    id: String,
    count: u32,
    subscribe: Vec<(String, u8)>,
    publish: Vec<String>,
    react: Vec<String>,
    comment: Vec<String>,
}

/// `carId` → `car`; `room` → `room`.
fn stem(param: &str) -> String {
    let lower = param.to_ascii_lowercase();
    for suffix in ["_id", "-id", "id"] {
        if lower.len() > suffix.len() && lower.ends_with(suffix) {
            return param[..param.len() - suffix.len()].to_string();
        }
    }
    param.to_string()
}

/// The channel's topic for a device: its first parameter is the device's id
/// (`{id}`), or, for a sender addressing the fleet, `<stem>-{seq%N}`; other
/// parameters take their default, first enum value or example, else `{i}`.
fn topic(c: &Channel, first: &str) -> String {
    let mut t = c.address.to_string();
    for (k, p) in c.params.iter().enumerate() {
        let value = if k == 0 {
            first.to_string()
        } else {
            p.default
                .clone()
                .or_else(|| p.enum_values.first().cloned())
                .or_else(|| p.examples.first().cloned())
                .unwrap_or_else(|| "{i}".into())
        };
        t = t.replace(&format!("{{{}}}", p.name), &value);
    }
    t
}

fn ron<T: serde::Serialize>(v: &T) -> String {
    ron::ser::to_string(v).unwrap_or_else(|e| format!("Text(\"cannot write: {e}\")"))
}

/// A payload as RON: a JSON payload a field a line (indented by `indent`),
/// so the generated scenario reads and edits well.
fn payload_ron(p: &Payload, indent: &str) -> String {
    match p {
        Payload::Json(fields) if !fields.is_empty() => {
            let mut out = String::from("Json({\n");
            for (k, g) in fields {
                let _ = writeln!(out, "{indent}    {}: {},", quoted(k), ron(g));
            }
            out.push_str(indent);
            out.push_str("})");
            out
        }
        p => ron(p),
    }
}

fn quoted(s: &str) -> String {
    ron(&s.to_string())
}

/// Write a scenario for `contract`; `spec` is the document's path as the
/// scenario should name it (relative to where the scenario is saved).
pub fn import_contract(contract: &Contract, spec: &str, opts: ImportOptions) -> Imported {
    let mut warnings = contract.warnings.clone();
    let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
    let count = opts.count.max(1);
    let payload_for =
        |c: &Channel, msgs: &[usize], at: &str, warnings: &mut Vec<Warning>| -> Payload {
            let m = msgs.first().copied().unwrap_or(0);
            let schema = c.messages.get(m).and_then(|m| m.schema.as_ref());
            generate::payload(schema, at, warnings)
        };
    // Who sends on each channel (an application of the document).
    let sent: Vec<bool> = (0..contract.channels.len())
        .map(|i| contract.operations.iter().any(|o| o.send && o.channel == i))
        .collect();
    for (k, op) in contract.operations.iter().enumerate() {
        let c = &contract.channels[op.channel];
        let (key, id, count, me) = match c.params.first() {
            Some(p) => (
                format!("param:{}", p.name),
                format!("{}-{{i}}", stem(&p.name)),
                count,
                "{id}".to_string(),
            ),
            None => (format!("op:{}", op.id), op.id.clone(), 1, String::new()),
        };
        let e = entries.entry(key).or_insert_with(|| Entry {
            id,
            count,
            ..Entry::default()
        });
        let at = format!("/operations/{}", crate::contract::escape(&op.id));
        let qos = op.qos.or(c.qos).unwrap_or(0);
        let retain = op.retain.or(c.retain).unwrap_or(false);
        let t = topic(c, &me);
        if op.send {
            let payload = payload_for(c, &op.messages, &format!("{at}/messages"), &mut warnings);
            e.comment.push(format!("{}: sends on {}", op.id, c.address));
            e.publish.push(format!(
                "(topic: {}, every: \"{}s\", qos: {qos}, retain: {retain}, decimals: {DECIMALS}, payload: {})",
                quoted(&t),
                opts.every_s,
                payload_ron(&payload, PUBLISH_INDENT)
            ));
            if let Some(r) = &op.reply {
                let rc = &contract.channels[r.channel];
                e.subscribe.push((topic(rc, &me), rc.qos.unwrap_or(qos)));
            }
        } else {
            e.comment
                .push(format!("{}: receives on {}", op.id, c.address));
            e.subscribe.push((t.clone(), qos));
            if let Some(r) = &op.reply {
                let rc = &contract.channels[r.channel];
                let payload = payload_for(rc, &r.messages, &format!("{at}/reply"), &mut warnings);
                e.react.push(format!(
                    "(on: {}, actions: [Publish(topic: {}, payload: {}, qos: {}, retain: {})])",
                    quoted(&t),
                    quoted(&topic(rc, &me)),
                    payload_ron(&payload, PUBLISH_INDENT),
                    rc.qos.unwrap_or(qos),
                    rc.retain.unwrap_or(false)
                ));
            }
            // Nobody in the document sends here: a sender exercises the receivers.
            if !sent[op.channel] {
                let to = match c.params.first() {
                    Some(p) => format!("{}-{{seq%{count}}}", stem(&p.name)),
                    None => String::new(),
                };
                let sender = Entry {
                    id: format!("{}-sender", op.id),
                    count: 1,
                    comment: vec![format!("sends what {} receives on {}", op.id, c.address)],
                    publish: vec![format!(
                        "(topic: {}, every: \"{}s\", qos: {qos}, retain: {retain}, decimals: {DECIMALS}, payload: {})",
                        quoted(&topic(c, &to)),
                        opts.every_s,
                        payload_ron(
                            &payload_for(c, &op.messages, &format!("{at}/messages"), &mut warnings),
                            PUBLISH_INDENT
                        )
                    )],
                    ..Entry::default()
                };
                entries.insert(format!("sender:{k}"), sender);
            }
        }
    }
    let ron = write(contract, spec, &entries, &warnings);
    Imported { ron, warnings }
}

fn write(
    contract: &Contract,
    spec: &str,
    entries: &BTreeMap<String, Entry>,
    warnings: &[Warning],
) -> String {
    let mut out = String::new();
    let title = if contract.title.is_empty() {
        "AsyncAPI contract"
    } else {
        &contract.title
    };
    let _ = writeln!(
        out,
        "// Written by `mqtt-workbench import {spec}` (AsyncAPI {}).",
        contract.version
    );
    let _ = writeln!(
        out,
        "// A fleet per channel parameter the document's applications send on;"
    );
    let _ = writeln!(
        out,
        "// payloads generated from the message schemas; a check per channel."
    );
    if !warnings.is_empty() {
        let _ = writeln!(out, "//\n// Not carried over ({}):", warnings.len());
        for w in warnings.iter().take(50) {
            let _ = writeln!(out, "//   {w}");
        }
    }
    let _ = writeln!(out, "Scenario(");
    let _ = writeln!(out, "    name: {},", quoted(title));
    let _ = writeln!(
        out,
        "    description: {},",
        quoted(&format!(
            "Imported from {spec}: its channels simulated and checked against it."
        ))
    );
    let _ = writeln!(out, "    seed: 1,");
    let _ = writeln!(out, "    spec: {},", quoted(spec));
    let _ = writeln!(out, "    devices: [");
    for e in entries.values() {
        out.push_str("        (\n");
        for c in &e.comment {
            let _ = writeln!(out, "            // {c}");
        }
        let _ = writeln!(out, "            id: {},", quoted(&e.id));
        if e.count > 1 {
            let _ = writeln!(out, "            count: {},", e.count);
        }
        if !e.subscribe.is_empty() {
            let subs: Vec<String> = e
                .subscribe
                .iter()
                .map(|(f, q)| format!("(filter: {}, qos: {q})", quoted(f)))
                .collect();
            let _ = writeln!(out, "            subscribe: [{}],", subs.join(", "));
        }
        if !e.publish.is_empty() {
            let _ = writeln!(
                out,
                "            publish: [\n                {},\n            ],",
                e.publish.join(",\n                ")
            );
        }
        if !e.react.is_empty() {
            let _ = writeln!(
                out,
                "            react: [\n                {},\n            ],",
                e.react.join(",\n                ")
            );
        }
        out.push_str("        ),\n");
    }
    let _ = writeln!(out, "    ],");
    let _ = writeln!(out, "    duration: \"20s\",");
    let _ = writeln!(out, "    expect: [");
    for c in contract.channels.iter().filter(|c| !c.messages.is_empty()) {
        let _ = writeln!(
            out,
            "        (name: {}, check: Conforms(spec: {}, channels: [{}])),",
            quoted(&format!("{} conforms", c.address)),
            quoted(spec),
            quoted(&c.address)
        );
    }
    let _ = writeln!(out, "    ],");
    let _ = writeln!(out, ")");
    out
}
