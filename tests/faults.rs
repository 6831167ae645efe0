//! Each fault kind injected against the embedded broker, and the protocol's
//! answer as the capture shows it.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqtt_workbench::capture::{FlowState, SessionEventKind};
use mqtt_workbench::command::Command;
use mqtt_workbench::fault::{Fault, FaultKey, NetFault, PartitionMode, Target};
use mqtt_workbench::model::Model;
use mqtt_workbench::scenario::Scenario;
use mqtt_workbench::wire::{CloseReason, Direction, Injected};
use rumqttc::{LastWill, Packet, QoS};

fn dev(id: &str) -> Target {
    Target::Device(id.to_string())
}

fn secs(s: u64) -> mqtt_workbench::time::Dur {
    mqtt_workbench::time::Dur::secs(s)
}

/// Inject a network fault and wait until the engine reports the tap's fault
/// table with it in force for `client` (the tap applies it from the next frame).
async fn inject_net(rig: &mut Rig, fault: Fault, client: &str, holds: impl Fn(&NetFault) -> bool) {
    rig.inject(fault);
    rig.wait_model("the network fault in force", 5, |m| {
        m.faults.net_for(client).is_some_and(&holds)
    })
    .await;
}

/// Clear a client's network faults and wait until the tap's table has none for it.
async fn clear_net(rig: &mut Rig, client: &str) {
    rig.inject(Fault::ClearNetwork(mqtt_workbench::fault::ClearNetwork {
        target: dev(client),
    }));
    rig.wait_model("the network faults cleared", 5, |m| {
        m.faults.net_for(client).is_none_or(NetFault::is_clear)
    })
    .await;
}

