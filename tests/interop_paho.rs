//! Interop with the paho-mqtt Python client (PyPI, installed by scripts/setup.sh)
//! through the tap and the embedded broker.

mod common;

use common::*;

/// Run tests/paho_client.py against the rig; (exit success, stdout).
async fn paho(port: u16, client_id: &str, keepalive: u16) -> (bool, String) {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paho_client.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([
            port.to_string(),
            client_id.to_string(),
            keepalive.to_string(),
        ])
        .output()
        .await
        .expect("python3 runs (scripts/setup.sh installs paho-mqtt)");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains("ModuleNotFoundError"),
        "paho-mqtt is missing: run scripts/setup.sh\n{stderr}"
    );
    (out.status.success(), format!("{stdout}{stderr}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_with_keepalive_zero_connects_and_round_trips_a_message() {
    let mut rig = Rig::start().await;
    let (ok, out) = paho(rig.port(), "paho-ka0", 0).await;
    assert!(ok, "{out}");
    assert!(out.contains("received hello from paho"), "{out}");
    assert!(out.contains("connack Success"), "{out}");
    rig.wait_for("paho's session", 5, |c| c.sessions.contains_key("paho-ka0"))
        .await;
    let s = &rig.model.capture.sessions["paho-ka0"];
    assert_eq!(s.keep_alive_s, 0);
    assert_eq!(s.published, 1);
    assert_eq!(s.received, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paho_with_a_keepalive_goes_through_unchanged() {
    let mut rig = Rig::start().await;
    let (ok, out) = paho(rig.port(), "paho-ka30", 30).await;
    assert!(ok, "{out}");
    rig.wait_for("paho's session", 5, |c| {
        c.sessions.contains_key("paho-ka30")
    })
    .await;
    let s = &rig.model.capture.sessions["paho-ka30"];
    assert_eq!(s.keep_alive_s, 30);
}

/// Run tests/paho_v5.py CHECK against the rig; its stdout.
async fn paho_v5(port: u16, check: &str) -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/paho_v5.py");
    let out = tokio::process::Command::new("python3")
        .arg(script)
        .args([port.to_string(), check.to_string()])
        .output()
        .await
        .expect("python3 runs (scripts/setup.sh installs paho-mqtt)");
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        out.status.success(),
        "{check}: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The capture's deviations for `client` mentioning `what`.
fn deviations(rig: &Rig, client: &str, what: &str) -> usize {
    rig.model.capture.sessions.get(client).map_or(0, |s| {
        s.deviations
            .iter()
            .filter(|d| d.text.contains(what))
            .count()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_no_local_is_flagged_where_the_broker_ignores_it() {
    let mut rig = Rig::start().await;
    let out = paho_v5(rig.port(), "nolocal").await;
    rig.wait_for("the client's publish and the sentinel captured", 5, |c| {
        c.topics.get("nl/t").is_some_and(|t| t.published == 2)
    })
    .await;
    if out == "echoed" {
        rig.wait_for("the flag", 5, |c| {
            c.sessions.get("nl-client").is_some_and(|s| {
                s.deviations
                    .iter()
                    .any(|d| d.text.contains("no-local ignored"))
            })
        })
        .await;
    } else {
        assert_eq!(out, "not echoed");
        assert_eq!(deviations(&rig, "nl-client", "no-local"), 0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_session_expiry_is_flagged_when_the_session_is_not_resumed() {
    let mut rig = Rig::start().await;
    let out = paho_v5(rig.port(), "expiry").await;
    rig.wait_for("two connects", 5, |c| {
        c.sessions.get("exp-client").is_some_and(|s| {
            s.history
                .iter()
                .filter(|e| {
                    matches!(
                        e.kind,
                        mqtt_workbench::capture::SessionEventKind::Connected { .. }
                    )
                })
                .count()
                == 2
        })
    })
    .await;
    let flagged = deviations(&rig, "exp-client", "session expiry not honoured");
    match out.as_str() {
        "session_present=0" => assert_eq!(flagged, 1, "rumqttd lost the session: flagged"),
        "session_present=1" => assert_eq!(flagged, 0),
        other => panic!("unexpected: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_maximum_packet_size_is_flagged_when_the_broker_ignores_it() {
    let mut rig = Rig::start().await;
    let out = paho_v5(rig.port(), "maxpacket").await;
    rig.wait_for("the big publish captured", 5, |c| {
        c.topics.get("mp/t").is_some_and(|t| t.published == 1)
    })
    .await;
    if out.starts_with("received") {
        rig.wait_for("the flag", 5, |c| {
            c.sessions.get("mp-client").is_some_and(|s| {
                s.deviations
                    .iter()
                    .any(|d| d.text.contains("maximum packet size ignored"))
            })
        })
        .await;
    } else {
        assert_eq!(out, "not received");
        assert_eq!(deviations(&rig, "mp-client", "maximum packet size"), 0);
    }
}
