//! An AsyncAPI document's channels, messages and operations, from 3.0
//! (`channels` by id with an `address`, `operations` with `action`) or 2.6
//! (`channels` by address with `publish`/`subscribe`: in 2.x `subscribe` is
//! what the application sends and `publish` what it receives).

use std::path::Path;

use serde_json::Value;

use super::document::{Document, escape};
use super::{
    Channel, Contract, ContractError, MessageSpec, Operation, Param, Reply, Warning, address_params,
};

pub(super) fn read(path: &Path) -> Result<Contract, ContractError> {
    let mut doc = Document::load(path)?;
    let err = |message: String| ContractError {
        path: path.to_path_buf(),
        line: 0,
        col: 0,
        message,
    };
    let version = match doc.value().get("asyncapi") {
        Some(Value::String(v)) => v.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(err(
                "not an AsyncAPI document: no `asyncapi:` version at the top (expected 3.0.0 or 2.6.0)".into(),
            ));
        }
    };
    let title = doc
        .value()
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut warnings = Vec::new();
    let (channels, operations) = if version.starts_with("3.") {
        read_v3(&mut doc, &mut warnings)
    } else if version.starts_with("2.") {
        if !version.starts_with("2.6") {
            warnings.push(Warning {
                pointer: "/asyncapi".into(),
                what: format!("version {version}: read as 2.6"),
            });
        }
        read_v2(&mut doc, &mut warnings)
    } else {
        return Err(err(format!(
            "AsyncAPI {version} is not supported (expected 3.0.0 or 2.6.0)"
        )));
    };
    warnings.extend(doc.warnings);
    Ok(Contract {
        path: path.to_path_buf(),
        version,
        title,
        channels,
        operations,
        warnings,
    })
}

