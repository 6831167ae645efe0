//! Scenarios as tests: `mqtt-workbench test` through the real broker and tap,
//! verdicts and their evidence, JUnit XML read back, every shipped scenario
//! passing its own expectations, and the same seed replaying the same bytes.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use mqtt_workbench::checks::VerdictState;
use mqtt_workbench::command::{Command as EngineCommand, ScenarioSource};
use mqtt_workbench::wire::Direction;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
}

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Run `test` on `files`; (exit code, stdout, the JUnit document's text).
fn run_test(files: &[PathBuf]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let junit = dir.path().join("report.xml");
    let out = bin()
        .arg("test")
        .args(files)
        .arg("--junit")
        .arg(&junit)
        .output()
        .expect("the binary runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let xml = std::fs::read_to_string(&junit)
        .unwrap_or_else(|e| panic!("no JUnit report ({e})\n{stdout}\n{stderr}"));
    (out.status.code(), stdout, xml)
}

/// (testcase name, "pass" | "failure" | "skipped", message) from a JUnit document.
fn cases(xml: &str) -> Vec<(String, &'static str, String)> {
    let doc = roxmltree::Document::parse(xml).expect("the JUnit report is XML");
    doc.descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|c| {
            let name = c.attribute("name").unwrap_or_default().to_string();
            let child = |tag| c.children().find(|n| n.has_tag_name(tag));
            match (child("failure"), child("skipped")) {
                (Some(f), _) => (
                    name,
                    "failure",
                    f.attribute("message").unwrap_or_default().into(),
                ),
                (None, Some(s)) => (
                    name,
                    "skipped",
                    s.attribute("message").unwrap_or_default().into(),
                ),
                _ => (name, "pass", String::new()),
            }
        })
        .collect()
}

#[test]
fn a_failing_scenario_fails_the_run_with_the_evidence_in_junit() {
    let failing = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/failing.ron");
    let (code, stdout, xml) = run_test(&[failing]);
    assert_eq!(code, Some(1), "{stdout}");
    let doc = roxmltree::Document::parse(&xml).expect("XML");
    let suite = doc
        .descendants()
        .find(|n| n.has_tag_name("testsuite"))
        .expect("one testsuite");
    assert_eq!(suite.attribute("name"), Some("Deliberately failing"));
    assert_eq!(suite.attribute("tests"), Some("9"));
    assert_eq!(suite.attribute("failures"), Some("7"), "{xml}");
    assert_eq!(suite.attribute("skipped"), Some("1"), "{xml}");
    let got: BTreeMap<String, (&str, String)> = cases(&xml)
        .into_iter()
        .map(|(n, s, m)| (n, (s, m)))
        .collect();
    let expect = |name: &str, state: &str, says: &str| {
        let (s, m) = &got[name];
        assert_eq!(*s, state, "{name}: {m}");
        assert!(m.contains(says), "{name}: {m:?} should say {says:?}");
    };
    expect(
        "too chatty",
        "failure",
        "message 3 on chatty/n (at most 2 expected)",
    );
    expect(
        "nobody says hello",
        "failure",
        "no message on hello/# within 1s",
    );
    expect(
        "fast delivery",
        "failure",
        "p50 publish → delivery latency on chatty/n",
    );
    expect(
        "no will",
        "failure",
        "chatty's will (chatty/status \"gone\") delivered to listener",
    );
    expect(
        "the deaf client gets every message",
        "failure",
        "QoS 1/2 messages on quiet/# never delivered",
    );
    expect(
        "the keeper finds its session",
        "failure",
        "session present = 0",
    );
    expect(
        "the keeper gets what was queued",
        "failure",
        "published while keeper was offline never reached it",
    );
    expect("chatty publishes", "pass", "");
    expect(
        "the listener keeps its session",
        "skipped",
        "never reconnected",
    );
    // The console says the same, one line per expectation.
    assert!(
        stdout.contains("FAIL  too chatty: message 3 on chatty/n"),
        "{stdout}"
    );
    assert!(stdout.contains("7 of 9 expectations failed"), "{stdout}");
}

#[test]
fn a_scenario_with_an_unknown_client_in_an_expectation_is_a_located_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("bad.ron");
    std::fs::write(
        &bad,
        "Scenario(name: \"x\", devices: [(id: \"a\")],\n expect: [(name: \"w\",\n  check: Will(client: \"b\"))])",
    )
    .expect("written");
    let out = bin().arg("validate").arg(&bad).output().expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("bad.ron:2:"), "{err}");
    assert!(
        err.contains("no client \"b\" in this scenario (devices: a)"),
        "{err}"
    );
}

