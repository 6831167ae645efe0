//! The rough edges a new user hits in the first hour, each through the binary
//! as they would run it.

use std::path::{Path, PathBuf};
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqtt-workbench"))
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("a test file in a temp dir");
    p
}

/// `validate FILE`: (exit code, stdout, stderr).
fn validate(file: &Path) -> (Option<i32>, String, String) {
    let out = bin()
        .arg("validate")
        .arg(file)
        .output()
        .expect("the binary runs");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_typo_in_a_template_is_an_error_with_its_position_but_json_braces_stay_literal() {
    let dir = tempfile::tempdir().unwrap();
    let typo = write(
        dir.path(),
        "typo.ron",
        b"Scenario(name: \"t\", devices: [\n  (id: \"d\", publish: [(topic: \"t\", payload: Text(\"temp {nosuch}\"))]),\n])\n",
    );
    let (code, _, stderr) = validate(&typo);
    assert_eq!(code, Some(2), "{stderr}");
    let expected = format!("{}:2:56: unknown placeholder `{{nosuch}}`", typo.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("{id}") && stderr.contains("{{"),
        "names the known ones: {stderr}"
    );

    // JSON text and an escaped brace are literal; known placeholders pass.
    let ok = write(
        dir.path(),
        "ok.ron",
        br#"Scenario(name: "ok", devices: [
  (id: "d", vars: {"level": 3.0}, publish: [
    (topic: "a/{id}", payload: Text("{\"on\": true, \"n\": {seq}}")),
    (topic: "b", payload: Text("{{level} is {level}")),
  ]),
])
"#,
    );
    let (code, stdout, stderr) = validate(&ok);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("ok.ron: ok"), "{stdout}");
}

#[test]
fn unknown_states_are_errors_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        (
            "transition.ron",
            r#"Scenario(name: "s", devices: [
  (id: "d", states: (initial: "idle", transitions: [(from: "idel", to: "busy", after: "1s")])),
])
"#,
            "2:60: transition `from`: unknown state \"idel\"",
        ),
        (
            "setstate.ron",
            r#"Scenario(name: "s", devices: [
  (id: "d", states: (initial: "idle"), react: [(on: "cmd", actions: [SetState("flying")])]),
])
"#,
            "2:70: SetState: unknown state \"flying\"",
        ),
        (
            "stateis.ron",
            r#"Scenario(name: "s", devices: [
  (id: "d", states: (initial: "idle"),
   publish: [(topic: "t", every: "1s", when: StateIs("busy"), payload: Text("x"))]),
])
"#,
            "3:46: StateIs: unknown state \"busy\"",
        ),
    ];
    for (name, text, expected) in cases {
        let f = write(dir.path(), name, text.as_bytes());
        let (code, _, stderr) = validate(&f);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        let expected = format!("{}:{expected}", f.display());
        assert!(stderr.contains(&expected), "{name}: {stderr}");
        assert!(stderr.contains("its states are idle"), "{name}: {stderr}");
    }
}

#[test]
fn a_fleet_that_cannot_fit_is_refused_up_front_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let huge = write(
        dir.path(),
        "huge.ron",
        b"Scenario(name: \"huge\", devices: [(id: \"d-{i}\", count: 1000000)])\n",
    );
    let (code, stdout, stderr) = validate(&huge);
    assert_eq!(code, Some(2), "{stdout}{stderr}");
    assert!(!stdout.contains("ok"), "{stdout}");
    assert!(stderr.contains("1000000 devices do not fit"), "{stderr}");
    assert!(stderr.contains("--shard"), "{stderr}");
    // `run` says the same before starting anything.
    let out = bin()
        .args(["run", "--port", "0", "--duration", "5s"])
        .arg(&huge)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("1000000 devices do not fit"), "{stderr}");
    assert!(
        !stderr.contains("broker on mqtt://"),
        "refused before starting: {stderr}"
    );
}

#[test]
fn without_a_display_the_window_says_so_in_one_sentence_and_shows_the_headless_command() {
    let out = bin()
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .args(["--port", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("No display found"), "{stderr}");
    assert!(
        stderr.contains("mqtt-workbench run SCENARIO.ron"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains("registry"), "{stderr}");
}

#[test]
fn an_error_is_printed_once() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(
        dir.path(),
        "bad.ron",
        b"Scenario(name: \"x\", devices: [(id: \"\")])\n",
    );
    let (code, _, stderr) = validate(&bad);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.matches("expected a non-empty client id").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn an_empty_scenario_and_no_scenario_run_the_broker_alone() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(
        dir.path(),
        "empty.ron",
        b"Scenario(name: \"broker only\", devices: [])\n",
    );
    let (code, stdout, stderr) = validate(&empty);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stdout.contains("0 devices"), "{stdout}");
    for args in [vec![empty.display().to_string()], vec![]] {
        let out = bin()
            .args(["run", "--port", "0", "--duration", "2s"])
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
        assert!(stderr.contains("broker on mqtt://127.0.0.1:"), "{stderr}");
        if !args.is_empty() {
            assert!(
                stderr.contains("this machine holds about"),
                "says up front how many devices fit: {stderr}"
            );
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("== Summary"), "{stdout}");
    }
}

#[test]
fn a_scenario_that_is_not_utf8_names_the_line_and_byte_of_the_bad_byte() {
    let dir = tempfile::tempdir().unwrap();
    let latin1 = write(
        dir.path(),
        "latin1.ron",
        b"Scenario(\n  name: \"caf\xe9\",\n  devices: [],\n)\n",
    );
    let (code, _, stderr) = validate(&latin1);
    assert_eq!(code, Some(2));
    let expected = format!(
        "{}:2:13: not UTF-8 text: invalid byte 0xE9 at byte offset 22",
        latin1.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn templates_are_checked_where_they_are_filled() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &str, &str); 3] = [
        (
            "json-typo.ron",
            r#"Scenario(name: "s", devices: [(id: "d", publish: [(topic: "t", payload: Text("{\"t\": {tmep}}"))])])"#,
            "unknown placeholder `{tmep}`",
        ),
        (
            "will-topic.ron",
            r#"Scenario(name: "s", devices: [(id: "d", will: (topic: "w/{seq}", payload: Text("x")))])"#,
            "only {i} and {id}",
        ),
        (
            "generator.ron",
            r#"Scenario(name: "s", devices: [(id: "d", publish: [(topic: "t", payload: Json({"a": Text("{nope}")}))])])"#,
            "unknown placeholder `{nope}`",
        ),
    ];
    for (name, text, expected) in cases {
        let f = write(dir.path(), name, text.as_bytes());
        let (code, _, stderr) = validate(&f);
        assert_eq!(code, Some(2), "{name}: {stderr}");
        assert!(stderr.contains(expected), "{name}: {stderr}");
    }
    // A var that a reaction sets may be used once set.
    let ok = write(
        dir.path(),
        "set-var.ron",
        br#"Scenario(name: "s", devices: [(id: "d", react: [(on: "cmd", actions: [SetVarFromPayload("level"), Publish(topic: "ack", payload: Text("{level}"))])])])"#,
    );
    let (code, _, stderr) = validate(&ok);
    assert_eq!(code, Some(0), "{stderr}");
}
