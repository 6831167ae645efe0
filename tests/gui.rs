//! The real app in the egui_kittest harness: real engine, real broker, real
//! virtual devices; clicks on the real widgets.

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::{NodeT, Queryable};
use mqtt_workbench::engine::EngineConfig;
use mqtt_workbench::ui::{AppConfig, DialogResult, Dialogs, WorkbenchApp};

/// Answers file dialogs the way a test says.
struct ScriptedDialogs {
    export_to: Option<PathBuf>,
}

impl Dialogs for ScriptedDialogs {
    fn open_scenario(&mut self) -> DialogResult {
        DialogResult::Cancelled
    }
    fn save_export(&mut self, _default_name: &str) -> DialogResult {
        self.export_to
            .clone()
            .map_or(DialogResult::Cancelled, DialogResult::Picked)
    }
    fn save_certificate(&mut self, _default_name: &str) -> DialogResult {
        self.save_export(_default_name)
    }
    fn save_capture(&mut self, _default_name: &str) -> DialogResult {
        self.save_export(_default_name)
    }
    fn open_capture(&mut self) -> DialogResult {
        self.save_export("")
    }
    fn save_spec(&mut self, _default_name: &str) -> DialogResult {
        self.save_export(_default_name)
    }
    /// The AsyncAPI document beside the export path: `fridges.asyncapi.yaml`.
    fn open_spec(&mut self) -> DialogResult {
        self.export_to
            .as_ref()
            .map_or(DialogResult::Cancelled, |p| {
                DialogResult::Picked(p.with_file_name("fridges.asyncapi.yaml"))
            })
    }
}

/// The engine's runtime, as `main` owns it: the window never drives it.
static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime")
});

fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

fn harness(
    scenario: Option<PathBuf>,
    listen_port: u16,
    export_to: Option<PathBuf>,
) -> Harness<'static, WorkbenchApp> {
    harness_with(
        scenario,
        EngineConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], listen_port)),
            ..EngineConfig::default()
        },
        export_to,
    )
}

fn harness_with(
    scenario: Option<PathBuf>,
    engine: EngineConfig,
    export_to: Option<PathBuf>,
) -> Harness<'static, WorkbenchApp> {
    let h = Harness::builder()
        .with_size(egui::vec2(1600.0, 1000.0))
        .build_eframe(move |cc| {
            WorkbenchApp::new(
                cc,
                AppConfig {
                    engine,
                    runtime: RUNTIME.handle().clone(),
                    scenario,
                    dialogs: Box::new(ScriptedDialogs { export_to }),
                    port_from_cli: true,
                    ephemeral: true,
                    frame_bench: None,
                },
            )
        });
    // The engine tells when it queues events: `wait_ui` steps a frame then,
    // instead of on a clock.
    let (tx, rx) = crossbeam_channel::bounded(1);
    if let Some(engine) = h.state().engine() {
        engine.set_waker(Arc::new(move || {
            let _ = tx.try_send(());
        }));
    }
    ENGINE_EVENTS.with(|e| *e.borrow_mut() = Some(rx));
    h
}

thread_local! {
    /// Signalled when the harness's engine queues events.
    static ENGINE_EVENTS: std::cell::RefCell<Option<crossbeam_channel::Receiver<()>>> =
        const { std::cell::RefCell::new(None) };
}

/// Step frames until `pred` holds on the harness (the engine runs on its own
/// threads): a frame whenever the engine queued events, and at least every
/// 50 ms (verdicts with deadlines change with time alone).
fn wait_ui(
    h: &mut Harness<'_, WorkbenchApp>,
    what: &str,
    secs: u64,
    pred: impl Fn(&Harness<'_, WorkbenchApp>) -> bool,
) {
    let t0 = Instant::now();
    loop {
        h.step();
        if pred(h) {
            h.step();
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(secs),
            "timed out after {secs}s waiting for {what}; toasts: {:?}",
            h.state().toast_texts()
        );
        ENGINE_EVENTS.with(|e| {
            if let Some(rx) = e.borrow().as_ref() {
                let _ = rx.recv_timeout(Duration::from_millis(50));
            }
        });
    }
}

/// Step frames until `pred` holds on the app.
fn wait(
    h: &mut Harness<'_, WorkbenchApp>,
    what: &str,
    secs: u64,
    pred: impl Fn(&WorkbenchApp) -> bool,
) {
    wait_ui(h, what, secs, |h| pred(h.state()));
}

#[test]
fn drop_a_device_from_the_welcome_screen_and_see_its_will_and_abrupt_disconnect() {
    let mut h = harness(None, 0, None);
    // The empty workspace invites opening a shipped scenario (read on a
    // thread of its own, so the list may take a few frames).
    wait_ui(&mut h, "the shipped scenarios listed", 10, |h| {
        h.query_by_label("Temperature sensor").is_some()
    });
    h.get_by_label("Temperature sensor").click();
    wait(&mut h, "the sensor connected", 15, |a| {
        a.model
            .capture
            .sessions
            .get("temp-sensor")
            .is_some_and(|s| s.connected)
    });
    wait(&mut h, "the retained online status", 10, |a| {
        a.model.capture.topics.contains_key("sensor/status")
    });

    h.get_by_label("temp-sensor").click();
    // The selection shows its action bar on the next frame.
    h.run_steps(2);
    h.get_by_label("Drop").click();
    wait(&mut h, "the will delivered", 10, |a| {
        a.model
            .capture
            .topics
            .get("sensor/status")
            .is_some_and(|t| t.wills >= 1)
    });

    // The click is a fault like any other: marked on the traffic plot.
    assert!(
        h.state()
            .model
            .faults
            .markers
            .iter()
            .any(|m| m.label == "drop temp-sensor")
    );
    // Topic inspector: sensor/status now shows the will's payload and the will marker.
    h.step();
    assert!(
        h.query_by_label("= offline").is_some(),
        "the tree shows the will payload as the topic's value"
    );
    assert!(
        h.query_by_label("will").is_some(),
        "the tree marks a topic that received a will"
    );

    // Session inspector: the abrupt disconnect, with the will firing.
    // Selecting the device also selected its session.
    h.get_by_label("Sessions").click();
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("client closed without DISCONNECT — will fires")
            .is_some(),
        "the session history shows the abrupt disconnect"
    );
    assert!(
        h.query_by_label_contains("will delivered 1 time(s) on sensor/status")
            .is_some()
    );
}

#[test]
fn export_writes_the_captured_rows_to_the_chosen_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("log.csv");
    let mut h = harness(Some(scenario("temperature.ron")), 0, Some(out.clone()));
    wait(&mut h, "three readings", 15, |a| {
        a.model
            .capture
            .topics
            .get("temp")
            .is_some_and(|t| t.published >= 3)
    });
    let expected = mqtt_workbench::export::rows(&h.state().model.capture);
    h.get_by_label("Export…").click();
    wait(&mut h, "the export notice", 10, |a| {
        a.toast_texts().iter().any(|t| t.starts_with("exported"))
    });
    let rows = mqtt_workbench::export::read(&out).unwrap();
    // Every row the capture held when Export was clicked, in order.
    assert!(
        rows.len() >= expected.len() && rows.len() >= 6,
        "{} rows",
        rows.len()
    );
    assert_eq!(rows[..expected.len()], expected[..]);
    assert!(rows.iter().any(|r| r.topic == "temp"
        && r.client_id == "temp-sensor"
        && r.direction == "client_to_broker"));
    assert!(rows.iter().any(|r| r.topic == "temp"
        && r.client_id == "temp-app"
        && r.direction == "broker_to_client"));
}