/// Every shipped scenario passes its own expectations (none failed, at
/// least one passed), through the CLI as CI runs it.
fn shipped_passes(name: &str) {
    let (code, stdout, xml) = run_test(&[shipped(name)]);
    let cases = cases(&xml);
    assert_eq!(code, Some(0), "{stdout}");
    assert!(!cases.is_empty());
    assert!(cases.iter().all(|(_, s, _)| *s != "failure"), "{stdout}");
    assert!(cases.iter().any(|(_, s, _)| *s == "pass"), "{stdout}");
}

#[test]
fn temperature_passes_its_expectations() {
    shipped_passes("temperature.ron");
}

#[test]
fn power_plants_pass_their_expectations() {
    shipped_passes("power-plants.ron");
}

#[test]
fn drone_fleet_passes_its_expectations() {
    shipped_passes("drone-fleet.ron");
}

#[test]
fn wine_cooler_passes_its_expectations() {
    shipped_passes("wine-cooler.ron");
}

#[test]
fn thermostats_pass_their_expectations() {
    shipped_passes("thermostats-mqtt5.ron");
}

#[test]
fn car_sharing_passes_its_expectations() {
    shipped_passes("car-sharing.ron");
}

#[test]
fn flaky_drones_keep_the_promises_of_their_comments() {
    shipped_passes("flaky-drones.ron");
}

/// Same scenario, same seed: the same payload bytes in the same order per
/// device, run after run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_replays_the_same_payload_bytes() {
    let text = r#"Scenario(name: "determinism", seed: 99, devices: [
        (id: "gen-{i}", count: 3, publish: [(topic: "gen/{id}", every: "100ms", payload: Json({
            "walk": RandomWalk(start: 10.0, step: 1.5, min: 0.0, max: 20.0),
            "pick": Choice(["a", "b", "c"]),
            "u": Uniform(min: 0.0, max: 1.0),
            "n": Sequence(start: 1.0, step: 1.0),
        }))]),
    ])"#;
    let mut runs = Vec::new();
    for _ in 0..2 {
        let mut rig = Rig::start().await;
        assert!(
            rig.handle
                .send(EngineCommand::LoadScenario(ScenarioSource::Text {
                    origin: "determinism.ron".into(),
                    ron: text.into(),
                }))
        );
        rig.wait_for("eight messages from every device", 15, |c| {
            (1..=3).all(|i| {
                c.topics
                    .get(&format!("gen/gen-{i}"))
                    .is_some_and(|t| t.published >= 8)
            })
        })
        .await;
        let mut per_device: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (_, e) in rig.model.capture.messages() {
            if e.dir == Direction::ClientToBroker {
                let v = per_device.entry(e.client_id.to_string()).or_default();
                if v.len() < 8 {
                    v.push(e.payload.as_deref().unwrap_or_default().to_vec());
                }
            }
        }
        runs.push(per_device);
    }
    assert_eq!(runs[0].len(), 3);
    assert_eq!(
        runs[0], runs[1],
        "the same bytes in the same order per device"
    );
    // And the devices differ from each other (the seed is per device).
    assert_ne!(runs[0]["gen-1"], runs[0]["gen-2"]);
}

/// The verdicts the window shows come from the same model: a live check passes
/// while the scenario runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_are_live_in_the_model() {
    let mut rig = Rig::start().await;
    let text = r#"Scenario(name: "live", devices: [
        (id: "p", publish: [(topic: "live/x", every: "100ms", qos: 1, payload: Text("{seq}"))]),
    ], expect: [(name: "three messages", check: Count(on: "live/x", at_least: 3))])"#;
    assert!(
        rig.handle
            .send(EngineCommand::LoadScenario(ScenarioSource::Text {
                origin: "live.ron".into(),
                ron: text.into(),
            }))
    );
    rig.wait_model("the check passed live", 10, |m| {
        m.checks.as_ref().is_some_and(|c| {
            c.verdicts()
                .any(|v| v.state == VerdictState::Passed && v.seq.is_some())
        })
    })
    .await;
    let seq = rig
        .model
        .checks
        .as_ref()
        .and_then(|c| c.verdicts().next().and_then(|v| v.seq))
        .expect("evidence");
    // The evidence points at the third message in the capture.
    let ev = rig
        .model
        .capture
        .get(seq)
        .expect("the evidence frame is captured");
    assert_eq!(ev.topic.as_deref(), Some("live/x"));
    assert_eq!(ev.payload.as_deref(), Some(&b"3"[..]));
}

