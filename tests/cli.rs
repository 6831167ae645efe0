//! The binary as a user runs it: validate, run with export, mosquitto interop.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use mqtt_workbench::export;
use rumqttc::QoS;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
}

fn scenario(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn validate_accepts_shipped_and_locates_errors_in_bad_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ron");
    std::fs::write(
        &bad,
        "Scenario(\n  name: \"x\",\n  devices: [(id: \"a\", qos: 1)],\n)\n",
    )
    .unwrap();
    let out = bin()
        .arg("validate")
        .arg(scenario("temperature.ron"))
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("temperature.ron: ok"), "{stdout}");
    let expected = format!("{}:3:23: unknown field `qos`", bad.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("expected one of"), "{stderr}");
    // The file is left as it was.
    assert!(std::fs::read_to_string(&bad).unwrap().contains("qos: 1"));
}

#[test]
fn run_prints_status_and_summary_and_exports_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    for ext in ["jsonl", "csv"] {
        let log = dir.path().join(format!("log.{ext}"));
        let out = bin()
            .args([
                "run",
                &scenario("temperature.ron"),
                "--duration",
                "3s",
                "--port",
                "0",
                "--export",
            ])
            .arg(&log)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("msg/s published"), "status line: {stderr}");
        assert!(stdout.contains("== Summary"), "{stdout}");
        assert!(
            stdout.contains("temp-sensor") && stdout.contains("temp-app"),
            "{stdout}"
        );
        assert!(stdout.contains("QoS flows:"), "{stdout}");
        let rows = export::read(&log).unwrap();
        let published: Vec<_> = rows
            .iter()
            .filter(|r| r.topic == "temp" && r.direction == "client_to_broker")
            .collect();
        let delivered: Vec<_> = rows
            .iter()
            .filter(|r| r.topic == "temp" && r.direction == "broker_to_client")
            .collect();
        assert!(published.len() >= 2, "{ext}: {rows:?}");
        assert_eq!(
            delivered.len(),
            published.len(),
            "{ext}: every reading reached the app"
        );
        assert!(published.iter().all(|r| r.client_id == "temp-sensor"
            && r.qos == 1
            && r.payload.parse::<f64>().is_ok()));
        // Round trip: write what we read, read it again, same rows.
        let again = dir.path().join(format!("again.{ext}"));
        export::write(&again, &rows).unwrap();
        assert_eq!(export::read(&again).unwrap(), rows);
    }
}

#[test]
fn same_seed_replays_the_same_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs = Vec::new();
    for k in 0..2 {
        let log = dir.path().join(format!("run{k}.jsonl"));
        let out = bin()
            .args([
                "run",
                &scenario("temperature.ron"),
                "--duration",
                "3s",
                "--port",
                "0",
                "--export",
            ])
            .arg(&log)
            .output()
            .unwrap();
        assert!(out.status.success());
        let rows = export::read(&log).unwrap();
        runs.push(
            rows.into_iter()
                .filter(|r| r.topic == "temp" && r.direction == "client_to_broker")
                .map(|r| r.payload)
                .collect::<Vec<_>>(),
        );
    }
    let n = runs[0].len().min(runs[1].len());
    assert!(n >= 2);
    assert_eq!(runs[0][..n], runs[1][..n]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_sub_appears_in_sessions_with_its_subscription() {
    let which = Command::new("mosquitto_sub").arg("--help").output();
    assert!(
        which.is_ok(),
        "mosquitto_sub is missing: run scripts/setup.sh (installs mosquitto-clients)"
    );
    let mut rig = Rig::start().await;
    let child = tokio::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &rig.port().to_string(),
            "-i",
            "mosq-ext",
            "-q",
            "1",
            "-t",
            "ext/#",
            "-C",
            "1",
            "-v",
        ])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    rig.wait_for("mosquitto_sub subscribed", 10, |c| {
        c.sessions.get("mosq-ext").is_some_and(|s| {
            s.connected
                && s.subscriptions
                    .get("ext/#")
                    .is_some_and(|sub| sub.granted_qos == Some(Some(1)))
        })
    })
    .await;
    let mut p = connect(options("ext-pub", rig.port(), true));
    p.connack().await;
    p.client
        .publish("ext/hello", QoS::AtLeastOnce, false, "from rumqttc")
        .await
        .unwrap();
    let out = tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "ext/hello from rumqttc"
    );
    rig.wait_for("mosquitto_sub's graceful disconnect", 10, |c| {
        !c.sessions["mosq-ext"].connected
    })
    .await;
    assert_eq!(
        rig.model.capture.sessions["mosq-ext"].last_disconnect(),
        Some(&mqtt_workbench::wire::CloseReason::Graceful)
    );
}

