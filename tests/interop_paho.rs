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
    assert!(
        s.broker_keep_alive_s.is_some(),
        "the rewrite is on the session"
    );
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
    assert_eq!((s.keep_alive_s, s.broker_keep_alive_s), (30, None));
}