#[test]
fn unwritable_export_path_says_why() {
    let mut h = harness(
        Some(scenario("temperature.ron")),
        0,
        Some(PathBuf::from("/nonexistent-dir/log.jsonl")),
    );
    wait(&mut h, "a reading", 15, |a| {
        a.model
            .capture
            .topics
            .get("temp")
            .is_some_and(|t| t.published >= 1)
    });
    h.get_by_label("Export…").click();
    wait(&mut h, "the error", 10, |a| {
        a.toast_texts()
            .iter()
            .any(|t| t.contains("cannot write /nonexistent-dir/log.jsonl"))
    });
    assert!(
        h.query_by_label_contains("No such file or directory")
            .is_some(),
        "the toast says why"
    );
}

#[test]
fn selecting_a_topic_plots_its_values() {
    let mut h = harness(Some(scenario("temperature.ron")), 0, None);
    wait(&mut h, "four readings", 15, |a| {
        a.model
            .capture
            .topics
            .get("temp")
            .is_some_and(|t| t.published >= 4)
    });
    h.get_by_label("temp").click();
    h.step();
    h.step();
    let app = h.state();
    assert_eq!(app.topics.selected.as_deref(), Some("temp"));
    let numeric = app.model.capture.topics["temp"]
        .history
        .iter()
        .filter_map(|&s| app.model.capture.get(s))
        .filter(|e| {
            e.payload
                .as_deref()
                .is_some_and(|p| std::str::from_utf8(p).is_ok_and(|t| t.parse::<f64>().is_ok()))
        })
        .count();
    let (label, points) = app
        .topics
        .last_plot
        .first()
        .cloned()
        .expect("a series on the chart");
    assert_eq!(label, "temp");
    assert!(points >= 4, "{points} points");
    assert_eq!(points, numeric, "one point per captured reading");
}

#[test]
fn broken_scenario_shows_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.ron");
    std::fs::write(
        &bad,
        "Scenario(\n  name: \"x\",\n  devices: [(id: \"a\", colour: 3)],\n)\n",
    )
    .unwrap();
    let mut h = harness(Some(bad.clone()), 0, None);
    let expected = format!("{}:3:23: unknown field `colour`", bad.display());
    // The engine parses the file (off the UI thread) and answers with the error.
    wait(&mut h, "the parse error", 10, |a| {
        a.toast_texts().iter().any(|t| t.starts_with(&expected))
    });
    assert!(
        h.query_by_label_contains(&expected).is_some(),
        "shown on screen"
    );
    // Nothing was lost: the file is untouched and the app still offers the shipped scenarios.
    assert!(std::fs::read_to_string(&bad).unwrap().contains("colour: 3"));
    assert!(h.query_by_label("Open a shipped scenario").is_some());
}

#[test]
fn port_in_use_offers_another_port() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let mut h = harness(None, port, None);
    // The window draws at once; the engine reports the taken port when it tried.
    h.step();
    assert!(
        matches!(
            h.state().model.broker,
            mqtt_workbench::event::BrokerState::Starting
                | mqtt_workbench::event::BrokerState::Failed { .. }
        ),
        "the first frame is drawn without waiting for the engine"
    );
    let message = format!("port {port} on 127.0.0.1 is already in use");
    wait_ui(&mut h, "the port dialog", 10, |h| {
        h.query_by_label_contains("Use port ").is_some()
    });
    assert!(
        h.query_all_by_label_contains(&message).count() >= 1,
        "the dialog says which port is taken"
    );
    let offer = h.get_by_label_contains("Use port ");
    let offered: u16 = offer
        .accesskit_node()
        .label()
        .unwrap_or_default()
        .trim_start_matches("Use port ")
        .parse()
        .unwrap();
    assert_ne!(offered, port);
    offer.click();
    wait(&mut h, "the broker on the offered port", 10, |a| {
        a.tap_addr().is_some()
    });
    assert_eq!(h.state().tap_addr().map(|a| a.port()), Some(offered));
    // The broker really listens there.
    std::net::TcpStream::connect(("127.0.0.1", offered))
        .expect("the broker listens on the offered port");
}

#[test]
fn partition_and_latency_from_the_devices_panel_reach_the_tap() {
    let mut h = harness(Some(scenario("temperature.ron")), 0, None);
    wait(&mut h, "the app connected", 15, |a| {
        a.model
            .capture
            .sessions
            .get("temp-app")
            .is_some_and(|s| s.connected)
    });
    h.get_by_label("temp-app").click();
    h.run_steps(2);
    h.get_by_label("Network and client faults").click();
    h.run_steps(2);
    h.get_by_label("Set latency").click();
    wait(&mut h, "the latency in force", 5, |a| {
        a.model
            .faults
            .net_for("temp-app")
            .is_some_and(|f| f.latency_ms == 300 && f.jitter_ms == 100)
    });
    assert!(
        h.query_by_label_contains("latency 300 ms ± 100 ms")
            .is_some(),
        "the panel shows the fault in force"
    );
    h.get_by_label("Hold").click();
    wait(&mut h, "the partition in force", 5, |a| {
        a.model
            .faults
            .net_for("temp-app")
            .is_some_and(|f| f.partition == Some(mqtt_workbench::fault::PartitionMode::Hold))
    });
    // What the broker sends the app now is held by the network, and marked so.
    use mqtt_workbench::wire::{Direction, Injected};
    let held = |a: &WorkbenchApp| {
        a.model
            .capture
            .messages()
            .filter(|(_, e)| {
                &*e.client_id == "temp-app"
                    && e.dir == Direction::BrokerToClient
                    && e.injected == Some(Injected::Held)
            })
            .count()
    };
    wait(&mut h, "two readings held for the app", 10, |a| {
        held(a) >= 2
    });
    // …and the faults are markers on the traffic plot.
    assert!(
        h.state()
            .model
            .faults
            .markers
            .iter()
            .any(|m| m.label == "partition temp-app for 10s (held)")
    );
    h.get_by_label("Clear network").click();
    wait(&mut h, "the network cleared", 5, |a| {
        a.model.faults.net_for("temp-app").is_none()
    });
    let held_before = held(h.state());
    wait(&mut h, "readings flowing unmarked again", 10, |a| {
        a.model
            .capture
            .messages()
            .filter(|(_, e)| &*e.client_id == "temp-app" && e.dir == Direction::BrokerToClient)
            .count()
            > held_before + 1
    });
    assert_eq!(held(h.state()), held_before, "nothing held after clearing");
}

