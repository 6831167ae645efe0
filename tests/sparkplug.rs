//! Sparkplug B 3.0 against Eclipse Tahu's own payload library (npm
//! `sparkplug-payload`, installed by scripts/setup.sh) with MQTT.js, through
//! the real embedded broker and tap: a Tahu-based primary host that connects
//! *after* the workbench's edge node gets every metric by name once its
//! rebirth request is answered; a metric write reaches the device; `bdSeq`
//! pairs across an abrupt drop and the reconnect; Tahu-encoded payloads
//! decode to the same metrics; the Sparkplug checks judge a foreign
//! client's traffic on the wire.

mod common;

use common::*;
use mqtt_workbench::checks::VerdictState;
use mqtt_workbench::command::{Command, ScenarioSource};
use mqtt_workbench::fault::{DeviceAction, Target};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

/// The Tahu host (`tests/node/tahu_host.mjs`): its stdin, and its stdout lines as JSON.
struct TahuHost {
    _child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::sync::mpsc::Receiver<Value>,
}

impl TahuHost {
    fn start(port: u16, host_id: &str, group: &str) -> TahuHost {
        assert!(
            node_dir().join("node_modules/sparkplug-payload").is_dir(),
            "Eclipse Tahu's sparkplug-payload is missing: run scripts/setup.sh"
        );
        let url = format!("mqtt://127.0.0.1:{port}");
        let (mut child, lines) = node("tahu_host.mjs", &[&url, host_id, group]);
        let stdin = child.stdin.take().expect("piped");
        TahuHost {
            _child: child,
            stdin,
            lines,
        }
    }

    /// The next line with this step for which `pred` holds; an "error" line fails the test.
    async fn next(&mut self, step: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        next_step(&mut self.lines, step, secs, pred).await
    }

    async fn command(&mut self, cmd: Value) {
        let line = format!("{cmd}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("the Tahu host reads commands");
    }
}

const EDGE_NODE: &str = r#"Scenario(
    name: "edge node for Tahu",
    seed: 3,
    devices: [(
        id: "edge-1",
        keep_alive: "10s",
        sparkplug: EdgeNode(
            group: "plant",
            every: "1s",
            metrics: [(name: "Uptime", type: Int64, value: Sequence(start: 0.0, step: 1.0), units: "s")],
            devices: [(
                id: "pump-1",
                every: "200ms",
                metrics: [
                    (name: "Temperature", type: Float, value: Const(61.5), units: "°C"),
                    (name: "Setpoint", type: Double, value: Const(75.0), writable: true),
                    (name: "Mode", type: String, value: Const(1.0)),
                ],
            )],
        ),
    )],
    expect: [
        (name: "seq", check: Sparkplug(rule: Seq, group: "plant")),
        (name: "bdSeq", check: Sparkplug(rule: BdSeq, group: "plant")),
        (name: "birth first", check: Sparkplug(rule: BirthFirst, group: "plant")),
        (name: "aliases", check: Sparkplug(rule: Aliases, group: "plant")),
        (name: "rebirth", check: Sparkplug(rule: Rebirth, group: "plant", within: "3s")),
    ],
)"#;

async fn edge_node_rig() -> Rig {
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "edge-for-tahu.ron".into(),
        ron: EDGE_NODE.into(),
    })));
    rig.wait_for("the pump's DDATA on the wire", 15, |c| {
        c.topics
            .get("spBv1.0/plant/DDATA/edge-1/pump-1")
            .is_some_and(|t| t.published >= 2)
    })
    .await;
    rig
}

