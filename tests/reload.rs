//! Hot reload through the real broker and tap: when the running scenario's
//! file changes, unchanged devices keep their connections, changed ones
//! restart, removed ones leave gracefully, new ones connect; a file with an
//! error keeps the running scenario and says where the error is.

mod common;

use common::*;
use mqtt_workbench::command::{Command, ScenarioSource};
use mqtt_workbench::engine::EngineConfig;
use mqtt_workbench::wire::CloseReason;

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

fn fleet(count: u32, every: &str) -> String {
    format!(
        r#"Scenario(name: "live edit", devices: [
    (id: "p-{{i}}", count: {count}, publish: [(topic: "edit/{{id}}", every: "{every}", payload: Text("{{seq}}"))]),
    (id: "other", publish: [(topic: "edit/other", every: "200ms", payload: Text("{{seq}}"))]),
])"#
    )
}

/// A live edit (what the Devices panel's "Edit the fleet" sends): a new rate
/// restarts that fleet only, and changes its measured rate; a new size only
/// adds or removes devices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_edit_changes_one_fleet_and_a_new_size_only_adds_or_removes_devices() {
    let mut rig = Rig::start().await;
    let source = |ron: String| ScenarioSource::Text {
        origin: "live.ron".into(),
        ron,
    };
    assert!(
        rig.handle
            .send(Command::LoadScenario(source(fleet(2, "1s"))))
    );
    rig.wait_for("connected", 15, |c| {
        ["p-1", "p-2", "other"]
            .iter()
            .all(|id| c.sessions.get(*id).is_some_and(|s| s.connected))
    })
    .await;
    let conn = |rig: &Rig, id: &str| rig.model.capture.sessions[id].conn;
    let other = conn(&rig, "other");
    let p1 = conn(&rig, "p-1");
    // Ten times the rate and two more devices.
    assert!(
        rig.handle
            .send(Command::ReloadScenario(source(fleet(4, "100ms"))))
    );
    rig.wait_for("the fleet restarted and grew", 15, |c| {
        (1..=4).all(|i| {
            c.sessions
                .get(format!("p-{i}").as_str())
                .is_some_and(|s| s.connected)
        }) && c.sessions["p-1"].conn != p1
    })
    .await;
    assert_eq!(
        conn(&rig, "other"),
        other,
        "the other device kept its connection"
    );
    let n =
        |c: &mqtt_workbench::capture::Capture| c.topics.get("edit/p-1").map_or(0, |t| t.published);
    // Compared with "other" (5 Hz), not with a clock: at 1 Hz p-1 would fall behind.
    let o = |c: &mqtt_workbench::capture::Capture| {
        c.topics.get("edit/other").map_or(0, |t| t.published)
    };
    let (p_before, o_before) = (n(&rig.model.capture), o(&rig.model.capture));
    rig.wait_for("p-1 fifteen messages further", 10, |c| {
        n(c) >= p_before + 15
    })
    .await;
    let o_delta = o(&rig.model.capture) - o_before;
    assert!(
        o_delta < 15,
        "p-1 published 15 while the 5 Hz device published {o_delta}: p-1 runs faster than 5 Hz now"
    );
    // Back to two devices, same rate: p-3 and p-4 leave, p-1 and p-2 stay.
    let p1 = conn(&rig, "p-1");
    assert!(
        rig.handle
            .send(Command::ReloadScenario(source(fleet(2, "100ms"))))
    );
    rig.wait_for("p-3 and p-4 gone", 15, |c| {
        ["p-3", "p-4"].iter().all(|id| {
            c.sessions.get(*id).is_some_and(|s| {
                !s.connected && s.last_disconnect() == Some(&CloseReason::Graceful)
            })
        })
    })
    .await;
    assert_eq!(
        conn(&rig, "p-1"),
        p1,
        "a smaller fleet keeps the devices it still has"
    );
    assert!(rig.model.capture.sessions["p-1"].connected);
}