#[test]
fn the_timeline_shows_which_faults_fired() {
    let mut h = harness(Some(scenario("flaky-drones.ron")), 0, None);
    wait(&mut h, "the scenario started", 15, |a| {
        a.model.scenario.is_some()
    });
    assert!(h.query_by_label_contains("Timeline (6 faults)").is_some());
    assert_eq!(h.query_all_by_label("pending").count(), 6);
    wait(&mut h, "the first timeline fault (at 10 s)", 20, |a| {
        a.model.faults.fired.contains_key(&0)
    });
    assert_eq!(h.query_all_by_label("pending").count(), 5);
    assert!(h.query_by_label_contains("fired ").is_some());
}

#[test]
fn cold_restart_from_the_broker_menu_loses_sessions() {
    let mut h = harness(Some(scenario("power-plants.ron")), 0, None);
    wait(&mut h, "the station connected", 15, |a| {
        a.model
            .capture
            .sessions
            .get("monitoring-station")
            .is_some_and(|s| s.connected)
    });
    h.get_by_label("Broker").click();
    h.run_steps(2);
    h.get_by_label("Cold restart (loses sessions)").click();
    use mqtt_workbench::capture::SessionEventKind;
    wait(&mut h, "the station back without its session", 15, |a| {
        let s = &a.model.capture.sessions["monitoring-station"];
        s.connected
            && s.history
                .iter()
                .filter(|e| matches!(e.kind, SessionEventKind::Connected { .. }))
                .count()
                >= 2
            && matches!(
                s.history.back().map(|e| &e.kind),
                Some(SessionEventKind::Connected {
                    session_present: false,
                    ..
                })
            )
    });
    assert!(
        h.state()
            .model
            .faults
            .markers
            .iter()
            .any(|m| m.label.contains("cold restart"))
    );
}

#[test]
fn clearing_the_capture_while_the_log_shows_rows_never_points_at_other_messages() {
    let mut h = harness(Some(scenario("temperature.ron")), 0, None);
    wait(&mut h, "five readings", 20, |a| {
        a.model
            .capture
            .topics
            .get("temp")
            .is_some_and(|t| t.published >= 5)
    });
    h.get_by_label("Message log").click();
    wait(&mut h, "rows in the log", 5, |a| a.log.rows().len() >= 5);
    let before: Vec<u64> = h.state().log.rows().iter().copied().collect();
    let cleared_at = h.state().model.capture.end_seq();

    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label_contains("Clear capture").click();
    h.run_steps(2);
    let app = h.state();
    // Sequence numbers go on from where they were: old numbers find nothing.
    assert_eq!(app.model.capture.first_seq(), cleared_at);
    for seq in &before {
        assert!(
            app.model.capture.get(*seq).is_none(),
            "seq {seq} still resolves"
        );
    }
    assert!(
        app.log.rows().iter().all(|s| *s >= cleared_at),
        "the log still lists messages from before the clear: {:?}",
        app.log.rows()
    );

    // New traffic: every row the log shows is a message captured after the clear.
    wait(&mut h, "new rows after the clear", 10, |a| {
        a.log.rows().len() >= 2
    });
    let app = h.state();
    let shown = app.log.rows().len();
    let messages = app.model.capture.messages().count();
    assert_eq!(
        shown, messages,
        "the log lists exactly the captured messages"
    );
    for seq in app.log.rows() {
        let e = app.model.capture.get(*seq).expect("each row resolves");
        assert_eq!(e.kind, mqtt_workbench::wire::PacketKind::Publish);
    }
    assert!(
        h.query_by_label(&format!("{shown} messages")).is_some(),
        "the count on screen matches"
    );
}

#[test]
fn client_faults_are_offered_only_for_virtual_devices() {
    let mut h = harness(Some(scenario("temperature.ron")), 0, None);
    wait(&mut h, "the broker listening", 15, |a| {
        a.tap_addr().is_some()
    });
    let port = h.state().tap_addr().map(|a| a.port()).unwrap_or(0);
    // An external client: the user's own tool, connected to the broker port.
    let mut opts = rumqttc::MqttOptions::new("my-backend", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (_client, mut el) = rumqttc::AsyncClient::new(opts, 8);
    RUNTIME.spawn(async move { while el.poll().await.is_ok() {} });
    wait(&mut h, "the backend connected", 10, |a| {
        a.model
            .capture
            .sessions
            .get("my-backend")
            .is_some_and(|s| s.connected)
    });
    h.get_by_label("my-backend").click();
    h.run_steps(2);
    h.get_by_label("Network and client faults").click();
    h.run_steps(2);
    assert!(
        h.query_by_label("Half-dead").is_some(),
        "network faults apply to anyone"
    );
    assert!(h.query_by_label("Takeover").is_some());
    assert!(
        h.query_by_label("Stop acking").is_none(),
        "an external client cannot be told to stop acking"
    );
    // A virtual device is offered them.
    wait(&mut h, "the sensor connected", 10, |a| {
        a.model.devices.state("temp-sensor") == Some(mqtt_workbench::event::DeviceState::Connected)
    });
    h.get_by_label("temp-sensor").click();
    h.run_steps(2);
    assert!(h.query_by_label("Stop acking").is_some());

    // In the Sessions table a click on a client's name selects its row (the
    // name is the last of its labels: the devices panel lists it first).
    h.get_by_label("Sessions").click();
    h.run_steps(2);
    assert!(h.query_by_label("external client").is_none());
    h.query_all_by_label("my-backend")
        .last()
        .expect("my-backend in the sessions table")
        .click();
    h.run_steps(2);
    assert!(
        h.query_by_label("external client").is_some(),
        "the click on the name selected my-backend's session"
    );
}

#[test]
fn a_message_typed_in_the_publish_panel_reaches_the_broker_and_the_history() {
    // The wine cooler subscribes to its set-point and acknowledges it (a reaction).
    let mut h = harness(Some(scenario("wine-cooler.ron")), 0, None);
    wait(&mut h, "the scenario connected", 15, |a| {
        a.model.capture.connected_clients() >= 2
    });
    // Closed at first (the inspectors keep their width); the tab bar opens it.
    assert!(h.query_by_label("Retain").is_none());
    h.get_by_label("Publish panel").click();
    h.run_steps(2);
    assert!(h.query_by_label("Retain").is_some(), "the panel opened");
    h.state_mut().publish.draft.topic = "cellar/cooler-1/setpoint".into();
    h.state_mut().publish.json = true;
    h.state_mut().publish.draft.payload = "{\"setpoint\": 11}".into();
    h.run_steps(2);
    assert!(
        h.query_by_label("valid JSON").is_some(),
        "the JSON is checked"
    );
    h.get_all_by_role(egui::accesskit::Role::Button)
        .find(|n| {
            n.accesskit_node()
                .label()
                .is_some_and(|l| l.starts_with("Publish") && !l.contains("panel"))
        })
        .expect("the Publish button")
        .click();
    wait(&mut h, "the message captured", 10, |a| {
        a.model.capture.messages().any(|(_, e)| {
            &*e.client_id == mqtt_workbench::command::WORKBENCH_CLIENT_ID
                && e.topic.as_deref() == Some("cellar/cooler-1/setpoint")
                && e.payload.as_deref() == Some(&b"{\"setpoint\": 11}"[..])
        })
    });
    // The subscribing virtual device's reaction fired: it took the set-point
    // and published its acknowledgement.
    wait(&mut h, "the cooler's acknowledgement", 10, |a| {
        a.model.capture.messages().any(|(_, e)| {
            &*e.client_id == "cooler-1"
                && e.dir == mqtt_workbench::wire::Direction::ClientToBroker
                && e.topic.as_deref() == Some("cellar/cooler-1/setpoint/ack")
                && e.payload.as_deref().is_some_and(|p| p.starts_with(b"11"))
        })
    });
    assert_eq!(h.state().settings.publish.history.len(), 1);
    assert!(
        h.query_by_label_contains("cellar/cooler-1/setpoint  ←")
            .is_some(),
        "listed in the history"
    );
    // Ctrl+Enter sends the draft again.
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::Enter);
    wait(&mut h, "the second copy", 10, |a| {
        a.model
            .capture
            .topics
            .get("cellar/cooler-1/setpoint")
            .is_some_and(|t| t.published >= 2)
    });
}

