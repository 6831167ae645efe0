//! The embedded broker's health (`broker::health`): when its probe reports it
//! not answering, the engine restarts it (warm), counts it, marks it on the
//! timeline, the status line and `run`'s exit say so, and the real probe
//! reports it answering again once the restarted broker echoes its QoS 1
//! message. (The probe's own detection of a silent broker is unit-tested in
//! `src/broker/health.rs` against a listener that accepts and never answers.)

mod common;

use std::time::Duration;

use common::*;
use mqtt_workbench::command::Command;
use mqtt_workbench::event::Health;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_not_answering_is_restarted_counted_marked_and_answers_again() {
    let mut rig = Rig::start().await;
    // A persistent session made before the restart survives it (warm).
    let mut keeper = connect(options("health-keeper", rig.port(), false));
    keeper.connack().await;
    keeper
        .subscribe("health/kept", rumqttc::QoS::AtLeastOnce)
        .await;
    keeper.disconnect().await;
    assert!(rig.handle.send(Command::BrokerHealth(Health::NotAnswering(
        "a test's report".into()
    ))));
    rig.wait_model("restarted once, then answering its probe again", 30, |m| {
        m.broker_health
            .as_ref()
            .is_some_and(|h| h.restarts == 1 && h.answering && h.why == "a test's report")
    })
    .await;
    assert!(
        rig.model
            .faults
            .markers
            .iter()
            .any(|f| f.label == "broker not answering: warm restart #1"),
        "{:?}",
        rig.model.faults.markers
    );
    let line = mqtt_workbench::cli::status_line(&rig.model, Duration::from_secs(1));
    assert!(
        line.contains("broker restarted 1× (it stopped answering)"),
        "{line}"
    );
    let why = mqtt_workbench::cli::broker_health_failure(&rig.model).expect("the run fails");
    assert!(why.contains("restarted 1×"), "{why}");
    // The restarted broker serves clients, and kept the session.
    let mut back = connect(options("health-keeper", rig.port(), false));
    assert!(
        back.connack().await.session_present,
        "a warm restart keeps sessions"
    );
    let mut publ = connect(options("health-pub", rig.port(), true));
    publ.client
        .publish("health/kept", rumqttc::QoS::AtLeastOnce, false, "after")
        .await
        .expect("queued");
    publ.connack().await;
    back.expect("a message after the restart", 10, |p| {
        publish_payloads(p).is_some_and(|(_, b)| b == b"after")
    })
    .await;
}
