//! MQTT over WebSockets through the tap's ws:// listener and the real
//! embedded broker, with third-party clients: MQTT.js from Node (3.1.1 and
//! 5 over ws://, 5 over wss://), and MQTT.js's browser bundle in Debian's chromium driven by
//! playwright-core (both installed by scripts/setup.sh).

mod common;

use std::time::Duration;

use common::*;
use mqtt_workbench::engine::{EngineConfig, Readiness};
use mqtt_workbench::fault::{Drop, Fault, Target};
use mqtt_workbench::wire::{CloseReason, PacketKind};

/// A rig with a ws:// listener on a free loopback port; its URL.
async fn ws_rig(extra: EngineConfig) -> (Rig, String) {
    let rig = Rig::start_with(EngineConfig {
        ws: Some("127.0.0.1:0".parse().expect("an address")),
        ..extra
    })
    .await;
    let port = match rig.handle.readiness() {
        Readiness::Ready { addrs, .. } => addrs.ws.expect("a WebSocket listener").port(),
        other => panic!("not ready: {other:?}"),
    };
    (rig, format!("ws://127.0.0.1:{port}/mqtt"))
}

/// The next line whose "step" is `step`; an "error" line fails the test.
async fn step(
    rx: &mut tokio::sync::mpsc::Receiver<serde_json::Value>,
    step: &str,
    secs: u64,
) -> serde_json::Value {
    next_step(rx, step, secs, |_| true).await
}

/// A rig with a wss:// listener (and the generated certificates in `dir`); its URL.
async fn wss_rig(dir: &std::path::Path) -> (Rig, String) {
    let rig = Rig::start_with(EngineConfig {
        tls: Some(mqtt_workbench::tls::TlsOptions::generated(
            "127.0.0.1:0".parse().expect("an address"),
            dir.to_path_buf(),
        )),
        wss: Some("127.0.0.1:0".parse().expect("an address")),
        ..EngineConfig::default()
    })
    .await;
    let port = match rig.handle.readiness() {
        Readiness::Ready { addrs, .. } => addrs.wss.expect("a wss listener").port(),
        other => panic!("not ready: {other:?}"),
    };
    (rig, format!("wss://127.0.0.1:{port}/mqtt"))
}

