//! Publishing by hand through the engine: as the workbench's own client, as
//! a virtual device, and clearing retained messages, checked by real
//! subscribers and by the capture.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use mqtt_workbench::command::{Command, PublishRequest, Publisher, WORKBENCH_CLIENT_ID};
use mqtt_workbench::scenario::Scenario;
use rumqttc::QoS;

fn request(from: Publisher, topic: &str, payload: &str, qos: u8, retain: bool) -> Command {
    Command::Publish(PublishRequest {
        from,
        topic: topic.into(),
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        qos,
        retain,
        properties: Default::default(),
        payload_file: None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workbench_publishes_as_its_own_client_through_the_tap() {
    let mut rig = Rig::start().await;
    let mut sub = connect(options("hand-sub", rig.port(), true));
    sub.connack().await;
    sub.subscribe("hand/#", QoS::AtLeastOnce).await;
    assert!(rig.handle.send(request(
        Publisher::Workbench,
        "hand/setpoint",
        "12.5",
        1,
        false
    )));
    sub.expect("the message published by hand", 5, |p| {
        publish_payloads(p) == Some(("hand/setpoint", &b"12.5"[..]))
    })
    .await;
    rig.wait_for("the workbench's session with its publish", 5, |c| {
        c.sessions
            .get(WORKBENCH_CLIENT_ID)
            .is_some_and(|s| s.published == 1)
    })
    .await;
    let n = rig
        .wait_notice("the confirmation", 5, |n| n.text.starts_with("publishing"))
        .await;
    assert_eq!(
        (n.error, n.text.as_str()),
        (false, "publishing 4 B to hand/setpoint (QoS 1)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_published_as_a_virtual_device_on_its_connection() {
    let scenario =
        Scenario::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/temperature.ron"))
            .expect("shipped");
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
    rig.wait_for("the sensor connected", 10, |c| {
        c.sessions.get("temp-sensor").is_some_and(|s| s.connected)
    })
    .await;
    assert!(rig.handle.send(request(
        Publisher::Device("temp-sensor".into()),
        "hand/from-sensor",
        "hi",
        0,
        false
    )));
    rig.wait_for("the device's publish", 5, |c| {
        c.messages().any(|(_, e)| {
            &*e.client_id == "temp-sensor" && e.topic.as_deref() == Some("hand/from-sensor")
        })
    })
    .await;
    // A device that does not exist is a clear error.
    assert!(rig.handle.send(request(
        Publisher::Device("nosuch".into()),
        "t",
        "x",
        0,
        false
    )));
    let n = rig
        .wait_notice("the error", 5, |n| n.text.contains("nosuch"))
        .await;
    assert!(n.error, "{n:?}");
    assert_eq!(n.text, "no virtual device \"nosuch\" is running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_messages_are_cleared_for_every_topic_asked() {
    let mut rig = Rig::start().await;
    let mut owner = connect(options("ret-owner", rig.port(), true));
    owner.connack().await;
    for t in ["ret/a", "ret/b"] {
        owner
            .client
            .publish(t, QoS::AtLeastOnce, true, "on")
            .await
            .expect("queued");
    }
    rig.wait_for("both retained", 5, |c| {
        ["ret/a", "ret/b"]
            .iter()
            .all(|t| c.topics.get(*t).is_some_and(|s| s.retained.is_some()))
    })
    .await;
    assert!(
        rig.handle
            .send(Command::ClearRetained(vec!["ret/a".into(), "ret/b".into()]))
    );
    rig.wait_for("both cleared", 5, |c| {
        ["ret/a", "ret/b"]
            .iter()
            .all(|t| c.topics.get(*t).is_some_and(|s| s.retained.is_none()))
    })
    .await;
    // A new subscriber gets no retained message: the broker forgot them. The
    // broker sends retained messages right after SUBACK, before a later message.
    let mut late = connect(options("ret-late", rig.port(), true));
    late.connack().await;
    late.subscribe("ret/#", QoS::AtLeastOnce).await;
    owner
        .client
        .publish("ret/sentinel", QoS::AtLeastOnce, false, "later")
        .await
        .expect("queued");
    let first = late
        .expect("the first message after subscribing", 5, |p| {
            publish_payloads(p).is_some()
        })
        .await;
    assert_eq!(
        publish_payloads(&first).map(|(t, _)| t),
        Some("ret/sentinel")
    );
}

/// MQTT 5 properties and a payload read from a file, published by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_by_hand_carries_mqtt5_properties_and_file_bytes() {
    let mut rig = Rig::start().await;
    let mut sub = connect(options("bytes-sub", rig.port(), true));
    sub.connack().await;
    sub.subscribe("hand/bin", QoS::AtLeastOnce).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("frame.bin");
    let bytes: Vec<u8> = (0u8..=255).collect();
    std::fs::write(&file, &bytes).unwrap();
    let props = mqtt_workbench::command::MessageProperties {
        content_type: "application/octet-stream".into(),
        response_topic: "replies/hand".into(),
        correlation_data: "req-7".into(),
        message_expiry_s: 60,
        payload_utf8: false,
        user_properties: vec![("source".into(), "workbench".into())],
    };
    assert!(rig.handle.send(Command::Publish(PublishRequest {
        from: Publisher::Workbench,
        topic: "hand/bin".into(),
        payload: Bytes::new(),
        qos: 1,
        retain: false,
        properties: props,
        payload_file: Some(file.clone()),
    })));
    sub.expect("the file's bytes", 10, |p| {
        publish_payloads(p) == Some(("hand/bin", &bytes[..]))
    })
    .await;
    rig.wait_for(
        "the workbench's MQTT 5 publish with its properties",
        10,
        |c| {
            c.messages().any(|(_, e)| {
                &*e.client_id == WORKBENCH_CLIENT_ID
                    && e.protocol == 5
                    && e.v5.as_ref().is_some_and(|p| {
                        p.response_topic.as_deref() == Some("replies/hand")
                            && p.correlation_data.as_deref() == Some("req-7")
                            && p.content_type.as_deref() == Some("application/octet-stream")
                            && p.message_expiry_s == Some(60)
                            && p.user_properties
                                == [("source".to_string(), "workbench".to_string())]
                    })
            })
        },
    )
    .await;
    // A missing file: a notice naming it, nothing sent.
    assert!(rig.handle.send(Command::Publish(PublishRequest {
        from: Publisher::Workbench,
        topic: "hand/bin".into(),
        payload: Bytes::new(),
        qos: 0,
        retain: false,
        properties: Default::default(),
        payload_file: Some(dir.path().join("missing.bin")),
    })));
    let n = rig.wait_notice("the missing file", 10, |n| n.error).await;
    assert!(n.text.contains("missing.bin"), "{}", n.text);
}