#[test]
fn a_retained_message_is_cleared_from_the_topic_tree_after_a_confirmation() {
    let mut h = harness(Some(scenario("temperature.ron")), 0, None);
    wait(&mut h, "the retained status", 15, |a| {
        a.model
            .capture
            .topics
            .get("sensor/status")
            .is_some_and(|t| t.retained.is_some())
    });
    h.get_by_label("status").click_secondary();
    h.run_steps(2);
    h.get_by_label("Clear retained message…").click();
    // The modal measures itself on its first frame, then shows.
    wait_ui(&mut h, "the confirmation", 5, |h| {
        h.query_by_label_contains("Clear 1 retained message on sensor/status?")
            .is_some()
    });
    assert!(
        h.query_by_label_contains("Clear 1 retained message on sensor/status?")
            .is_some(),
        "asks first, saying how many"
    );
    h.get_by_label("Clear 1").click();
    wait(&mut h, "the retained message cleared", 10, |a| {
        a.model
            .capture
            .topics
            .get("sensor/status")
            .is_some_and(|t| t.retained.is_none())
    });
    assert!(
        h.state()
            .toast_texts()
            .iter()
            .any(|t| t == "cleared 1 retained message")
            || h.state().model.capture.messages().any(|(_, e)| {
                &*e.client_id == mqtt_workbench::command::WORKBENCH_CLIENT_ID
                    && e.retain
                    && e.payload.as_deref() == Some(&b""[..])
            }),
        "the workbench published the empty retained message"
    );
    // A subscriber arriving now gets nothing retained on the topic.
    let port = h.state().tap_addr().expect("the broker runs").port();
    let out = std::process::Command::new("mosquitto_sub")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "sensor/status",
        ])
        .args(["-C", "1", "-W", "2", "-v"])
        .output()
        .expect("mosquitto_sub runs (scripts/setup.sh installs mosquitto-clients)");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "a late subscriber receives no retained message"
    );
}

#[test]
fn about_names_the_egui_and_eframe_versions_from_the_lock_file() {
    let mut h = harness(None, 0, None);
    h.step();
    h.get_by_label("Help").click();
    h.run_steps(2);
    h.get_by_label("About MQTT Workbench").click();
    wait_ui(&mut h, "the About window", 5, |h| {
        h.query_by_label_contains("GUI: egui").is_some()
    });
    // Both read from Cargo.lock by build.rs: each names its own package.
    let lock = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.lock"))
        .expect("Cargo.lock");
    let locked = |name: &str| {
        lock.split("[[package]]")
            .find(|p| p.contains(&format!("name = \"{name}\"\n")))
            .and_then(|p| p.lines().find(|l| l.starts_with("version = ")))
            .map(|l| {
                l.trim_start_matches("version = ")
                    .trim_matches('"')
                    .to_string()
            })
            .expect("locked package")
    };
    let expected = format!("GUI: egui {} / eframe {}", locked("egui"), locked("eframe"));
    assert_eq!(mqtt_workbench::about::EFRAME, locked("eframe"));
    assert!(h.query_by_label(&expected).is_some(), "{expected}");
}

#[test]
fn the_broker_menu_shows_the_tls_and_websocket_listeners_and_saves_the_ca_certificate() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let saved = dir.path().join("saved-ca.pem");
    let mut h = harness_with(
        None,
        EngineConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: Some(mqtt_workbench::tls::TlsOptions::generated(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
                dir.path().join("tls"),
            )),
            ws: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0))),
            ..EngineConfig::default()
        },
        Some(saved.clone()),
    );
    wait(&mut h, "the broker running with TLS", 15, |a| {
        matches!(
            &a.model.broker,
            mqtt_workbench::event::BrokerState::Running { tls: Some(_), .. }
        )
    });
    let port = match &h.state().model.broker {
        mqtt_workbench::event::BrokerState::Running { tls: Some(t), .. } => t.addr.port(),
        _ => unreachable!(),
    };
    let (public, ws) = match &h.state().model.broker {
        mqtt_workbench::event::BrokerState::Running { public, ws, .. } => {
            (*public, ws.ws.clone().expect("a ws:// URL"))
        }
        _ => unreachable!(),
    };
    // The status bar names every listener without running out of room: the
    // plain URL in full, the others by scheme.
    h.get_by_label_contains(&format!("Broker mqtt://{public} + mqtts · ws → "));
    h.get_by_label("Broker").click();
    h.run_steps(2);
    h.get_by_label(&format!("TLS: mqtts://127.0.0.1:{port}"));
    h.get_by_label(&format!("WebSocket: {ws}"));
    h.get_by_label("Save CA certificate…").click();
    wait(&mut h, "the CA certificate saved", 10, |_| saved.is_file());
    assert_eq!(
        std::fs::read(&saved).expect("saved"),
        std::fs::read(dir.path().join("tls/ca.pem")).expect("generated")
    );
}

#[test]
fn a_passed_check_opens_its_evidence_in_the_message_log() {
    let mut h = harness(Some(scenario("temperature.ron")), 0, None);
    wait(&mut h, "a check passed with evidence", 15, |a| {
        a.model.checks.as_ref().is_some_and(|c| {
            c.verdicts().any(|v| {
                v.name == "the sensor announces itself"
                    && v.state == mqtt_workbench::checks::VerdictState::Passed
            })
        })
    });
    let seq = h
        .state()
        .model
        .checks
        .as_ref()
        .and_then(|c| {
            c.verdicts()
                .find(|v| v.name == "the sensor announces itself")
                .and_then(|v| v.seq)
        })
        .expect("the verdict names its frame");
    h.get_by_label("Checks").click();
    h.run_steps(2);
    h.get_by_label("● passed");
    h.get_by_label("the sensor announces itself").click();
    h.run_steps(3);
    assert_eq!(h.state().settings.tab, mqtt_workbench::ui::Tab::Log);
    assert_eq!(h.state().log.highlighted(), Some(seq));
    assert!(
        h.state().log.rows().contains(&seq),
        "the evidence is a row of the log"
    );
}

