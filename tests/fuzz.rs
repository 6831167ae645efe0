//! Seeded mutation fuzzing through the real tap and embedded broker
//! (`tests/fuzz_wire.py`: MQTT 3.1.1 and 5 frames, valid and mutated, out of
//! order, second CONNECTs, server-only packets, reused client ids, resets).
//! After every 1,000 cases a probe must still get its QoS 1 message on both
//! protocol versions and a reused client id must still connect. Longer runs:
//! README, "Fuzzing".

mod common;

use common::*;

async fn fuzz(seed: u32, cases: u32) {
    let rig = Rig::start().await;
    let args = [
        rig.port().to_string(),
        "--cases".into(),
        cases.to_string(),
        "--seed".into(),
        seed.to_string(),
        "--version".into(),
        "both".into(),
        "--probe-every".into(),
        "1000".into(),
    ];
    let (ok, text) = python("fuzz_wire.py", &args, 300).await;
    assert!(ok, "the broker stopped serving after fuzzing\n{text}");
    assert!(
        text.contains("probe v3.1.1 ok") && text.contains("probe v5 ok"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_serves_both_protocol_versions_after_3000_mutated_cases() {
    fuzz(7, 3000).await;
}