/// The README's CI example as CI runs it: the scenario passes with the
/// user's backend (tests/ci-example/backend.py, paho-mqtt) and fails without it.
#[test]
fn the_readme_ci_example_passes_with_the_backend_and_fails_without_it() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ci-example");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut backend = Command::new("python3")
        .arg(dir.join("backend.py"))
        .arg(port.to_string())
        .spawn()
        .expect("python3 runs (scripts/setup.sh installs paho-mqtt)");
    let out = bin()
        .args(["test", "--port", &port.to_string()])
        .arg(dir.join("fridge-alerts.ron"))
        .output()
        .expect("runs");
    let _ = backend.kill();
    let _ = backend.wait();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("PASS  the backend alerts within 2 s"),
        "{stdout}"
    );
    // No backend: nobody alerts.
    let out = bin()
        .args(["test", "--port", "0", "--duration", "4s"])
        .arg(dir.join("fridge-alerts.ron"))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  the backend alerts within 2 s of a reading above 8 °C: no message on alerts/+ within 2s"),
        "{stdout}"
    );
}

/// `run --record` keeps everything; `test --capture` checks the expectations
/// offline against it, with the same verdicts as live.
#[test]
fn expectations_run_offline_against_a_recording() {
    let dir = tempfile::tempdir().expect("temp dir");
    let rec = dir.path().join("failing.jsonl");
    let failing = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios/failing.ron");
    let out = bin()
        .args(["run", "--port", "0", "--duration", "7s", "--record"])
        .arg(&rec)
        .arg(&failing)
        .output()
        .expect("runs");
    let live = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(1),
        "run fails with the scenario: {live}"
    );
    assert!(live.contains("FAIL  too chatty"), "{live}");
    let out = bin()
        .args(["test", "--capture"])
        .arg(&rec)
        .arg(&failing)
        .output()
        .expect("runs");
    let offline = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{offline}");
    for name in [
        "too chatty",
        "nobody says hello",
        "fast delivery",
        "no will",
        "the deaf client gets every message",
        "the keeper finds its session",
        "the keeper gets what was queued",
    ] {
        assert!(
            offline.contains(&format!("FAIL  {name}:")),
            "{name}: {offline}"
        );
    }
    assert!(offline.contains("PASS  chatty publishes"), "{offline}");
}

#[test]
fn sparkplug_edge_passes_its_expectations() {
    shipped_passes("sparkplug-edge.ron");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_predicates_read_what_the_topic_decoder_yields_from_a_third_party_cbor_publisher() {
    // {"kwh": 2.5} and {"kwh": 0.5} in CBOR (RFC 8949): a map of one text key
    // and a half-precision float, as a meter would send it.
    let dir = tempfile::tempdir().expect("temp dir");
    let high = dir.path().join("high.cbor");
    let low = dir.path().join("low.cbor");
    std::fs::write(&high, [0xa1, 0x63, b'k', b'w', b'h', 0xf9, 0x41, 0x00]).expect("written");
    std::fs::write(&low, [0xa1, 0x63, b'k', b'w', b'h', 0xf9, 0x38, 0x00]).expect("written");
    let mut rig = Rig::start().await;
    let ron = r#"Scenario(
        name: "cbor meters",
        decoders: [(on: "meters/#", codec: Cbor)],
        expect: [
            (name: "a reading above 2 kWh", check: Message(on: "meters/+/energy", payload: Json(field: "kwh", above: 2.0), within: "60s")),
            (name: "no reading under 0.1 kWh", check: Count(on: "meters/+/energy", payload: Json(field: "kwh", below: 0.1), at_most: 0)),
            (name: "two readings under 1 kWh", check: Count(on: "meters/+/energy", payload: Json(field: "kwh", below: 1.0), at_least: 2)),
        ],
    )"#;
    assert!(
        rig.handle
            .send(EngineCommand::LoadScenario(ScenarioSource::Text {
                origin: dir.path().join("meters.ron"),
                ron: ron.into(),
            }))
    );
    rig.wait_model("the scenario's checks", 10, |m| m.checks.is_some())
        .await;
    for (file, n) in [(&high, 1), (&low, 2)] {
        for _ in 0..n {
            let out = mosquitto(
                "mosquitto_pub",
                "mqttv311",
                rig.port(),
                &[
                    "-t",
                    "meters/m-1/energy",
                    "-f",
                    file.to_str().expect("utf-8"),
                ],
            )
            .output()
            .await
            .expect("mosquitto_pub runs (scripts/setup.sh installs mosquitto-clients)");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    rig.wait_model("the readings decided the checks", 10, |m| {
        m.checks.as_ref().is_some_and(|c| {
            c.verdicts()
                .filter(|v| v.state == VerdictState::Passed)
                .count()
                == 2
        })
    })
    .await;
    let checks = rig.model.checks.as_mut().expect("checks");
    checks.finish(mqtt_workbench::time::now_us());
    let states: Vec<_> = checks
        .verdicts()
        .map(|v| (v.name.clone(), v.state))
        .collect();
    assert_eq!(
        states,
        vec![
            ("a reading above 2 kWh".to_string(), VerdictState::Passed),
            ("no reading under 0.1 kWh".to_string(), VerdictState::Passed),
            ("two readings under 1 kWh".to_string(), VerdictState::Passed),
        ]
    );
}
