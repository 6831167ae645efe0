//! AsyncAPI contracts through the real parts: a fleet imported from a
//! document runs through the embedded broker and the tap and conforms; a
//! backend (mosquitto_pub, a third-party client) that breaks the contract is
//! marked on its frames with the JSON pointer and the keyword; `test --spec`
//! writes a JUnit testcase per channel; a document inferred from a run is
//! valid for the official AsyncAPI parser (@asyncapi/parser, installed by
//! scripts/setup.sh) and, imported again, its traffic conforms.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{Rig, mosquitto};
use mqtt_workbench::command::{Command, ScenarioSource};
use mqtt_workbench::contract::{ChannelTally, Contract, Tally};
use mqtt_workbench::scenario::ImportOptions;
use mqtt_workbench::wire::{Direction, PacketKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/asyncapi")
        .join(name)
}

fn channel<'a>(t: &'a Tally, address: &str) -> &'a ChannelTally {
    &t.channels
        .iter()
        .find(|(a, _)| &**a == address)
        .unwrap_or_else(|| panic!("no channel {address}"))
        .1
}

const READING: &str = "fridges/{fridgeId}/reading";
const STATUS: &str = "fridges/{fridgeId}/status";

async fn backend_publish(port: u16, topic: &str, payload: &str, extra: &[&str]) {
    let mut args = vec!["-i", "backend", "-t", topic, "-m", payload];
    args.extend_from_slice(extra);
    let out = tokio::time::timeout(
        Duration::from_secs(10),
        mosquitto("mosquitto_pub", "mqttv311", port, &args).output(),
    )
    .await
    .expect("mosquitto_pub ends")
    .expect("mosquitto_pub runs (scripts/setup.sh installs mosquitto-clients)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_imported_fleet_conforms_and_a_backend_breaking_the_contract_is_marked_where_it_happened()
 {
    let mut rig = Rig::start().await;
    let contract = Contract::load(&fixture("fridges-3.0.yaml")).expect("the document reads");
    let imported = mqtt_workbench::scenario::import_contract(
        &contract,
        "fridges-3.0.yaml",
        ImportOptions {
            count: 2,
            every_s: 1,
        },
    );
    rig.handle
        .commands
        .send(Command::LoadScenario(ScenarioSource::Text {
            origin: fixture("imported.ron"),
            ron: imported.ron,
        }))
        .await
        .expect("the engine takes commands");
    rig.wait_model(
        "the fleet's readings, statuses and a command's reply",
        30,
        |m| {
            m.contract.as_ref().is_some_and(|t| {
                channel(t, READING).messages >= 4
                    && channel(t, STATUS).messages >= 2
                    && channel(t, "fridges/{fridgeId}/cmd/reply").messages >= 1
            })
        },
    )
    .await;
    let port = rig.port();
    // Your backend, a third-party client, breaks the contract three ways and
    // publishes on a topic the document does not declare.
    let wrong_type = r#"{"temperature": "cold", "door": "closed", "ts": "2026-12-04T10:00:00Z", "compressor": {"rpm": 1, "on": true}}"#;
    backend_publish(port, "fridges/fridge-1/reading", wrong_type, &[]).await;
    backend_publish(
        port,
        "fridges/fridge-1/reading",
        r#"{"temperature": 3}"#,
        &[],
    )
    .await;
    backend_publish(port, "fridges/fridge-1/status", "online", &["-r"]).await;
    backend_publish(port, "fridges/fridge-1/debug", "x", &[]).await;
    rig.wait_model("the backend's frames marked", 15, |m| {
        m.contract.as_ref().is_some_and(|t| {
            t.undeclared
                .keys()
                .any(|k| &**k == "fridges/fridge-1/debug")
        })
    })
    .await;

    let marks: Vec<_> = rig
        .model
        .capture
        .messages()
        .filter(|(_, e)| e.kind == PacketKind::Publish && e.dir == Direction::ClientToBroker)
        .map(|(seq, e)| (seq, e.clone()))
        .collect();
    let mut fleet = 0;
    for (_, e) in marks.iter().filter(|(_, e)| &*e.client_id != "backend") {
        let m = e.contract.as_deref().expect("every publish is marked");
        assert!(m.conforms(), "{} on {:?}: {m:?}", e.client_id, e.topic);
        fleet += 1;
    }
    assert!(fleet >= 7, "{fleet} fleet publishes");
    let backend: Vec<_> = marks
        .iter()
        .filter(|(_, e)| &*e.client_id == "backend")
        .collect();
    assert_eq!(backend.len(), 4);
    let what = |i: usize| {
        let m = backend[i].1.contract.as_deref().expect("marked");
        m.violations
            .iter()
            .map(|v| (v.pointer.as_str(), v.keyword.as_str()))
            .collect::<Vec<_>>()
    };
    assert_eq!(what(0), vec![("/temperature", "type")]);
    assert_eq!(
        what(1),
        vec![("", "required"); 3],
        "door, ts, compressor missing"
    );
    assert_eq!(what(2), vec![("", "qos")]);
    assert!(
        backend[3]
            .1
            .contract
            .as_deref()
            .is_some_and(|m| m.channel.is_none())
    );

    // The Contract view's counts, with the first offending frame.
    let t = rig.model.contract.as_ref().expect("a tally");
    let reading = channel(t, READING);
    assert_eq!(reading.violations, 2);
    let first = reading.first.as_ref().expect("the first offence");
    assert_eq!((&*first.client, first.seq), ("backend", backend[0].0));
    assert_eq!(channel(t, STATUS).violations, 1);
    // The checks failed on that frame, with the evidence.
    let checks = rig
        .model
        .checks
        .as_ref()
        .expect("the imported scenario's checks");
    let v = checks
        .verdicts()
        .find(|v| v.name == format!("{READING} conforms"))
        .expect("a check per channel");
    assert_eq!(v.state, mqtt_workbench::checks::VerdictState::Failed);
    assert_eq!(v.seq, Some(backend[0].0));
    assert!(
        v.evidence.contains("backend") && v.evidence.contains("/temperature type"),
        "{}",
        v.evidence
    );
    // The export says it too.
    let row = mqtt_workbench::export::ExportRow::from_event(&backend[0].1);
    assert!(
        row.contract.starts_with("/temperature type"),
        "{}",
        row.contract
    );
}

/// Run the binary with `args` (ended after `limit`): exit status and stdout + stderr.
fn cli(args: &[&str], limit: Duration) -> (bool, String) {
    let out = common::output_within(args, limit);
    (
        out.status.success(),
        format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The official AsyncAPI parser's verdict on `files`.
fn asyncapi_parser(files: &[&Path]) -> (bool, String) {
    let node = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node");
    assert!(
        node.join("node_modules/@asyncapi/parser").is_dir(),
        "@asyncapi/parser is missing: run scripts/setup.sh"
    );
    let out = std::process::Command::new("node")
        .arg(node.join("asyncapi_validate.mjs"))
        .args(files)
        .output()
        .expect("node runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn the_test_documents_are_valid_for_the_official_parser() {
    let (ok, text) = asyncapi_parser(&[
        &fixture("fridges-3.0.yaml"),
        &fixture("fridges-2.6.yaml"),
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fridges.asyncapi.yaml"),
    ]);
    assert!(ok, "{text}");
    assert_eq!(text.matches(": valid AsyncAPI").count(), 3, "{text}");
}

#[test]
fn test_spec_writes_a_testcase_per_channel_and_fails_on_the_backend_that_broke_it() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // A backend that publishes a status at the wrong QoS, and a fridge that gets it right.
    let scenario = dir.path().join("backend.ron");
    std::fs::write(
        &scenario,
        r#"Scenario(name: "backend", devices: [
            (id: "backend", publish: [(topic: "fridges/fridge-1/status", every: "500ms", qos: 0, retain: true, payload: Text("online"))]),
            (id: "fridge-2", publish: [(topic: "fridges/fridge-2/status", every: "500ms", qos: 1, retain: true, payload: Text("online"))]),
        ])"#,
    )
    .expect("written");
    let junit = dir.path().join("junit.xml");
    let spec = fixture("fridges-2.6.yaml");
    let (ok, text) = cli(
        &[
            "test",
            scenario.to_str().expect("utf-8"),
            "--spec",
            spec.to_str().expect("utf-8"),
            "--duration",
            "3s",
            "--port",
            "0",
            "--junit",
            junit.to_str().expect("utf-8"),
        ],
        Duration::from_secs(60),
    );
    assert!(!ok, "a broken contract fails the command\n{text}");
    let xml = std::fs::read_to_string(&junit).expect("a JUnit report");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit XML");
    let cases: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .collect();
    let names: Vec<&str> = cases.iter().filter_map(|c| c.attribute("name")).collect();
    assert_eq!(
        names,
        vec![
            "fridges/{fridgeId}/cmd conforms",
            "fridges/{fridgeId}/reading conforms",
            "fridges/{fridgeId}/status conforms"
        ],
        "{xml}"
    );
    let status = cases
        .iter()
        .find(|c| c.attribute("name") == Some("fridges/{fridgeId}/status conforms"))
        .expect("the status testcase");
    let failure = status
        .children()
        .find(|n| n.has_tag_name("failure"))
        .expect("the status channel failed");
    let evidence = format!(
        "{}{}",
        failure.attribute("message").unwrap_or(""),
        failure.text().unwrap_or("")
    );
    assert!(
        evidence.contains("backend")
            && evidence.contains("QoS 0")
            && evidence.contains("binds QoS 1"),
        "{evidence}"
    );
    // Nobody published readings: not triggered, skipped rather than failed.
    let reading = cases
        .iter()
        .find(|c| c.attribute("name") == Some("fridges/{fridgeId}/reading conforms"))
        .expect("the reading testcase");
    assert!(
        reading.children().any(|n| n.has_tag_name("skipped")),
        "{xml}"
    );
}

#[test]
fn import_2_6_and_3_0_then_the_fleet_passes_its_own_checks() {
    let dir = tempfile::tempdir().expect("a temp dir");
    for spec in ["fridges-3.0.yaml", "fridges-2.6.yaml"] {
        let out = dir.path().join(format!("{spec}.ron"));
        let (ok, text) = cli(
            &[
                "import",
                fixture(spec).to_str().expect("utf-8"),
                "-o",
                out.to_str().expect("utf-8"),
                "--count",
                "2",
                "--every",
                "1",
            ],
            Duration::from_secs(30),
        );
        assert!(ok, "{text}");
        let ron = std::fs::read_to_string(&out).expect("the scenario");
        assert!(ron.contains("Conforms(spec:"), "{ron}");
        let (ok, text) = cli(
            &[
                "test",
                out.to_str().expect("utf-8"),
                "--duration",
                "4s",
                "--port",
                "0",
            ],
            Duration::from_secs(60),
        );
        assert!(ok, "{spec}: {text}");
        assert!(
            text.contains("0 of ") && text.contains("PASS"),
            "{spec}: {text}"
        );
    }
}

#[test]
fn a_document_inferred_from_a_run_is_valid_asyncapi_and_its_import_conforms() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let capture = dir.path().join("capture.jsonl");
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/car-sharing.ron");
    let (ok, text) = cli(
        &[
            "run",
            scenario.to_str().expect("utf-8"),
            "--duration",
            "6s",
            "--port",
            "0",
            "--record",
            capture.to_str().expect("utf-8"),
        ],
        Duration::from_secs(90),
    );
    assert!(ok, "{text}");
    let spec = dir.path().join("inferred.yaml");
    let (ok, text) = cli(
        &[
            "infer",
            capture.to_str().expect("utf-8"),
            "-o",
            spec.to_str().expect("utf-8"),
        ],
        Duration::from_secs(30),
    );
    assert!(ok, "{text}");
    let (ok, text) = asyncapi_parser(&[&spec]);
    assert!(
        ok,
        "{text}\n{}",
        std::fs::read_to_string(&spec).unwrap_or_default()
    );
    let contract = Contract::load(&spec).expect("it reads back");
    let addresses: Vec<&str> = contract.channels.iter().map(|c| &*c.address).collect();
    for want in [
        "bus/cars/{carId}/status",
        "bus/cars/{carId}/telemetry",
        "bus/cars/{carId}/cmd",
    ] {
        assert!(addresses.contains(&want), "{want} in {addresses:?}");
    }
    let tele = contract
        .channel_for("bus/cars/car-1/telemetry")
        .expect("telemetry");
    let schema = tele.messages[0].schema.as_ref().expect("a schema");
    assert_eq!(
        schema["properties"]["battery"]["type"], "number",
        "{schema}"
    );
    assert!(
        schema["required"].as_array().is_some_and(|r| r.len() == 4),
        "{schema}"
    );
    assert_eq!(tele.qos, Some(0));
    // Round trip: the document imported, run and checked against itself.
    let round = dir.path().join("round.ron");
    let (ok, text) = cli(
        &[
            "import",
            spec.to_str().expect("utf-8"),
            "-o",
            round.to_str().expect("utf-8"),
            "--count",
            "3",
            "--every",
            "1",
        ],
        Duration::from_secs(30),
    );
    assert!(ok, "{text}");
    let (ok, text) = cli(
        &[
            "test",
            round.to_str().expect("utf-8"),
            "--duration",
            "4s",
            "--port",
            "0",
        ],
        Duration::from_secs(60),
    );
    assert!(
        ok,
        "{text}\n{}",
        std::fs::read_to_string(&round).unwrap_or_default()
    );
    assert!(
        text.contains("bus/cars/{carId}/telemetry conforms"),
        "{text}"
    );
}

#[test]
fn an_imported_scenario_reads_back_and_its_generated_payloads_conform() {
    let c = Contract::load(&fixture("fridges-3.0.yaml")).unwrap();
    let imported =
        mqtt_workbench::scenario::import_contract(&c, "fridges-3.0.yaml", ImportOptions::default());
    let mut s = mqtt_workbench::scenario::Scenario::parse(&imported.ron, &fixture("imported.ron"))
        .unwrap_or_else(|e| panic!("{e}\n{}", imported.ron));
    s.load_contract(&fixture("")).unwrap();
    let fleet = s
        .devices
        .iter()
        .find(|d| d.id == "fridge-{i}")
        .expect("a fridge fleet");
    assert_eq!(fleet.count, 3);
    let topics: Vec<&str> = fleet.publish.iter().map(|p| p.topic.as_str()).collect();
    assert!(
        topics.contains(&"fridges/{id}/reading") && topics.contains(&"fridges/{id}/status"),
        "{topics:?}"
    );
    let status = fleet
        .publish
        .iter()
        .find(|p| p.topic.ends_with("status"))
        .unwrap();
    assert_eq!((status.qos.0, status.retain), (1, true));
    assert!(
        fleet
            .subscribe
            .iter()
            .any(|f| f.filter == "fridges/{id}/cmd" && f.qos.0 == 1)
    );
    assert_eq!(fleet.react.len(), 1, "the command's reply");
    // Nobody in the document sends commands: a sender addresses the fleet in turn.
    let sender = s
        .devices
        .iter()
        .find(|d| d.id == "receiveCommand-sender")
        .unwrap();
    assert_eq!(sender.publish[0].topic, "fridges/fridge-{seq%3}/cmd");
    assert_eq!(s.expect.len(), 4);
    // Every generated payload conforms (seeded: 200 of each).
    let mut ctx = mqtt_workbench::sim::generators::DeviceCtx::new(
        s.seed,
        "fridge-1",
        1,
        Default::default(),
        String::new(),
    );
    for d in &s.devices {
        for p in &d.publish {
            let topic = ctx
                .fill(&p.topic.replace("{seq%3}", "2"), None)
                .replace("{id}", "fridge-1");
            let mut sampler = mqtt_workbench::sim::generators::PayloadSampler::new(&p.payload, 1.0);
            for _ in 0..200 {
                let payload = sampler.render(&mut ctx, p.decimals, None);
                let mark = c.check(&topic, &payload, p.qos.0, p.retain);
                assert!(
                    mark.conforms(),
                    "{topic}: {} {mark:?}",
                    String::from_utf8_lossy(&payload)
                );
            }
        }
    }
}

#[test]
fn bench_contract_reports_the_cost_of_a_check_per_channel() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fridges.asyncapi.yaml");
    let (ok, text) = cli(
        &["bench", "--contract", spec.to_str().expect("utf-8")],
        Duration::from_secs(60),
    );
    assert!(ok, "{text}");
    for channel in [
        "fridges/{fridgeId}/reading",
        "fridges/{fridgeId}/status",
        "fridges/{fridgeId}/cmd ",
        "fridges/{fridgeId}/cmd/reply",
    ] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(channel))
            .unwrap_or_else(|| panic!("no line for {channel}\n{text}"));
        assert!(line.contains("µs per conforming message"), "{line}");
    }
    // The reading has numbers to break; the error path is measured too.
    assert!(
        text.lines()
            .any(|l| l.contains("reading") && l.contains("µs with violations")),
        "{text}"
    );
}

