//! The format's own tests: every shipped scenario round-trips, errors are located.

use super::*;
use crate::event::DeviceState;

fn parse(s: &str) -> Result<Scenario, ScenarioError> {
    Scenario::parse(s, Path::new("t.ron"))
}

#[test]
fn every_shipped_scenario_round_trips_through_ron() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).expect("scenarios folder") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "ron") {
            let s = Scenario::load(&path).expect("shipped scenario loads");
            let back = Scenario::from_source(&s.to_source()).unwrap_or_else(|e| {
                let ron = s.to_ron();
                panic!("{}: written RON does not parse: {e}\n{ron}", path.display())
            });
            assert_eq!(back, s, "{}", path.display());
            n += 1;
        }
    }
    assert!(n >= 5, "only {n} shipped scenarios found");
}

#[test]
fn mqtt5_fields_on_a_311_device_are_located_errors() {
    let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n  session_expiry: \"1m\")])")
        .unwrap_err();
    assert_eq!((e.line, e.col), (2, 3), "{e}");
    assert!(e.message.contains("expected `protocol: V5`"), "{e}");
    let e = parse(
        "Scenario(name: \"x\", devices: [(id: \"a\", subscribe: [(filter: \"q\")],\n  react: [(on: \"q\", actions: [Respond(payload: Text(\"ok\"))])])])",
    )
    .unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("Respond"), "{e}");
    let ok = parse(
        "Scenario(name: \"x\", devices: [(id: \"a\", protocol: V5, session_expiry: \"1m\",\n publish: [(topic: \"t\", payload: Text(\"1\"), properties: (response_topic: \"r/{id}\", correlation: \"c-{seq}\", topic_alias: 2))])])",
    )
    .unwrap();
    assert_eq!(ok.devices[0].protocol, Protocol::V5);
    let e = parse(
        "Scenario(name: \"x\", devices: [(id: \"a\", protocol: V5,\n publish: [(topic: \"t\", payload: Text(\"1\"), properties: (correlation: \"{nope}\"))])])",
    )
    .unwrap_err();
    assert!(e.message.contains("unknown placeholder `{nope}`"), "{e}");
}

#[test]
fn minimal_and_defaults() {
    let s = parse(r#"Scenario(name: "x", devices: [(id: "a")])"#).unwrap();
    let d = &s.devices[0];
    assert!(d.clean_session);
    assert_eq!(d.count, 1);
    assert_eq!(d.keep_alive, Dur::secs(30));
}

#[test]
fn unknown_field_names_line_and_column() {
    let e =
        parse("Scenario(\n  name: \"x\",\n  devices: [(id: \"a\", colour: 3)],\n)").unwrap_err();
    assert_eq!((e.line, e.col), (3, 23), "{e}");
    assert!(e.message.contains("unknown field `colour`"), "{e}");
    assert!(e.to_string().starts_with("t.ron:3:23: "), "{e}");
}

#[test]
fn bad_duration_and_qos_are_located() {
    let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n publish: [(topic: \"t\", every: \"soon\", payload: Text(\"1\"))])])").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("expected a duration"), "{e}");
    let e = parse(
        "Scenario(name: \"x\", devices: [(id: \"a\",\n\n subscribe: [(filter: \"t\", qos: 3)])])",
    )
    .unwrap_err();
    assert_eq!(e.line, 3, "{e}");
    assert!(e.message.contains("expected QoS 0, 1 or 2"), "{e}");
}

#[test]
fn semantic_errors_are_located() {
    let e = parse("Scenario(name: \"x\", devices: [\n (id: \"car\", count: 3)])").unwrap_err();
    assert_eq!((e.line, e.col), (2, 7), "{e}");
    assert!(e.message.contains("{i}"), "{e}");
    let e = parse("Scenario(name: \"x\", devices: [(id: \"a\",\n publish: [(topic: \"a/+\", payload: Text(\"1\"))])])").unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("wildcards"), "{e}");
}

#[test]
fn timeline_entries_parse_and_are_checked() {
    let ok = parse(
        r#"Scenario(name: "x", devices: [(id: "d-{i}", count: 2)], timeline: [
            (at: "2s", fault: Partition(target: Fleet("d-{i}"), duration: "5s")),
            (after: "d-1 connected", delay: "1s", fault: Drop(Device("d-2"))),
            (at: "9s", fault: Latency(target: All, ms: 200, duration: "3s")),
            (at: "10s", fault: ColdRestartBroker),
        ])"#,
    )
    .unwrap();
    assert_eq!(ok.timeline.len(), 4);
    assert_eq!(
        ok.timeline[1].trigger(),
        Some(("d-1".into(), DeviceState::Connected))
    );
    assert!(matches!(
        ok.timeline[0].fault,
        crate::fault::Fault::Partition(crate::fault::Partition { hold: true, .. })
    ));
    let e = parse("Scenario(name: \"x\", devices: [(id: \"a\")], timeline: [\n (after: \"b connected\", fault: Drop(Device(\"a\")))])")
        .unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.message.contains("not a device"), "{e}");
    let e = parse("Scenario(name: \"x\", devices: [(id: \"a\")], timeline: [(at: \"1s\", fault: Drop(Device(\"zz\")))])")
        .unwrap_err();
    assert!(e.message.contains("no device \"zz\""), "{e}");
}

#[test]
fn syntax_error_is_located() {
    let e = parse("Scenario(name: \"x\",\n devices: [(id: \"a\"]\n)").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
}
