//! The capture database through the real parts: mosquitto clients through
//! the tap, the engine's writer, read back by the workbench and by Debian's
//! `sqlite3` (a reader that is not ours), searched and queried through the
//! engine, `mqtt-workbench query`, and a `kill -9` in the middle of a run.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use mqtt_workbench::checks::PayloadCheck;
use mqtt_workbench::command::Command;
use mqtt_workbench::database::{self, DbOptions, SearchSpec, Value};
use mqtt_workbench::engine::EngineConfig;
use mqtt_workbench::wire::PacketKind;

fn sqlite3(file: &Path, sql: &str) -> String {
    // Waits up to 5 s for a lock, as a reader beside a busy writer should.
    let out = std::process::Command::new("sqlite3")
        .args(["-cmd", ".timeout 5000"])
        .arg(file)
        .arg(sql)
        .output()
        .expect("sqlite3 runs (scripts/setup.sh installs Debian's sqlite3)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

async fn mosquitto(tool: &str, port: u16, args: &[&str]) -> std::process::Output {
    tokio::process::Command::new(tool)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .await
        .expect("mosquitto clients run (scripts/setup.sh installs mosquitto-clients)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_frame_of_a_mosquitto_exchange_is_in_the_database_field_for_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.sqlite");
    let mut rig = Rig::start_with(EngineConfig {
        capture_db: Some(DbOptions {
            path: path.clone(),
            max_bytes: None,
            max_age: None,
        }),
        ..EngineConfig::default()
    })
    .await;
    let port = rig.port();
    let sub = tokio::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args([
            "-V", "mqttv5", "-i", "db-sub", "-q", "1", "-t", "db/#", "-C", "3",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_sub runs");
    rig.wait_for("the subscriber subscribed", 10, |c| {
        c.sessions
            .get("db-sub")
            .is_some_and(|s| s.subscriptions.values().any(|x| x.granted_qos.is_some()))
    })
    .await;
    for (topic, payload) in [
        ("db/a", "{\"t\": 19.5}"),
        ("db/b", "{\"t\": 23.0}"),
        ("db/b", "alarm: door open"),
    ] {
        let out = mosquitto(
            "mosquitto_pub",
            port,
            &[
                "-V", "mqttv5", "-i", "db-pub", "-q", "1", "-t", topic, "-m", payload,
            ],
        )
        .await;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = tokio::time::timeout(Duration::from_secs(10), sub.wait_with_output())
        .await
        .expect("the subscriber got the three messages")
        .unwrap();
    assert!(out.status.success());
    rig.wait_for("both clients gone", 10, |c| {
        c.topics.values().map(|t| t.delivered).sum::<u64>() >= 3
            && c.sessions
                .values()
                .all(|s| !s.connected || s.client_id.starts_with('$'))
            && c.sessions.contains_key("db-sub")
    })
    .await;

    // Searched and queried through the engine while it writes.
    rig.wait_model("the frames committed", 10, |m| {
        m.database.as_ref().is_some_and(|d| d.written >= 10)
    })
    .await;
    rig.handle
        .commands
        .send(Command::SearchCapture {
            spec: SearchSpec {
                topic: "db/+".into(),
                client: String::new(),
                payload: Some(PayloadCheck::Json {
                    field: "t".into(),
                    equals: None,
                    above: Some(20.0),
                    below: None,
                    outside: None,
                    inside: None,
                }),
            },
            before: None,
        })
        .await
        .unwrap();
    rig.wait_model("a search page", 10, |m| m.searches > 0)
        .await;
    let page = rig.model.search.clone().unwrap().expect("the search ran");
    // The 23.0 message, published and delivered: two frames, both legs.
    assert_eq!(page.rows.len(), 2, "{:?}", page.rows);
    assert!(
        page.rows
            .iter()
            .all(|(_, e)| e.topic.as_deref() == Some("db/b"))
    );
    rig.handle
        .commands
        .send(Command::Query(
            "SELECT dir, COUNT(*) FROM frames WHERE kind = 'Publish' GROUP BY dir ORDER BY dir"
                .into(),
        ))
        .await
        .unwrap();
    rig.wait_model("a query answer", 10, |m| m.queries > 0)
        .await;
    let q = rig.model.query.clone().unwrap().expect("the query ran");
    assert_eq!(
        q.rows,
        [
            [Value::Text("broker_to_client".into()), Value::Integer(3)],
            [Value::Text("client_to_broker".into()), Value::Integer(3)],
        ]
    );

    // Closed: everything committed; what the capture holds, the file holds.
    rig.handle
        .commands
        .send(Command::CaptureDb(None))
        .await
        .unwrap();
    rig.wait_model("the database closed", 15, |m| !m.database_open)
        .await;
    let status = rig.model.database.clone().unwrap();
    assert_eq!(status.lost(), 0, "{status:?}");
    let rec = database::read(&path).expect("the database reads back");
    let json = |e: &mqtt_workbench::wire::WireEvent| serde_json::to_value(e).unwrap();
    let captured: Vec<_> = rig.model.capture.events().map(|(_, e)| json(e)).collect();
    let stored: Vec<_> = rec.events.iter().map(json).collect();
    assert_eq!(stored.len(), status.written as usize);
    assert_eq!(stored, captured, "every frame, field for field");
    assert!(rec.events.iter().any(|e| e.kind == PacketKind::Closed));
    assert!(
        rec.events.iter().any(|e| e.v5.is_some()),
        "MQTT 5 properties kept"
    );

    // A third-party reader sees the same rows.
    assert_eq!(
        sqlite3(&path, "SELECT COUNT(*) FROM frames"),
        rec.events.len().to_string()
    );
    assert_eq!(
        sqlite3(
            &path,
            "SELECT topic || ' ' || CAST(payload AS TEXT) FROM frames \
             WHERE kind = 'Publish' AND dir = 'broker_to_client' ORDER BY id"
        ),
        "db/a {\"t\": 19.5}\ndb/b {\"t\": 23.0}\ndb/b alarm: door open"
    );
    // The topic postings, through the view, list the same frames (both legs).
    assert_eq!(
        sqlite3(
            &path,
            "SELECT dir || ' ' || CAST(payload AS TEXT) FROM frames WHERE id IN \
             (SELECT id FROM topic_frame_ids WHERE topic = 'db/b') ORDER BY id"
        ),
        "client_to_broker {\"t\": 23.0}\nbroker_to_client {\"t\": 23.0}\n\
         client_to_broker alarm: door open\nbroker_to_client alarm: door open"
    );
    assert_eq!(sqlite3(&path, "PRAGMA integrity_check"), "ok");
}

fn bin() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
}

#[test]
fn query_prints_csv_and_json_lines_and_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.sqlite");
    let w = database::Writer::spawn(DbOptions {
        path: path.clone(),
        max_bytes: None,
        max_age: None,
    })
    .unwrap();
    let mut e = mqtt_workbench::wire::WireEvent::new(
        1_700_000_000_000_000,
        3,
        std::sync::Arc::from("car-2"),
        mqtt_workbench::wire::Direction::ClientToBroker,
        PacketKind::Publish,
    );
    e.topic = Some(std::sync::Arc::from("fleet/car-2/speed"));
    e.payload = Some(bytes::Bytes::from_static(b"88"));
    w.frames(vec![e.clone(), e]);
    assert_eq!(w.flush().written, 2);
    let sql = "SELECT client_id, topic, CAST(payload AS TEXT) AS speed, COUNT(*) AS n FROM frames GROUP BY topic";
    let out = bin().arg("query").arg(&path).arg(sql).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "client_id,topic,speed,n\ncar-2,fleet/car-2/speed,88,2\n"
    );
    let out = bin()
        .args(["query", "--format", "jsonl"])
        .arg(&path)
        .arg(sql)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"client_id\":\"car-2\",\"topic\":\"fleet/car-2/speed\",\"speed\":\"88\",\"n\":2}\n"
    );
    let out = bin()
        .arg("query")
        .arg(&path)
        .arg("DELETE FROM frame_rows")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("q.sqlite") && err.contains("readonly"),
        "{err}"
    );
    let out = bin()
        .arg("query")
        .arg(&path)
        .arg("SELEC x")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("syntax error"));
}