/// Wait until the engine reports a fault whose label contains `what` (it is
/// reported once the fault took effect: a restart has finished).
async fn wait_marker(rig: &mut Rig, what: &str) {
    let n = |m: &Model| {
        m.faults
            .markers
            .iter()
            .filter(|x| x.label.contains(what))
            .count()
    };
    let before = n(&rig.model);
    rig.wait_model(what, 15, |m| n(m) > before).await;
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

    let t0 = Instant::now();
    inject_net(
        &mut rig,
        Fault::Partition(mqtt_workbench::fault::Partition {
            target: dev("part-sub"),
            duration: secs(5),
            hold: true,
        }),
        "part-sub",
        |f| f.partition == Some(PartitionMode::Hold),
    )
    .await;
    for i in 0..10 {
        publ.client
            .publish("part/t", QoS::AtLeastOnce, false, format!("m{i}"))
            .await
            .unwrap();
    }
    // The tap holds all ten on their way to the subscriber…
    rig.wait_for("ten deliveries held by the partition", 4, |c| {
        c.messages()
            .filter(|(_, e)| &*e.client_id == "part-sub" && e.injected == Some(Injected::Held))
            .count()
            == 10
    })
    .await;
    // …and none has reached it.
    assert!(
        sub.incoming.try_recv().is_err(),
        "a message got through the partition"
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
    let c = &rig.model.capture;
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
        rig.model
            .faults
            .markers
            .iter()
            .any(|m| m.label.contains("partition part-sub for 5s (held)"))
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
    inject_net(
        &mut rig,
        Fault::Latency(mqtt_workbench::fault::Latency {
            target: dev("lat-sub"),
            ms: 1500,
            jitter_ms: 0,
            duration: None,
        }),
        "lat-sub",
        |f| f.latency_ms == 1500,
    )
    .await;
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
    rig.wait_for("the delivery", 5, |c| {
        c.topics.get("lat/t").is_some_and(|t| t.delivered == 1)
    })
    .await;
    let delivery = rig
        .model
        .capture
        .messages()
        .find(|(_, e)| e.dir == Direction::BrokerToClient)
        .unwrap()
        .1;
    assert_eq!(delivery.injected, Some(Injected::Delayed(1500)));
    // A stall is latency that hits some frames: with 100 % every frame waits 300 ms.
    clear_net(&mut rig, "lat-sub").await;
    inject_net(
        &mut rig,
        Fault::Loss(mqtt_workbench::fault::Loss {
            target: dev("lat-sub"),
            drop_pct: 0.0,
            stall_pct: 100.0,
            stall_ms: 300,
            duration: None,
        }),
        "lat-sub",
        |f| f.stall_pct == 100.0,
    )
    .await;
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
    // Cleared: the next delivery passes unmarked.
    clear_net(&mut rig, "lat-sub").await;
    publ.client
        .publish("lat/t", QoS::AtMostOnce, false, "fast")
        .await
        .unwrap();
    sub.expect("the third message", 5, |p| matches!(p, Packet::Publish(_)))
        .await;
    let fast = |c: &mqtt_workbench::capture::Capture| {
        c.messages()
            .find(|(_, e)| {
                e.dir == Direction::BrokerToClient && e.payload.as_deref() == Some(&b"fast"[..])
            })
            .map(|(_, e)| e.injected)
    };
    rig.wait_for("the fast delivery captured", 5, |c| fast(c).is_some())
        .await;
    assert_eq!(
        fast(&rig.model.capture),
        Some(None),
        "no fault after clearing"
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
    inject_net(
        &mut rig,
        Fault::Loss(mqtt_workbench::fault::Loss {
            target: dev("loss-pub"),
            drop_pct: 100.0,
            stall_pct: 0.0,
            stall_ms: 0,
            duration: None,
        }),
        "loss-pub",
        |f| f.drop_pct == 100.0,
    )
    .await;
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
    clear_net(&mut rig, "loss-pub").await;
    publ.client
        .publish("loss/t", QoS::AtMostOnce, false, "kept")
        .await
        .unwrap();
    // One connection keeps order: had a dropped frame got through, it would arrive first.
    let p = sub
        .expect("the message after clearing", 5, |p| {
            matches!(p, Packet::Publish(_))
        })
        .await;
    assert_eq!(publish_payloads(&p).unwrap().1, b"kept");
    rig.wait_for("the kept message captured", 5, |c| {
        c.topics.get("loss/t").is_some_and(|t| t.delivered == 1)
    })
    .await;
    assert_eq!(
        rig.model.capture.topics["loss/t"].published, 1,
        "dropped frames never reached the broker (they change no topic)"
    );
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
    inject_net(
        &mut rig,
        Fault::Bandwidth(mqtt_workbench::fault::Bandwidth {
            target: dev("bw-sub"),
            bytes_per_s: 4000,
            duration: None,
        }),
        "bw-sub",
        |f| f.bandwidth_bps == 4000,
    )
    .await;
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
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_dead_client_times_out_at_the_broker_and_its_will_fires() {
    half_dead_times_out("hd", false).await;
}

/// MQTT 3.1.1 [MQTT-3.1.2-24]: the keep alive counts what the client sends.
/// A half-dead subscriber on a busy topic is still closed after 1.5 × its
/// keep alive (the broker restarted the keep alive at every message it sent
/// until the patch in `vendor/rumqttd/src/link/network.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_dead_subscriber_on_a_busy_topic_still_times_out_and_its_will_fires() {
    half_dead_times_out("hd2", true).await;
}

/// A client with keep alive 2 s and a will goes half-dead (the tap stops
/// reading it); the broker must close it and publish the will, not before
/// the keep alive ran out. `busy`: it subscribes to a topic that gets a
/// message every 300 ms meanwhile.
async fn half_dead_times_out(name: &str, busy: bool) {
    let (will_topic, feed_topic, id) = (
        format!("{name}/will"),
        format!("{name}/feed"),
        format!("{name}-client"),
    );
    let mut rig = Rig::start().await;
    let mut watcher = connect(options(&format!("{name}-watch"), rig.port(), true));
    watcher.connack().await;
    watcher.subscribe(&will_topic, QoS::AtLeastOnce).await;
    let mut o = options(&id, rig.port(), true);
    o.set_keep_alive(Duration::from_secs(2));
    o.set_last_will(LastWill::new(
        &will_topic,
        "silent",
        QoS::AtLeastOnce,
        false,
    ));
    let mut c = connect(o);
    c.connack().await;
    let mut feeder = None;
    if busy {
        c.subscribe(&feed_topic, QoS::AtMostOnce).await;
        let mut f = connect(options(&format!("{name}-feeder"), rig.port(), true));
        f.connack().await;
        feeder = Some(f);
    }
    let t0 = Instant::now();
    rig.inject(Fault::HalfDead(mqtt_workbench::fault::HalfDead {
        target: dev(&id),
        duration: None,
    }));
    // A message for the silent client every 300 ms (at most 40, 12 s).
    let feed = feeder.map(|feeder| {
        let topic = feed_topic.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(300));
            for i in 0..40u32 {
                every.tick().await;
                let sent = feeder
                    .client
                    .publish(&topic, QoS::AtMostOnce, false, i.to_string());
                if sent.await.is_err() {
                    break;
                }
            }
        })
    });
    let will = watcher
        .expect("the will after keepalive expiry", 10, |p| {
            matches!(p, Packet::Publish(_))
        })
        .await;
    let took = t0.elapsed();
    if let Some(feed) = feed {
        feed.abort();
    }
    assert_eq!(
        publish_payloads(&will).expect("the will is a PUBLISH"),
        (will_topic.as_str(), &b"silent"[..])
    );
    // rumqttd gives up after 1.5 × keepalive (3 s): never before the keepalive expired.
    assert!(took >= Duration::from_millis(2000), "will after {took:?}");
    rig.wait_for("the broker's close recorded", 5, |c| {
        c.sessions.get(id.as_str()).is_some_and(|s| !s.connected)
    })
    .await;
    assert_eq!(
        rig.model.capture.sessions[id.as_str()].last_disconnect(),
        Some(&CloseReason::BrokerClosed)
    );
    assert_eq!(rig.model.capture.topics[will_topic.as_str()].wills, 1);
    if busy {
        // The broker was sending to it all along: the tap read those messages.
        let delivered = rig.model.capture.topics[feed_topic.as_str()].delivered;
        assert!(
            delivered >= 3,
            "messages went to the silent subscriber: {delivered}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_restart_keeps_sessions_and_cold_restart_loses_them() {
    let mut rig = Rig::start().await;
    let mut first = connect(options("restart-me", rig.port(), false));
    first.connack().await;
    first.subscribe("r/t", QoS::AtLeastOnce).await;

    rig.inject(Fault::RestartBroker(mqtt_workbench::fault::RestartBroker));
    let closed = tokio::time::timeout(Duration::from_secs(5), first.task).await;
    assert!(closed.is_ok(), "the restart cut the connection");
    wait_marker(&mut rig, "broker restart").await;
    let mut again = connect(options("restart-me", rig.port(), false));
    assert!(
        again.connack().await.session_present,
        "warm restart keeps the session"
    );

    rig.inject(Fault::ColdRestartBroker(
        mqtt_workbench::fault::ColdRestartBroker,
    ));
    wait_marker(&mut rig, "cold restart").await;
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
    let present: Vec<bool> = rig.model.capture.sessions["restart-me"]
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
        rig.model.capture.sessions["restart-me"]
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
    rig.inject(Fault::Takeover(mqtt_workbench::fault::Takeover {
        client: "twin".into(),
        hold: secs(2),
    }));
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
    let s = &rig.model.capture.sessions["twin"];
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
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
    rig.wait_for("listener subscribed", 10, |c| {
        c.sessions
            .get("listener")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    rig.inject(Fault::StopAcking(mqtt_workbench::fault::StopAcking {
        target: dev("listener"),
    }));
    wait_marker(&mut rig, "listener stops acking").await;
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
    rig.inject(Fault::ResumeAcking(mqtt_workbench::fault::ResumeAcking {
        target: dev("listener"),
    }));
    rig.inject(Fault::Drop(mqtt_workbench::fault::Drop {
        target: dev("listener"),
    }));
    rig.wait_for("listener offline", 5, |c| !c.sessions["listener"].connected)
        .await;
    rig.inject(Fault::Reconnect(mqtt_workbench::fault::Reconnect {
        target: dev("listener"),
    }));
    rig.wait_for("the redelivery completes", 10, |c| {
        c.flows
            .iter()
            .any(|f| &*f.client_id == "listener" && f.state == FlowState::Complete)
    })
    .await;
    let all: Vec<String> = rig
        .model
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
        .model
        .capture
        .flows
        .iter()
        .find(|f| &*f.client_id == "listener")
        .unwrap();
    // Redelivered after the reconnect: no PUBACK went out on the first connection.
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
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
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
        .model
        .faults
        .markers
        .iter()
        .filter_map(|m| m.timeline.map(|i| (i, m.label.clone())))
        .collect();
    assert_eq!(
        fired,
        [
            (0, "drop beacon".to_string()),
            (1, "reconnect beacon".to_string())
        ]
    );
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
    inject_net(
        &mut rig,
        Fault::Latency(mqtt_workbench::fault::Latency {
            target: dev("slowpoke"),
            ms: 1500,
            jitter_ms: 0,
            duration: None,
        }),
        "slowpoke",
        |f| f.latency_ms == 1500,
    )
    .await;
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
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
    let connects = rig.model.capture.sessions["slowpoke"]
        .history
        .iter()
        .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
        .count();
    assert_eq!(connects, 1, "one connect, no aborted attempts");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_fault_ends_even_when_another_target_changed_meanwhile() {
    let mut rig = Rig::start().await;
    inject_net(
        &mut rig,
        Fault::Latency(mqtt_workbench::fault::Latency {
            target: dev("a"),
            ms: 100,
            jitter_ms: 0,
            duration: Some(mqtt_workbench::time::Dur(Duration::from_millis(1500))),
        }),
        "a",
        |f| f.latency_ms == 100,
    )
    .await;
    inject_net(
        &mut rig,
        Fault::Latency(mqtt_workbench::fault::Latency {
            target: dev("b"),
            ms: 200,
            jitter_ms: 0,
            duration: None,
        }),
        "b",
        |f| f.latency_ms == 200,
    )
    .await;
    assert_eq!(rig.model.faults.net.len(), 2, "{:?}", rig.model.faults.net);
    // a's timer undoes a's change only; b's later change must not keep a's alive.
    rig.wait_model("a's latency ended", 10, |m| {
        m.faults
            .net
            .iter()
            .all(|(k, f)| *k != FaultKey::Client("a".into()) || f.is_clear())
    })
    .await;
    assert_eq!(
        rig.model.faults.net_for("b").map(|f| f.latency_ms),
        Some(200),
        "b's latency is untouched"
    );
}