#[test]
fn save_the_capture_then_open_it_again_from_the_file_menu() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("capture.jsonl");
    let mut h = harness(Some(scenario("temperature.ron")), 0, Some(path.clone()));
    wait(&mut h, "readings captured", 15, |a| {
        a.model
            .capture
            .topics
            .get("temp")
            .is_some_and(|t| t.published >= 2)
    });
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Save capture…").click();
    wait(&mut h, "the capture saved", 10, |_| {
        std::fs::read_to_string(&path).is_ok_and(|t| t.lines().count() > 5)
    });
    let saved = mqtt_workbench::export::record::read(&path).expect("a recording");
    assert!(saved.events.len() > 5);
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open capture…").click();
    wait(&mut h, "the recording on show", 10, |a| {
        a.model.opened_capture.as_deref() == Some(path.as_path()) && a.model.scenario.is_none()
    });
    wait_ui(&mut h, "the status bar names it", 5, |h| {
        h.query_by_label("Viewing capture capture.jsonl").is_some()
    });
    assert!(h.state().model.capture.topics.contains_key("temp"));
}

#[test]
fn a_hot_reloaded_file_with_an_error_keeps_the_old_scenario_and_shows_the_error() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("edited.ron");
    std::fs::write(
        &path,
        r#"Scenario(name: "edited", devices: [
    (id: "editor-device", publish: [(topic: "edit/x", every: "200ms", payload: Text("{seq}"))]),
])"#,
    )
    .expect("written");
    let mut h = harness_with(
        Some(path.clone()),
        EngineConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            watch: true,
            ..EngineConfig::default()
        },
        None,
    );
    wait(&mut h, "the device publishing", 15, |a| {
        a.model
            .capture
            .topics
            .get("edit/x")
            .is_some_and(|t| t.published >= 2)
    });
    std::fs::write(
        &path,
        r#"Scenario(name: "edited", devices: [
    (id: "editor-device", publish: [(topic: "edit/x", every: "fast", payload: Text("{seq}"))]),
])"#,
    )
    .expect("written");
    wait(&mut h, "the error toast", 15, |a| {
        a.toast_texts()
            .iter()
            .any(|t| t.contains("edited.ron:2:") && t.contains("stays as it was"))
    });
    let before = h.state().model.capture.topics["edit/x"].published;
    wait(&mut h, "the old scenario still publishing", 10, |a| {
        a.model.capture.topics["edit/x"].published >= before + 2
    });
    assert!(h.state().model.scenario.is_some());
}

#[test]
fn the_map_shows_the_drones_and_their_routes() {
    let mut h = harness(Some(scenario("drone-fleet.ron")), 0, None);
    wait(&mut h, "positions of the six drones", 15, |a| {
        (1..=6).all(|i| a.model.positions.tracks.contains_key(&format!("drone-{i}")))
    });
    let app = h.state();
    // Over Paris, where the scenario's waypoints are.
    for t in app.model.positions.tracks.values() {
        let (lat, lon) = *t.trail.back().expect("a position");
        assert!(
            (48.8..48.9).contains(&lat) && (2.2..2.4).contains(&lon),
            "{lat} {lon}"
        );
    }
    assert_eq!(
        app.model.scenario.as_ref().map(|s| s.info.routes.len()),
        Some(1),
        "the drones' waypoint route"
    );
    h.get_by_label("Map").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.tab, mqtt_workbench::ui::Tab::Map);
    h.get_by_label("6 devices with a position");
}

/// Sparkplug B written by hand from the protobuf wire format (independent of
/// the decoder's prost structs): NBIRTH names alias 1 "Temperature" (Float)
/// and alias 2 "Pump/Running" (Boolean); NDATA carries aliases only.
fn sparkplug(birth: bool) -> Vec<u8> {
    let mut temp = vec![0x10, 0x01, 0x20, 0x09, 0x65];
    temp.extend(if birth { 21.5f32 } else { 22.25f32 }.to_le_bytes());
    let mut pump = vec![0x10, 0x02, 0x20, 0x0b, 0x70, 0x01];
    if birth {
        let mut named = vec![0x0a, 11];
        named.extend(b"Temperature");
        named.extend(temp);
        temp = named;
        let mut named = vec![0x0a, 12];
        named.extend(b"Pump/Running");
        named.extend(pump);
        pump = named;
    }
    let mut p = vec![0x08, 0x01];
    for m in [temp, pump] {
        p.push(0x12);
        p.push(m.len() as u8);
        p.extend(m);
    }
    p.extend([0x18, if birth { 0 } else { 1 }]);
    p
}

#[test]
fn a_sparkplug_ndata_shows_named_metrics_and_plots_them() {
    let mut h = harness(None, 0, None);
    wait(&mut h, "the broker running", 15, |a| a.tap_addr().is_some());
    for (topic, birth) in [
        ("spBv1.0/plant/NBIRTH/edge-1", true),
        ("spBv1.0/plant/NDATA/edge-1", false),
    ] {
        h.state_mut()
            .send(mqtt_workbench::command::Command::Publish(
                mqtt_workbench::command::PublishRequest {
                    from: mqtt_workbench::command::Publisher::Workbench,
                    topic: topic.into(),
                    payload: bytes::Bytes::from(sparkplug(birth)),
                    qos: 1,
                    retain: false,
                    properties: Default::default(),
                    payload_file: None,
                },
            ));
        wait(&mut h, topic, 10, |a| {
            a.model.capture.topics.contains_key(topic)
        });
    }
    // Select the NDATA topic (as a click in the tree does, once its branch is open).
    {
        let app = h.state_mut();
        let capture = std::mem::take(&mut app.model.capture);
        app.topics.select("spBv1.0/plant/NDATA/edge-1", &capture);
        app.model.capture = capture;
    }
    h.run_steps(3);
    h.get_by_label_contains("Sparkplug B (decoded)");
    let payload = h.get_by_label_contains("\"Temperature\"");
    let text = format!("{payload:?}");
    assert!(text.contains("22.25"), "{text}");
    assert!(text.contains("Pump/Running"), "{text}");
    // The metric is offered for the chart under its name.
    h.get_by_label_contains("metrics.Temperature.value");
}

