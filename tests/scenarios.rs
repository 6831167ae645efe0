//! Every shipped scenario parses and runs against the embedded broker, and
//! shows what its comments promise.

mod common;

use std::path::Path;

use common::*;
use mqtt_workbench::capture::{Capture, FlowState, SessionEventKind};
use mqtt_workbench::command::Command;
use mqtt_workbench::event::DeviceState;
use mqtt_workbench::fault::{DeviceAction, Target};
use mqtt_workbench::scenario::Scenario;
use mqtt_workbench::wire::{CloseReason, Direction};
use rumqttc::{Packet, QoS};

fn load(name: &str) -> Scenario {
    Scenario::load(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scenarios")
            .join(name),
    )
    .expect("a shipped scenario loads")
}

async fn run(name: &str) -> (Rig, Scenario) {
    let scenario = load(name);
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
    let n = scenario.device_count();
    rig.wait_for(&format!("all {n} devices of {name} connected"), 30, |c| {
        c.connected_clients() == n
    })
    .await;
    (rig, scenario)
}

fn delivered_to(c: &Capture, client: &str, topic: &str) -> Vec<String> {
    c.messages()
        .filter(|(_, e)| {
            &*e.client_id == client
                && e.dir == Direction::BrokerToClient
                && e.topic.as_deref() == Some(topic)
        })
        .map(|(_, e)| {
            String::from_utf8_lossy(e.payload.as_deref().unwrap_or_default()).into_owned()
        })
        .collect()
}

