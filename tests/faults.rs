//! Each fault kind injected against the embedded broker, and the protocol's
//! answer as the capture shows it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqtt_workbench::capture::{FlowState, SessionEventKind};
use mqtt_workbench::protocol::{CloseReason, Command, Direction, Injected, PacketKind, Target};
use mqtt_workbench::sim::Scenario;
use mqtt_workbench::sim::scenario::{Dur, Fault};
use rumqttc::{LastWill, Packet, QoS};

fn dev(id: &str) -> Target {
    Target::Device(id.to_string())
}

fn secs(s: u64) -> Dur {
    Dur(Duration::from_secs(s))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_partition_of_a_persistent_qos1_subscriber_delivers_everything_once_after_it_heals() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "part-sub",
        false,
        "part/t",
        QoS::AtLeastOnce,
        "part-pub",
    )
    .await;

    rig.inject(Fault::Partition {
        target: dev("part-sub"),
        duration: secs(5),
        hold: true,
    });
    rig.wait_for("the partition in force", 5, |_| true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    for i in 0..10 {
        publ.client
            .publish("part/t", QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    // Nothing reaches the subscriber while partitioned.
    let early = tokio::time::timeout(Duration::from_secs(3), sub.incoming.recv()).await;
    assert!(
        early.is_err(),
        "a message got through the partition: {early:?}"
    );
    let mut got = Vec::new();
    while got.len() < 10 {
        let p = sub
            .expect("held messages after the heal", 10, |p| {
                matches!(p, Packet::Publish(_))
            })
            .await;
        got.push(String::from_utf8(publish_payloads(&p).unwrap().1.to_vec()).unwrap());
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(4500),
        "delivered before the partition healed"
    );
    assert_eq!(
        got,
        (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>(),
        "every message, in order, once"
    );
    rig.wait_for("10 complete subscriber flows", 10, |c| {
        c.flows
            .iter()
            .filter(|f| &*f.client_id == "part-sub" && f.state == FlowState::Complete)
            .count()
            == 10
    })
    .await;
    let c = &rig.capture;
    let deliveries: Vec<_> = c
        .messages()
        .filter(|(_, e)| &*e.client_id == "part-sub" && e.dir == Direction::BrokerToClient)
        .collect();
    assert_eq!(deliveries.len(), 10, "none twice");
    assert!(
        deliveries
            .iter()
            .all(|(_, e)| !e.dup && e.injected == Some(Injected::Held))
    );
    assert!(
        c.sessions["part-sub"].connected,
        "the TCP connection survived the partition"
    );
    assert!(
        rig.faults
            .iter()
            .any(|(l, _)| l.contains("partition part-sub for 5s (held)"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latency_delays_delivery_and_is_marked_on_the_frames() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "lat-sub",
        true,
        "lat/t",
        QoS::AtMostOnce,
        "lat-pub",
    )
    .await;
    rig.inject(Fault::Latency {
        target: dev("lat-sub"),
        ms: 1500,
        jitter_ms: 0,
        duration: None,
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    publ.client
        .publish("lat/t", QoS::AtMostOnce, false, "slow")
        .await
        .unwrap();
    sub.expect("the message", 5, |p| matches!(p, Packet::Publish(_)))
        .await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1500),
        "arrived after {took:?}"
    );
    assert!(took < Duration::from_millis(4000), "arrived after {took:?}");
    rig.wait_for("the delivery", 5, |c| {
        c.topics.get("lat/t").is_some_and(|t| t.delivered == 1)
    })
    .await;
    let delivery = rig
        .capture
        .messages()
        .find(|(_, e)| e.dir == Direction::BrokerToClient)
        .unwrap()
        .1;
    assert_eq!(delivery.injected, Some(Injected::Delayed(1500)));
    // Clearing restores prompt delivery.
    // A stall is latency that hits some frames: with 100 % every frame waits 300 ms.
    rig.inject(Fault::ClearNetwork(dev("lat-sub")));
    rig.inject(Fault::Loss {
        target: dev("lat-sub"),
        drop_pct: 0.0,
        stall_pct: 100.0,
        stall_ms: 300,
        duration: None,
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ts = Instant::now();
    publ.client
        .publish("lat/t", QoS::AtMostOnce, false, "stalled")
        .await
        .unwrap();
    sub.expect("the stalled message", 5, |p| {
        matches!(p, Packet::Publish(_))
    })
    .await;
    assert!(
        ts.elapsed() >= Duration::from_millis(300),
        "stall of {:?}",
        ts.elapsed()
    );
    rig.inject(Fault::ClearNetwork(dev("lat-sub")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t1 = Instant::now();
    publ.client
        .publish("lat/t", QoS::AtMostOnce, false, "fast")
        .await
        .unwrap();
    sub.expect("the second message", 5, |p| matches!(p, Packet::Publish(_)))
        .await;
    assert!(
        t1.elapsed() < Duration::from_millis(1000),
        "after clearing: {:?}",
        t1.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_frames_never_reach_the_broker() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "loss-sub",
        true,
        "loss/t",
        QoS::AtMostOnce,
        "loss-pub",
    )
    .await;
    rig.inject(Fault::Loss {
        target: dev("loss-pub"),
        drop_pct: 100.0,
        stall_pct: 0.0,
        stall_ms: 0,
        duration: None,
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    for i in 0..5 {
        publ.client
            .publish("loss/t", QoS::AtMostOnce, false, format!("lost{i}"))
            .await
            .unwrap();
    }
    rig.wait_for("five dropped publishes", 5, |c| {
        c.messages()
            .filter(|(_, e)| e.injected == Some(Injected::Dropped))
            .count()
            == 5
    })
    .await;
    rig.settle(500).await;
    assert!(
        !rig.capture.topics.contains_key("loss/t"),
        "a dropped frame was delivered"
    );
    rig.inject(Fault::ClearNetwork(dev("loss-pub")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    publ.client
        .publish("loss/t", QoS::AtMostOnce, false, "kept")
        .await
        .unwrap();
    let p = sub
        .expect("the message after clearing", 5, |p| {
            matches!(p, Packet::Publish(_))
        })
        .await;
    assert_eq!(publish_payloads(&p).unwrap().1, b"kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bandwidth_cap_paces_a_large_message() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "bw-sub",
        true,
        "bw/t",
        QoS::AtMostOnce,
        "bw-pub",
    )
    .await;
    rig.inject(Fault::Bandwidth {
        target: dev("bw-sub"),
        bytes_per_s: 4000,
        duration: None,
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    publ.client
        .publish("bw/t", QoS::AtMostOnce, false, vec![7u8; 8000])
        .await
        .unwrap();
    sub.expect("the large message", 10, |p| matches!(p, Packet::Publish(_)))
        .await;
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(1800),
        "8000 B at 4000 B/s took {took:?}"
    );
    let _ = &mut rig;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_dead_client_times_out_at_the_broker_and_its_will_fires() {
    let mut rig = Rig::start().await;
    let mut watcher = connect(options("hd-watch", rig.port(), true));
    watcher.connack().await;
    watcher.subscribe("hd/will", QoS::AtLeastOnce).await;
    let mut o = options("hd-client", rig.port(), true);
    o.set_keep_alive(Duration::from_secs(2));
    o.set_last_will(LastWill::new("hd/will", "silent", QoS::AtLeastOnce, false));
    let mut c = connect(o);
    c.connack().await;
    let t0 = Instant::now();
    rig.inject(Fault::HalfDead {
        target: dev("hd-client"),
        duration: None,
    });
    let will = watcher
        .expect("the will after keepalive expiry", 10, |p| {
            matches!(p, Packet::Publish(_))
        })
        .await;
    let took = t0.elapsed();
    assert_eq!(
        publish_payloads(&will).unwrap(),
        ("hd/will", &b"silent"[..])
    );
    // rumqttd gives up after 1.5 × keepalive (3 s); allow slack for a loaded machine.
    assert!(
        took >= Duration::from_millis(2000) && took <= Duration::from_millis(5500),
        "will after {took:?}"
    );
    rig.wait_for("the broker's close recorded", 5, |c| {
        c.sessions.get("hd-client").is_some_and(|s| !s.connected)
    })
    .await;
    assert_eq!(
        rig.capture.sessions["hd-client"].last_disconnect(),
        Some(&CloseReason::BrokerClosed)
    );
    assert_eq!(rig.capture.topics["hd/will"].wills, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_restart_keeps_sessions_and_cold_restart_loses_them() {
    let mut rig = Rig::start().await;
    let mut first = connect(options("restart-me", rig.port(), false));
    first.connack().await;
    first.subscribe("r/t", QoS::AtLeastOnce).await;

    rig.inject(Fault::RestartBroker);
    let closed = tokio::time::timeout(Duration::from_secs(5), first.task).await;
    assert!(closed.is_ok(), "the restart cut the connection");
    // Connects are refused while the listener restarts; clients retry, as devices do.
    let mut attempts = 0;
    let present = loop {
        attempts += 1;
        let mut again = connect(options("restart-me", rig.port(), false));
        match tokio::time::timeout(Duration::from_secs(5), again.incoming.recv()).await {
            Ok(Some(Packet::ConnAck(ack))) => break ack.session_present,
            other => {
                rig.drain();
                let closes: Vec<String> = rig
                    .capture
                    .events()
                    .filter(|(_, e)| e.kind == PacketKind::Closed)
                    .map(|(_, e)| format!("{} {:?}", e.client_id, e.detail))
                    .collect();
                assert!(
                    attempts < 5,
                    "no CONNACK after {attempts} attempts: {other:?}\n{closes:#?}"
                )
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(present, "warm restart keeps the session");

    rig.inject(Fault::ColdRestartBroker);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut cold = connect(options("restart-me", rig.port(), false));
    assert!(
        !cold.connack().await.session_present,
        "cold restart loses the session"
    );

    rig.wait_for("three connects recorded", 5, |c| {
        c.sessions.get("restart-me").is_some_and(|s| {
            s.history
                .iter()
                .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
                .count()
                == 3
        })
    })
    .await;
    let present: Vec<bool> = rig.capture.sessions["restart-me"]
        .history
        .iter()
        .filter_map(|e| match e.kind {
            SessionEventKind::Connected {
                session_present, ..
            } => Some(session_present),
            _ => None,
        })
        .collect();
    assert_eq!(present, [false, true, false]);
    assert!(
        rig.capture.sessions["restart-me"]
            .history
            .iter()
            .any(|e| e.kind == SessionEventKind::Disconnected(CloseReason::BrokerClosed))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_takeover_closes_the_first_connection() {
    let mut rig = Rig::start().await;
    let mut original = connect(options("twin", rig.port(), true));
    original.connack().await;
    rig.inject(Fault::Takeover {
        client: "twin".into(),
        hold: secs(2),
    });
    rig.wait_for("two connections for one client id", 5, |c| {
        c.sessions.get("twin").is_some_and(|s| {
            s.history
                .iter()
                .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
                .count()
                == 2
        })
    })
    .await;
    rig.wait_for("the first connection closed by the broker", 5, |c| {
        c.sessions["twin"]
            .history
            .iter()
            .any(|e| e.kind == SessionEventKind::Disconnected(CloseReason::BrokerClosed))
    })
    .await;
    let s = &rig.capture.sessions["twin"];
    let conns: std::collections::HashSet<u64> = s.history.iter().map(|e| e.conn).collect();
    assert!(conns.len() >= 2, "the takeover came on a second connection");
    drop(original);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_that_stops_acking_gets_a_dup_redelivery_after_reconnect() {
    let scenario = Scenario::parse(
        r#"Scenario(name: "acks", devices: [
            (id: "listener", clean_session: false, keep_alive: "30s", subscribe: [(filter: "acks/t", qos: 1)]),
        ])"#,
        std::path::Path::new("inline.ron"),
    )
    .unwrap();
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(Box::new(scenario))));
    rig.wait_for("listener subscribed", 10, |c| {
        c.sessions
            .get("listener")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    rig.inject(Fault::StopAcking(dev("listener")));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut publ = connect(options("acker-pub", rig.port(), true));
    publ.connack().await;
    publ.client
        .publish("acks/t", QoS::AtLeastOnce, false, "ack me")
        .await
        .unwrap();
    rig.wait_for("the delivery, unacknowledged", 5, |c| {
        c.flows
            .iter()
            .any(|f| &*f.client_id == "listener" && f.state == FlowState::Open)
    })
    .await;
    rig.settle(500).await;
    assert!(
        rig.capture
            .flows
            .iter()
            .any(|f| &*f.client_id == "listener" && f.state == FlowState::Open),
        "no PUBACK went out"
    );
    rig.inject(Fault::ResumeAcking(dev("listener")));
    rig.inject(Fault::Drop(dev("listener")));
    rig.wait_for("listener offline", 5, |c| !c.sessions["listener"].connected)
        .await;
    rig.inject(Fault::Reconnect(dev("listener")));
    rig.wait_for("the redelivery completes", 10, |c| {
        c.flows
            .iter()
            .any(|f| &*f.client_id == "listener" && f.state == FlowState::Complete)
    })
    .await;
    let all: Vec<String> = rig
        .capture
        .flows
        .iter()
        .filter(|f| &*f.client_id == "listener")
        .map(|f| {
            format!(
                "pkid {} {:?} {:?}",
                f.pkid,
                f.state,
                f.steps
                    .iter()
                    .map(|s| (s.kind.name(), s.dup, s.conn))
                    .collect::<Vec<_>>()
            )
        })
        .collect();
    let f = rig
        .capture
        .flows
        .iter()
        .find(|f| &*f.client_id == "listener")
        .unwrap();
    assert_eq!(f.redeliveries(), 1, "{all:#?}");
    assert_eq!(f.step_names(), ["PUBLISH", "PUBLISH", "PUBACK"]);
    assert_ne!(
        f.steps[1].conn, f.steps[0].conn,
        "resent on the new connection"
    );
    assert_eq!(f.state, FlowState::Complete);
    // MQTT 3.1.1 §4.4 wants DUP=1 on a resend; the capture says what the broker did.
    if !f.steps[1].dup {
        assert!(
            f.deviation
                .as_deref()
                .is_some_and(|d| d.contains("without DUP")),
            "{:?}",
            f.deviation
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_fires_at_times_and_after_device_events() {
    let scenario = Scenario::parse(
        r#"Scenario(name: "timeline", devices: [
            (id: "beacon", will: (topic: "beacon/status", payload: Text("gone"), qos: 1)),
            (id: "watch", subscribe: [(filter: "beacon/#", qos: 1)]),
        ], timeline: [
            (at: "1s", fault: Drop(Device("beacon"))),
            (after: "beacon offline", delay: "500ms", fault: Reconnect(Device("beacon"))),
        ])"#,
        std::path::Path::new("inline.ron"),
    )
    .unwrap();
    let mut rig = Rig::start().await;
    let t0 = Instant::now();
    assert!(rig.handle.send(Command::LoadScenario(Box::new(scenario))));
    rig.wait_for("the will from the timed drop", 10, |c| {
        c.topics.get("beacon/status").is_some_and(|t| t.wills == 1)
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_millis(900));
    rig.wait_for("reconnected after going offline", 10, |c| {
        c.sessions["beacon"]
            .history
            .iter()
            .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
            .count()
            == 2
    })
    .await;
    rig.drain();
    let fired: Vec<_> = rig
        .faults
        .iter()
        .filter_map(|(l, i)| i.map(|i| (i, l.clone())))
        .collect();
    assert_eq!(
        fired,
        [
            (0, "drop beacon".to_string()),
            (1, "reconnect beacon".to_string())
        ]
    );
    let _ = PacketKind::Publish;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_connects_through_a_fault_set_before_it_connected_and_its_uplink_is_delayed() {
    let scenario = Scenario::parse(
        r#"Scenario(name: "slow", devices: [
            (id: "slowpoke", publish: [(topic: "slow/t", every: "1s", payload: Text("x"))]),
        ])"#,
        std::path::Path::new("inline.ron"),
    )
    .unwrap();
    let mut rig = Rig::start().await;
    // 1.5 s each way: the CONNECT/CONNACK round trip (3 s) outlasts the device's 1 s tick.
    rig.inject(Fault::Latency {
        target: dev("slowpoke"),
        ms: 1500,
        jitter_ms: 0,
        duration: None,
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(rig.handle.send(Command::LoadScenario(Box::new(scenario))));
    rig.wait_for("slowpoke connected despite the latency", 20, |c| {
        c.sessions.get("slowpoke").is_some_and(|s| s.connected)
    })
    .await;
    rig.wait_for("a delayed publish from slowpoke", 10, |c| {
        c.messages().any(|(_, e)| {
            &*e.client_id == "slowpoke"
                && e.dir == Direction::ClientToBroker
                && e.injected == Some(Injected::Delayed(1500))
        })
    })
    .await;
    let connects = rig.capture.sessions["slowpoke"]
        .history
        .iter()
        .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
        .count();
    assert_eq!(connects, 1, "one connect, no aborted attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_fault_ends_even_when_another_target_changed_meanwhile() {
    use mqtt_workbench::tap::faults::FaultKey;
    let mut rig = Rig::start().await;
    rig.inject(Fault::Latency {
        target: dev("a"),
        ms: 100,
        jitter_ms: 0,
        duration: Some(Dur(Duration::from_millis(1500))),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    rig.inject(Fault::Latency {
        target: dev("b"),
        ms: 200,
        jitter_ms: 0,
        duration: None,
    });
    rig.wait_for("both faults in force", 5, |_| true).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    rig.drain();
    assert_eq!(rig.net.len(), 2, "{:?}", rig.net);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    rig.drain();
    assert_eq!(rig.net.len(), 1, "a's latency ended on time: {:?}", rig.net);
    assert_eq!(rig.net[0].0, FaultKey::Client("b".into()));
}