#[test]
fn bench_runs_a_fleet_in_a_child_process_and_reports_it() {
    // A functional check of the benchmark harness, not a timing test.
    let out = bin()
        .args([
            "bench",
            "--devices",
            "20",
            "--rate",
            "5",
            "--duration",
            "2s",
            "--devices-process",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("devices in a child process, through tap and broker"),
        "{stdout}"
    );
    assert!(
        stdout.contains("devices                 20 (20 connected"),
        "{stdout}"
    );
    let delivered: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("delivered"))
        .and_then(|l| l.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    assert!(
        delivered >= 100,
        "20 devices at 5 Hz for 2 s delivered {delivered}: {stdout}"
    );
}

#[test]
fn bench_subscriptions_reports_the_cost_of_its_filters_once_all_are_granted() {
    // A functional check of the harness (every filter granted, both figures
    // printed), not a memory target: those are `bench` figures.
    let out = output_within(
        &["bench", "--subscriptions", "500", "--port", "0"],
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let figure = |prefix: &str| -> Option<f64> {
        let line = stdout.lines().find(|l| l.starts_with(prefix))?;
        let (_, after) = line.split_once('(')?;
        after.split_whitespace().next()?.parse().ok()
    };
    assert!(figure("one client, 500 filters").is_some(), "{stdout}");
    assert!(figure("1000 clients, one filter").is_some(), "{stdout}");
    assert!(stdout.contains("granted in"), "{stdout}");
}

/// A loopback port nobody listens on (bound, then released).
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("its address").port()
}

#[test]
fn a_fleet_that_cannot_connect_ends_with_what_did_not_happen_not_a_hang() {
    // The broker behind the tap is a port nobody listens on: the tap answers
    // every CONNECT with CONNACK "server unavailable", and the devices retry.
    let broker = format!("mqtt://127.0.0.1:{}", closed_port());
    let out = output_within(
        &[
            "bench",
            "--devices",
            "20",
            "--rate",
            "1",
            "--duration",
            "2s",
            "--port",
            "0",
            "--broker",
            &broker,
            "--connect-timeout",
            "3s",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(
            "the fleet did not connect: 20 of 20 devices never got a CONNACK within 3 s: \
             their last attempt failed, 20 with \"Connection refused, return code: `ServiceUnavailable`\""
        ),
        "{stderr}"
    );

    // `run` goes on (the devices keep trying) but says so, once, and its
    // status line shows how far the fleet got.
    let out = output_within(
        &[
            "run",
            &scenario("temperature.ron"),
            "--port",
            "0",
            "--broker",
            &broker,
            "--connect-timeout",
            "2s",
            "--duration",
            "4s",
        ],
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr
            .matches("error: 2 of 2 devices never got a CONNACK within 2 s: their last attempt failed, 2 with \"Connection refused, return code: `ServiceUnavailable`\" (they keep trying)")
            .count(),
        1,
        "{stderr}"
    );
    assert!(
        stderr.contains("| 0 / 2 devices connected, 2 waiting (2 failing: "),
        "{stderr}"
    );
}

#[test]
fn run_prints_each_connection_that_failed_before_its_connect_with_why() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let (status, stderr) = rt.block_on(async {
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
            .args(["run", "--duration", "5s", "--port", "0"])
            .args(["--tls", "--tls-port", "0", "--tls-dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let mut lines =
            tokio::io::BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let mut stderr = String::new();
        // `run` names both listeners once they listen.
        let port_after = |line: &str, prefix: &str| -> Option<u16> {
            let rest = &line[line.find(prefix)? + prefix.len()..];
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        };
        let (mut plain, mut tls) = (None, None);
        while plain.is_none() || tls.is_none() {
            let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
                .await
                .expect("run names its listeners within 20 s")
                .expect("stderr")
                .unwrap_or_else(|| panic!("run ended before naming its listeners: {stderr}"));
            plain = plain.or_else(|| port_after(&line, "broker on mqtt://127.0.0.1:"));
            tls = tls.or_else(|| port_after(&line, "TLS on mqtts://127.0.0.1:"));
            stderr += &line;
            stderr.push('\n');
        }
        let (plain, tls) = (plain.expect("plain port"), tls.expect("TLS port"));
        // Plain MQTT (a CONNECT) on the TLS port; an HTTP request on the plain one.
        let mut on_tls = tokio::net::TcpStream::connect(("127.0.0.1", tls))
            .await
            .unwrap();
        on_tls
            .write_all(b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04oops")
            .await
            .unwrap();
        let mut on_plain = tokio::net::TcpStream::connect(("127.0.0.1", plain))
            .await
            .unwrap();
        on_plain
            .write_all(b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .unwrap();
        // The rest of what it says, until it ends after its duration.
        let rest = async {
            while let Some(line) = lines.next_line().await.expect("stderr") {
                stderr += &line;
                stderr.push('\n');
            }
            child.wait().await.expect("run ends")
        };
        let status = tokio::time::timeout(Duration::from_secs(30), rest)
            .await
            .expect("run ends after its duration");
        (status, stderr)
    });
    assert!(status.success(), "{stderr}");
    let line = |needle: &str| {
        stderr
            .lines()
            .find(|l| l.contains("connection failed:") && l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?}: {stderr}"))
            .to_string()
    };
    assert!(line("plain MQTT on a TLS port").contains("connection failed: tls 127.0.0.1:"));
    assert!(
        line("an HTTP request on a plain MQTT port").contains("connection failed: tcp 127.0.0.1:")
    );
}