#[test]
fn every_shipped_scenario_parses_and_each_shows_a_protocol_feature() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "ron") {
            let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e}"));
            let qos2 = s
                .devices
                .iter()
                .any(|d| d.publish.iter().any(|p| p.qos.0 == 2));
            let retained = s.devices.iter().any(|d| d.publish.iter().any(|p| p.retain));
            // A Sparkplug role's CONNECT always carries a will (NDEATH, or STATE death).
            let will = s
                .devices
                .iter()
                .any(|d| d.will.is_some() || d.sparkplug.is_some());
            let persistent = s.devices.iter().any(|d| !d.clean_session);
            assert!(
                qos2 || retained || will || persistent,
                "{} shows none of QoS 2, retained, will, persistent",
                path.display()
            );
            names.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    names.sort();
    assert_eq!(
        names,
        [
            "car-sharing.ron",
            "drone-fleet.ron",
            "flaky-drones.ron",
            "fridge-fleet.ron",
            "pid-thermostat.ron",
            "power-plants.ron",
            "sparkplug-edge.ron",
            "temperature.ron",
            "thermostats-mqtt5.ron",
            "wine-cooler.ron"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temperature_sensor_reaches_the_app_and_its_will_fires_on_drop() {
    let (mut rig, _) = run("temperature.ron").await;
    rig.wait_for("two readings delivered to the app", 10, |c| {
        delivered_to(c, "temp-app", "temp").len() >= 2
    })
    .await;
    for v in delivered_to(&rig.model.capture, "temp-app", "temp") {
        let x: f64 = v
            .parse()
            .unwrap_or_else(|_| panic!("numeric payload, got {v:?}"));
        assert!((15.0..=28.0).contains(&x));
    }
    assert_eq!(
        rig.model.capture.topics["sensor/status"]
            .retained
            .as_deref(),
        Some(&b"online"[..])
    );
    assert!(rig.handle.send(Command::Device(
        Target::Device("temp-sensor".into()),
        DeviceAction::Drop
    )));
    rig.wait_for("the will delivered to the app", 10, |c| {
        delivered_to(c, "temp-app", "sensor/status").contains(&"offline".to_string())
    })
    .await;
    let s = &rig.model.capture.sessions["temp-sensor"];
    assert!(!s.connected);
    assert_eq!(s.last_disconnect(), Some(&CloseReason::ClientClosed));
    assert_eq!(
        rig.model.devices.state("temp-sensor"),
        Some(DeviceState::Offline)
    );
    // Reconnect: the device comes back and republishes its retained "online".
    assert!(rig.handle.send(Command::Device(
        Target::Device("temp-sensor".into()),
        DeviceAction::Reconnect
    )));
    rig.wait_for("reconnected and online again", 10, |c| {
        c.sessions["temp-sensor"].connected
            && delivered_to(c, "temp-app", "sensor/status")
                .last()
                .map(String::as_str)
                == Some("online")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drone_fleet_flies_waypoints_and_obeys_commands() {
    let (mut rig, _) = run("drone-fleet.ron").await;
    rig.wait_for("two flight reports from drone-3", 10, |c| {
        c.topics
            .get("drones/drone-3/flight")
            .is_some_and(|t| t.published >= 2)
    })
    .await;
    let last = &rig.model.capture.topics["drones/drone-3/flight"].last_payload;
    let v: serde_json::Value = serde_json::from_slice(last).unwrap();
    assert!(
        v["position"]["lat"]
            .as_f64()
            .is_some_and(|x| (48.8..48.9).contains(&x)),
        "{v}"
    );
    assert_eq!(v["mode"], "flying");
    let mut op = connect(options("operator", rig.port(), true));
    op.connack().await;
    op.subscribe("drones/drone-3/ack", QoS::AtLeastOnce).await;
    op.client
        .publish("drones/drone-3/cmd", QoS::AtLeastOnce, false, "landing")
        .await
        .unwrap();
    let ack = op
        .expect("the drone's ack", 10, |p| matches!(p, Packet::Publish(_)))
        .await;
    assert_eq!(publish_payloads(&ack).unwrap().1, b"landing acknowledged");
    rig.wait_for("mode changed in flight reports", 10, |c| {
        serde_json::from_slice::<serde_json::Value>(&c.topics["drones/drone-3/flight"].last_payload)
            .is_ok_and(|v| v["mode"] == "landing")
    })
    .await;
    // Stations see every drone's retained status.
    rig.wait_for("station-1 got drone statuses", 10, |c| {
        c.sessions["station-1"].received >= 6
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_plants_use_qos2_and_the_station_keeps_its_session_offline() {
    let (mut rig, _) = run("power-plants.ron").await;
    rig.wait_for("complete QoS 2 flows on both legs", 10, |c| {
        let done = |leg| {
            c.flows
                .iter()
                .any(|f| f.qos == 2 && f.leg == leg && f.state == FlowState::Complete)
        };
        done(Direction::ClientToBroker) && done(Direction::BrokerToClient)
    })
    .await;
    assert!(rig.handle.send(Command::Device(
        Target::Device("monitoring-station".into()),
        DeviceAction::Disconnect
    )));
    rig.wait_for("station offline", 10, |c| {
        !c.sessions["monitoring-station"].connected
    })
    .await;
    let before = rig.model.capture.sessions["monitoring-station"].received;
    let published_at_disconnect: u64 = rig
        .model
        .capture
        .topics
        .iter()
        .filter(|(t, _)| t.ends_with("/output"))
        .map(|(_, s)| s.published)
        .sum();
    rig.wait_for("readings published while offline", 10, |c| {
        c.topics
            .iter()
            .filter(|(t, _)| t.ends_with("/output"))
            .map(|(_, s)| s.published)
            .sum::<u64>()
            >= published_at_disconnect + 3
    })
    .await;
    assert!(rig.handle.send(Command::Device(
        Target::Device("monitoring-station".into()),
        DeviceAction::Reconnect
    )));
    rig.wait_for("queued readings delivered on reconnect", 10, |c| {
        c.sessions["monitoring-station"].received >= before + 3
    })
    .await;
    let s = &rig.model.capture.sessions["monitoring-station"];
    assert!(matches!(
        s.history.back().map(|e| &e.kind),
        Some(SessionEventKind::Connected {
            session_present: true,
            clean_session: false
        })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wine_cooler_obeys_its_setpoint_and_alerts_out_of_range() {
    let (mut rig, _) = run("wine-cooler.ron").await;
    // It starts at 16 °C, above the 10–14 °C range: the alert fires once.
    rig.wait_for("out-of-range alert", 10, |c| {
        delivered_to(c, "owner-app", "cellar/cooler-1/alert")
            .iter()
            .any(|p| p.contains("out of range"))
    })
    .await;
    let mut op = connect(options("tester", rig.port(), true));
    op.connack().await;
    op.client
        .publish("cellar/cooler-1/setpoint", QoS::AtLeastOnce, false, "8.5")
        .await
        .unwrap();
    rig.wait_for("set-point acknowledged, retained", 10, |c| {
        c.topics
            .get("cellar/cooler-1/setpoint/ack")
            .is_some_and(|t| t.retained.as_deref() == Some(&b"8.5"[..]))
    })
    .await;
    rig.wait_for("telemetry shows the new set-point", 10, |c| {
        serde_json::from_slice::<serde_json::Value>(
            &c.topics["cellar/cooler-1/telemetry"].last_payload,
        )
        .is_ok_and(|v| v["setpoint"] == 8.5)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn car_sharing_fleet_of_three_hundred_runs_on_the_bus() {
    let (mut rig, s) = run("car-sharing.ron").await;
    assert_eq!(s.device_count(), 302);
    rig.wait_for("booking commands reach cars and cars answer", 15, |c| {
        c.topics.keys().filter(|t| t.ends_with("/cmd")).count() >= 2
            && c.sessions["fleet-manager"].received >= 300
    })
    .await;
    let persistent = rig
        .model
        .capture
        .sessions
        .values()
        .filter(|s| !s.clean_session)
        .count();
    assert_eq!(persistent, 302);
    // Drop the whole fleet: every car's will ("unreachable") is published.
    assert!(rig.handle.send(Command::Device(
        Target::Fleet("car-{i}".into()),
        DeviceAction::Drop
    )));
    rig.wait_for("300 wills", 20, |c| {
        c.topics
            .iter()
            .filter(|(t, st)| {
                t.ends_with("/status")
                    && st.last_payload.as_ref() == b"unreachable"
                    && st.wills >= 1
            })
            .count()
            == 300
    })
    .await;
    assert_eq!(
        rig.model
            .capture
            .sessions
            .values()
            .filter(|s| s.connected)
            .count(),
        2,
        "only the services are left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flaky_drones_tunnel_holds_telemetry_and_delivers_it_once_without_a_will() {
    use mqtt_workbench::wire::Injected;
    let (mut rig, _) = run("flaky-drones.ron").await;
    // 15 s: cell-drone-2 enters an 8 s tunnel; wait until it has healed and the burst arrived.
    rig.wait_model("the tunnel fault fired", 30, |m| {
        m.faults.markers.iter().any(|x| x.timeline == Some(1))
    })
    .await;
    let first = &rig.model.faults.markers[0];
    assert_eq!(
        (first.label.as_str(), first.timeline),
        (
            "latency 400±200 ms on fleet cell-drone-{i} for 20s",
            Some(0)
        )
    );
    rig.wait_for("held telemetry delivered after the tunnel", 20, |c| {
        c.messages()
            .any(|(_, e)| &*e.client_id == "cell-drone-2" && e.injected == Some(Injected::Held))
            && c.flows
                .iter()
                .filter(|f| &*f.client_id == "cell-drone-2" && f.leg == Direction::ClientToBroker)
                .all(|f| f.state == FlowState::Complete)
            && c.messages()
                .filter(|(_, e)| {
                    &*e.client_id == "cell-drone-2" && e.injected == Some(Injected::Held)
                })
                .count()
                >= 5
    })
    .await;
    // Fresh telemetry after the burst: everything held before it has arrived.
    let ground_seqs = |c: &Capture| -> Vec<u64> {
        c.messages()
            .filter(|(_, e)| {
                &*e.client_id == "ground-control"
                    && e.topic.as_deref() == Some("drones/cell-drone-2/telemetry")
            })
            .filter_map(|(_, e)| {
                serde_json::from_slice::<serde_json::Value>(e.payload.as_deref()?).ok()?["seq"]
                    .as_u64()
            })
            .collect()
    };
    let burst_max = ground_seqs(&rig.model.capture)
        .into_iter()
        .max()
        .unwrap_or(0);
    rig.wait_for("telemetry published after the burst delivered", 10, |c| {
        ground_seqs(c).into_iter().any(|s| s > burst_max + 1)
    })
    .await;
    let c = &rig.model.capture;
    // The connection survived: no will, no reconnect.
    assert!(c.sessions["cell-drone-2"].connected);
    assert_eq!(
        c.sessions["cell-drone-2"]
            .history
            .iter()
            .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
            .count(),
        1
    );
    assert_eq!(c.topics["drones/cell-drone-2/link"].wills, 0);
    // Ground control got every telemetry sequence number of cell-drone-2 exactly once.
    let seqs: Vec<u64> = ground_seqs(c);
    let mut sorted = seqs.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        seqs.len(),
        "a telemetry message arrived twice: {seqs:?}"
    );
    assert_eq!(
        sorted,
        (1..=sorted.len() as u64).collect::<Vec<_>>(),
        "a gap in telemetry: {seqs:?}"
    );
    assert!(
        seqs.len() >= 20,
        "{} telemetry messages: {seqs:?}",
        seqs.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_virtual_device_may_ask_for_no_keepalive() {
    let scenario = Scenario::parse(
        r#"Scenario(name: "ka0", devices: [
            (id: "sleepy", keep_alive: "0s", publish: [(topic: "sleepy/t", every: "200ms", payload: Text("z"))]),
        ])"#,
        Path::new("inline.ron"),
    )
    .expect("keep_alive 0s is valid");
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
    rig.wait_for("sleepy publishing", 10, |c| {
        c.topics.get("sleepy/t").is_some_and(|t| t.published >= 2)
    })
    .await;
    let s = &rig.model.capture.sessions["sleepy"];
    assert_eq!((s.keep_alive_s, s.connected), (0, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_scenario_never_receives_the_last_reports_of_the_previous_one() {
    let mut rig = Rig::start().await;
    let first = load("temperature.ron");
    assert!(rig.handle.send(Command::LoadScenario(first.to_source())));
    rig.wait_model("the first scenario connected", 15, |m| {
        m.devices.connected() == first.device_count()
    })
    .await;
    let second = load("wine-cooler.ron");
    assert!(rig.handle.send(Command::LoadScenario(second.to_source())));
    rig.wait_model("the second scenario connected", 15, |m| {
        m.scenario
            .as_ref()
            .is_some_and(|s| s.info.name == second.name)
            && m.devices.connected() == second.device_count()
    })
    .await;
    // The first scenario's final "stopped" reports came before the second started.
    let m = &rig.model;
    assert_eq!(m.devices.len(), second.device_count(), "no phantom devices");
    assert!(m.devices.get("temp-sensor").is_none());
    assert_eq!(
        m.devices
            .fleets()
            .iter()
            .map(|f| f.id.as_str())
            .collect::<Vec<_>>(),
        second
            .devices
            .iter()
            .map(|d| d.id.as_str())
            .collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_without_devices_starts_and_stops() {
    let empty = Scenario::parse(r#"Scenario(name: "broker only")"#, Path::new("empty.ron"))
        .expect("an empty scenario is valid");
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(empty.to_source())));
    rig.wait_model("started", 5, |m| m.scenario.is_some()).await;
    assert!(rig.handle.send(Command::StopScenario));
    rig.wait_model("stopped", 5, |m| m.scenario.is_none()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_text_keeps_its_braces_and_fills_its_placeholders() {
    let scenario = Scenario::parse(
        r#"Scenario(name: "json", devices: [
            (id: "j", vars: {"level": 2.5}, publish: [
                (topic: "j/t", every: "100ms", payload: Text("{\"on\": true, \"n\": {seq}, \"lvl\": {level}, \"raw\": \"{{id}\"}")),
            ]),
        ])"#,
        Path::new("json.ron"),
    )
    .expect("valid");
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(scenario.to_source())));
    rig.wait_for("the first message", 10, |c| c.topics.contains_key("j/t"))
        .await;
    let first = rig
        .model
        .capture
        .messages()
        .find(|(_, e)| e.topic.as_deref() == Some("j/t"))
        .and_then(|(_, e)| e.payload.clone())
        .expect("a payload");
    assert_eq!(
        std::str::from_utf8(&first).expect("text"),
        r#"{"on": true, "n": 1, "lvl": 2.5, "raw": "{id}"}"#
    );
}

/// MQTT 3.1.1 §1.5.3, MQTT 5 §1.5.4: topics are UTF-8. rumqttd 0.20's
/// matcher sliced the first byte of `ü/temp` and its router panicked for
/// every client (vendor patch in `protocol/mod.rs`); the tap no longer
/// refuses such topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_starting_with_a_non_ascii_character_is_delivered_and_the_broker_stays_up() {
    let mut rig = Rig::start().await;
    let (mut sub, publ) =
        sub_and_pub(rig.port(), "u-sub", true, "#", QoS::AtLeastOnce, "u-pub").await;
    publ.client
        .publish("ü/temp", QoS::AtLeastOnce, false, "21")
        .await
        .expect("queued");
    sub.expect("the UTF-8 topic delivered", 5, |p| {
        publish_payloads(p).is_some_and(|(t, b)| t == "ü/temp" && b == b"21")
    })
    .await;
    // A filter that starts with one works too, and the broker serves on.
    let (mut sub2, other) = sub_and_pub(
        rig.port(),
        "u-sub2",
        true,
        "ü/#",
        QoS::AtLeastOnce,
        "u-pub2",
    )
    .await;
    other
        .client
        .publish("ü/x", QoS::AtLeastOnce, false, "ok")
        .await
        .expect("queued");
    sub2.expect("a message on the UTF-8 filter", 5, |p| {
        publish_payloads(p).is_some_and(|(t, _)| t == "ü/x")
    })
    .await;
    rig.wait_for("the publisher still connected, never closed", 5, |c| {
        c.sessions
            .get("u-pub")
            .is_some_and(|s| s.connected && s.last_disconnect().is_none())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_thermostats_answer_requests_with_the_correlation_data() {
    let (mut rig, _) = run("thermostats-mqtt5.ron").await;
    rig.wait_for("two answers delivered to home-app-1", 15, |c| {
        delivered_to(c, "home-app-1", "home/home-app-1/reply").len() >= 2
    })
    .await;
    let c = &rig.model.capture;
    let v5 = |client: &str, topic: &str, dir: Direction| -> Vec<_> {
        c.messages()
            .filter(|(_, e)| {
                &*e.client_id == client && e.dir == dir && e.topic.as_deref() == Some(topic)
            })
            .map(|(_, e)| (e.protocol, e.v5.clone().map(|p| *p).unwrap_or_default()))
            .collect()
    };
    // Each request names where to answer and carries correlation data; the
    // answer delivered to the app echoes it.
    let requests = v5(
        "home-app-1",
        "home/thermostat-1/get",
        Direction::ClientToBroker,
    );
    let answers = v5(
        "home-app-1",
        "home/home-app-1/reply",
        Direction::BrokerToClient,
    );
    assert!(!requests.is_empty() && !answers.is_empty());
    for (protocol, props) in &requests {
        assert_eq!(*protocol, 5);
        assert_eq!(
            props.response_topic.as_deref(),
            Some("home/home-app-1/reply")
        );
        assert_eq!(props.message_expiry_s, Some(10));
    }
    let asked: Vec<_> = requests
        .iter()
        .map(|(_, p)| p.correlation_data.clone())
        .collect();
    for (_, props) in &answers {
        let corr = props.correlation_data.clone();
        assert!(
            corr.as_deref().is_some_and(|c| c.starts_with("req-1-")),
            "{corr:?}"
        );
        assert!(
            asked.contains(&corr),
            "answer {corr:?} to a request never sent"
        );
    }
    // Telemetry: properties and the alias as the thermostat sent them; the
    // topic is resolved from the alias on every frame.
    let telemetry = v5(
        "thermostat-2",
        "home/thermostat-2/telemetry",
        Direction::ClientToBroker,
    );
    assert!(telemetry.len() >= 2, "the second one uses the alias alone");
    for (_, props) in &telemetry {
        assert_eq!(props.topic_alias, Some(1));
        assert_eq!(props.content_type.as_deref(), Some("application/json"));
        assert_eq!(
            props.user_properties,
            [("unit".to_string(), "celsius".to_string())]
        );
    }
    // The 3.1.1 dashboard gets the same telemetry, as 3.1.1 (no properties).
    rig.wait_for("telemetry delivered to the 3.1.1 dashboard", 10, |c| {
        !delivered_to(c, "dashboard", "home/thermostat-2/telemetry").is_empty()
    })
    .await;
    let c = &rig.model.capture;
    assert_eq!(c.sessions["thermostat-1"].protocol, 5);
    assert_eq!(c.sessions["dashboard"].protocol, 4);
    let connect = c
        .events()
        .find(|(_, e)| {
            &*e.client_id == "thermostat-1" && e.kind == mqtt_workbench::wire::PacketKind::Connect
        })
        .map(|(_, e)| e.v5.clone().map(|p| *p).unwrap_or_default())
        .expect("thermostat-1's CONNECT captured");
    assert!(
        connect
            .user_properties
            .contains(&("model".to_string(), "TH-5".to_string()))
    );
    let app = c
        .events()
        .find(|(_, e)| {
            &*e.client_id == "home-app-1" && e.kind == mqtt_workbench::wire::PacketKind::Connect
        })
        .and_then(|(_, e)| e.v5.clone())
        .expect("home-app-1's CONNECT has properties");
    assert_eq!(app.session_expiry_s, Some(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparkplug_devices_encode_what_the_decoder_reads_by_name() {
    let (mut rig, _) = run("sparkplug-edge.ron").await;
    let topic = "spBv1.0/plant/DDATA/edge-1/pump-1";
    rig.wait_for("two pump DDATA", 10, |c| {
        c.topics.get(topic).is_some_and(|t| t.published >= 2)
    })
    .await;
    let payload = rig.model.capture.topics[topic].last_payload.clone();
    let v = rig
        .model
        .decoders
        .decode(topic, &payload)
        .expect("a Sparkplug B payload");
    // DDATA carries aliases only: the names come from the DBIRTH.
    let m = &v["metrics"];
    assert!(
        m["Temperature"]["value"]
            .as_f64()
            .is_some_and(|t| (40.0..=90.0).contains(&t)),
        "{v}"
    );
    assert_eq!(m["Temperature"]["type"], "Float");
    assert_eq!(m["Running"]["value"], true);
    assert!(
        ["auto", "manual"].contains(&m["Mode"]["value"].as_str().unwrap_or("")),
        "{v}"
    );
    assert!(v["seq"].as_u64().is_some_and(|s| s >= 1), "{v}");
    // Drop the edge node: the broker publishes its NDEATH (a Sparkplug will).
    assert!(rig.handle.send(Command::Device(
        Target::Device("edge-1".into()),
        DeviceAction::Drop
    )));
    rig.wait_for("the NDEATH delivered to the primary host", 10, |c| {
        !delivered_to(c, "primary-host", "spBv1.0/plant/NDEATH/edge-1").is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_maps_topic_filters_to_payload_decoders() {
    let mut rig = Rig::start().await;
    assert!(
        rig.handle.send(Command::LoadScenario(
            mqtt_workbench::command::ScenarioSource::Text {
                origin: "decoders.ron".into(),
                ron: r#"Scenario(name: "decoders", decoders: [
                (on: "meters/+/cbor", codec: Cbor),
                (on: "meters/+/mp", codec: MessagePack),
            ])"#
                .into(),
            }
        ))
    );
    rig.wait_model("the scenario started", 10, |m| m.scenario.is_some())
        .await;
    let d = &rig.model.decoders;
    use mqtt_workbench::codec::Codec;
    assert_eq!(d.codec("meters/1/cbor"), Codec::Cbor);
    assert_eq!(d.codec("meters/1/mp"), Codec::MessagePack);
    assert_eq!(d.codec("spBv1.0/g/NDATA/e"), Codec::SparkplugB);
    assert_eq!(d.codec("meters/1/json"), Codec::Json);
    // {"kwh": 12} in CBOR and in MessagePack, as the specifications encode it.
    let cbor = [0xa1, 0x63, b'k', b'w', b'h', 0x0c];
    let mp = [0x81, 0xa3, b'k', b'w', b'h', 0x0c];
    for (topic, bytes) in [("meters/1/cbor", &cbor), ("meters/1/mp", &mp)] {
        let v = d.decode(topic, bytes).expect("decodes");
        assert_eq!(v["kwh"], 12, "{topic}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_payloads_decode_with_a_user_supplied_proto() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("meter.proto"),
        "syntax = \"proto3\";\npackage energy;\nmessage Reading { string meter = 1; double kwh = 2; int32 phase = 3; }\n",
    )
    .unwrap();
    let scenario = dir.path().join("meters.ron");
    std::fs::write(
        &scenario,
        r#"Scenario(name: "meters", decoders: [
            (on: "meters/+/pb", codec: Protobuf, proto: (file: "meter.proto", message: "energy.Reading")),
        ])"#,
    )
    .unwrap();
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(
        mqtt_workbench::command::ScenarioSource::File(scenario.clone())
    )));
    rig.wait_model("the scenario started", 10, |m| m.scenario.is_some())
        .await;
    // Reading{meter: "m1", kwh: 12.5, phase: -1}, written by hand from the wire format.
    let mut bytes = vec![0x0a, 0x02, b'm', b'1', 0x11];
    bytes.extend(12.5f64.to_le_bytes());
    bytes.extend([
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
    ]);
    let v = rig
        .model
        .decoders
        .decode("meters/1/pb", &bytes)
        .expect("decodes with the .proto");
    assert_eq!(v["meter"], "m1");
    assert_eq!(v["kwh"], 12.5);
    assert_eq!(v["phase"], -1);
    // A .proto that does not compile: the scenario is refused, naming the file.
    std::fs::write(
        dir.path().join("meter.proto"),
        "syntax = \"proto3\";\nmessage {\n",
    )
    .unwrap();
    assert!(rig.handle.send(Command::LoadScenario(
        mqtt_workbench::command::ScenarioSource::File(scenario)
    )));
    let n = rig.wait_notice("the .proto error", 10, |n| n.error).await;
    assert!(n.text.contains("meter.proto"), "{}", n.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fridge_fleet_imported_from_its_asyncapi_document_conforms_to_it() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/fridge-fleet.ron");
    let mut rig = Rig::start().await;
    assert!(rig.handle.send(Command::LoadScenario(
        mqtt_workbench::command::ScenarioSource::File(path)
    )));
    rig.wait_model("every channel of the contract used", 30, |m| {
        m.contract
            .as_ref()
            .is_some_and(|t| t.channels.iter().all(|(_, c)| c.messages >= 1))
    })
    .await;
    let t = rig.model.contract.as_ref().expect("the contract's counts");
    assert_eq!(t.totals().1, 0, "{}", t.summary());
    assert_eq!(t.undeclared_messages, 0, "{}", t.summary());
    assert!(t.contract.path.ends_with("scenarios/fridges.asyncapi.yaml"));
}