/// MQTT.js at `version` over ws://, or over wss:// trusting the generated CA when `secure`.
async fn mqtt_js_over_websockets(version: u8, secure: bool) {
    let dir = tempfile::tempdir().expect("a directory");
    let ca = dir.path().join("ca.pem").display().to_string();
    let (mut rig, url) = if secure {
        wss_rig(dir.path()).await
    } else {
        ws_rig(EngineConfig::default()).await
    };
    let v = version.to_string();
    let mut args = vec![url.as_str(), v.as_str()];
    if secure {
        args.push(&ca);
    }
    let (mut child, mut rx) = node("ws_clients.mjs", &args);
    step(&mut rx, "waiting-for-will", 30).await;
    // A fault injected on a WebSocket client: cut at the tap, its will fires.
    let will_client = format!("will-{v}");
    rig.wait_for("the will client's session", 10, |c| {
        c.sessions
            .get(will_client.as_str())
            .is_some_and(|s| s.connected)
    })
    .await;
    rig.inject(Fault::Drop(Drop {
        target: Target::Device(will_client.clone()),
    }));
    let done = step(&mut rx, "done", 30).await;
    assert!(child.wait().await.expect("node exits").success());

    let received = done["received"].as_array().expect("a list");
    let find = |topic: &str| {
        received
            .iter()
            .find(|m| m["topic"] == format!("ws/{v}/{topic}"))
            .unwrap_or_else(|| panic!("{topic} not received: {received:?}"))
    };
    for qos in 0..=2 {
        let m = find(&format!("q{qos}"));
        assert_eq!(m["qos"], qos, "{m}");
        assert_eq!(m["payload"], format!("hello at {qos}"));
    }
    // A live forward of a retained message carries retain 0 (3.1.1 §3.3.1.3,
    // MQTT 5 Retain As Published 0); a new subscriber gets it with retain 1.
    assert_eq!(find("retained")["retain"], false);
    assert_eq!(find("will")["payload"], "gone");
    assert_eq!(done["retained"]["retain"], true, "{done}");
    assert_eq!(done["retained"]["payload"], "kept");

    rig.wait_for("the clients gone", 10, |c| {
        ["sub", "pub", "late"].iter().all(|n| {
            c.sessions
                .get(format!("{n}-{v}").as_str())
                .is_some_and(|s| !s.connected)
        })
    })
    .await;
    let c = &rig.model.capture;
    let publisher = &c.sessions[format!("pub-{v}").as_str()];
    assert_eq!(publisher.scheme(), if secure { "wss" } else { "ws" });
    assert_eq!(publisher.protocol, version);
    if secure {
        let tls = publisher.link.as_ref().and_then(|l| l.tls.as_ref());
        assert!(
            tls.is_some_and(|t| t.version.starts_with("TLS 1.") && t.cipher.starts_with("TLS")),
            "{tls:?}"
        );
    }
    let ws = publisher
        .ws()
        .expect("the WebSocket request is on the session");
    assert_eq!(
        (ws.path.as_str(), ws.subprotocol.as_deref()),
        ("/mqtt", Some("mqtt"))
    );
    // The QoS 2 handshake went over the WebSocket, decoded like any other.
    let conn = publisher.conn.expect("a connection");
    for kind in [PacketKind::PubRec, PacketKind::PubRel, PacketKind::PubComp] {
        assert!(
            c.events().any(|(_, e)| e.conn == conn && e.kind == kind),
            "no {kind:?} on the publisher's WebSocket"
        );
    }
    assert_eq!(
        c.sessions[will_client.as_str()].last_disconnect(),
        Some(&CloseReason::DroppedByTap)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_over_websockets_at_3_1_1() {
    mqtt_js_over_websockets(4, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_over_websockets_at_5() {
    mqtt_js_over_websockets(5, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_over_secure_websockets_trusting_the_generated_ca() {
    mqtt_js_over_websockets(5, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_path_is_refused_with_404_and_shown_with_its_reason() {
    let (mut rig, url) = ws_rig(EngineConfig::default()).await;
    let wrong = url.replace("/mqtt", "/nope");
    let (mut child, mut rx) = node("ws_clients.mjs", &[&wrong, "4"]);
    let err = step(&mut rx, "error", 30).await;
    let _ = child.wait().await;
    assert!(
        err["why"]
            .as_str()
            .is_some_and(|w| w.contains("before CONNACK")),
        "{err}"
    );
    rig.wait_for("the refused connection", 10, |c| {
        !c.failed_connections.is_empty()
    })
    .await;
    let f = &rig.model.capture.failed_connections[0];
    assert_eq!(f.scheme, "ws");
    match &f.reason {
        CloseReason::Error(why) => assert!(
            why.contains("HTTP 404") && why.contains("/nope") && why.contains("/mqtt"),
            "{why}"
        ),
        other => panic!("{other:?}"),
    }
}

/// A web dashboard in headless chromium (MQTT.js's browser bundle, over
/// ws://) receives a WebSocket virtual device's state and sends it a
/// command; the device reacts. Both legs are checked in the capture.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_in_a_real_browser_talks_to_a_virtual_device_over_websockets() {
    use mqtt_workbench::command::{Command, ScenarioSource};
    let (mut rig, url) = ws_rig(EngineConfig::default()).await;
    let text = r#"Scenario(name: "lamp", devices: [
        (id: "lamp-1", transport: Ws,
         subscribe: [(filter: "home/lamp-1/set", qos: 1)],
         publish: [(topic: "home/lamp-1/state", every: "200ms", payload: Text("on {seq}"))],
         react: [(on: "home/lamp-1/set", actions: [
            SetVarFromPayload("level"),
            Publish(topic: "home/lamp-1/ack", payload: Text("level {level}"), qos: 1),
         ])]),
    ])"#;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "lamp.ron".into(),
        ron: text.into(),
    })));
    rig.wait_for("the lamp publishes", 15, |c| {
        c.topics
            .get("home/lamp-1/state")
            .is_some_and(|t| t.published >= 1)
    })
    .await;
    let (mut child, mut rx) = node("browser.mjs", &[&url]);
    let seen = tokio::time::timeout(Duration::from_secs(90), rx.recv())
        .await
        .expect("the browser reports within 90 s")
        .expect("a line from the browser script");
    assert!(child.wait().await.expect("node exits").success(), "{seen}");
    assert!(
        seen["state"].as_str().is_some_and(|s| s.starts_with("on ")),
        "{seen}"
    );
    assert_eq!(seen["ack"], "level 42", "{seen}");

    rig.wait_for(
        "the page's command and the lamp's answer captured",
        10,
        |c| {
            c.topics
                .get("home/lamp-1/set")
                .is_some_and(|t| t.published >= 1)
                && c.topics
                    .get("home/lamp-1/ack")
                    .is_some_and(|t| t.published >= 1)
        },
    )
    .await;
    let c = &rig.model.capture;
    let page = &c.sessions["browser-page"];
    assert_eq!(page.scheme(), "ws");
    let ws = page.ws().expect("a WebSocket");
    assert!(
        ws.user_agent
            .as_deref()
            .is_some_and(|u| u.contains("Chrome")),
        "{ws:?}"
    );
    assert!(
        ws.origin
            .as_deref()
            .is_some_and(|o| o.starts_with("http://127.0.0.1:")),
        "{ws:?}"
    );
    // The command came from the page, the answer from the device, both over WebSockets.
    let from = |topic: &str| {
        c.events()
            .filter(|(_, e)| e.kind == PacketKind::Publish && e.topic.as_deref() == Some(topic))
            .map(|(_, e)| e.client_id.to_string())
            .next()
    };
    assert_eq!(from("home/lamp-1/set").as_deref(), Some("browser-page"));
    assert_eq!(from("home/lamp-1/ack").as_deref(), Some("lamp-1"));
    assert_eq!(c.sessions["lamp-1"].scheme(), "ws");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_reaches_a_third_party_broker_over_websockets() {
    // Aedes (npm) behind a ws:// listener, as `--broker ws://127.0.0.1:PORT/broker`.
    let (_aedes, mut events) = node("aedes_ws.mjs", &["/broker"]);
    let port = step(&mut events, "listening", 20).await["port"]
        .as_u64()
        .expect("a port");
    let broker = mqtt_workbench::broker::parse_broker_url(&format!("ws://127.0.0.1:{port}/broker"))
        .expect("a ws:// broker URL");
    assert_eq!(broker.ws_path.as_deref(), Some("/broker"));
    let mut rig = Rig::start_with(EngineConfig {
        upstream: mqtt_workbench::broker::Upstream::External(broker),
        ..EngineConfig::default()
    })
    .await;
    // Third-party and workbench clients on TCP, through the tap to Aedes.
    let (mut sub, publ) = sub_and_pub(
        rig.port(),
        "ws-far-sub",
        true,
        "far/#",
        rumqttc::QoS::AtLeastOnce,
        "ws-far-pub",
    )
    .await;
    for id in ["ws-far-sub", "ws-far-pub"] {
        let seen = step(&mut events, "client", 10).await;
        assert!(
            seen["id"] == "ws-far-sub" || seen["id"] == "ws-far-pub",
            "{id}: {seen}"
        );
    }
    publ.client
        .publish("far/hello", rumqttc::QoS::AtLeastOnce, false, "over ws")
        .await
        .expect("queued");
    let got = sub
        .expect("the message back from Aedes", 10, |p| {
            publish_payloads(p) == Some(("far/hello", b"over ws".as_slice()))
        })
        .await;
    assert!(matches!(got, rumqttc::Packet::Publish(_)));
    let published = step(&mut events, "publish", 10).await;
    assert_eq!(
        (&published["id"], &published["topic"], &published["payload"]),
        (
            &serde_json::json!("ws-far-pub"),
            &serde_json::json!("far/hello"),
            &serde_json::json!("over ws")
        )
    );
    // The tap recorded it as for a TCP broker.
    rig.wait_for("the tap saw the message delivered", 10, |c| {
        c.topics.get("far/hello").is_some_and(|t| t.delivered >= 1)
    })
    .await;
}
