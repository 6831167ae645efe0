//! The scripts thread on its own: hooks and actions, limits, error
//! locations, seeding (tests/scripts.rs runs scripted devices through the tap).

use std::path::PathBuf;

use super::*;

fn source(text: &str) -> ScriptSource {
    ScriptSource {
        path: PathBuf::from("pump.js"),
        text: Arc::from(text),
    }
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn hooks_publish_read_and_set_vars_and_schedule_calls() {
    run(async {
        let host = ScriptHost::start().unwrap();
        let s = host
            .open(
                "pump-1",
                1,
                7,
                source(
                    "let n = 0;\n\
                     function onTick() {\n\
                       n += 1;\n\
                       device.set('level', device.get('level') + 1);\n\
                       device.publish('pump/' + device.index, {n, level: device.get('level')}, {qos: 1});\n\
                       device.after(250, () => device.setState('idle'));\n\
                     }\n\
                     function onMessage(topic, payload, props) {\n\
                       if (props.json && props.json.on) device.publish(topic + '/ack', 'on', {retain: true});\n\
                     }\n",
                ),
                ScriptLimits::default(),
            )
            .await
            .unwrap();
        let snap = Snapshot {
            vars: BTreeMap::from([("level".to_string(), 2.0)]),
            state: "on".into(),
        };
        let r = s.call(Hook::Tick, snap.clone()).await;
        assert_eq!(r.error, None);
        assert_eq!(
            r.actions,
            [
                ScriptAction::SetVar("level".into(), 3.0),
                ScriptAction::Publish {
                    topic: "pump/1".into(),
                    payload: br#"{"n":1,"level":3}"#.to_vec(),
                    qos: 1,
                    retain: false,
                    properties: None
                },
                ScriptAction::After(Duration::from_millis(250), 1),
            ]
        );
        let r = s.call(Hook::Timer(1), snap.clone()).await;
        assert_eq!(r.actions, [ScriptAction::SetState("idle".into())]);
        let r = s
            .call(
                Hook::Message {
                    topic: "cmd".into(),
                    payload: bytes::Bytes::from_static(br#"{"on": true}"#),
                    qos: 0,
                    retain: false,
                    response_topic: None,
                    correlation: None,
                    user_properties: vec![],
                },
                snap,
            )
            .await;
        assert_eq!(
            r.actions,
            [ScriptAction::Publish {
                topic: "cmd/ack".into(),
                payload: b"on".to_vec(),
                qos: 0,
                retain: true,
                properties: None
            }]
        );
    });
}

#[test]
fn a_runaway_call_is_interrupted_and_errors_name_file_line_and_column() {
    run(async {
        let host = ScriptHost::start().unwrap();
        let s = host
            .open(
                "d",
                1,
                1,
                source("function onTick() {\n  while (true) {}\n}\nfunction onConnect() {\n  null.x;\n}\n"),
                ScriptLimits {
                    budget: Duration::from_millis(50),
                    ..ScriptLimits::default()
                },
            )
            .await
            .unwrap();
        let t0 = Instant::now();
        let r = s.call(Hook::Tick, Snapshot::default()).await;
        let e = r.error.expect("interrupted");
        assert!(e.message.contains("CPU budget"), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
        let e = s
            .call(Hook::Connect, Snapshot::default())
            .await
            .error
            .expect("a TypeError");
        assert_eq!((e.file.as_str(), e.line), ("pump.js", 5), "{e}");
        assert!(e.message.starts_with("TypeError"), "{e}");
    });
    let e = compile(&source("let a = 1;\nlet = = 2;\n")).unwrap_err();
    assert_eq!((e.file.as_str(), e.line), ("pump.js", 2), "{e}");
    assert!(e.message.contains("SyntaxError"), "{e}");
    assert!(compile(&source("function onTick() {}")).is_ok());
}

#[test]
fn a_script_past_its_memory_cap_fails_and_its_device_alone() {
    run(async {
        let host = ScriptHost::start().unwrap();
        let greedy = host
            .open(
                "greedy",
                1,
                1,
                source("let keep = [];\nfunction onTick() {\n  for (;;) keep.push(new Array(100000).fill(1));\n}\n"),
                ScriptLimits {
                    budget: Duration::from_secs(20),
                    memory_bytes: 8 << 20,
                },
            )
            .await
            .unwrap();
        let modest = host
            .open(
                "modest",
                2,
                1,
                source("function onTick() { device.publish('ok', 'still here'); }"),
                ScriptLimits::default(),
            )
            .await
            .unwrap();
        let e = greedy
            .call(Hook::Tick, Snapshot::default())
            .await
            .error
            .expect("out of memory");
        assert!(e.message.contains("out of memory"), "{e}");
        let r = modest.call(Hook::Tick, Snapshot::default()).await;
        assert_eq!(r.error, None);
        assert_eq!(r.actions.len(), 1, "the other device's script goes on");
    });
}

#[test]
fn math_random_is_seeded_per_device() {
    let draw = |seed| {
        run(async move {
            let host = ScriptHost::start().unwrap();
            let s = host
                .open(
                    "d",
                    1,
                    seed,
                    source("function onTick() { device.publish('r', String(Math.random())); }"),
                    ScriptLimits::default(),
                )
                .await
                .unwrap();
            s.call(Hook::Tick, Snapshot::default()).await.actions
        })
    };
    assert_eq!(draw(42), draw(42));
    assert_ne!(draw(42), draw(43));
}