#[test]
fn the_payload_diff_shows_what_changed_since_the_previous_message_field_by_field() {
    let mut h = harness(None, 0, None);
    wait(&mut h, "the broker running", 15, |a| a.tap_addr().is_some());
    let topic = "fleet/car-7/state";
    for (n, payload) in [
        r#"{"speed": 10, "doors": "shut", "pos": {"lat": 48.1, "lon": 11.5}}"#,
        r#"{"doors": "shut", "speed": 12, "pos": {"lat": 48.1, "lon": 11.6}, "fuel": 30}"#,
    ]
    .into_iter()
    .enumerate()
    {
        h.state_mut()
            .send(mqtt_workbench::command::Command::Publish(
                mqtt_workbench::command::PublishRequest {
                    from: mqtt_workbench::command::Publisher::Workbench,
                    topic: topic.into(),
                    payload: bytes::Bytes::from(payload),
                    qos: 1,
                    retain: false,
                    properties: Default::default(),
                    payload_file: None,
                },
            ));
        wait(&mut h, "the message in the topic view", 10, |a| {
            a.model
                .capture
                .topics
                .get(topic)
                .is_some_and(|t| t.published > n as u64)
        });
    }
    {
        let app = h.state_mut();
        let capture = std::mem::take(&mut app.model.capture);
        app.topics.select(topic, &capture);
        app.model.capture = capture;
    }
    h.run_steps(2);
    h.get_by_label("Diff").click();
    h.run_steps(2);
    h.get_by_label("3 fields changed");
    h.get_by_label("/speed");
    h.get_by_label("10 → 12");
    h.get_by_label("/pos/lon");
    h.get_by_label("11.5 → 11.6");
    h.get_by_label("/fuel");
    h.get_by_label("+ 30");
    assert!(
        h.query_by_label("/doors").is_none(),
        "an unchanged field is not listed"
    );
}

#[test]
fn a_scripted_device_shows_its_vars_state_and_log_in_the_devices_panel() {
    let mut h = harness(Some(scenario("pid-thermostat.ron")), 0, None);
    wait(&mut h, "the thermostat settled", 20, |a| {
        a.model.devices.get("thermostat").is_some_and(|d| {
            d.script.as_ref().is_some_and(|s| {
                s.state == "holding"
                    && s.last_log
                        .as_deref()
                        .is_some_and(|l| l.starts_with("settled"))
            })
        })
    });
    h.state_mut().select_device("thermostat");
    h.run_steps(2);
    h.get_by_label("pid-thermostat.js");
    h.get_by_label("holding");
    // Its vars (setpoint is also a topic in the tree: the others are not).
    h.get_by_label("heater");
    h.get_by_label("temp");
    h.get_by_label("23");
    h.get_by_label_contains("settled at 23 °C");
}

#[test]
fn a_fleet_is_edited_live_from_the_devices_panel() {
    let mut h = harness(Some(scenario("power-plants.ron")), 0, None);
    wait(&mut h, "the plants and the station connected", 15, |a| {
        a.model
            .devices
            .fleets()
            .first()
            .is_some_and(|f| f.connected == 4)
            && a.model.capture.sessions.contains_key("monitoring-station")
    });
    let station = h.state().model.capture.sessions["monitoring-station"].conn;
    h.get_all_by_label("Network faults")
        .next()
        .expect("the plant fleet's button")
        .click();
    h.run_steps(2);
    h.get_by_label("Edit the fleet").click();
    h.run_steps(2);
    h.get_by_label("Apply").click();
    wait(&mut h, "the reload applied", 15, |a| {
        a.toast_texts().iter().any(|t| t.starts_with("reloaded"))
    });
    // Nothing changed: every device kept its connection, the station too.
    let text = h
        .state()
        .toast_texts()
        .into_iter()
        .find(|t| t.starts_with("reloaded"))
        .unwrap_or_default();
    assert!(
        text.contains("5 devices kept their connections, 0 restarted"),
        "{text}"
    );
    assert_eq!(
        h.state().model.capture.sessions["monitoring-station"].conn,
        station
    );
}

#[test]
fn a_live_rate_change_from_the_devices_panel_changes_the_measured_rate() {
    let mut h = harness(Some(scenario("power-plants.ron")), 0, None);
    let outputs = |a: &WorkbenchApp| {
        (1..=4)
            .map(|i| {
                a.model
                    .capture
                    .topics
                    .get(&format!("grid/plants/plant-{i}/output"))
                    .map_or(0, |t| t.published)
            })
            .sum::<u64>()
    };
    wait(&mut h, "the plants reporting", 15, |a| outputs(a) >= 4);
    h.get_all_by_label("Network faults")
        .next()
        .expect("the plant fleet's button")
        .click();
    h.run_steps(2);
    h.get_by_label("Edit the fleet").click();
    h.run_steps(2);
    // The period field: 2000 ms → 100 ms.
    let period = h
        .get_all_by_role(egui::accesskit::Role::SpinButton)
        .find(|n| n.accesskit_node().value().as_deref() == Some("2000 ms"))
        .expect("the period field");
    period.click();
    h.run_steps(2);
    // The click put the field in text-edit mode, selected: type over it.
    h.event(egui::Event::Text("100".into()));
    h.run_steps(1);
    h.key_press(egui::Key::Enter);
    h.run_steps(2);
    h.get_by_label("Apply").click();
    wait(&mut h, "the reload applied", 15, |a| {
        a.toast_texts().iter().any(|t| t.contains("4 restarted"))
    });
    // Every 2 s, 40 more messages from four plants take 20 s; every 100 ms, 1 s.
    let before = outputs(h.state());
    wait(&mut h, "forty more readings at the new rate", 8, |a| {
        outputs(a) >= before + 40
    });
}

#[test]
fn the_status_bar_says_when_the_broker_stopped_answering_and_was_restarted() {
    let mut h = harness(None, 0, None);
    wait(&mut h, "the broker running", 15, |a| {
        matches!(
            a.model.broker,
            mqtt_workbench::event::BrokerState::Running { .. }
        )
    });
    // What the health probe reports when the broker goes silent.
    assert!(h.state().engine().expect("the engine").send(
        mqtt_workbench::command::Command::BrokerHealth(
            mqtt_workbench::event::Health::NotAnswering("no echo (a test)".into()),
        )
    ));
    // Restarted (warm) and answering its probe again: amber, counted, on the timeline.
    wait_ui(&mut h, "the restart counted in the status bar", 30, |h| {
        h.query_by_label_contains("restarted 1× (it stopped answering)")
            .is_some()
    });
    assert!(
        h.state()
            .model
            .faults
            .markers
            .iter()
            .any(|m| m.label == "broker not answering: warm restart #1")
    );
}