#[test]
fn a_killed_run_leaves_a_database_with_everything_committed_before_the_kill() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("killed.sqlite");
    let scenario = dir.path().join("fast.ron");
    std::fs::write(
        &scenario,
        r#"Scenario(
    name: "fast",
    devices: [(id: "fast-{i}", count: 4, publish: [(topic: "fast/{id}", every: "20ms", qos: 1, payload: Text("{seq}"))])],
)"#,
    )
    .unwrap();
    let mut child = bin()
        .arg("run")
        .arg(&scenario)
        .args(["--port", "0", "--duration", "120s", "--capture-db"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The status line (once a second) says how many frames the writer has
    // committed: wait until it says 200 or more. The run ends by itself after
    // 120 s, which ends the lines.
    // (`lines` lives until after the kill: the child never writes to a closed pipe.)
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut before = 0;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(n) = line
            .split(" | db ")
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|n| n.parse::<i64>().ok())
        {
            before = n;
        }
        if before >= 200 {
            break;
        }
    }
    assert!(before >= 200, "the run committed frames ({before})");
    child.kill().unwrap(); // SIGKILL: no chance to flush
    child.wait().unwrap();
    drop(lines);
    let after = rusqlite_count(&path).unwrap();
    assert!(after >= before, "{after} < {before}");
    let rec = database::read(&path).expect("the killed run's database opens");
    assert!(rec.events.len() as i64 >= before);
    assert_eq!(sqlite3(&path, "PRAGMA integrity_check"), "ok");
    assert!(
        sqlite3(
            &path,
            "SELECT COUNT(*) FROM frames WHERE topic LIKE 'fast/%'"
        )
        .parse::<u64>()
        .unwrap()
            > 0
    );
}

/// Frames committed so far, read as another process would (read-only).
fn rusqlite_count(p: &Path) -> Result<i64, String> {
    let q = database::query(p, "SELECT COUNT(*) FROM frames", 1).map_err(|e| e.to_string())?;
    match q.rows.first().and_then(|r| r.first()) {
        Some(Value::Integer(n)) => Ok(*n),
        _ => Err("no count".into()),
    }
}
