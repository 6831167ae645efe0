//! Record and replay through the real broker and tap: a recording written and
//! read back replays at max speed and at 1× with the same topics, payloads
//! and per-client order as the original; a recording opens in the model for
//! inspection; `test --capture` checks expectations offline.

mod common;

use std::collections::BTreeMap;
use std::time::Instant;

use common::*;
use mqtt_workbench::command::{Command, ScenarioSource};
use mqtt_workbench::export::record;
use mqtt_workbench::replay::{Speed, replay};
use mqtt_workbench::wire::{Direction, PacketKind};

/// Per client, the (topic, payload) it published, in order.
type Streams = BTreeMap<String, Vec<(String, Vec<u8>)>>;

fn published<'a>(events: impl Iterator<Item = &'a mqtt_workbench::wire::WireEvent>) -> Streams {
    let mut out = Streams::new();
    for e in events {
        if e.kind == PacketKind::Publish && e.dir == Direction::ClientToBroker {
            out.entry(e.client_id.to_string()).or_default().push((
                e.topic.as_deref().unwrap_or_default().to_string(),
                e.payload.as_deref().unwrap_or_default().to_vec(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_replays_at_max_speed_and_at_1x_like_the_original() {
    let mut rig = Rig::start().await;
    let text = r#"Scenario(name: "to record", seed: 3, devices: [
        (id: "rec-{i}", count: 3, publish: [
            (topic: "rec/{id}/n", every: "100ms", qos: 1, payload: Text("{seq}")),
            (topic: "rec/{id}/walk", every: "250ms", payload: Value(RandomWalk(start: 1.0, step: 0.5, min: 0.0, max: 9.0))),
        ]),
        (id: "listener", subscribe: [(filter: "rec/#", qos: 1)]),
    ])"#;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "rec.ron".into(),
        ron: text.into(),
    })));
    rig.wait_for("ten messages from every device", 15, |c| {
        (1..=3).all(|i| {
            c.topics
                .get(&format!("rec/rec-{i}/n"))
                .is_some_and(|t| t.published >= 10)
        })
    })
    .await;
    assert!(rig.handle.send(Command::StopScenario));
    rig.wait_model("stopped", 10, |m| m.scenario.is_none())
        .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rec.jsonl");
    let snapshot = rig.model.capture.snapshot();
    record::write(
        &path,
        snapshot.iter(),
        snapshot.len,
        &[],
        Some(("to record", 0)),
    )
    .unwrap();
    let rec = record::read(&path).unwrap();
    let original = published(rec.events.iter());
    assert_eq!(
        original.len(),
        3,
        "three publishers recorded: {:?}",
        original.keys()
    );
    let total: usize = original.values().map(Vec::len).sum();
    let span_us = {
        let ts: Vec<u64> = rec
            .events
            .iter()
            .filter(|e| e.kind == PacketKind::Publish && e.dir == Direction::ClientToBroker)
            .map(|e| e.t_us)
            .collect();
        ts.iter().max().unwrap() - ts.iter().min().unwrap()
    };
    for speed in [Speed::Max, Speed::Times(1.0)] {
        let mut target = Rig::start().await;
        let t0 = Instant::now();
        let report = replay(&rec, "127.0.0.1", target.port(), speed)
            .await
            .unwrap();
        let took = t0.elapsed();
        assert_eq!(report.published as usize, total, "{speed:?}");
        assert_eq!(report.clients, 3);
        target
            .wait_for(
                &format!("every replayed publish captured ({speed:?})"),
                15,
                |c| {
                    c.topics
                        .values()
                        .map(|t| t.published as usize)
                        .sum::<usize>()
                        >= total
                },
            )
            .await;
        let replayed = published(target.model.capture.messages().map(|(_, e)| e));
        assert_eq!(
            replayed, original,
            "same topics, payloads and per-client order ({speed:?})"
        );
        if speed == Speed::Times(1.0) {
            assert!(
                took.as_micros() as u64 >= span_us * 9 / 10,
                "1x keeps the original timing: {took:?} for a {span_us} µs recording"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recording_opens_in_the_model_and_a_bad_file_loses_nothing() {
    let mut rig = Rig::start().await;
    let mut c = connect(options("live-client", rig.port(), true));
    c.connack().await;
    c.client
        .publish("live/x", rumqttc::QoS::AtLeastOnce, false, "before")
        .await
        .unwrap();
    rig.wait_for("the live message", 10, |c| c.topics.contains_key("live/x"))
        .await;
    let dir = tempfile::tempdir().unwrap();
    // A bad file: the capture stays as it was, and the notice says where and why.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "not a capture\n").unwrap();
    assert!(rig.handle.send(Command::OpenCapture(bad.clone())));
    let notice = rig.wait_notice("the error", 10, |n| n.error).await.text;
    assert!(
        notice.contains("bad.jsonl:1: not a recorded capture"),
        "{notice}"
    );
    assert!(
        rig.model.capture.topics.contains_key("live/x"),
        "nothing lost"
    );
    // A good one replaces the capture with the recorded frames, faults included.
    let mut ev = mqtt_workbench::wire::WireEvent::new(
        1_000_000,
        1,
        std::sync::Arc::from("recorded"),
        Direction::ClientToBroker,
        PacketKind::Publish,
    );
    ev.topic = Some(std::sync::Arc::from("old/topic"));
    ev.payload = Some(bytes::Bytes::from_static(b"from the field"));
    let fault = mqtt_workbench::fault::FaultMarker {
        t_us: 900_000,
        label: "drop recorded".into(),
        timeline: None,
    };
    let good = dir.path().join("good.jsonl");
    record::write(&good, [&ev].into_iter(), 1, &[fault], None).unwrap();
    assert!(rig.handle.send(Command::OpenCapture(good.clone())));
    rig.wait_model("the recording opened", 10, |m| {
        m.opened_capture.as_deref() == Some(good.as_path())
    })
    .await;
    let c = &rig.model.capture;
    assert!(c.topics.contains_key("old/topic"));
    assert!(
        !c.topics.contains_key("live/x"),
        "the recording replaced the live capture"
    );
    assert_eq!(rig.model.faults.markers.len(), 1);
}

/// `replay --check`: a scenario's expectations evaluated against the replay.
#[test]
fn replay_checks_expectations_against_the_replayed_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("r.jsonl");
    let events: Vec<_> = (0..3u64)
        .map(|k| {
            let mut ev = mqtt_workbench::wire::WireEvent::new(
                1_000_000 + k * 1000,
                1,
                std::sync::Arc::from("field-device"),
                Direction::ClientToBroker,
                PacketKind::Publish,
            );
            ev.topic = Some(std::sync::Arc::from("field/x"));
            ev.payload = Some(bytes::Bytes::from(format!("m{k}")));
            ev.qos = 1;
            ev
        })
        .collect();
    record::write(&rec, events.iter(), 3, &[], None).unwrap();
    let scenario = dir.path().join("check.ron");
    std::fs::write(
        &scenario,
        r#"Scenario(name: "check", expect: [
            (name: "three replayed", check: Count(on: "field/#", at_least: 3)),
            (name: "someone listens", check: AtLeastOnce(on: "field/#")),
        ])"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
        .args(["replay", "--speed", "max", "--port", "0", "--check"])
        .arg(&scenario)
        .arg(&rec)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("PASS  three replayed"), "{stdout}");
    assert!(
        stdout
            .contains("FAIL  someone listens: 3 of 3 QoS 1/2 messages on field/# never delivered"),
        "no subscriber during the replay: {stdout}"
    );
}