fn keys(v: &Value, pointer: &str) -> Vec<String> {
    v.pointer(pointer)
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

fn read_v3(doc: &mut Document, warnings: &mut Vec<Warning>) -> (Vec<Channel>, Vec<Operation>) {
    let mut channels = Vec::new();
    let mut channel_ids = Vec::new();
    let mut message_ids: Vec<Vec<String>> = Vec::new();
    for id in keys(doc.value(), "/channels") {
        let at = format!("/channels/{}", escape(&id));
        let ch = doc.resolved(&at);
        let Some(address) = ch.get("address").and_then(Value::as_str) else {
            warnings.push(Warning {
                pointer: at.clone(),
                what: "no `address` (a dynamic channel): not checked, not simulated".into(),
            });
            continue;
        };
        let params = address_params(address)
            .into_iter()
            .map(|name| {
                let p = ch
                    .pointer(&format!("/parameters/{}", escape(&name)))
                    .cloned()
                    .unwrap_or(Value::Null);
                if p.get("location").is_some() {
                    warnings.push(Warning {
                        pointer: format!("{at}/parameters/{}/location", escape(&name)),
                        what: "parameter `location` (a runtime expression) is not used".into(),
                    });
                }
                param(name, &p)
            })
            .collect();
        let mut messages = Vec::new();
        let mut ids = Vec::new();
        if let Some(m) = ch.get("messages").and_then(Value::as_object) {
            for (mid, msg) in m {
                let mat = format!("{at}/messages/{}", escape(mid));
                messages.push(message(mid, msg, &mat, warnings));
                ids.push(mid.clone());
            }
        }
        channels.push(Channel::new(id.clone(), address, params, messages));
        channel_ids.push(id);
        message_ids.push(ids);
    }
    let mut operations = Vec::new();
    for id in keys(doc.value(), "/operations") {
        let at = format!("/operations/{}", escape(&id));
        let raw = doc.value().pointer(&at).cloned().unwrap_or(Value::Null);
        let op = doc.resolved(&at);
        let send = match op.get("action").and_then(Value::as_str) {
            Some("send") => true,
            Some("receive") => false,
            other => {
                warnings.push(Warning {
                    pointer: format!("{at}/action"),
                    what: format!("action {other:?}: expected send or receive; operation skipped"),
                });
                continue;
            }
        };
        let Some(channel) = channel_ref(raw.get("channel"), &channel_ids) else {
            warnings.push(Warning {
                pointer: format!("{at}/channel"),
                what: "expected `channel: {$ref: '#/channels/<id>'}` naming a channel with an address; operation skipped".into(),
            });
            continue;
        };
        let messages = message_refs(
            raw.get("messages"),
            &channel_ids[channel],
            &message_ids[channel],
        );
        if op.get("traits").is_some() {
            warnings.push(Warning {
                pointer: format!("{at}/traits"),
                what: "operation traits are not applied".into(),
            });
        }
        let reply = raw.get("reply").and_then(|r| {
            // A reply by reference (`#/components/replies/…`): read its target unresolved,
            // so its channel is still a `$ref` naming the channel.
            let r = match r.get("$ref").and_then(Value::as_str).and_then(|p| p.strip_prefix('#')) {
                Some(p) => doc.value().pointer(p).cloned().unwrap_or(Value::Null),
                None => r.clone(),
            };
            if r.get("address").is_some() {
                warnings.push(Warning {
                    pointer: format!("{at}/reply/address"),
                    what: "a reply address (runtime expression) is not used: the reply goes to the reply channel's address".into(),
                });
            }
            let channel = channel_ref(r.get("channel"), &channel_ids)?;
            let messages = message_refs(r.get("messages"), &channel_ids[channel], &message_ids[channel]);
            Some(Reply { channel, messages })
        });
        let (qos, retain) = bindings(&op, &at, warnings);
        operations.push(Operation {
            id,
            send,
            channel,
            messages,
            qos,
            retain,
            reply,
        });
    }
    apply_bindings(&mut channels, &operations, warnings);
    (channels, operations)
}

fn read_v2(doc: &mut Document, warnings: &mut Vec<Warning>) -> (Vec<Channel>, Vec<Operation>) {
    let mut channels = Vec::new();
    let mut operations = Vec::new();
    for address in keys(doc.value(), "/channels") {
        let at = format!("/channels/{}", escape(&address));
        let ch = doc.resolved(&at);
        let params = address_params(&address)
            .into_iter()
            .map(|name| {
                let p = ch
                    .pointer(&format!("/parameters/{}", escape(&name)))
                    .cloned()
                    .unwrap_or(Value::Null);
                let schema = p.get("schema").cloned().unwrap_or(Value::Null);
                param(name, &schema)
            })
            .collect();
        let index = channels.len();
        let mut messages: Vec<MessageSpec> = Vec::new();
        // `subscribe`: the application sends; `publish`: it receives.
        for (key, send) in [("subscribe", true), ("publish", false)] {
            let Some(op) = ch.get(key) else {
                continue;
            };
            let oat = format!("{at}/{key}");
            let msgs: Vec<Value> = match op.get("message") {
                Some(m) => match m.get("oneOf").and_then(Value::as_array) {
                    Some(list) => list.clone(),
                    None => vec![m.clone()],
                },
                None => Vec::new(),
            };
            let mut mine = Vec::new();
            for (k, m) in msgs.iter().enumerate() {
                let name = m
                    .get("name")
                    .or_else(|| m.get("messageId"))
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{key}{}", k + 1));
                let existing = messages
                    .iter()
                    .position(|x| x.name == name && x.schema == m.get("payload").cloned());
                let i = match existing {
                    Some(i) => i,
                    None => {
                        messages.push(message(&name, m, &format!("{oat}/message"), warnings));
                        messages.len() - 1
                    }
                };
                mine.push(i);
            }
            if op.get("traits").is_some() {
                warnings.push(Warning {
                    pointer: format!("{oat}/traits"),
                    what: "operation traits are not applied".into(),
                });
            }
            let (qos, retain) = bindings(op, &oat, warnings);
            operations.push(Operation {
                id: op
                    .get("operationId")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("{key} {address}")),
                send,
                channel: index,
                messages: mine,
                qos,
                retain,
                reply: None,
            });
        }
        channels.push(Channel::new(address.clone(), &address, params, messages));
    }
    apply_bindings(&mut channels, &operations, warnings);
    (channels, operations)
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn param(name: String, p: &Value) -> Param {
    Param {
        name,
        enum_values: strings(p.get("enum")),
        default: p
            .get("default")
            .map(|d| d.as_str().map_or_else(|| d.to_string(), str::to_string)),
        examples: strings(p.get("examples")),
    }
}

fn message(name: &str, m: &Value, at: &str, warnings: &mut Vec<Warning>) -> MessageSpec {
    let name = m
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(name)
        .to_string();
    if m.get("traits").is_some() {
        warnings.push(Warning {
            pointer: format!("{at}/traits"),
            what: "message traits are not applied".into(),
        });
    }
    let mut payload = m.get("payload").cloned();
    let mut format = m
        .get("schemaFormat")
        .and_then(Value::as_str)
        .map(str::to_string);
    // 3.0: a multi-format schema object {schemaFormat, schema}.
    if let Some(p) = &payload
        && let (Some(f), Some(s)) = (p.get("schemaFormat"), p.get("schema"))
    {
        format = f.as_str().map(str::to_string);
        payload = Some(s.clone());
    }
    let json_schema = format.as_deref().is_none_or(|f| {
        f.starts_with("application/vnd.aai.asyncapi")
            || f.starts_with("application/schema+json")
            || f.starts_with("application/schema+yaml")
    });
    if !json_schema {
        warnings.push(Warning {
            pointer: format!("{at}/payload"),
            what: format!("schema format {format:?} is not JSON Schema: payloads are not checked"),
        });
        payload = None;
    }
    MessageSpec::new(name, payload, &format!("{at}/payload"), warnings)
}

/// An operation's MQTT binding: (qos, retain).
fn bindings(op: &Value, at: &str, warnings: &mut Vec<Warning>) -> (Option<u8>, Option<bool>) {
    let Some(mqtt) = op.pointer("/bindings/mqtt") else {
        return (None, None);
    };
    let qos = match mqtt.get("qos") {
        None => None,
        Some(q) => match q.as_u64() {
            Some(q @ 0..=2) => Some(q as u8),
            _ => {
                warnings.push(Warning {
                    pointer: format!("{at}/bindings/mqtt/qos"),
                    what: format!("qos {q}: expected 0, 1 or 2; not checked"),
                });
                None
            }
        },
    };
    (qos, mqtt.get("retain").and_then(Value::as_bool))
}

/// A channel's QoS and retain: what its operations bind, when they agree.
fn apply_bindings(channels: &mut [Channel], ops: &[Operation], warnings: &mut Vec<Warning>) {
    for (i, c) in channels.iter_mut().enumerate() {
        // What publishers must do: the sending operations' bindings (a
        // receiving one's QoS is its subscription's), or, when nobody in the
        // document sends here, the receivers'.
        let sends = ops.iter().any(|o| o.channel == i && o.send);
        let on: Vec<&Operation> = ops
            .iter()
            .filter(|o| o.channel == i && (o.send || !sends))
            .collect();
        let qos: Vec<u8> = on.iter().filter_map(|o| o.qos).collect();
        let retain: Vec<bool> = on.iter().filter_map(|o| o.retain).collect();
        if qos.windows(2).any(|w| w[0] != w[1]) {
            warnings.push(Warning {
                pointer: format!("/channels/{}", escape(&c.id)),
                what: format!(
                    "its operations bind different QoS levels ({qos:?}): QoS not checked"
                ),
            });
        } else {
            c.qos = qos.first().copied();
        }
        if retain.windows(2).all(|w| w[0] == w[1]) {
            c.retain = retain.first().copied();
        }
    }
}

/// `{$ref: '#/channels/<id>'}` → the channel's index.
fn channel_ref(v: Option<&Value>, ids: &[String]) -> Option<usize> {
    let r = v?.get("$ref")?.as_str()?;
    let id = r.strip_prefix("#/channels/")?;
    let id = id.replace("~1", "/").replace("~0", "~");
    ids.iter().position(|c| *c == id)
}

/// `[{$ref: '#/channels/<id>/messages/<m>'}]` → indices into the channel's messages.
fn message_refs(v: Option<&Value>, channel: &str, ids: &[String]) -> Vec<usize> {
    let prefix = format!("#/channels/{}/messages/", escape(channel));
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|m| {
                    let r = m.get("$ref")?.as_str()?;
                    let id = r
                        .strip_prefix(&prefix)?
                        .replace("~1", "/")
                        .replace("~0", "~");
                    ids.iter().position(|x| *x == id)
                })
                .collect()
        })
        .unwrap_or_default()
}
