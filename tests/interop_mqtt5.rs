//! MQTT 5 and MQTT 3.1.1 clients through the tap, on the embedded broker's
//! two listeners (one router): Debian's mosquitto_sub / mosquitto_pub with
//! `-V 5` and `-V 311` exchange messages, and the capture decodes both.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use mqtt_workbench::wire::{CloseReason, Direction};

fn mosquitto(tool: &str, version: &str, port: u16, args: &[&str]) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(tool);
    c.args(["-V", version, "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    c
}

/// A subscriber of one version receives what a publisher of the other sends.
async fn exchange(sub_version: &str, pub_version: &str, qos: &str) {
    let mut rig = Rig::start().await;
    let port = rig.port();
    let sub_id = format!("sub-v{sub_version}-q{qos}");
    let pub_id = format!("pub-v{pub_version}-q{qos}");
    let topic = format!("mix/{sub_version}/{pub_version}/{qos}");
    let sub = mosquitto(
        "mosquitto_sub",
        sub_version,
        port,
        &["-i", &sub_id, "-q", qos, "-t", "mix/#", "-C", "2", "-v"],
    )
    .spawn()
    .expect("mosquitto_sub runs (scripts/setup.sh installs mosquitto-clients)");
    rig.wait_for("the subscriber subscribed", 10, |c| {
        c.sessions.get(sub_id.as_str()).is_some_and(|s| {
            s.connected && s.subscriptions.values().any(|x| x.granted_qos.is_some())
        })
    })
    .await;
    // A plain message, then a retained one.
    for (payload, retain) in [("hello", false), ("kept", true)] {
        let mut p = mosquitto(
            "mosquitto_pub",
            pub_version,
            port,
            &["-i", &pub_id, "-q", qos, "-t", &topic, "-m", payload],
        );
        if retain {
            p.arg("-r");
        }
        let out = p.output().await.expect("mosquitto_pub runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .expect("the subscriber got both messages")
        .expect("mosquitto_sub ran");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("{topic} hello\n{topic} kept")
    );
    // Both clients gone: every frame of theirs (the publisher's PUBACKs too)
    // was captured before their connections' close.
    rig.wait_for("both legs captured, both clients gone", 10, |c| {
        c.topics.get(&topic).is_some_and(|t| t.delivered >= 2)
            && c.sessions
                .get(sub_id.as_str())
                .is_some_and(|s| !s.connected)
            && c.sessions
                .get(pub_id.as_str())
                .is_some_and(|s| !s.connected)
    })
    .await;
    let c = &rig.model.capture;
    let level = |v: &str| if v == "5" { 5 } else { 4 };
    assert_eq!(c.sessions[sub_id.as_str()].protocol, level(sub_version));
    assert_eq!(c.sessions[pub_id.as_str()].protocol, level(pub_version));
    assert_eq!(
        c.sessions[sub_id.as_str()].last_disconnect(),
        Some(&CloseReason::Graceful),
        "the v5 DISCONNECT (reason code omitted) is decoded"
    );
    let deliveries: Vec<_> = c
        .messages()
        .filter(|(_, e)| *e.client_id == *sub_id && e.dir == Direction::BrokerToClient)
        .map(|(_, e)| e.payload.clone().unwrap_or_default())
        .collect();
    assert_eq!(deliveries, [&b"hello"[..], &b"kept"[..]]);
    assert!(c.topics[&topic].retained.is_some());
    if qos != "0" {
        assert!(
            c.flows.completed >= 4,
            "QoS {qos} handshakes decoded: {}",
            c.flows.completed
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_subscriber_gets_mqtt311_messages_at_qos1() {
    exchange("5", "311", "1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt311_subscriber_gets_mqtt5_messages_at_qos2() {
    exchange("311", "5", "2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_to_mqtt5_at_qos0() {
    exchange("5", "5", "0").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_protocol_level_is_closed_with_a_reason_and_others_are_served() {
    use tokio::io::AsyncWriteExt;
    let mut rig = Rig::start().await;
    // A CONNECT naming protocol level 9.
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rig.port()))
        .await
        .expect("the tap listens");
    s.write_all(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 9, 2, 0, 30, 0, 0])
        .await
        .expect("written");
    rig.wait_for("the connection closed with a reason", 5, |c| {
        c.events().any(|(_, e)| {
            matches!(&e.detail, mqtt_workbench::wire::WireDetail::Closed(CloseReason::Error(why))
                if why.contains("protocol level 9"))
        })
    })
    .await;
    let mut ok = connect(options("after-bad", rig.port(), true));
    ok.connack().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_properties_are_captured_and_exported() {
    let mut rig = Rig::start().await;
    let port = rig.port();
    let sub = mosquitto(
        "mosquitto_sub",
        "5",
        port,
        &[
            "-i",
            "props-sub",
            "-q",
            "1",
            "-t",
            "props/#",
            "-C",
            "1",
            "-F",
            "%t %p %P %R %C",
        ],
    )
    .spawn()
    .expect("mosquitto_sub runs");
    rig.wait_for("subscribed", 10, |c| {
        c.sessions
            .get("props-sub")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    let out = mosquitto(
        "mosquitto_pub",
        "5",
        port,
        &[
            "-i",
            "props-pub",
            "-q",
            "1",
            "-t",
            "props/req",
            "-m",
            "ping",
            "-D",
            "publish",
            "user-property",
            "site",
            "lab-7",
            "-D",
            "publish",
            "content-type",
            "text/plain",
            "-D",
            "publish",
            "response-topic",
            "props/reply",
            "-D",
            "publish",
            "correlation-data",
            "req-42",
            "-D",
            "publish",
            "message-expiry-interval",
            "30",
            "-D",
            "connect",
            "session-expiry-interval",
            "120",
        ],
    )
    .output()
    .await
    .expect("mosquitto_pub runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .expect("delivered")
        .expect("ran");
    // No MQTT 3.1.1 client could receive it: the properties went through.
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "props/req ping site:lab-7 props/reply text/plain"
    );
    rig.wait_for("the publish and its delivery", 5, |c| {
        c.topics.get("props/req").is_some_and(|t| t.delivered == 1)
    })
    .await;
    let c = &rig.model.capture;
    let published = c
        .messages()
        .find(|(_, e)| *e.client_id == *"props-pub")
        .map(|(_, e)| e.clone())
        .expect("the publish");
    let p = published.v5.as_deref().expect("MQTT 5 properties");
    assert_eq!(
        p.user_properties,
        [("site".to_string(), "lab-7".to_string())]
    );
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
    assert_eq!(p.response_topic.as_deref(), Some("props/reply"));
    assert_eq!(p.correlation_data.as_deref(), Some("req-42"));
    assert_eq!(p.message_expiry_s, Some(30));
    assert_eq!(published.protocol, 5);
    let session = &c.sessions["props-pub"];
    assert_eq!(
        session
            .connect_props
            .as_ref()
            .and_then(|p| p.session_expiry_s),
        Some(120)
    );
    // Exported with the protocol and the properties.
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("props.jsonl");
    mqtt_workbench::export::write_events(&path, c.snapshot().iter(), |_| {}).expect("written");
    let text = std::fs::read_to_string(&path).expect("read");
    let line: serde_json::Value = serde_json::from_str(
        text.lines()
            .find(|l| l.contains("props-pub"))
            .expect("the publish row"),
    )
    .expect("JSON");
    assert_eq!(line["protocol"], 5);
    assert_eq!(line["properties"]["response_topic"], "props/reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mqtt5_message_with_properties_reaches_an_mqtt311_subscriber_and_the_broker_stays_up() {
    let mut rig = Rig::start().await;
    let port = rig.port();
    let sub = mosquitto(
        "mosquitto_sub",
        "311",
        port,
        &["-i", "old-sub", "-q", "1", "-t", "mixed/#", "-C", "2", "-v"],
    )
    .spawn()
    .expect("mosquitto_sub runs");
    rig.wait_for("subscribed", 10, |c| {
        c.sessions
            .get("old-sub")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    // rumqttd 0.20 alone would panic forwarding these properties to a 3.1.1 link.
    for (i, m) in ["first", "second"].iter().enumerate() {
        let id = format!("new-pub-{i}");
        let out = mosquitto(
            "mosquitto_pub",
            "5",
            port,
            &[
                "-i",
                &id,
                "-q",
                "1",
                "-t",
                "mixed/t",
                "-m",
                m,
                "-D",
                "publish",
                "user-property",
                "k",
                "v",
                "-D",
                "publish",
                "response-topic",
                "mixed/reply",
            ],
        )
        .output()
        .await
        .expect("mosquitto_pub runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let got = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .expect("both delivered")
        .expect("ran");
    assert_eq!(
        String::from_utf8_lossy(&got.stdout).trim(),
        "mixed/t first\nmixed/t second"
    );
    // The 3.1.1 listener still serves new clients.
    let mut later = connect(options("later-v4", port, true));
    later.connack().await;
    // The tap forwarded the publishes as sent: properties and all.
    rig.wait_for("both publishes captured", 5, |c| {
        c.topics.get("mixed/t").is_some_and(|t| t.published == 2)
    })
    .await;
    assert!(rig.model.capture.messages().any(|(_, e)| {
        *e.client_id == *"new-pub-0"
            && e.dir == Direction::ClientToBroker
            && e.v5.as_ref().is_some_and(|p| !p.user_properties.is_empty())
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt31_is_refused_with_a_reason_the_embedded_broker_cannot_serve_it() {
    let mut rig = Rig::start().await;
    let out = mosquitto(
        "mosquitto_pub",
        "31",
        rig.port(),
        &["-i", "old31", "-t", "t", "-m", "x"],
    )
    .output()
    .await
    .expect("mosquitto_pub runs");
    assert!(!out.status.success(), "refused");
    rig.wait_for("the reason on the connection", 5, |c| {
        c.events().any(|(_, e)| {
            matches!(&e.detail, mqtt_workbench::wire::WireDetail::Closed(CloseReason::Error(why))
                if why.contains("MQTT 3.1 (MQIsdp)"))
        })
    })
    .await;
}

/// Bad MQTT 5 input on one connection: that connection is closed with a
/// reason the sessions panel shows, everyone else is served on, and nothing
/// already captured is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_mqtt5_input_closes_only_that_connection_with_a_clear_reason() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut rig = Rig::start().await;
    let mut bystander = connect(options("bystander", rig.port(), true));
    bystander.connack().await;
    let cases: [(&str, Vec<u8>, &str); 3] = [
        // AUTH (enhanced authentication) without an authentication method.
        ("bad-auth", vec![0xF0, 0x00], "AUTH"),
        // A PUBLISH announcing 2 MiB, over the tap's frame limit.
        (
            "bad-size",
            vec![0x30, 0x80, 0x80, 0x80, 0x01],
            "larger than",
        ),
        // A PUBLISH whose property list holds an unknown property id (0x7F).
        (
            "bad-props",
            vec![0x30, 10, 0, 3, b'a', b'/', b'b', 3, 0x7F, 0, 0, b'x'],
            "undecodable MQTT 5 frame",
        ),
    ];
    for (id, bad, why) in cases {
        let captured_before = rig.model.capture.len();
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", rig.port()))
            .await
            .expect("the tap listens");
        let mut connect = vec![
            0x10,
            13 + id.len() as u8,
            0,
            4,
            b'M',
            b'Q',
            b'T',
            b'T',
            5,
            2,
            0,
            30,
            0,
        ];
        connect.extend([0, id.len() as u8]);
        connect.extend(id.as_bytes());
        s.write_all(&connect).await.expect("CONNECT written");
        let mut connack = [0u8; 4];
        s.read_exact(&mut connack).await.expect("CONNACK read");
        assert_eq!(connack[0], 0x20, "{id}: CONNACK");
        s.write_all(&bad).await.expect("bad frame written");
        rig.wait_for(
            &format!("{id} closed with a reason naming {why}"),
            10,
            |c| {
                c.sessions.get(id).is_some_and(|s| {
                matches!(s.last_disconnect(), Some(CloseReason::Error(r)) if r.contains(why))
            })
            },
        )
        .await;
        assert!(
            rig.model.capture.len() > captured_before,
            "{id}: nothing lost"
        );
        // The tap closed the socket: the client reads the end of the stream.
        let mut rest = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest)).await;
    }
    // Everyone else was served on.
    bystander
        .client
        .publish("still/here", rumqttc::QoS::AtLeastOnce, false, "yes")
        .await
        .expect("queued");
    rig.wait_for("the bystander's publish delivered", 10, |c| {
        c.topics.get("still/here").is_some_and(|t| t.published >= 1)
    })
    .await;
    assert!(rig.model.capture.sessions["bystander"].connected);
}
