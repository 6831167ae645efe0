//! Seeded mutation fuzzing through the real tap and embedded broker
//! (`tests/fuzz_wire.py`: MQTT 3.1.1 and 5 frames, valid and mutated, out of
//! order, second CONNECTs, server-only packets, reused client ids, resets).
//! After every 1,000 cases a probe must still get its QoS 1 message on both
//! protocol versions and a reused client id must still connect. Longer runs:
//! README, "Fuzzing".

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;

async fn fuzz(seed: u32, cases: u32) {
    let rig = Rig::start().await;
    let out = tokio::time::timeout(
        Duration::from_secs(300),
        tokio::process::Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz_wire.py"))
            .arg(rig.port().to_string())
            .args(["--cases", &cases.to_string(), "--seed", &seed.to_string()])
            .args(["--version", "both", "--probe-every", "1000"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the fuzz run ends within 5 minutes")
    .expect("python3 runs");
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "the broker stopped serving after fuzzing\n{text}"
    );
    assert!(
        text.contains("probe v3.1.1 ok") && text.contains("probe v5 ok"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_serves_both_protocol_versions_after_3000_mutated_cases() {
    fuzz(7, 3000).await;
}