fn verdict(rig: &Rig, name: &str) -> (VerdictState, String) {
    let v = rig
        .model
        .checks
        .as_ref()
        .expect("the scenario's checks")
        .verdicts()
        .find(|v| v.name == name)
        .unwrap_or_else(|| panic!("no expectation {name:?}"));
    (v.state, v.evidence.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tahu_host_that_connects_late_gets_every_metric_by_name_and_bd_seq_pairs_across_a_drop() {
    let mut rig = edge_node_rig().await;
    // The host connects after the node's births: it sees DATA it cannot name and asks for a rebirth.
    let mut host = TahuHost::start(rig.port(), "scada", "plant");
    host.next("connected", 15, |_| true).await;
    host.next("rebirth", 10, |v| v["node"] == "plant/edge-1")
        .await;
    let nbirth = host.next("nbirth", 10, |_| true).await;
    assert_eq!(nbirth["seq"], 0, "{nbirth}");
    assert_eq!(
        nbirth["bdSeq"], 0,
        "the first MQTT session's bdSeq: {nbirth}"
    );
    assert!(nbirth["metrics"]["Uptime"].is_number(), "{nbirth}");
    assert_eq!(nbirth["metrics"]["Node Control/Rebirth"], false, "{nbirth}");
    let dbirth = host.next("dbirth", 10, |_| true).await;
    assert_eq!(dbirth["device"], "pump-1");
    assert_eq!(dbirth["metrics"]["Temperature"], 61.5, "{dbirth}");
    assert_eq!(dbirth["units"]["Temperature"], "°C", "{dbirth}");
    assert_eq!(dbirth["seq"], 1, "{dbirth}");
    // From now on every DDATA metric resolves by the BIRTH's aliases, seq without gaps.
    for _ in 0..3 {
        let d = host.next("ddata", 10, |_| true).await;
        assert_eq!(d["unresolved"], 0, "{d}");
        assert_eq!(d["gap"], false, "{d}");
        assert_eq!(d["metrics"]["Temperature"], 61.5, "{d}");
    }

    // A DCMD write from Tahu reaches the device: its next DDATA carries the value.
    host.command(json!({"write": {"node": "plant/edge-1", "device": "pump-1",
        "metric": "Setpoint", "type": "Double", "value": 42.5}}))
        .await;
    host.next("ddata", 10, |d| d["metrics"]["Setpoint"] == 42.5)
        .await;

    // Abrupt drop: the broker publishes the NDEATH will, with the birth's bdSeq.
    assert!(rig.handle.send(Command::Device(
        Target::Device("edge-1".into()),
        DeviceAction::Drop
    )));
    let death = host.next("ndeath", 10, |_| true).await;
    assert_eq!(death["bdSeq"], 0, "{death}");
    assert_eq!(death["birth_bdSeq"], 0, "{death}");
    // The next MQTT session: the will and the NBIRTH carry bdSeq 1.
    assert!(rig.handle.send(Command::Device(
        Target::Device("edge-1".into()),
        DeviceAction::Reconnect
    )));
    let reborn = host.next("nbirth", 15, |_| true).await;
    assert_eq!(reborn["bdSeq"], 1, "{reborn}");
    assert_eq!(reborn["seq"], 0, "{reborn}");

    // The Sparkplug view's model saw the same: node online, bdSeq 1, the pump's metrics by name.
    rig.wait_model("the view shows the new session", 10, |m| {
        m.sparkplug
            .nodes
            .get(&("plant".to_string(), "edge-1".to_string()))
            .is_some_and(|n| n.online && n.bd_seq == Some(1))
    })
    .await;
    let node = &rig.model.sparkplug.nodes[&("plant".to_string(), "edge-1".to_string())];
    let names: Vec<&str> = node.devices["pump-1"]
        .metrics
        .iter()
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(names, ["Temperature", "Setpoint", "Mode"]);
    assert_eq!(
        node.devices["pump-1"].metrics[0].units.as_deref(),
        Some("°C")
    );
    assert!(rig.model.sparkplug.hosts["scada"].online);
    // The rules held on the wire through it all (no check has failed).
    for name in ["seq", "bdSeq", "birth first", "aliases", "rebirth"] {
        let (state, evidence) = verdict(&rig, name);
        assert_ne!(state, VerdictState::Failed, "{name}: {evidence}");
    }
    assert_eq!(rig.model.sparkplug.rebirths_answered, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tahu_encoded_payloads_decode_to_the_same_metrics_and_the_checks_judge_a_foreign_client() {
    let mut rig = edge_node_rig().await;
    // It watches another group: Tahu 1.0.3's own decoder refuses the Int32
    // cells of the data set it encodes ("Invalid DataSetValue").
    let mut tahu = TahuHost::start(rig.port(), "tahu-1", "elsewhere");
    tahu.next("connected", 15, |_| true).await;
    // Tahu encodes metadata, property sets, a data set, a template, dates and unsigned types.
    let payload = json!({
        "timestamp": 1_700_000_000_000u64,
        "seq": 0,
        "metrics": [
            {"name": "bdSeq", "type": "Int64", "value": 0},
            {"name": "Pressure", "alias": 7, "type": "Double", "value": 2.25,
             "properties": {"engUnit": {"type": "String", "value": "bar"},
                            "engHigh": {"type": "Double", "value": 10.0}}},
            {"name": "Firmware", "type": "Bytes", "value": [1, 2, 3],
             "metadata": {"contentType": "application/octet-stream", "size": 3,
                          "fileName": "fw.bin", "description": "image"}},
            {"name": "Counter", "type": "UInt32", "value": 4000000000u64},
            {"name": "Offset", "type": "Int16", "value": -12},
            {"name": "Table", "type": "DataSet", "value": {
                "numOfColumns": 2, "types": ["String", "Int32"], "columns": ["name", "count"],
                "rows": [["a", 1], ["b", -2]]}},
            {"name": "Motor", "type": "Template", "value": {
                "version": "1.0", "templateRef": "MotorType", "isDefinition": false,
                "parameters": [{"name": "rating", "type": "Int32", "value": 400}],
                "metrics": [{"name": "RPM", "type": "Float", "value": 1450.5}]}},
        ]
    });
    let topic = "spBv1.0/lab/NBIRTH/tahu-node";
    tahu.command(json!({"publish": {"topic": topic, "payload": payload}}))
        .await;
    tahu.next("published", 10, |_| true).await;
    rig.wait_for("Tahu's NBIRTH on the wire", 10, |c| {
        c.topics.get(topic).is_some_and(|t| t.published >= 1)
    })
    .await;
    let bytes = rig.model.capture.topics[topic].last_payload.clone();
    let v = rig
        .model
        .decoders
        .decode(topic, &bytes)
        .expect("our decoder reads Tahu's payload");
    let m = &v["metrics"];
    assert_eq!(v["seq"], 0, "{v}");
    assert_eq!(m["Pressure"]["value"], 2.25, "{v}");
    assert_eq!(m["Pressure"]["alias"], 7, "{v}");
    assert_eq!(m["Pressure"]["properties"]["engUnit"], "bar", "{v}");
    assert_eq!(m["Pressure"]["properties"]["engHigh"], 10.0, "{v}");
    assert_eq!(m["Firmware"]["metadata"]["file_name"], "fw.bin", "{v}");
    assert_eq!(m["Firmware"]["metadata"]["size"], 3, "{v}");
    assert_eq!(m["Counter"]["value"], 4_000_000_000u64, "{v}");
    assert_eq!(m["Counter"]["type"], "UInt32", "{v}");
    assert_eq!(m["Offset"]["value"], -12, "{v}");
    assert_eq!(
        m["Table"]["value"]["columns"],
        json!(["name", "count"]),
        "{v}"
    );
    assert_eq!(
        m["Table"]["value"]["rows"],
        json!([["a", 1], ["b", -2]]),
        "{v}"
    );
    assert_eq!(m["Motor"]["value"]["template_ref"], "MotorType", "{v}");
    assert_eq!(m["Motor"]["value"]["parameters"]["rating"], 400, "{v}");
    assert_eq!(
        m["Motor"]["value"]["metrics"]["RPM"]["value"], 1450.5,
        "{v}"
    );
    // The view lists Tahu's node (not a virtual one) with its units.
    rig.wait_model("Tahu's node in the Sparkplug view", 10, |m| {
        m.sparkplug
            .nodes
            .contains_key(&("lab".to_string(), "tahu-node".to_string()))
    })
    .await;
    let node = &rig.model.sparkplug.nodes[&("lab".to_string(), "tahu-node".to_string())];
    let pressure = node
        .metrics
        .iter()
        .find(|x| x.name == "Pressure")
        .expect("Pressure listed");
    assert_eq!(pressure.units.as_deref(), Some("bar"));

    // A foreign node breaking the rules: DDATA from a node that was never born.
    let rogue = "spBv1.0/plant/DDATA/rogue/dev";
    tahu.command(json!({"publish": {"topic": rogue, "payload": {
        "timestamp": 1, "seq": 3, "metrics": [{"name": "x", "type": "Int32", "value": 1}]}}}))
        .await;
    tahu.next("published", 10, |_| true).await;
    rig.wait_model("the birth-first check fails on the rogue DDATA", 10, |m| {
        m.checks.as_ref().is_some_and(|c| {
            c.verdicts()
                .any(|v| v.name == "birth first" && v.state == VerdictState::Failed)
        })
    })
    .await;
    let (_, evidence) = verdict(&rig, "birth first");
    assert!(evidence.contains("tahu-1"), "{evidence}");
    assert!(evidence.contains(rogue), "{evidence}");
    assert!(evidence.contains("before its NBIRTH"), "{evidence}");
    // The workbench's own edge node broke nothing.
    for name in ["seq", "bdSeq", "aliases"] {
        let (state, evidence) = verdict(&rig, name);
        assert_ne!(state, VerdictState::Failed, "{name}: {evidence}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_primary_host_asks_a_tahu_edge_node_for_a_rebirth_and_keeps_state_retained() {
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "host.ron".into(),
        ron: r#"Scenario(name: "host", devices: [
            (id: "scada-1", sparkplug: PrimaryHost(id: "scada", groups: ["lab"], rebirth_every: "1s")),
        ], expect: [(name: "state", check: Sparkplug(rule: State))])"#
            .into(),
    })));
    rig.wait_for("the host's STATE birth", 15, |c| {
        c.topics
            .get("spBv1.0/STATE/scada")
            .is_some_and(|t| t.retained.is_some())
    })
    .await;
    // A Tahu-encoded edge node in the host's group sends DATA the host has no birth for.
    let mut tahu = TahuHost::start(rig.port(), "tahu-edge", "lab");
    tahu.next("connected", 15, |_| true).await;
    tahu.command(
        json!({"publish": {"topic": "spBv1.0/lab/NDATA/tahu-node", "payload": {
        "timestamp": 1, "seq": 4, "metrics": [{"alias": 9, "type": "Double", "value": 1.5}]}}}),
    )
    .await;
    // Tahu decodes the host's answer: NCMD Node Control/Rebirth = true.
    let ncmd = tahu
        .next("ncmd", 10, |v| v["node"] == "lab/tahu-node")
        .await;
    assert_eq!(ncmd["metrics"]["Node Control/Rebirth"], true, "{ncmd}");
    // The STATE birth is retained at QoS 1 with the 3.0 JSON payload.
    let state = rig
        .model
        .capture
        .messages()
        .find(|(_, e)| {
            e.topic.as_deref() == Some("spBv1.0/STATE/scada")
                && e.dir == mqtt_workbench::wire::Direction::ClientToBroker
        })
        .map(|(_, e)| e.clone())
        .expect("the STATE birth on the wire");
    assert!(state.retain && state.qos == 1, "{state:?}");
    let body: Value =
        serde_json::from_slice(state.payload.as_deref().unwrap_or_default()).expect("JSON STATE");
    assert_eq!(body["online"], true);
    assert!(body["timestamp"].is_u64(), "{body}");
    assert!(rig.model.sparkplug.hosts["scada"].online);
    assert_ne!(verdict(&rig, "state").0, VerdictState::Failed);
}
