//! Protocol behaviour through the tap against the real embedded broker,
//! asserted from what the capture shows.

mod common;

use std::time::Duration;

use common::*;
use mqtt_workbench::capture::{FlowState, SessionEventKind};
use mqtt_workbench::command::Command;
use mqtt_workbench::fault::{DeviceAction, Target};
use mqtt_workbench::wire::{CloseReason, Direction, PacketKind};
use rumqttc::{LastWill, Packet, QoS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos1_flow_has_every_step_on_both_legs() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "q1-sub",
        true,
        "q1/t",
        QoS::AtLeastOnce,
        "q1-pub",
    )
    .await;
    publ.client
        .publish("q1/t", QoS::AtLeastOnce, false, "hello")
        .await
        .unwrap();
    sub.expect("the message", 5, |p| {
        publish_payloads(p).is_some_and(|(_, b)| b == b"hello")
    })
    .await;

    rig.wait_for("two complete QoS 1 flows", 5, |c| c.flows.completed >= 2)
        .await;
    let flows: Vec<_> = rig.model.capture.flows.iter().collect();
    let up = flows
        .iter()
        .find(|f| f.leg == Direction::ClientToBroker)
        .expect("publisher leg");
    let down = flows
        .iter()
        .find(|f| f.leg == Direction::BrokerToClient)
        .expect("subscriber leg");
    assert_eq!(&*up.client_id, "q1-pub");
    assert_eq!(&*down.client_id, "q1-sub");
    for f in [up, down] {
        assert_eq!(f.state, FlowState::Complete);
        assert_eq!(f.qos, 1);
        assert_eq!(f.step_names(), ["PUBLISH", "PUBACK"]);
        assert!(f.steps[1].t_us >= f.steps[0].t_us);
        assert_ne!(
            f.steps[0].dir, f.steps[1].dir,
            "the ack travels the other way"
        );
    }
    // The subscriber leg is linked to the publisher's PUBLISH.
    let origin = down.origin.expect("delivery linked to its publish");
    assert_eq!(origin, up.steps[0].seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos2_flow_has_every_step_on_both_legs() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "q2-sub",
        true,
        "q2/t",
        QoS::ExactlyOnce,
        "q2-pub",
    )
    .await;
    publ.client
        .publish("q2/t", QoS::ExactlyOnce, false, "exactly")
        .await
        .unwrap();
    sub.expect("the message", 5, |p| {
        publish_payloads(p).is_some_and(|(_, b)| b == b"exactly")
    })
    .await;

    rig.wait_for("two complete QoS 2 flows", 5, |c| c.flows.completed >= 2)
        .await;
    for leg in [Direction::ClientToBroker, Direction::BrokerToClient] {
        let f = rig
            .model
            .capture
            .flows
            .iter()
            .find(|f| f.leg == leg)
            .unwrap();
        assert_eq!(f.state, FlowState::Complete, "{leg:?}");
        assert_eq!(
            f.step_names(),
            ["PUBLISH", "PUBREC", "PUBREL", "PUBCOMP"],
            "{leg:?}"
        );
        // PUBLISH and PUBREL go one way, PUBREC and PUBCOMP the other.
        assert_eq!(f.steps[0].dir, f.steps[2].dir);
        assert_eq!(f.steps[1].dir, f.steps[3].dir);
        assert_ne!(f.steps[0].dir, f.steps[1].dir);
        assert!(f.steps.windows(2).all(|w| w[0].t_us <= w[1].t_us));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_reaches_a_late_subscriber() {
    let mut rig = Rig::start().await;
    let mut publ = connect(options("ret-pub", rig.port(), true));
    publ.connack().await;
    publ.client
        .publish("ret/status", QoS::AtLeastOnce, true, "online")
        .await
        .unwrap();
    rig.wait_for("retained publish seen", 5, |c| {
        c.topics
            .get("ret/status")
            .is_some_and(|t| t.retained.is_some())
    })
    .await;

    let mut late = connect(options("ret-late", rig.port(), true));
    late.connack().await;
    late.subscribe("ret/#", QoS::AtLeastOnce).await;
    let p = late
        .expect("the retained message", 5, |p| {
            matches!(p, Packet::Publish(_))
        })
        .await;
    let Packet::Publish(p) = p else {
        unreachable!()
    };
    assert!(
        p.retain,
        "a retained message replayed on subscribe carries the retain flag"
    );
    assert_eq!(&p.payload[..], b"online");

    rig.wait_for("the delivery in the capture", 5, |c| {
        c.messages().any(|(_, e)| {
            &*e.client_id == "ret-late" && e.dir == Direction::BrokerToClient && e.retain
        })
    })
    .await;
    assert_eq!(
        rig.model.capture.topics["ret/status"].retained.as_deref(),
        Some(&b"online"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_fires_after_abrupt_drop_and_not_after_graceful_disconnect() {
    let mut rig = Rig::start().await;
    let mut watcher = connect(options("will-watcher", rig.port(), true));
    watcher.connack().await;
    watcher.subscribe("wills/#", QoS::AtLeastOnce).await;

    let mut opts = options("will-graceful", rig.port(), true);
    opts.set_last_will(LastWill::new(
        "wills/graceful",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let mut graceful = connect(opts);
    graceful.connack().await;
    let mut opts = options("will-dropped", rig.port(), true);
    opts.set_last_will(LastWill::new(
        "wills/dropped",
        "gone",
        QoS::AtLeastOnce,
        false,
    ));
    let mut dropped = connect(opts);
    dropped.connack().await;

    graceful.disconnect().await;
    // An external client is dropped at the tap: the socket closes, no DISCONNECT reaches the broker.
    assert!(rig.handle.send(Command::Device(
        Target::Device("will-dropped".into()),
        DeviceAction::Drop
    )));

    let will = watcher
        .expect("the dropped client's will", 5, |p| {
            matches!(p, Packet::Publish(_))
        })
        .await;
    assert_eq!(publish_payloads(&will).unwrap().0, "wills/dropped");
    rig.wait_for("both disconnects recorded", 5, |c| {
        c.sessions.get("will-dropped").is_some_and(|s| !s.connected)
            && c.sessions
                .get("will-graceful")
                .is_some_and(|s| !s.connected)
    })
    .await;
    // The broker handles a will when the connection ends, before anything
    // published after it: a sentinel through the router marks "later".
    let mut sentinel = connect(options("will-sentinel", rig.port(), true));
    sentinel.connack().await;
    sentinel
        .client
        .publish("wills/sentinel", QoS::AtLeastOnce, false, "later")
        .await
        .unwrap();
    watcher
        .expect("the sentinel", 5, |p| {
            publish_payloads(p).is_some_and(|(t, _)| t == "wills/sentinel")
        })
        .await;
    rig.wait_for("the sentinel's delivery captured", 5, |c| {
        c.topics
            .get("wills/sentinel")
            .is_some_and(|t| t.delivered == 1)
    })
    .await;
    let c = &rig.model.capture;
    assert_eq!(
        c.sessions["will-dropped"].last_disconnect(),
        Some(&CloseReason::DroppedByTap)
    );
    assert_eq!(
        c.sessions["will-graceful"].last_disconnect(),
        Some(&CloseReason::Graceful)
    );
    let delivered: Vec<&str> = c
        .messages()
        .filter(|(_, e)| &*e.client_id == "will-watcher" && e.dir == Direction::BrokerToClient)
        .filter_map(|(_, e)| e.topic.as_deref())
        .collect();
    assert_eq!(
        delivered,
        ["wills/dropped", "wills/sentinel"],
        "only the dropped client's will is published"
    );
    assert_eq!(c.topics["wills/dropped"].delivered, 1);
    assert!(!c.topics.contains_key("wills/graceful"));
    drop(dropped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_session_receives_what_was_published_while_offline() {
    let mut rig = Rig::start().await;
    let mut ps = connect(options("persistent", rig.port(), false));
    ps.connack().await;
    ps.subscribe("fleet/cmd", QoS::AtLeastOnce).await;
    ps.disconnect().await;

    let mut publ = connect(options("commander", rig.port(), true));
    publ.connack().await;
    for i in 0..3 {
        publ.client
            .publish("fleet/cmd", QoS::AtLeastOnce, false, format!("cmd-{i}"))
            .await
            .unwrap();
    }
    rig.wait_for("three commands acknowledged", 5, |c| c.flows.completed >= 3)
        .await;

    let mut back = connect(options("persistent", rig.port(), false));
    let ack = back.connack().await;
    assert!(ack.session_present, "the broker kept the session");
    let mut got = Vec::new();
    for _ in 0..3 {
        let p = back
            .expect("a queued message", 5, |p| matches!(p, Packet::Publish(_)))
            .await;
        got.push(String::from_utf8(publish_payloads(&p).unwrap().1.to_vec()).unwrap());
    }
    assert_eq!(got, ["cmd-0", "cmd-1", "cmd-2"]);

    rig.wait_for("deliveries on reconnect", 5, |c| {
        c.sessions["persistent"].received >= 3
    })
    .await;
    let s = &rig.model.capture.sessions["persistent"];
    assert!(!s.clean_session);
    let connects: Vec<bool> = s
        .history
        .iter()
        .filter_map(|e| match e.kind {
            SessionEventKind::Connected {
                session_present, ..
            } => Some(session_present),
            _ => None,
        })
        .collect();
    assert_eq!(connects, [false, true]);
    assert_eq!(
        s.from_offline_queue, 3,
        "all three were queued while it was offline"
    );
    let queued = rig
        .model
        .capture
        .flows
        .iter()
        .filter(|f| &*f.client_id == "persistent" && f.queued_offline)
        .count();
    assert_eq!(queued, 3);
    assert!(
        s.subscriptions.contains_key("fleet/cmd"),
        "subscriptions survive for a persistent session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// MQTT 3.1.1 §3.8.4: delivered QoS = min(published, granted). rumqttd 0.20
/// sent it at the granted QoS (vendor patch in `router/routing.rs`).
async fn qos0_publish_to_qos1_subscription_is_delivered_at_qos0() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "dev-sub",
        true,
        "dev/t",
        QoS::AtLeastOnce,
        "dev-pub",
    )
    .await;
    publ.client
        .publish("dev/t", QoS::AtMostOnce, false, "x")
        .await
        .unwrap();
    sub.expect("the message", 5, |p| matches!(p, Packet::Publish(_)))
        .await;
    rig.wait_for("the delivery", 5, |c| {
        c.topics.get("dev/t").is_some_and(|t| t.delivered == 1)
    })
    .await;
    let delivery = rig
        .model
        .capture
        .messages()
        .find(|(_, e)| e.dir == Direction::BrokerToClient)
        .unwrap()
        .1
        .clone();
    // The spec says min(0, 1) = 0.
    assert_eq!((delivery.qos, delivery.pkid), (0, 0), "{delivery:?}");
    if delivery.qos > 0 {
        rig.wait_for("its flow", 5, |c| {
            c.flows.iter().any(|f| f.leg == Direction::BrokerToClient)
        })
        .await;
        let f = rig
            .model
            .capture
            .flows
            .iter()
            .find(|f| f.leg == Direction::BrokerToClient)
            .unwrap();
        assert!(
            f.deviation
                .as_deref()
                .is_some_and(|d| d.contains("min(published QoS 0, granted QoS 1)")),
            "{f:?}"
        );
    } else {
        assert!(
            rig.model
                .capture
                .flows
                .iter()
                .all(|f| f.deviation.is_none())
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tap_records_connect_details_and_ping_free_store() {
    let mut rig = Rig::start().await;
    let mut o = options("details", rig.port(), false);
    o.set_keep_alive(Duration::from_secs(7));
    o.set_last_will(LastWill::new("d/will", "bye", QoS::ExactlyOnce, true));
    let mut c = connect(o);
    c.connack().await;
    rig.wait_for("the session", 5, |c| {
        c.sessions.get("details").is_some_and(|s| s.connected)
    })
    .await;
    let s = &rig.model.capture.sessions["details"];
    assert_eq!(s.keep_alive_s, 7);
    assert!(!s.clean_session);
    let w = s.will.as_ref().unwrap();
    assert_eq!(
        (w.topic.as_str(), &w.payload[..], w.qos, w.retain),
        ("d/will", &b"bye"[..], 2, true)
    );
    assert!(s.peer.is_some_and(|p| p.ip().is_loopback()));
    assert!(
        rig.model
            .capture
            .events()
            .any(|(_, e)| e.kind == PacketKind::ConnAck)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_in_use_names_the_port_and_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let err = mqtt_workbench::engine::start(mqtt_workbench::engine::EngineConfig {
        listen: addr,
        ..Default::default()
    })
    .await
    .err()
    .expect("the port is taken");
    let text = err.to_string();
    assert!(
        text.contains(&format!("port {}", addr.port())) && text.contains("--port"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_asking_for_no_keepalive_connects_through_unchanged() {
    let mut rig = Rig::start().await;
    // Keepalive 0 ("no keepalive") is legal MQTT (3.1.1 §3.1.2.10); rumqttd
    // 0.20 closed it without CONNACK (vendor patch in `link/remote.rs`).
    let mut opts = options("no-keepalive", rig.port(), true);
    opts.set_keep_alive(Duration::ZERO);
    let mut c = connect(opts);
    let ack = c.connack().await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
    c.subscribe("ka0/t", QoS::AtLeastOnce).await;
    // It works like any client: a message reaches it.
    let mut publ = connect(options("ka0-pub", rig.port(), true));
    publ.connack().await;
    publ.client
        .publish("ka0/t", QoS::AtLeastOnce, false, "still here")
        .await
        .expect("queued");
    c.expect("the message", 5, |p| {
        publish_payloads(p).is_some_and(|(_, b)| b == b"still here")
    })
    .await;
    rig.wait_for("the session recorded", 5, |c| {
        c.sessions.get("no-keepalive").is_some_and(|s| s.connected)
    })
    .await;
    let s = &rig.model.capture.sessions["no-keepalive"];
    assert_eq!(s.keep_alive_s, 0, "the capture keeps what the client asked");
    // The broker saw the same CONNECT: its leg of the handshake is the client's.
    let connect = rig
        .model
        .capture
        .events()
        .find(|(_, e)| *e.client_id == *"no-keepalive" && e.kind == PacketKind::Connect)
        .map(|(_, e)| e.clone())
        .expect("the CONNECT");
    assert!(matches!(
        connect.detail,
        mqtt_workbench::wire::WireDetail::Connect {
            keep_alive_s: 0,
            ..
        }
    ));
}

/// The CONNACK code the tap saw the broker send to `client_id`.
fn connack_code(c: &mqtt_workbench::capture::Capture, client_id: &str) -> Option<u8> {
    let conn = c.sessions.get(client_id)?.conn?;
    c.events().find_map(|(_, e)| match &e.detail {
        mqtt_workbench::wire::WireDetail::ConnAck { code, .. } if e.conn == conn => Some(*code),
        _ => None,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_broker_refuses_a_connect_with_a_connack_reason_in_each_protocol() {
    // Three connections in all: the health probe's (when it got in first)
    // and mosquitto's, through the tap.
    let mut rig = Rig::start_with(mqtt_workbench::engine::EngineConfig {
        max_connections: 3,
        ..Default::default()
    })
    .await;
    let port = rig.port();
    let mut subs = Vec::new();
    for i in 0..3 {
        let id = format!("full-{i}");
        subs.push(
            mosquitto("mosquitto_sub", "311", port, &["-i", &id, "-t", "full/#"])
                .spawn()
                .expect("mosquitto_sub runs"),
        );
        rig.wait_for("its CONNACK", 10, |c| connack_code(c, &id).is_some())
            .await;
    }
    let connected = (0..3)
        .filter(|i| connack_code(&rig.model.capture, &format!("full-{i}")) == Some(0))
        .count();
    assert!(connected >= 2, "{connected} of 3 connected");
    // Every slot is taken now: 0x03 Server unavailable (3.1.1), 0x97 Quota exceeded (5).
    for (version, id, code) in [("311", "over-311", 0x03), ("5", "over-5", 0x97)] {
        let out = mosquitto(
            "mosquitto_pub",
            version,
            port,
            &["-i", id, "-t", "x", "-m", "y"],
        )
        .output()
        .await
        .expect("mosquitto_pub runs");
        assert!(!out.status.success(), "{id} must be refused");
        rig.wait_for("the refusing CONNACK", 10, |c| {
            connack_code(c, id).is_some()
        })
        .await;
        assert_eq!(
            connack_code(&rig.model.capture, id),
            Some(code),
            "{id}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    drop(subs);
}
