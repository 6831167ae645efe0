//! TLS and access rules at the tap, with third-party clients (Debian's
//! mosquitto-clients, `-V 5` and `-V 311`, and paho-mqtt from PyPI) and with
//! virtual devices, through the real embedded broker.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use mqtt_workbench::command::{Command, ScenarioSource};
use mqtt_workbench::engine::{EngineConfig, Readiness};
use mqtt_workbench::event::BrokerState;
use mqtt_workbench::tap::AuthSpec;
use mqtt_workbench::tap::auth::UserSpec;
use mqtt_workbench::tls::TlsOptions;
use mqtt_workbench::wire::{CloseReason, Direction, Injected, PacketKind, WireDetail};

fn tls_options(dir: &Path, require_client_cert: bool) -> TlsOptions {
    TlsOptions {
        require_client_cert,
        ..TlsOptions::generated("127.0.0.1:0".parse().expect("an address"), dir.into())
    }
}

fn tls_port(rig: &Rig) -> u16 {
    match rig.handle.readiness() {
        Readiness::Ready { tls: Some(a), .. } => a.port(),
        other => panic!("no TLS listener: {other:?}"),
    }
}

async fn paho(port: u16, args: &[&str]) -> String {
    let mut all = vec![port.to_string()];
    all.extend(args.iter().map(|a| a.to_string()));
    python("paho_secure.py", &all, 60).await.1
}