#[test]
fn hostile_schemas_import_without_panicking_and_within_bounds() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let spec = dir.path().join("hostile.json");
    // Eight levels of arrays of 16, bounds at ±1e308, a minLength of 1e11.
    let mut schemas = serde_json::Map::new();
    for k in 0..8 {
        schemas.insert(
            format!("A{k}"),
            serde_json::json!({"type": "array", "minItems": 16, "items": {"$ref": format!("#/components/schemas/A{}", k + 1)}}),
        );
    }
    schemas.insert(
        "A8".into(),
        serde_json::json!({"type": "object", "properties": {
            "x": {"type": "number", "minimum": -1e308, "maximum": 1e308},
            "s": {"type": "string", "minLength": 100_000_000_000u64}
        }}),
    );
    let doc = serde_json::json!({
        "asyncapi": "3.0.0", "info": {"title": "t", "version": "1"},
        "channels": {"c": {"address": "c", "messages": {"m": {"payload": {"$ref": "#/components/schemas/A0"}}}}},
        "operations": {"o": {"action": "send", "channel": {"$ref": "#/channels/c"}}},
        "components": {"schemas": schemas},
    });
    std::fs::write(&spec, doc.to_string()).expect("written");
    let contract = Contract::load(&spec).expect("it reads");
    let imported = mqtt_workbench::scenario::import_contract(
        &contract,
        "hostile.json",
        ImportOptions::default(),
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.what.contains("10,000 generated values")),
        "{:?}",
        imported.warnings
    );
    assert!(
        imported
            .warnings
            .iter()
            .any(|w| w.what.contains("minLength"))
    );
    let s = mqtt_workbench::scenario::Scenario::parse(&imported.ron, &dir.path().join("h.ron"))
        .expect("it reads back");
    let p = &s.devices[0].publish[0];
    let mut ctx = mqtt_workbench::sim::generators::DeviceCtx::new(
        1,
        "o",
        1,
        Default::default(),
        String::new(),
    );
    let mut sampler = mqtt_workbench::sim::generators::PayloadSampler::new(&p.payload, 1.0);
    let payload = sampler.render(&mut ctx, p.decimals, None);
    assert!(payload.len() < 50_000_000, "{} bytes", payload.len());
}
