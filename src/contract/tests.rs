//! The contract's reading of 3.0 and 2.6 documents, its checks, the
//! scenario it imports as and the document inferred from traffic.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use super::*;
use crate::wire::{ConnId, Direction, PacketKind, WireEvent};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/asyncapi")
        .join(name)
}

const GOOD: &str = r#"{"temperature": 4.5, "door": "closed", "ts": "2026-12-04T10:00:00Z", "compressor": {"rpm": 1200, "on": true}}"#;

#[test]
fn a_3_0_document_reads_with_its_references_bindings_and_reply() {
    let c = Contract::load(&fixture("fridges-3.0.yaml")).unwrap();
    assert_eq!(c.version, "3.0.0");
    assert_eq!(c.title, "Fridge fleet");
    let addresses: Vec<&str> = c.channels.iter().map(|c| &*c.address).collect();
    assert!(
        addresses.contains(&"fridges/{fridgeId}/reading"),
        "{addresses:?}"
    );
    let reading = c.channel_for("fridges/fridge-7/reading").unwrap();
    assert_eq!(reading.qos, Some(0));
    assert_eq!(reading.retain, Some(false));
    assert_eq!(
        reading.params_of("fridges/fridge-7/reading").unwrap(),
        vec![("fridgeId".to_string(), "fridge-7".to_string())]
    );
    // The payload schema came from schemas/reading.json through two $refs.
    let schema = reading.messages[0].schema.as_ref().unwrap();
    assert_eq!(
        schema["properties"]["compressor"]["properties"]["rpm"]["maximum"],
        4000
    );
    let status = c.channel_for("fridges/f1/status").unwrap();
    assert_eq!((status.qos, status.retain), (Some(1), Some(true)));
    // The reply channel is more specific than nothing else: cmd/reply is its own channel.
    assert_eq!(
        &*c.channel_for("fridges/f1/cmd/reply").unwrap().address,
        "fridges/{fridgeId}/cmd/reply"
    );
    let receive = c
        .operations
        .iter()
        .find(|o| o.id == "receiveCommand")
        .unwrap();
    assert!(!receive.send);
    let reply = receive.reply.as_ref().unwrap();
    assert_eq!(
        &*c.channels[reply.channel].address,
        "fridges/{fridgeId}/cmd/reply"
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn a_2_6_document_reads_the_same_channels_with_subscribe_as_send() {
    let c = Contract::load(&fixture("fridges-2.6.yaml")).unwrap();
    assert_eq!(c.version, "2.6.0");
    let send: Vec<&str> = c
        .operations
        .iter()
        .filter(|o| o.send)
        .map(|o| o.id.as_str())
        .collect();
    assert_eq!(send, vec!["sendReading", "sendStatus"]);
    let cmd = c.channel_for("fridges/f1/cmd").unwrap();
    assert_eq!(cmd.messages.len(), 2, "oneOf gives both messages");
    // Either message conforms; neither: the closest one's errors.
    assert!(
        c.check("fridges/f1/cmd", br#"{"setpoint": 3}"#, 1, false)
            .conforms()
    );
    assert!(
        c.check("fridges/f1/cmd", br#"{"defrost": true}"#, 1, false)
            .conforms()
    );
    let bad = c.check("fridges/f1/cmd", br#"{"setpoint": 30}"#, 1, false);
    assert_eq!(bad.violations[0].keyword, "maximum", "{bad:?}");
    assert_eq!(bad.violations[0].pointer, "/setpoint");
}

#[test]
fn check_names_the_pointer_and_keyword_of_what_broke() {
    let c = Contract::load(&fixture("fridges-3.0.yaml")).unwrap();
    let ok = c.check("fridges/fridge-1/reading", GOOD.as_bytes(), 0, false);
    assert!(ok.conforms(), "{ok:?}");
    assert_eq!(ok.channel.as_deref(), Some("fridges/{fridgeId}/reading"));
    // A missing field, a wrong type, a wrong QoS, a date that is not one.
    let missing = c.check(
        "fridges/fridge-1/reading",
        br#"{"temperature": 4.5, "door": "closed", "ts": "2026-12-04T10:00:00Z"}"#,
        0,
        false,
    );
    assert_eq!(missing.violations[0].keyword, "required");
    assert_eq!(missing.violations[0].pointer, "");
    assert!(
        missing.violations[0].message.contains("compressor"),
        "{missing:?}"
    );
    let wrong = c.check(
        "fridges/fridge-1/reading",
        GOOD.replace("1200", "\"fast\"").as_bytes(),
        0,
        false,
    );
    assert_eq!(
        (
            wrong.violations[0].pointer.as_str(),
            wrong.violations[0].keyword.as_str()
        ),
        ("/compressor/rpm", "type")
    );
    let qos = c.check("fridges/fridge-1/reading", GOOD.as_bytes(), 1, false);
    assert_eq!(qos.violations.len(), 1);
    assert_eq!(qos.violations[0].keyword, "qos");
    let date = c.check(
        "fridges/fridge-1/reading",
        GOOD.replace("2026-12-04T10:00:00Z", "yesterday").as_bytes(),
        0,
        false,
    );
    assert_eq!(date.violations[0].keyword, "format", "{date:?}");
    // Text payloads are JSON strings to the schema; binary is named as such.
    assert!(c.check("fridges/f/status", b"online", 1, true).conforms());
    assert_eq!(
        c.check("fridges/f/status", b"melting", 1, true).violations[0].keyword,
        "enum"
    );
    assert_eq!(
        c.check("fridges/f/status", &[0xff, 0x00], 1, true)
            .violations[0]
            .keyword,
        "json"
    );
    // Undeclared topics have no channel.
    let none = c.check("freezers/f1/reading", GOOD.as_bytes(), 0, false);
    assert!(none.channel.is_none() && none.violations.is_empty() && !none.conforms());
}

#[test]
fn unsupported_constructs_are_warnings_with_their_pointer_and_bad_files_are_located() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("api.yaml");
    std::fs::write(
        &p,
        "asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\nchannels:\n  a:\n    address: a/{x}\n    parameters:\n      x: {location: '$message.payload#/x'}\n    messages:\n      m:\n        payload: {$ref: 'https://example.com/s.json'}\n  dyn:\n    address: null\noperations:\n  o:\n    action: send\n    channel: {$ref: '#/channels/a'}\n    traits: [{}]\n",
    )
    .unwrap();
    let c = Contract::load(&p).unwrap();
    let w: Vec<String> = c.warnings.iter().map(|w| w.to_string()).collect();
    for want in [
        "#/channels/a/parameters/x/location",
        "#/channels/dyn",
        "#/operations/o/traits",
        "remote references are not fetched",
    ] {
        assert!(w.iter().any(|w| w.contains(want)), "{want} not in {w:#?}");
    }
    std::fs::write(&p, "asyncapi: 3.0.0\nchannels: [a, b\n").unwrap();
    let e = Contract::load(&p).unwrap_err();
    assert!(e.line >= 2 && e.message.contains("YAML"), "{e}");
    std::fs::write(&p, "openapi: 3.1.0\n").unwrap();
    assert!(
        Contract::load(&p)
            .unwrap_err()
            .message
            .contains("not an AsyncAPI document")
    );
}

#[test]
fn references_that_fan_out_stop_at_a_bound_with_a_warning() {
    // S0 refers to S1 twice, S1 to S2 twice, …: 2^40 values if expanded.
    let mut schemas = serde_json::Map::new();
    for k in 0..40 {
        let next = serde_json::json!({"$ref": format!("#/components/schemas/S{}", k + 1)});
        schemas.insert(
            format!("S{k}"),
            serde_json::json!({"type": "object", "properties": {"a": next, "b": next}}),
        );
    }
    schemas.insert("S40".into(), serde_json::json!({"type": "number"}));
    let doc = serde_json::json!({
        "asyncapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "channels": {"c": {"address": "c", "messages": {"m": {"payload": {"$ref": "#/components/schemas/S0"}}}}},
        "components": {"schemas": schemas},
    });
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fan.json");
    std::fs::write(&p, doc.to_string()).unwrap();
    let c = Contract::load(&p).unwrap();
    assert!(
        c.warnings.iter().any(|w| w.what.contains("grows past")),
        "{:?}",
        c.warnings
    );
    assert_eq!(
        c.warnings
            .iter()
            .filter(|w| w.what.contains("grows past"))
            .count(),
        1
    );
}

#[test]
fn recursive_references_stop_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("api.json");
    std::fs::write(
        &p,
        r##"{"asyncapi": "3.0.0", "info": {"title": "t", "version": "1"},
            "channels": {"tree": {"address": "tree", "messages": {"node": {"payload": {"$ref": "#/components/schemas/Node"}}}}},
            "components": {"schemas": {"Node": {"type": "object", "properties": {"child": {"$ref": "#/components/schemas/Node"}}}}}}"##,
    )
    .unwrap();
    let c = Contract::load(&p).unwrap();
    assert!(
        c.warnings
            .iter()
            .any(|w| w.what.contains("refers back to itself")),
        "{:?}",
        c.warnings
    );
    assert!(
        c.check("tree", br#"{"child": {"child": 1}}"#, 0, false)
            .conforms()
    );
    assert!(!c.check("tree", b"3", 0, false).conforms());
}

fn publish(
    t_us: u64,
    client: &str,
    topic: &str,
    payload: &str,
    qos: u8,
    retain: bool,
) -> WireEvent {
    let mut e = WireEvent::new(
        t_us,
        1 as ConnId,
        Arc::from(client),
        Direction::ClientToBroker,
        PacketKind::Publish,
    );
    e.topic = Some(Arc::from(topic));
    e.payload = Some(Bytes::from(payload.to_string()));
    e.qos = qos;
    e.retain = retain;
    e
}

#[test]
fn inferred_documents_find_parameters_schemas_bindings_and_read_back() {
    let mut events = Vec::new();
    for i in 1..=3 {
        for k in 0..10 {
            let car = format!("car-{i}");
            events.push(publish(
                k,
                &car,
                &format!("cars/{car}/telemetry"),
                &format!(
                    r#"{{"battery": {}, "state": "{}", "at": "2026-12-04T10:00:0{}Z"}}"#,
                    50 + k,
                    ["idle", "booked"][k as usize % 2],
                    k % 10
                ),
                0,
                false,
            ));
            events.push(publish(
                k,
                &car,
                &format!("cars/{car}/status"),
                "available",
                1,
                true,
            ));
        }
    }
    let mut d = publish(
        20,
        "fleet-manager",
        "cars/car-1/status",
        "available",
        1,
        true,
    );
    d.dir = Direction::BrokerToClient;
    events.push(d);
    let yaml = infer_yaml(&events, &InferOptions::default());
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("spec.yaml");
    std::fs::write(&p, &yaml).unwrap();
    let c = Contract::load(&p).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    let tele = c
        .channel_for("cars/car-9/telemetry")
        .unwrap_or_else(|| panic!("{yaml}"));
    assert_eq!(&*tele.address, "cars/{carId}/telemetry");
    let schema = tele.messages[0].schema.as_ref().unwrap();
    assert_eq!(schema["properties"]["battery"]["type"], "integer", "{yaml}");
    assert_eq!(schema["properties"]["battery"]["minimum"], 50);
    assert_eq!(schema["properties"]["battery"]["maximum"], 59);
    assert_eq!(
        schema["properties"]["state"]["enum"],
        serde_json::json!(["booked", "idle"])
    );
    assert_eq!(schema["properties"]["at"]["format"], "date-time");
    assert_eq!(schema["required"].as_array().unwrap().len(), 3);
    let status = c.channel_for("cars/car-1/status").unwrap();
    assert_eq!((status.qos, status.retain), (Some(1), Some(true)));
    assert!(c.operations.iter().any(|o| {
        !o.send
            && o.channel
                == c.channels
                    .iter()
                    .position(|x| x.address == status.address)
                    .unwrap()
    }));
    // What it saw conforms to what it wrote; a different shape does not.
    for e in &events[..events.len() - 1] {
        let m = c.check(
            e.topic.as_deref().unwrap(),
            e.payload.as_deref().unwrap(),
            e.qos,
            e.retain,
        );
        assert!(m.conforms(), "{m:?}");
    }
    assert!(
        !c.check("cars/car-1/telemetry", br#"{"battery": "low"}"#, 0, false)
            .conforms()
    );
}

#[test]
fn inferred_documents_accept_the_traffic_they_came_from_binary_long_texts_and_long_arrays() {
    let mut events = Vec::new();
    for k in 0..5u64 {
        let mut e = publish(k, "edge", "spBv1.0/plant/DDATA/edge-1", "", 0, false);
        e.payload = Some(Bytes::from(vec![0xff, k as u8, 0]));
        events.push(e);
        // A date-time without its offset is not JSON Schema's date-time; a long text is no enum value.
        let body = format!(
            r#"{{"at": "2026-12-04T10:00:0{k}", "msg": "{}"}}"#,
            "x".repeat(300)
        );
        events.push(publish(k, "app", "logs/app", &body, 0, false));
    }
    // Past the first hundred items, too.
    events.push(publish(
        9,
        "app",
        "arrays/a",
        &format!("[{}5]", "0,".repeat(150)),
        0,
        false,
    ));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("spec.yaml");
    std::fs::write(&p, infer_yaml(&events, &InferOptions::default())).unwrap();
    let c = Contract::load(&p).unwrap();
    for e in &events {
        let m = c.check(
            e.topic.as_deref().unwrap(),
            e.payload.as_deref().unwrap(),
            e.qos,
            e.retain,
        );
        assert!(m.conforms(), "{:?}: {m:?}", e.topic);
    }
    // Binary where the schema asks for an object: a violation.
    assert!(c.channel_for("logs/app").is_some());
    assert_eq!(
        c.check("logs/app", &[0xff, 0xfe], 0, false).violations[0].keyword,
        "json"
    );
}

#[test]
fn a_receivers_qos_binding_is_not_asked_of_the_publishers() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("api.yaml");
    std::fs::write(
        &p,
        "asyncapi: 3.0.0\ninfo: {title: t, version: '1'}\nchannels:\n  t:\n    address: t\n    messages:\n      m: {payload: {type: number}}\noperations:\n  pub:\n    action: send\n    channel: {$ref: '#/channels/t'}\n    bindings: {mqtt: {qos: 0}}\n  sub:\n    action: receive\n    channel: {$ref: '#/channels/t'}\n    bindings: {mqtt: {qos: 1}}\n",
    )
    .unwrap();
    let c = Contract::load(&p).unwrap();
    assert_eq!(c.channels[0].qos, Some(0));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.check("t", b"1", 0, false).conforms());
}
