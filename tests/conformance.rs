//! The broker conformance suite (`tests/conformance.py`, paho-mqtt from PyPI
//! and raw frames, one test per normative statement of MQTT 3.1.1 and 5, each
//! citing its clause), run twice:
//!
//! - through the tap against the embedded, patched rumqttd: every test passes
//!   but the ones listed in [`EMBEDDED_DEVIATIONS`], the deviations that remain
//!   (README, "Known rumqttd deviations"); the list is exact, so a fix that
//!   lands makes this test ask for the list to shrink;
//! - through the tap against a real mosquitto 2.0 (Debian's package, started
//!   here on a free loopback port, reached with `--broker`): every test
//!   passes, which is what shows that the suite itself is right.

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::Duration;

use common::*;
use mqtt_workbench::engine::EngineConfig;
use tokio::io::{AsyncBufReadExt, BufReader};

/// Tests the embedded broker still fails, each with why (see the README).
const EMBEDDED_DEVIATIONS: &[(&str, &str)] = &[];

/// Runs the suite against `port`; (passed, failed) test names and the output.
async fn suite(port: u16) -> (BTreeSet<String>, BTreeSet<String>, String) {
    let (_, out) = python("conformance.py", &[port.to_string()], 240).await;
    let (mut passed, mut failed) = (BTreeSet::new(), BTreeSet::new());
    for line in out.lines() {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("PASS"), Some(name)) => passed.insert(name.to_string()),
            (Some("FAIL"), Some(name)) => failed.insert(name.trim_end_matches(':').to_string()),
            _ => false,
        };
    }
    assert!(
        passed.len() + failed.len() >= 20,
        "the suite ran (got {} results)\n{out}",
        passed.len() + failed.len()
    );
    (passed, failed, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_passes_the_conformance_suite_but_its_listed_deviations() {
    let rig = Rig::start().await;
    let (_, failed, out) = suite(rig.port()).await;
    let expected: BTreeSet<String> = EMBEDDED_DEVIATIONS
        .iter()
        .map(|(name, _)| name.to_string())
        .collect();
    assert_eq!(
        failed, expected,
        "the failing tests are exactly the known deviations\n{out}"
    );
}

/// A mosquitto broker on a free loopback port, ended with the test.
struct Mosquitto {
    port: u16,
    _child: tokio::process::Child,
    _dir: tempfile::TempDir,
}

async fn mosquitto() -> Mosquitto {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let dir = tempfile::tempdir().expect("temp dir");
    let conf = dir.path().join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"
        ),
    )
    .expect("config written");
    let mut child = tokio::process::Command::new("/usr/sbin/mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("mosquitto runs (scripts/setup.sh installs Debian's mosquitto)");
    // Ready when it logs "mosquitto version … running" (after binding its
    // listener; stderr, which is not buffered); its log is drained for as
    // long as it runs.
    let mut log = BufReader::new(child.stderr.take().expect("mosquitto's log")).lines();
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(line)) = log.next_line().await {
            if line.contains(" running") {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(ready, Ok(true), "mosquitto started on {port}");
    tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
    Mosquitto {
        port,
        _child: child,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_behind_the_tap_passes_the_whole_conformance_suite() {
    let m = mosquitto().await;
    let broker = mqtt_workbench::broker::parse_broker_url(&format!("mqtt://127.0.0.1:{}", m.port))
        .expect("a broker URL");
    let rig = Rig::start_with(EngineConfig {
        upstream: mqtt_workbench::broker::Upstream::External(broker),
        ..EngineConfig::default()
    })
    .await;
    let (_, failed, out) = suite(rig.port()).await;
    assert!(failed.is_empty(), "mosquitto fails {failed:?}\n{out}");
}
