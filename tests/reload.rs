//! Hot reload through the real broker and tap: when the running scenario's
//! file changes, unchanged devices keep their connections, changed ones
//! restart, removed ones leave gracefully, new ones connect; a file with an
//! error keeps the running scenario and says where the error is.

mod common;

use common::*;
use mqtt_workbench::engine::EngineConfig;
use mqtt_workbench::protocol::{CloseReason, Command, ScenarioSource};

const BEFORE: &str = r#"Scenario(name: "reload", devices: [
    (id: "steady", publish: [(topic: "r/steady", every: "200ms", payload: Text("{seq}"))]),
    (id: "tuned", publish: [(topic: "r/tuned", every: "1s", payload: Text("{seq}"))]),
    (id: "leaving", publish: [(topic: "r/leaving", every: "1s", payload: Text("{seq}"))]),
])"#;

const AFTER: &str = r#"Scenario(name: "reload", devices: [
    (id: "steady", publish: [(topic: "r/steady", every: "200ms", payload: Text("{seq}"))]),
    (id: "tuned", publish: [(topic: "r/tuned", every: "100ms", payload: Text("{seq}"))]),
    (id: "arriving", publish: [(topic: "r/arriving", every: "200ms", payload: Text("{seq}"))]),
])"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_file_is_applied_as_a_difference_and_a_broken_one_is_refused() {
    let mut rig = Rig::start_with(EngineConfig {
        watch: true,
        ..EngineConfig::default()
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("reload.ron");
    std::fs::write(&path, BEFORE).unwrap();
    assert!(
        rig.handle
            .send(Command::LoadScenario(ScenarioSource::File(path.clone())))
    );
    rig.wait_for("the three devices connected", 15, |c| {
        ["steady", "tuned", "leaving"]
            .iter()
            .all(|id| c.sessions.get(*id).is_some_and(|s| s.connected))
    })
    .await;
    let steady_conn = rig.model.capture.sessions["steady"].conn;
    let tuned_conn = rig.model.capture.sessions["tuned"].conn;
    // The editor saves the new version.
    std::fs::write(&path, AFTER).unwrap();
    let n = rig
        .wait_notice("the reload", 15, |n| n.text.starts_with("reloaded"))
        .await;
    assert!(
        n.text
            .contains("1 devices kept their connections, 1 restarted, 1 added, 1 removed"),
        "{}",
        n.text
    );
    rig.wait_for("arriving connected, leaving gone, tuned back", 15, |c| {
        c.sessions.get("arriving").is_some_and(|s| s.connected)
            && c.sessions
                .get("tuned")
                .is_some_and(|s| s.connected && s.conn != tuned_conn)
            && c.sessions.get("leaving").is_some_and(|s| {
                !s.connected && s.last_disconnect() == Some(&CloseReason::Graceful)
            })
    })
    .await;
    let steady = &rig.model.capture.sessions["steady"];
    assert!(steady.connected);
    assert_eq!(
        steady.conn, steady_conn,
        "the unchanged device kept its connection"
    );
    // The changed rate is in force: ten times as many messages from tuned now.
    let tuned =
        |c: &mqtt_workbench::capture::Capture| c.topics.get("r/tuned").map_or(0, |t| t.published);
    let t0 = tuned(&rig.model.capture);
    rig.wait_for("tuned at 10 Hz", 10, |c| tuned(c) >= t0 + 8)
        .await;
    assert!(rig.model.devices.is_virtual("arriving"));
    assert!(!rig.model.devices.is_virtual("leaving"));
    // A broken save: the running scenario stays, the error says where.
    std::fs::write(&path, AFTER.replace("every: \"100ms\"", "every: \"soon\"")).unwrap();
    let n = rig.wait_notice("the refused reload", 15, |n| n.error).await;
    assert!(
        n.text.contains("reload.ron:3:"),
        "file and line: {}",
        n.text
    );
    assert!(n.text.contains("stays as it was"), "{}", n.text);
    let s0 = rig.model.capture.topics["r/steady"].published;
    rig.wait_for("the old scenario still runs", 10, |c| {
        c.topics["r/steady"].published >= s0 + 3
    })
    .await;
    assert_eq!(rig.model.capture.sessions["steady"].conn, steady_conn);
}