fn users() -> Arc<AuthSpec> {
    Arc::new(AuthSpec {
        users: vec![
            UserSpec {
                username: "backend".into(),
                password: "s3cret".into(),
                publish: vec!["#".into()],
                subscribe: vec!["#".into()],
                deny_publish: vec![],
                deny_subscribe: vec![],
            },
            UserSpec {
                username: "sensor".into(),
                password: "pw".into(),
                publish: vec!["sensors/{client_id}/#".into()],
                subscribe: vec!["sensors/{client_id}/cmd".into()],
                deny_publish: vec![],
                deny_subscribe: vec![],
            },
        ],
        anonymous: false,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_v5_and_v311_exchange_messages_over_tls_with_the_generated_ca() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start_with(EngineConfig {
        tls: Some(tls_options(dir.path(), false)),
        ..EngineConfig::default()
    })
    .await;
    let port = tls_port(&rig);
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    rig.drain();
    match &rig.model.broker {
        BrokerState::Running { tls: Some(t), .. } => {
            assert_eq!(t.addr.port(), port);
            assert_eq!(t.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
        }
        other => panic!("the broker state names the TLS listener: {other:?}"),
    }
    let sub = mosquitto(
        "mosquitto_sub",
        "5",
        port,
        &[
            "--cafile", ca, "-i", "tls-sub", "-t", "secure/#", "-q", "1", "-C", "1", "-v",
        ],
    )
    .spawn()
    .expect("mosquitto_sub runs");
    rig.wait_for("the TLS subscriber subscribed", 10, |c| {
        c.sessions
            .get("tls-sub")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    let out = mosquitto(
        "mosquitto_pub",
        "311",
        port,
        &[
            "--cafile", ca, "-i", "tls-pub", "-t", "secure/a", "-q", "1", "-m", "over-tls",
        ],
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .expect("the message arrived")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "secure/a over-tls"
    );
    rig.wait_for("both TLS sessions ended gracefully", 10, |c| {
        ["tls-sub", "tls-pub"].iter().all(|id| {
            c.sessions
                .get(*id)
                .is_some_and(|s| s.last_disconnect() == Some(&CloseReason::Graceful))
        })
    })
    .await;
    let c = &rig.model.capture;
    assert!(c.sessions["tls-sub"].tls && c.sessions["tls-pub"].tls);
    assert_eq!(c.sessions["tls-sub"].protocol, 5);
    assert_eq!(c.sessions["tls-pub"].protocol, 4);
    // A client speaking plain MQTT to the TLS port: closed with a reason.
    let out = mosquitto(
        "mosquitto_pub",
        "311",
        port,
        &["-i", "plain-on-tls", "-t", "x", "-m", "y"],
    )
    .output()
    .await
    .unwrap();
    assert!(!out.status.success());
    // It stays visible as a failed connection, with a reason naming the mistake.
    rig.wait_for("the failed handshake is on the wire log", 10, |c| {
        c.events().any(|(_, e)| {
            matches!(&e.detail, WireDetail::Closed(CloseReason::Error(why)) if why.contains("plain MQTT on a TLS port"))
        })
    })
    .await;
    let failed = &rig.model.capture.failed_connections;
    assert!(
        failed.iter().any(|f| f.scheme == "tls"
            && matches!(&f.reason, CloseReason::Error(w) if w.contains("plain MQTT on a TLS port"))),
        "{failed:?}"
    );
    // The TLS sessions carry what their handshakes said.
    let t = rig.model.capture.sessions["tls-sub"]
        .link
        .as_ref()
        .and_then(|l| l.tls.clone())
        .expect("the TLS session is on the session");
    assert!(t.version.starts_with("TLS 1."), "{t:?}");
    assert!(t.cipher.starts_with("TLS"), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_tls_and_virtual_devices_with_tls_and_client_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start_with(EngineConfig {
        tls: Some(tls_options(dir.path(), true)),
        ..EngineConfig::default()
    })
    .await;
    let port = tls_port(&rig);
    // Without a client certificate: refused during the handshake.
    let ca = dir.path().join("ca.pem");
    let ca = ca.to_str().unwrap();
    let out = mosquitto(
        "mosquitto_pub",
        "5",
        port,
        &["--cafile", ca, "-t", "x", "-m", "y"],
    )
    .output()
    .await
    .unwrap();
    assert!(
        !out.status.success(),
        "no client certificate must not connect"
    );
    // With the generated client certificate: in.
    let (cert, key) = (dir.path().join("client.pem"), dir.path().join("client.key"));
    let out = mosquitto(
        "mosquitto_pub",
        "5",
        port,
        &[
            "--cafile",
            ca,
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "-i",
            "with-cert",
            "-t",
            "x",
            "-m",
            "y",
        ],
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Virtual devices with `tls: true` use the TLS listener (and the client certificate).
    let text = r#"Scenario(name: "tls devices", devices: [
        (id: "secure-{i}", count: 2, tls: true, protocol: V5,
         publish: [(topic: "secure/{id}", every: "200ms", payload: Text("{seq}"))]),
        (id: "plain", publish: [(topic: "plain/x", every: "200ms", payload: Text("{seq}"))]),
    ])"#;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "tls.ron".into(),
        ron: text.into(),
    })));
    rig.wait_for("both TLS devices and the plain one publish", 15, |c| {
        ["secure/secure-1", "secure/secure-2", "plain/x"]
            .iter()
            .all(|t| c.topics.get(*t).is_some_and(|t| t.published >= 2))
    })
    .await;
    let c = &rig.model.capture;
    assert!(c.sessions["secure-1"].tls && c.sessions["secure-2"].tls);
    assert!(!c.sessions["plain"].tls);
    assert!(c.sessions["with-cert"].tls);
    // paho over TLS (no client certificate): refused by this listener.
    let out = paho(port, &["tls", ca]).await;
    assert!(!out.contains("received"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_over_tls_round_trips_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let mut rig = Rig::start_with(EngineConfig {
        tls: Some(tls_options(dir.path(), false)),
        ..EngineConfig::default()
    })
    .await;
    let port = tls_port(&rig);
    let out = paho(port, &["tls", dir.path().join("ca.pem").to_str().unwrap()]).await;
    assert!(out.contains("received over-tls"), "{out}");
    rig.wait_for("paho's TLS session ended gracefully", 10, |c| {
        c.sessions
            .get("paho-tls")
            .is_some_and(|s| s.tls && s.last_disconnect() == Some(&CloseReason::Graceful))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_get_not_authorized_in_each_protocol_and_right_ones_connect() {
    let mut rig = Rig::start_with(EngineConfig {
        auth: Some(users()),
        ..EngineConfig::default()
    })
    .await;
    let port = rig.port();
    for (version, id, code) in [("311", "wrong-311", 5u8), ("5", "wrong-5", 0x87)] {
        let out = mosquitto(
            "mosquitto_sub",
            version,
            port,
            &[
                "-i", id, "-u", "backend", "-P", "nope", "-t", "#", "-C", "1", "-W", "3",
            ],
        )
        .output()
        .await
        .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert!(err.contains("not authori"), "mosquitto -V {version}: {err}");
        rig.wait_for("the refusal captured", 10, |c| {
            c.events().any(|(_, e)| {
                &*e.client_id == id
                    && e.kind == PacketKind::ConnAck
                    && e.injected == Some(Injected::FromTap)
                    && matches!(e.detail, WireDetail::ConnAck { code: c, .. } if c == code)
            }) && c.events().any(|(_, e)| {
                &*e.client_id == id
                    && matches!(&e.detail, WireDetail::Closed(CloseReason::Error(why)) if why.contains("wrong password for \"backend\""))
            })
        })
        .await;
    }
    // No username at all, with anonymous access off.
    let out = paho(port, &["login", "", ""]).await;
    assert!(out.contains("connack Not authorized"), "{out}");
    let out = paho(port, &["login", "backend", "s3cret"]).await;
    assert!(out.contains("connack Success"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_publishes_and_subscriptions_are_refused_visibly_and_not_forwarded() {
    let mut rig = Rig::start_with(EngineConfig {
        auth: Some(users()),
        ..EngineConfig::default()
    })
    .await;
    let port = rig.port();
    let backend = mosquitto(
        "mosquitto_sub",
        "5",
        port,
        &[
            "-u",
            "backend",
            "-P",
            "s3cret",
            "-i",
            "backend",
            "-t",
            "sensors/#",
            "-q",
            "1",
            "-v",
            "-C",
            "2",
        ],
    )
    .spawn()
    .unwrap();
    rig.wait_for("the backend subscribed", 10, |c| {
        c.sessions
            .get("backend")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    let publish =
        |version: &'static str, topic: &'static str, qos: &'static str, payload: &'static str| {
            mosquitto(
                "mosquitto_pub",
                version,
                port,
                &[
                    "-u", "sensor", "-P", "pw", "-i", "s1", "-t", topic, "-q", qos, "-m", payload,
                    "-d",
                ],
            )
            .output()
        };
    // MQTT 5, QoS 1, someone else's topic: PUBACK 0x87 from the tap.
    let out = publish("5", "sensors/s2/temp", "1", "stolen-1")
        .await
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        log.contains("received PUBACK") && log.contains("RC:135"),
        "{log}"
    );
    // MQTT 3.1.1, QoS 2: acknowledged (3.1.1 cannot refuse a publish), dropped.
    let out = publish("311", "sensors/s2/temp", "2", "stolen-2")
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Its own topics go through.
    for (v, payload) in [("311", "own-1"), ("5", "own-2")] {
        let out = publish(v, "sensors/s1/temp", "1", payload).await.unwrap();
        assert!(out.status.success());
    }
    let out = tokio::time::timeout(Duration::from_secs(10), backend.wait_with_output())
        .await
        .expect("the backend got two messages")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sensors/s1/temp own-1\nsensors/s1/temp own-2",
        "only the allowed publishes reach the backend"
    );
    // A SUBSCRIBE with one denied and one allowed filter: 0x87 and QoS 0.
    let out = mosquitto(
        "mosquitto_sub",
        "5",
        port,
        &[
            "-u",
            "sensor",
            "-P",
            "pw",
            "-i",
            "s1",
            "-t",
            "sensors/#",
            "-t",
            "sensors/s1/cmd",
            "-C",
            "1",
            "-W",
            "2",
            "-d",
        ],
    )
    .output()
    .await
    .unwrap();
    let log = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(log.contains("Subscribed (mid: 1): 135, 0"), "{log}");
    // 3.1.1, everything denied: SUBACK 0x80 from the tap.
    let out = mosquitto(
        "mosquitto_sub",
        "311",
        port,
        &[
            "-u", "sensor", "-P", "pw", "-i", "s1", "-t", "#", "-C", "1", "-W", "2",
        ],
    )
    .output()
    .await
    .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        err.contains("All subscription requests were denied"),
        "{err}"
    );
    rig.wait_for("the refusals captured, marked", 10, |c| {
        let denied = |kind: PacketKind| {
            c.events()
                .filter(|(_, e)| {
                    &*e.client_id == "s1" && e.kind == kind && e.injected == Some(Injected::Denied)
                })
                .count()
        };
        denied(PacketKind::Publish) == 2 && denied(PacketKind::Subscribe) == 1
    })
    .await;
    let c = &rig.model.capture;
    assert!(
        !c.topics.contains_key("sensors/s2/temp"),
        "denied publishes reach no topic"
    );
    let tap_acks: Vec<_> = c
        .events()
        .filter(|(_, e)| {
            e.injected == Some(Injected::FromTap) && e.dir == Direction::BrokerToClient
        })
        .map(|(_, e)| e.kind)
        .collect();
    for kind in [
        PacketKind::PubAck,
        PacketKind::PubRec,
        PacketKind::PubComp,
        PacketKind::SubAck,
    ] {
        assert!(
            tap_acks.contains(&kind),
            "the tap answered with {kind:?}: {tap_acks:?}"
        );
    }
    assert_eq!(
        c.flows.incomplete(),
        0,
        "refused QoS flows complete with the tap's answer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scenario_auth_section_lets_its_devices_in_and_keeps_a_wrong_password_out() {
    let mut rig = Rig::start().await;
    let text = r#"Scenario(name: "auth", 
        auth: (users: [(username: "fleet", password: "ok", publish: ["fleet/#"])]),
        devices: [
            (id: "good", username: "fleet", password: "ok",
             publish: [(topic: "fleet/good", every: "200ms", payload: Text("{seq}"))]),
            (id: "bad", username: "fleet", password: "guess",
             publish: [(topic: "fleet/bad", every: "200ms", payload: Text("{seq}"))]),
        ])"#;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "auth.ron".into(),
        ron: text.into(),
    })));
    rig.wait_for("good publishes and bad is refused", 15, |c| {
        c.topics.get("fleet/good").is_some_and(|t| t.published >= 2)
            && c.events().any(|(_, e)| {
                &*e.client_id == "bad"
                    && e.kind == PacketKind::ConnAck
                    && e.injected == Some(Injected::FromTap)
            })
    })
    .await;
    assert!(!rig.model.capture.topics.contains_key("fleet/bad"));
    // The rules end with the scenario: anyone may connect again.
    assert!(rig.handle.send(Command::StopScenario));
    rig.wait_model("the scenario stopped", 10, |m| m.scenario.is_none())
        .await;
    let out = mosquitto(
        "mosquitto_pub",
        "311",
        rig.port(),
        &["-t", "open/again", "-m", "x"],
    )
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_mqtt5_request_response_with_a_topic_alias() {
    let mut rig = Rig::start().await;
    let out = paho(rig.port(), &["rr"]).await;
    assert!(out.contains("answer ask-1 42 C"), "{out}");
    // The second request carried the alias alone: the tap resolved it for
    // rumqttd, which drops aliased publishes (and says so on the frame).
    assert!(out.contains("answer ask-2 42 C"), "{out}");
    rig.wait_for("both requests captured with their topic", 10, |c| {
        c.events()
            .filter(|(_, e)| {
                &*e.client_id == "paho-requester"
                    && e.kind == PacketKind::Publish
                    && e.dir == Direction::ClientToBroker
                    && e.topic.as_deref() == Some("rr/thermostat/get")
                    && e.v5.as_ref().is_some_and(|p| p.topic_alias == Some(4))
            })
            .count()
            == 2
    })
    .await;
}

/// `--broker mqtts://…`: the tap reaches an external broker over TLS, trusting
/// a given CA, and devices' credentials come from the URL. The "external"
/// broker is a second workbench with TLS and access rules.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tap_reaches_an_external_broker_over_tls_with_the_urls_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut outer = Rig::start_with(EngineConfig {
        tls: Some(tls_options(dir.path(), false)),
        auth: Some(users()),
        ..EngineConfig::default()
    })
    .await;
    let port = tls_port(&outer);
    let mut broker = mqtt_workbench::broker::parse_broker_url(&format!(
        "mqtts://backend:s3cret@localhost:{port}"
    ))
    .unwrap();
    broker.ca = Some(dir.path().join("ca.pem"));
    let mut rig = Rig::start_with(EngineConfig {
        upstream: mqtt_workbench::broker::Upstream::External(broker),
        ..EngineConfig::default()
    })
    .await;
    let text = r#"Scenario(name: "via tls", devices: [
        (id: "far-{i}", count: 2, publish: [(topic: "far/{id}", every: "200ms", qos: 1, payload: Text("{seq}"))]),
    ])"#;
    assert!(rig.handle.send(Command::LoadScenario(ScenarioSource::Text {
        origin: "far.ron".into(),
        ron: text.into(),
    })));
    rig.wait_for("both devices publish through the local tap", 15, |c| {
        ["far/far-1", "far/far-2"]
            .iter()
            .all(|t| c.topics.get(*t).is_some_and(|t| t.published >= 2))
    })
    .await;
    // The external broker's own tap saw them arrive over TLS, logged in as "backend".
    outer
        .wait_for("the far side saw the devices over TLS", 10, |c| {
            ["far-1", "far-2"].iter().all(|id| {
                c.sessions.get(*id).is_some_and(|s| {
                    s.tls && s.connected && s.username.as_deref() == Some("backend")
                })
            })
        })
        .await;
}