#[test]
fn the_log_searches_payloads_in_memory_and_in_the_database_and_the_query_tab_charts_sql() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("gui.sqlite");
    let mut h = harness_with(
        Some(scenario("temperature.ron")),
        EngineConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            capture_db: Some(mqtt_workbench::database::DbOptions {
                path: db.clone(),
                max_bytes: None,
                max_age: None,
            }),
            ..EngineConfig::default()
        },
        None,
    );
    wait(&mut h, "readings written to the database", 20, |a| {
        a.model
            .capture
            .topics
            .get("temp")
            .is_some_and(|t| t.published >= 3)
            && a.model.database.as_ref().is_some_and(|d| d.written >= 40)
    });
    assert!(
        h.query_all_by_label_contains("db ").next().is_some(),
        "the status bar shows the database"
    );

    // In memory: only the retained status messages contain "online".
    h.get_by_label("Message log").click();
    h.run_steps(2);
    let payload_field = |h: &Harness<'static, WorkbenchApp>| {
        h.get_all_by_role(egui::accesskit::Role::TextInput)
            .find(|n| n.accesskit_node().label().is_some_and(|l| l == "Payload"))
            .expect("the payload search field")
            .focus()
    };
    payload_field(&h);
    h.run_steps(2);
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.accesskit_node().label().is_some_and(|l| l == "Payload"))
        .expect("the payload search field")
        .type_text("online");
    wait(&mut h, "the log filtered by payload", 5, |a| {
        !a.log.rows().is_empty()
            && a.log.rows().iter().all(|s| {
                a.model
                    .capture
                    .get(*s)
                    .is_some_and(|e| e.payload.as_deref().is_some_and(|p| p == b"online"))
            })
    });
    // Over the database: the same predicate, answered by the engine.
    h.get_by_label("Search database").click();
    wait(&mut h, "database matches", 10, |a| a.model.searches > 0);
    let page = h
        .state()
        .model
        .search
        .clone()
        .unwrap()
        .expect("the search ran");
    assert!(!page.rows.is_empty());
    assert!(
        page.rows
            .iter()
            .all(|(_, e)| e.payload.as_deref() == Some(&b"online"[..])),
        "only matching payloads"
    );
    h.run_steps(2);
    assert!(
        h.query_by_label_contains("Database: ").is_some(),
        "the matches are listed"
    );

    // The Query tab: SQL in, rows and a chart out.
    h.get_by_label("Query").click();
    h.run_steps(2);
    h.state_mut().query.sql = "SELECT t_us, CAST(payload AS REAL) AS celsius FROM frames \
         WHERE topic = 'temp' AND kind = 'Publish' AND dir = 'client_to_broker' ORDER BY id"
        .into();
    h.get_by_label("Run").click();
    wait(&mut h, "the query's rows", 10, |a| a.model.queries > 0);
    let q = h
        .state()
        .model
        .query
        .clone()
        .unwrap()
        .expect("the query ran");
    assert_eq!(q.columns, ["t_us", "celsius"]);
    assert!(q.rows.len() >= 3);
    assert!(
        q.rows
            .iter()
            .all(|r| r[1].as_f64().is_some_and(|c| (15.0..=28.0).contains(&c)))
    );
    h.run_steps(2);
    assert!(
        h.query_by_label_contains(&format!("{} row(s)", q.rows.len()))
            .is_some()
    );
    assert!(
        h.query_all_by_label("celsius").next().is_some(),
        "the chart's column is chosen"
    );
}

#[test]
fn the_status_bar_shows_a_fleet_that_cannot_connect_and_why() {
    // The broker behind the tap is a port nobody listens on: every CONNECT
    // gets CONNACK "server unavailable" from the tap, and the devices retry.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let broker = mqtt_workbench::broker::parse_broker_url(&format!("mqtt://127.0.0.1:{closed}"))
        .expect("a broker URL");
    let mut h = harness_with(
        Some(scenario("temperature.ron")),
        EngineConfig {
            listen: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            upstream: mqtt_workbench::broker::Upstream::External(broker),
            ..EngineConfig::default()
        },
        None,
    );
    wait_ui(&mut h, "the ramp in the status bar", 30, |h| {
        h.query_by_label_contains("connecting 0 / 2 · ").is_some()
            && !h.state().model.ramp.status.failing.is_empty()
    });
    let (why, n) = h.state().model.ramp.status.failing[0].clone();
    assert_eq!(
        (why.as_str(), n),
        ("Connection refused, return code: `ServiceUnavailable`", 2)
    );
    h.query_by_label_contains("connecting 0 / 2 · ")
        .unwrap()
        .hover();
    wait_ui(&mut h, "the reason in the tooltip", 10, |h| {
        h.query_by_label_contains(
            "2 last failed with: Connection refused, return code: `ServiceUnavailable`",
        )
        .is_some()
    });
}

#[test]
fn open_an_asyncapi_document_see_a_violation_in_the_contract_view_and_export_an_inferred_one() {
    let dir = tempfile::tempdir().expect("a temp dir");
    // The shipped document, copied so the imported scenario is written beside the copy.
    std::fs::copy(
        scenario("fridges.asyncapi.yaml"),
        dir.path().join("fridges.asyncapi.yaml"),
    )
    .expect("copied");
    let inferred = dir.path().join("inferred.yaml");
    let mut h = harness(None, 0, Some(inferred.clone()));
    wait(&mut h, "the broker", 15, |a| {
        matches!(
            a.model.broker,
            mqtt_workbench::event::BrokerState::Running { .. }
        )
    });
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Open AsyncAPI…").click();
    let reading = "fridges/{fridgeId}/reading";
    wait(&mut h, "the imported fleet's readings checked", 30, |a| {
        a.model.contract.as_ref().is_some_and(|t| {
            t.channels
                .iter()
                .any(|(c, n)| &**c == reading && n.messages >= 3)
        })
    });
    assert!(dir.path().join("fridges.asyncapi.scenario.ron").is_file());
    assert_eq!(h.state().settings.tab, mqtt_workbench::ui::Tab::Contract);
    wait_ui(&mut h, "the channel conforms on screen", 10, |h| {
        h.query_by_label(reading).is_some()
            && h.query_all_by_label("every message conforms").count() >= 1
    });
    // A backend (mosquitto_pub) sends a reading without most of its fields.
    let port = h.state().port();
    let out = std::process::Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", "backend"])
        .args([
            "-t",
            "fridges/fridge-1/reading",
            "-m",
            r#"{"temperature": -40}"#,
        ])
        .output()
        .expect("mosquitto_pub runs (scripts/setup.sh installs mosquitto-clients)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(&mut h, "the violation counted", 15, |a| {
        a.model.contract.as_ref().is_some_and(|t| {
            t.channels
                .iter()
                .any(|(c, n)| &**c == reading && n.violations == 1)
        })
    });
    let first = h
        .state()
        .model
        .contract
        .as_ref()
        .and_then(|t| t.channels.iter().find(|(c, _)| &**c == reading))
        .and_then(|(_, n)| n.first.clone())
        .expect("the first offence");
    assert!(
        first
            .violations
            .iter()
            .any(|v| v.pointer == "/temperature" && v.keyword == "minimum"),
        "{first:?}"
    );
    let label = "backend on fridges/fridge-1/reading: ";
    wait_ui(&mut h, "the first violation on screen", 10, |h| {
        h.query_all_by_label_contains(label).count() == 1
    });
    h.query_all_by_label_contains(label)
        .next()
        .expect("the violation's cell")
        .click();
    h.run_steps(3);
    assert_eq!(h.state().settings.tab, mqtt_workbench::ui::Tab::Log);
    assert_eq!(h.state().log.highlighted(), Some(first.seq));
    let shown = h
        .state()
        .model
        .capture
        .get(first.seq)
        .expect("the highlighted frame");
    assert_eq!(&*shown.client_id, "backend");
    assert_eq!(shown.topic.as_deref(), Some("fridges/fridge-1/reading"));
    // File → Export AsyncAPI…: a document inferred from what was captured.
    h.get_by_label("File").click();
    h.run_steps(2);
    h.get_by_label("Export AsyncAPI…").click();
    wait(&mut h, "the inferred document written", 10, |_| {
        mqtt_workbench::contract::Contract::load(&inferred).is_ok()
    });
    let c = mqtt_workbench::contract::Contract::load(&inferred).expect("it reads");
    assert!(
        c.channels
            .iter()
            .any(|ch| &*ch.address == "fridges/{fridgeId}/reading"),
        "{:?}",
        c.channels.iter().map(|c| &c.address).collect::<Vec<_>>()
    );
}

