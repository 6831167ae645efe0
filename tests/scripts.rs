//! Scripted devices through the real parts: JavaScript devices on the
//! embedded broker behind the tap, heard and commanded by mosquitto's own
//! clients; the same seed giving the same bytes; a runaway script stopped
//! within its budget while the others go on; `validate` naming file, line
//! and column; the shipped PID thermostat passing its checks.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use mqtt_workbench::command::{Command, ScenarioSource};
use mqtt_workbench::wire::Direction;

/// A scenario file and its scripts in a folder of their own.
fn write(dir: &Path, ron: &str, scripts: &[(&str, &str)]) -> PathBuf {
    for (name, text) in scripts {
        std::fs::write(dir.join(name), text).expect("the script is written");
    }
    let path = dir.join("scenario.ron");
    std::fs::write(&path, ron).expect("the scenario is written");
    path
}

async fn load(rig: &Rig, path: PathBuf) {
    assert!(
        rig.handle
            .send(Command::LoadScenario(ScenarioSource::File(path)))
    );
}

const PUMP: &str = r#"
let n = 0;
function onConnect() {
  device.subscribe("pump/" + device.index + "/cmd", 1);
}
function onTick() {
  n += 1;
  device.publish("pump/" + device.index + "/level", { n, level: device.get("level"), r: Math.random() }, { qos: 1 });
}
function onMessage(topic, payload, props) {
  // A command answered with a computed result: the sum of the numbers sent.
  const sum = props.json.add.reduce((a, b) => a + b, 0);
  device.set("level", device.get("level") + sum);
  device.publish("pump/" + device.index + "/result", { sum, level: device.get("level") }, { qos: 1 });
}
"#;