#[test]
fn the_sparkplug_view_asks_for_a_rebirth_and_writes_a_metric_that_reaches_the_device() {
    let mut h = harness(Some(scenario("sparkplug-edge.ron")), 0, None);
    let key = ("plant".to_string(), "edge-1".to_string());
    wait(&mut h, "the pump born", 20, |a| {
        a.model
            .sparkplug
            .nodes
            .get(&key)
            .is_some_and(|n| n.devices.get("pump-1").is_some_and(|d| d.online))
    });
    h.get_by_label("Sparkplug").click();
    h.run_steps(2);
    assert_eq!(h.state().settings.tab, mqtt_workbench::ui::Tab::Sparkplug);
    h.get_by_label_contains("1 edge node (1 online)");
    h.get_by_label("scada");
    // The node's own metrics first, with its bdSeq; Rebirth asks for NBIRTH and DBIRTH again.
    h.get_by_label("Uptime");
    let births = |a: &WorkbenchApp| {
        a.model
            .capture
            .topics
            .get("spBv1.0/plant/NBIRTH/edge-1")
            .map_or(0, |t| t.published)
    };
    let before = births(h.state());
    h.get_by_label("Rebirth").click();
    wait(&mut h, "the NBIRTH answering the rebirth", 10, |a| {
        births(a) > before && a.model.sparkplug.rebirths_answered >= 1
    });
    assert!(h.state().model.capture.messages().any(|(_, e)| {
        &*e.client_id == mqtt_workbench::command::WORKBENCH_CLIENT_ID
            && e.topic.as_deref() == Some("spBv1.0/plant/NCMD/edge-1")
    }));
    // The pump's metrics; type a Setpoint (the fifth row) and write it: a DCMD
    // the virtual device applies and answers with a DDATA carrying the value.
    h.get_by_label("pump-1").click();
    h.run_steps(2);
    h.get_by_label("Temperature");
    assert_eq!(
        h.get_all_by_label("°C").count(),
        2,
        "Temperature's and Setpoint's units"
    );
    let setpoint = |h: &Harness<'_, WorkbenchApp>| {
        h.get_all_by_role(egui::accesskit::Role::TextInput)
            .filter(|n| n.accesskit_node().label().as_deref() == Some("Setpoint"))
            .count()
    };
    assert_eq!(
        setpoint(&h),
        1,
        "the Setpoint's Write field, named by its metric"
    );
    type_setpoint(&mut h, "42.5");
    h.run_steps(2);
    let write_buttons = |h: &Harness<'_, WorkbenchApp>| {
        h.get_all_by_role(egui::accesskit::Role::Button)
            .filter(|n| n.accesskit_node().label().as_deref() == Some("Write"))
            .count()
    };
    assert_eq!(write_buttons(&h), 5, "a Write button per pump metric");
    h.get_all_by_role(egui::accesskit::Role::Button)
        .filter(|n| n.accesskit_node().label().as_deref() == Some("Write"))
        .nth(4)
        .expect("the Setpoint's Write button (the fifth row)")
        .click();
    wait(&mut h, "the DCMD from the workbench's client", 10, |a| {
        a.model.capture.messages().any(|(_, e)| {
            &*e.client_id == mqtt_workbench::command::WORKBENCH_CLIENT_ID
                && e.topic.as_deref() == Some("spBv1.0/plant/DCMD/edge-1/pump-1")
        })
    });
    wait(&mut h, "the pump's Setpoint at 42.5", 10, |a| {
        a.model.sparkplug.nodes[&key].devices["pump-1"]
            .metrics
            .iter()
            .any(|m| m.name == "Setpoint" && m.value == serde_json::json!(42.5))
    });
    assert!(h.state().model.capture.messages().any(|(_, e)| {
        &*e.client_id == mqtt_workbench::command::WORKBENCH_CLIENT_ID
            && e.topic.as_deref() == Some("spBv1.0/plant/DCMD/edge-1/pump-1")
    }));
    // A value that is not a Double says so and sends nothing.
    type_setpoint(&mut h, "warm");
    h.run_steps(2);
    h.get_all_by_role(egui::accesskit::Role::Button)
        .filter(|n| n.accesskit_node().label().as_deref() == Some("Write"))
        .nth(4)
        .expect("the Setpoint's Write button")
        .click();
    h.run_steps(2);
    h.get_by_label_contains("is not a Double value");
}

/// Focus the Sparkplug view's Write field of the Setpoint metric, select what
/// it holds and type `text` over it.
fn type_setpoint(h: &mut Harness<'_, WorkbenchApp>, text: &str) {
    let field = |h: &Harness<'_, WorkbenchApp>| {
        h.get_all_by_role(egui::accesskit::Role::TextInput)
            .find(|n| n.accesskit_node().label().as_deref() == Some("Setpoint"))
            .map(|n| n.accesskit_node().id())
    };
    let id = field(h).expect("the Setpoint field");
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.accesskit_node().id() == id)
        .expect("the Setpoint field")
        .focus();
    h.run_steps(2);
    h.key_press_modifiers(egui::Modifiers::COMMAND, egui::Key::A);
    h.run_steps(1);
    h.get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.accesskit_node().id() == id)
        .expect("the Setpoint field")
        .type_text(text);
    h.run_steps(2);
    let typed = h
        .get_all_by_role(egui::accesskit::Role::TextInput)
        .find(|n| n.accesskit_node().id() == id)
        .and_then(|n| n.value());
    assert_eq!(
        typed.as_deref(),
        Some(text),
        "typed into the Setpoint field"
    );
}

#[test]
fn past_the_capture_session_bound_the_status_bar_says_so_and_the_devices_count_on() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let path = dir.path().join("three.ron");
    std::fs::write(
        &path,
        r#"Scenario(name: "three meters", devices: [(id: "meter-{i}", count: 3)])"#,
    )
    .expect("written");
    let mut h = harness(Some(path), 0, None);
    // A capture that follows two sessions, as the default follows 50,000.
    h.state_mut().model.capture.limits.max_sessions = 2;
    wait(&mut h, "the three devices' own CONNACKs", 15, |a| {
        a.model.ramp.status.connected >= 3
    });
    wait_ui(
        &mut h,
        "the status bar to say the bound was reached",
        5,
        |h| h.query_by_label("Clients 2+").is_some(),
    );
    let capture = &h.state().model.capture;
    assert_eq!(capture.sessions.len(), 2, "the capture keeps its bound");
    assert_eq!(capture.connected_clients(), 2);
}