const PUMP_RON: &str = r#"Scenario(name: "pumps", seed: 11, devices: [
    (id: "pump-{i}", count: 2, tick: "200ms", vars: {"level": 5.0}, script: "pump.js"),
])"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_publishes_to_mosquitto_sub_and_answers_a_mosquitto_pub_command() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), PUMP_RON, &[("pump.js", PUMP)]);
    let mut rig = Rig::start().await;
    let port = rig.port();
    // Two subscribers that exit after their messages (mosquitto_sub then
    // flushes what it printed).
    let sub = |topic: &str, count: &str| {
        let id = format!("watcher-{}", topic.replace('/', "-"));
        mosquitto(
            "mosquitto_sub",
            "mqttv311",
            port,
            &["-q", "1", "-v", "-i", &id, "-t", topic, "-C", count],
        )
        .spawn()
        .expect("mosquitto_sub runs (scripts/setup.sh installs mosquitto-clients)")
    };
    let levels = sub("pump/1/level", "2");
    let results = sub("pump/1/result", "1");
    rig.wait_for("the watchers subscribed", 10, |c| {
        c.sessions
            .values()
            .filter(|s| s.client_id.starts_with("watcher-") && !s.subscriptions.is_empty())
            .count()
            == 2
    })
    .await;
    load(&rig, path).await;
    rig.wait_for("the pumps subscribed to their commands", 15, |c| {
        ["pump-1", "pump-2"].iter().all(|id| {
            c.sessions
                .get(*id)
                .is_some_and(|s| !s.subscriptions.is_empty())
        })
    })
    .await;
    let out = mosquitto(
        "mosquitto_pub",
        "mqttv311",
        port,
        &["-i", "operator", "-q", "1"],
    )
    .args(["-t", "pump/1/cmd", "-m", r#"{"add": [1, 2, 3.5]}"#])
    .output()
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = |child: tokio::process::Child| async move {
        let out =
            tokio::time::timeout(std::time::Duration::from_secs(10), child.wait_with_output())
                .await
                .expect("mosquitto_sub got its messages")
                .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // What mosquitto_sub printed: the script's telemetry and its answer.
    let text = printed(results).await;
    assert_eq!(text, "pump/1/result {\"sum\":6.5,\"level\":11.5}\n");
    let text = printed(levels).await;
    // (The level is 5, or 11.5 once the command was taken.)
    assert!(
        text.starts_with(r#"pump/1/level {"n":1,"level":"#),
        "{text}"
    );
    assert!(text.contains(r#"pump/1/level {"n":2,"level":"#), "{text}");
    assert!(text.contains(r#","r":0."#), "{text}");
    // The var the script set is the device's (the Devices panel shows it).
    rig.wait_model("pump-1's script reported", 5, |m| {
        m.devices.get("pump-1").is_some_and(|d| {
            d.script
                .as_ref()
                .is_some_and(|s| s.vars.contains(&("level".into(), "11.5".into())))
        })
    })
    .await;
    // pump-2 was not commanded.
    assert!(!rig.model.capture.topics.contains_key("pump/2/result"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_gives_the_same_bytes() {
    let mut runs = Vec::new();
    for _ in 0..2 {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), PUMP_RON, &[("pump.js", PUMP)]);
        let mut rig = Rig::start().await;
        load(&rig, path).await;
        rig.wait_for("six readings from each pump", 15, |c| {
            (1..=2).all(|i| {
                c.topics
                    .get(&format!("pump/{i}/level"))
                    .is_some_and(|t| t.published >= 6)
            })
        })
        .await;
        let mut per_device: BTreeMap<String, Vec<Vec<u8>>> = BTreeMap::new();
        for (_, e) in rig.model.capture.messages() {
            if e.dir == Direction::ClientToBroker {
                let v = per_device.entry(e.client_id.to_string()).or_default();
                if v.len() < 6 {
                    v.push(e.payload.as_deref().unwrap_or_default().to_vec());
                }
            }
        }
        runs.push(per_device);
    }
    assert_eq!(runs[0].len(), 2);
    assert_eq!(
        runs[0], runs[1],
        "two runs with one seed, the same payloads"
    );
    assert_ne!(
        runs[0]["pump-1"], runs[0]["pump-2"],
        "each device draws its own numbers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runaway_script_is_stopped_within_its_budget_and_the_others_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let ron = r#"Scenario(name: "runaway", seed: 1, devices: [
        (id: "spinner", tick: "200ms", script: "spin.js", script_budget: "50ms"),
        (id: "pump-{i}", count: 1, tick: "200ms", vars: {"level": 5.0}, script: "pump.js"),
    ])"#;
    let spin = "let calls = 0;\nfunction onTick() {\n  calls += 1;\n  for (;;) calls += 1;\n}\n";
    let path = write(dir.path(), ron, &[("spin.js", spin), ("pump.js", PUMP)]);
    let mut rig = Rig::start().await;
    load(&rig, path).await;
    rig.wait_model("the spinner marked faulty", 15, |m| {
        m.devices
            .get("spinner")
            .and_then(|d| d.script.as_ref())
            .is_some_and(|s| s.error.is_some())
    })
    .await;
    let error = rig
        .model
        .devices
        .get("spinner")
        .unwrap()
        .script
        .clone()
        .unwrap();
    let error = error.error.as_deref().unwrap();
    // Where QuickJS stopped it: a line of onTick (2 to 4).
    let line: u32 = error
        .split("spin.js:")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    assert!((2..=4).contains(&line), "{error}");
    assert!(error.contains("CPU budget"), "{error}");
    // The pump shares the scripts thread: its first tick may still be
    // waiting behind the spinner's when the spinner is stopped.
    let published = |c: &mqtt_workbench::capture::Capture| {
        c.topics.get("pump/1/level").map_or(0, |t| t.published)
    };
    let before = published(&rig.model.capture);
    rig.wait_for("the pump going on after it", 10, |c| {
        published(c) >= before + 5
    })
    .await;
    // The spinner stays connected; its script is no longer called.
    assert!(rig.model.capture.sessions["spinner"].connected);
}

#[test]
fn validate_names_the_script_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let ron = r#"Scenario(name: "broken", seed: 1, devices: [(id: "d", script: "bad.js")])"#;
    let path = write(
        dir.path(),
        ron,
        &[("bad.js", "function onTick() {\n  let x = ;\n}\n")],
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
        .arg("validate")
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.js:2:"), "{err}");
    assert!(err.contains("SyntaxError"), "{err}");
    let ok = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
        .arg("validate")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/pid-thermostat.ron"))
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn the_shipped_pid_thermostat_passes_its_checks() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("junit.xml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
        .args(["test", "--port", "0", "--junit"])
        .arg(&junit)
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/pid-thermostat.ron"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = std::fs::read_to_string(&junit).unwrap();
    assert!(
        report.contains("it overshoots by less than 0.5"),
        "{report}"
    );
    assert!(!report.contains("<failure"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_script_restarts_only_the_devices_that_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let ron = r#"Scenario(name: "two scripts", seed: 3, devices: [
        (id: "a", tick: "200ms", script: "a.js"),
        (id: "b", tick: "200ms", script: "b.js"),
    ])"#;
    let say = |what: &str| {
        format!("function onTick() {{ device.publish('say/' + device.id, '{what}'); }}\n")
    };
    let path = write(
        dir.path(),
        ron,
        &[("a.js", &say("one")), ("b.js", &say("one"))],
    );
    let mut rig = Rig::start_with(mqtt_workbench::engine::EngineConfig {
        watch: true,
        ..Default::default()
    })
    .await;
    load(&rig, path).await;
    rig.wait_for("both saying one", 15, |c| {
        ["say/a", "say/b"].iter().all(|t| {
            c.topics
                .get(*t)
                .is_some_and(|s| &s.last_payload[..] == b"one")
        })
    })
    .await;
    let (a_conn, b_conn) = (
        rig.model.capture.sessions["a"].conn,
        rig.model.capture.sessions["b"].conn,
    );
    // The editor saves a new b.js.
    std::fs::write(dir.path().join("b.js"), say("two")).unwrap();
    let n = rig
        .wait_notice("the reload", 15, |n| n.text.starts_with("reloaded"))
        .await;
    assert!(
        n.text
            .contains("1 devices kept their connections, 1 restarted"),
        "{}",
        n.text
    );
    rig.wait_for("b saying two", 15, |c| {
        c.topics
            .get("say/b")
            .is_some_and(|s| &s.last_payload[..] == b"two")
    })
    .await;
    let sessions = &rig.model.capture.sessions;
    assert_eq!(sessions["a"].conn, a_conn, "a kept its connection");
    assert_ne!(
        sessions["b"].conn, b_conn,
        "b reconnected with its new script"
    );
    assert_eq!(&rig.model.capture.topics["say/a"].last_payload[..], b"one");
}
