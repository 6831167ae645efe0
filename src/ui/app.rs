//! The application: owns the model and the engine handle, feeds the model in
//! `logic()`, draws in `ui()`. Menus and shortcuts: `commands.rs`; status bar:
//! `status.rs`; welcome screen: `welcome.rs`; modals: `modals.rs`; toasts:
//! `toasts.rs`; persisted settings: `settings.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::RichText;

use super::commands::Tab;
use super::devices::DevicesPanel;
use super::frame_bench::{FrameBench, FrameBenchRun};
use super::log::LogPanel;
use super::modals::{ModalAction, Modals};
use super::publish::PublishPanel;
use super::qos::QosPanel;
use super::sessions::SessionsPanel;
use super::settings::{SETTINGS_VERSION, Settings};
use super::status::{FrameStats, status_ui};
use super::toasts::Toasts;
use super::topics::TopicsPanel;
use super::traffic::TrafficPanel;
use super::welcome::Welcome;
use super::{DialogResult, Dialogs};
use crate::broker::Upstream;
use crate::command::{Command, ScenarioSource};
use crate::engine::{self, EngineConfig, EngineHandle};
use crate::event::BrokerState;
use crate::model::Model;

/// How long `logic()` may spend feeding the model per frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(8);
/// Repaint at most this often for traffic (user input repaints at once).
const TRAFFIC_REPAINT: Duration = Duration::from_millis(33);

/// What the window starts with.
pub struct AppConfig {
    pub engine: EngineConfig,
    /// The runtime the engine runs on (owned by `main`, or by a test).
    pub runtime: tokio::runtime::Handle,
    /// A scenario to open and run at start.
    pub scenario: Option<PathBuf>,
    pub dialogs: Box<dyn Dialogs>,
    /// The port came from the command line: it wins over the saved one.
    pub port_from_cli: bool,
    /// Keep settings out of eframe storage (tests).
    pub ephemeral: bool,
    /// Measure the window's frames under load, then close (`bench --gui`).
    pub frame_bench: Option<FrameBench>,
}

pub struct WorkbenchApp {
    runtime: tokio::runtime::Handle,
    engine_cfg: EngineConfig,
    engine: Option<EngineHandle>,
    /// Everything the engine reported, applied by the one `Model::apply`.
    pub model: Model,
    pub settings: Settings,
    ephemeral: bool,
    pub(super) file_dialogs: Box<dyn Dialogs>,
    pub(super) modals: Modals,
    toasts: Toasts,
    pub(super) welcome: Welcome,
    pub topics: TopicsPanel,
    pub sparkplug: super::sparkplug::SparkplugView,
    sessions: SessionsPanel,
    qos: QosPanel,
    pub log: LogPanel,
    pub query: super::query::QueryPanel,
    /// The verdict states last stored in the capture database.
    recorded_verdicts: Vec<crate::checks::VerdictState>,
    pub publish: PublishPanel,
    traffic: TrafficPanel,
    devices_panel: DevicesPanel,
    /// Commands queued by this frame's widgets, sent after drawing.
    pub(super) pending: Vec<Command>,
    frames: FrameStats,
    logic_started: Option<Instant>,
    repaint_ctx: egui::Context,
    /// Scenario starts seen (panels reset their selections on a new one).
    scenario_starts: u64,
    /// The current engine's start-up failure was shown.
    failure_shown: bool,
    /// The scenario asked for and not started yet (asked again after a port change).
    requested: Option<PathBuf>,
    frame_bench: Option<FrameBenchRun>,
}

impl WorkbenchApp {
    pub fn new(cc: &eframe::CreationContext<'_>, config: AppConfig) -> Self {
        let mut settings: Settings = if config.ephemeral {
            Settings::default()
        } else {
            cc.storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
                .filter(|s: &Settings| s.version == SETTINGS_VERSION)
                .unwrap_or_default()
        };
        let mut engine_cfg = config.engine;
        if config.port_from_cli {
            settings.port = engine_cfg.listen.port();
        } else {
            engine_cfg.listen.set_port(settings.port);
        }
        // The database chosen last time (File → Keep capture in a database…),
        // unless the command line names one.
        if engine_cfg.capture_db.is_none()
            && let Some(path) = &settings.capture_db
        {
            engine_cfg.capture_db = Some(crate::database::DbOptions {
                path: path.clone(),
                max_bytes: None,
                max_age: None,
            });
        }
        // Hack covers ● → ↑ ↓ ←, which the proportional fonts lack: use it as the last fallback.
        let mut fonts = egui::FontDefinitions::default();
        if let Some(family) = fonts.families.get_mut(&egui::FontFamily::Proportional) {
            family.push("Hack".to_owned());
        }
        cc.egui_ctx.set_fonts(fonts);
        cc.egui_ctx.set_theme(if settings.dark {
            egui::Theme::Dark
        } else {
            egui::Theme::Light
        });
        let ctx = cc.egui_ctx.clone();
        let mut model = Model::default();
        model.clear_on_scenario_start = true;
        let mut app = WorkbenchApp {
            runtime: config.runtime,
            engine_cfg,
            engine: None,
            model,
            settings,
            ephemeral: config.ephemeral,
            file_dialogs: config.dialogs,
            modals: Modals::default(),
            toasts: Toasts::default(),
            welcome: Welcome::new(move || ctx.request_repaint()),
            topics: TopicsPanel::default(),
            sparkplug: Default::default(),
            sessions: SessionsPanel::default(),
            qos: QosPanel::default(),
            log: LogPanel::default(),
            query: Default::default(),
            recorded_verdicts: Vec::new(),
            publish: PublishPanel::default(),
            traffic: TrafficPanel::default(),
            devices_panel: DevicesPanel::default(),
            pending: Vec::new(),
            frames: FrameStats::default(),
            logic_started: None,
            repaint_ctx: cc.egui_ctx.clone(),
            scenario_starts: 0,
            failure_shown: false,
            requested: None,
            frame_bench: config.frame_bench.map(FrameBenchRun::new),
        };
        app.start_engine();
        if let Some(path) = config.scenario {
            app.open_scenario(&path);
        }
        if let Some(run) = &app.frame_bench {
            run.preload(&mut app.model.capture);
            app.model.clear_on_scenario_start = false;
            let fleet = crate::bench::scenario(
                run.cfg.devices,
                run.cfg.rate_hz,
                run.cfg.qos,
                crate::scenario::Protocol::V311,
            );
            app.pending.push(Command::LoadScenario(fleet.to_source()));
        }
        app
    }

    /// `bench --gui`: pick the tab to measure, or print the report and close.
    fn frame_bench_logic(&mut self, ctx: &egui::Context) {
        // The devices' own count: the capture's stops at its session bound.
        let connected = self.model.ramp.status.connected;
        let Some(run) = &mut self.frame_bench else {
            return;
        };
        if run.done {
            return;
        }
        match run.tab(connected > u64::from(run.cfg.devices)) {
            Some(tab) => self.settings.tab = tab,
            None => {
                run.done = true;
                println!("{}", run.report(self.model.capture.len()));
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            }
        }
        ctx.request_repaint_after(TRAFFIC_REPAINT);
    }

    /// The running engine, if one was started (tests wait on its events).
    pub fn engine(&self) -> Option<&EngineHandle> {
        self.engine.as_ref()
    }

    /// Start an engine in the background: the window draws meanwhile and
    /// hears how it went as events.
    fn start_engine(&mut self) {
        let handle = engine::spawn(&self.runtime, self.engine_cfg.clone());
        let ctx = self.repaint_ctx.clone();
        handle.set_waker(Arc::new(move || ctx.request_repaint_after(TRAFFIC_REPAINT)));
        // Dropping the old handle stops the old engine (devices disconnect, sockets close).
        self.engine = Some(handle);
        self.model.broker = BrokerState::Starting;
        self.failure_shown = false;
    }

    /// The port clients connect to.
    /// The port clients connect to: the bound one once the broker runs
    /// (the configured one may be 0, "any free port").
    pub fn port(&self) -> u16 {
        match &self.model.broker {
            crate::event::BrokerState::Running { public, .. } => public.port(),
            _ => self.engine_cfg.listen.port(),
        }
    }

    pub fn broker_embedded(&self) -> bool {
        matches!(self.engine_cfg.upstream, Upstream::Embedded)
    }

    /// Restart the engine listening on `port`; re-run the scenario if one was running.
    fn change_port(&mut self, port: u16) {
        self.engine_cfg.listen.set_port(port);
        self.settings.port = port;
        // The scenario running, or the one asked for while the old engine failed.
        let rerun = self
            .model
            .scenario
            .as_ref()
            .map(|r| r.info.path.clone())
            .or_else(|| self.requested.clone());
        // Nothing the old engine reported holds for the new one.
        self.model.capture.clear();
        self.model.devices.clear();
        self.model.faults.clear();
        self.model.scenario = None;
        self.model.export = None;
        self.start_engine();
        if let Some(path) = rerun.filter(|p| p.is_file()) {
            self.pending
                .push(Command::LoadScenario(ScenarioSource::File(path)));
        }
    }

    pub fn toast(&mut self, error: bool, text: impl Into<String>) {
        self.toasts.push(error, text);
    }

    /// Ask the engine to run a scenario; it answers with the scenario started,
    /// or a notice naming file:line:column.
    pub fn open_scenario(&mut self, path: &Path) {
        self.requested = Some(path.to_path_buf());
        self.pending
            .push(Command::LoadScenario(ScenarioSource::File(
                path.to_path_buf(),
            )));
    }

    pub(super) fn open_dialog(&mut self) {
        match self.file_dialogs.open_scenario() {
            DialogResult::Picked(p) => self.open_scenario(&p),
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Drop a .ron file on the window, \
                 or pass it on the command line: mqtt-workbench FILE.ron",
            ),
        }
    }

    /// Save the whole capture as a recording (written on the engine).
    pub fn save_capture_dialog(&mut self) {
        match self.file_dialogs.save_capture("mqtt-capture.jsonl") {
            DialogResult::Picked(path) => {
                let scenario = self
                    .model
                    .scenario
                    .as_ref()
                    .map(|s| (s.info.name.clone(), s.info.started_us));
                self.pending.push(Command::SaveCapture {
                    path,
                    events: self.model.capture.snapshot(),
                    faults: self.model.faults.markers.iter().cloned().collect(),
                    scenario,
                });
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Use the headless CLI: \
                 mqtt-workbench run SCENARIO --record capture.jsonl",
            ),
        }
    }

    /// Verdicts that changed go to the capture database (each change, once).
    fn record_verdicts(&mut self) {
        let Some(checks) = self
            .model
            .checks
            .as_ref()
            .filter(|_| self.model.database_open)
        else {
            return;
        };
        let now: Vec<_> = checks.verdicts().map(|v| v.state).collect();
        if now != self.recorded_verdicts {
            self.recorded_verdicts = now;
            self.pending.push(Command::RecordVerdicts(
                checks.verdicts().cloned().collect(),
            ));
        }
    }

    /// Start writing the capture to a database (asking where), or stop.
    pub fn toggle_capture_db(&mut self) {
        if self.model.database_open {
            self.pending.push(Command::CaptureDb(None));
            self.settings.capture_db = None;
            return;
        }
        match self.file_dialogs.capture_database() {
            DialogResult::Picked(path) => {
                self.settings.capture_db = Some(path.clone());
                self.pending
                    .push(Command::CaptureDb(Some(crate::database::DbOptions {
                        path,
                        max_bytes: None,
                        max_age: None,
                    })));
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). \
                 Start with --capture-db FILE.sqlite instead",
            ),
        }
    }

    /// Open a recording for inspection: the scenario stops, the recording
    /// replaces the capture (read on the engine).
    pub fn open_capture_dialog(&mut self) {
        match self.file_dialogs.open_capture() {
            DialogResult::Picked(path) => {
                self.pending.push(Command::StopScenario);
                self.pending.push(Command::OpenCapture(path));
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). \
                 Check a recording headless: mqtt-workbench test SCENARIO --capture FILE",
            ),
        }
    }

    /// Save a copy of the generated CA certificate (the copy is made on the engine).
    pub fn save_ca_dialog(&mut self, ca: std::path::PathBuf) {
        match self.file_dialogs.save_certificate("mqtt-workbench-ca.pem") {
            DialogResult::Picked(to) => self.pending.push(Command::CopyFile { from: ca, to }),
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                format!(
                    "No file dialog could open (install xdg-desktop-portal or zenity). The CA certificate is at {}",
                    ca.display()
                ),
            ),
        }
    }

    pub fn export_dialog(&mut self) {
        match self.file_dialogs.save_export("mqtt-log.csv") {
            DialogResult::Picked(path) => {
                if crate::export::Format::from_path(&path).is_none() {
                    self.toast(
                        true,
                        format!("{}: choose a .csv or .jsonl file name", path.display()),
                    );
                    return;
                }
                if !self.model.capture.messages().any(|_| true) {
                    self.toast(true, "Nothing to export yet: no messages captured");
                    return;
                }
                // The rows are written on the engine; the window shows the progress.
                let events = self.model.capture.snapshot();
                self.pending.push(Command::Export { path, events });
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Use the headless CLI: \
                 mqtt-workbench run SCENARIO --export log.csv",
            ),
        }
    }

    /// File → Open AsyncAPI…: import a document as a scenario and run it.
    pub fn open_spec_dialog(&mut self) {
        match self.file_dialogs.open_spec() {
            DialogResult::Picked(path) => {
                self.pending.push(Command::ImportSpec(path));
                self.settings.tab = Tab::Contract;
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Import headless: \
                 mqtt-workbench import api.yaml -o scenario.ron",
            ),
        }
    }

    /// File → Export AsyncAPI…: a document inferred from the capture.
    pub fn export_spec_dialog(&mut self) {
        if !self.model.capture.messages().any(|_| true) {
            return self.toast(
                true,
                "Nothing to infer a document from yet: no messages captured",
            );
        }
        match self.file_dialogs.save_spec("asyncapi.yaml") {
            DialogResult::Picked(path) => {
                let title = self.model.scenario.as_ref().map_or_else(
                    || "Inferred by MQTT Workbench".to_string(),
                    |s| format!("{} (inferred)", s.info.name),
                );
                self.pending.push(Command::ExportSpec {
                    path,
                    events: self.model.capture.snapshot(),
                    title,
                });
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Infer headless: \
                 mqtt-workbench infer capture.jsonl -o asyncapi.yaml",
            ),
        }
    }

    /// Feed engine events into the model, for at most `budget`. True if more are waiting.
    fn drain(&mut self, budget: Duration) -> bool {
        let Some(handle) = &self.engine else {
            return false;
        };
        let more = self.model.drain(handle, Some(budget));
        let startup_failed = matches!(handle.readiness(), engine::Readiness::Failed(_));
        for n in self.model.take_notices() {
            self.toasts.push(n.error, n.text);
        }
        // Only a failed start-up asks for another port (a broker restart that
        // fails later is shown in the status bar).
        if let BrokerState::Failed { error, free_port } = &self.model.broker
            && startup_failed
            && !self.failure_shown
        {
            self.failure_shown = true;
            let port = free_port.unwrap_or(self.port());
            self.modals.ask_port(Some(error.clone()), port);
        }
        if self.model.scenario_starts != self.scenario_starts {
            self.scenario_starts = self.model.scenario_starts;
            self.topics = TopicsPanel::default();
            self.sessions = SessionsPanel::default();
            self.qos = QosPanel::default();
            self.log = LogPanel::default();
            self.traffic = TrafficPanel::default();
            if let Some(r) = &self.model.scenario
                && r.info.path.is_file()
            {
                let path = r.info.path.clone();
                self.settings.remember(&path);
            }
            self.requested = None;
        }
        more
    }

    fn send_pending(&mut self) {
        for cmd in std::mem::take(&mut self.pending) {
            let sent = self.engine.as_ref().is_some_and(|h| h.send(cmd));
            if !sent {
                let why = if matches!(self.model.broker, BrokerState::Failed { .. }) {
                    "The broker is not running: choose a free port first"
                } else {
                    "The engine is busy; try again"
                };
                self.toasts.push(true, why);
                break;
            }
        }
    }

    /// Queue a command for the engine, as a click would (tests, automation).
    pub fn send(&mut self, cmd: Command) {
        self.pending.push(cmd);
    }

    /// Texts of the toasts on screen (for tests and the log).
    pub fn toast_texts(&self) -> Vec<String> {
        self.toasts.texts()
    }

    /// Show a device's details in the Devices panel (as a click on it does).
    pub fn select_device(&mut self, client_id: &str) {
        self.devices_panel.selected = Some(client_id.to_string());
    }

    pub fn tap_addr(&self) -> Option<SocketAddr> {
        self.model.tap_addr()
    }

    fn handle_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect()
        });
        for f in dropped {
            if f.extension().is_some_and(|e| e == "ron") {
                self.open_scenario(&f);
            } else {
                self.toast(
                    true,
                    format!("{}: not a scenario (expected a .ron file)", f.display()),
                );
            }
        }
    }

    fn central_ui(&mut self, ui: &mut egui::Ui) {
        if self.model.scenario.is_none() && self.model.capture.sessions.is_empty() {
            match self.welcome.ui(ui, &self.model.broker) {
                Some(Ok(path)) => self.open_scenario(&path),
                Some(Err(())) => self.open_dialog(),
                None => {}
            }
            return;
        }
        ui.horizontal(|ui| {
            for t in Tab::ALL {
                ui.selectable_value(&mut self.settings.tab, t, RichText::new(t.label()).strong());
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .add_enabled(self.model.export.is_none(), egui::Button::new("Export…"))
                    .on_hover_text("Save the message log as CSV or JSON Lines")
                    .clicked()
                {
                    self.export_dialog();
                }
                let shortcut = super::commands::UiCommand::TogglePublish
                    .shortcut()
                    .map(|sc| format!(" ({})", ui.ctx().format_shortcut(&sc)))
                    .unwrap_or_default();
                if ui
                    .add(egui::Button::selectable(
                        self.settings.show_publish,
                        "Publish panel",
                    ))
                    .on_hover_text(format!(
                        "Publish a message by hand, clear retained messages{shortcut}"
                    ))
                    .clicked()
                {
                    self.settings.show_publish = !self.settings.show_publish;
                }
            });
        });
        ui.separator();
        if self.settings.show_publish {
            egui::Panel::right("publish")
                .resizable(true)
                .default_size(340.0)
                .size_range(260.0..=700.0)
                .show(ui, |ui| {
                    self.publish.ui(
                        ui,
                        &self.model.capture,
                        &self.model.devices,
                        &mut self.settings.publish,
                        &mut self.pending,
                    )
                });
            if std::mem::take(&mut self.publish.wants_file) {
                match self.file_dialogs.payload_file() {
                    DialogResult::Picked(path) => self.publish.file = Some(path),
                    DialogResult::Cancelled => {}
                    DialogResult::Unavailable => self.toast(
                        true,
                        "No file dialog could open (install xdg-desktop-portal or zenity): \
                         paste the payload as text instead",
                    ),
                }
            }
        }
        self.log.broker = match &self.model.broker {
            crate::event::BrokerState::Running { public, .. } => Some(*public),
            _ => None,
        };
        // The tab's own area: wide tables are clipped to it, never drawn under the publish panel.
        let m = &self.model;
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE)
            .show(ui, |ui| {
                ui.set_clip_rect(ui.max_rect().intersect(ui.clip_rect()));
                match self.settings.tab {
                    Tab::Topics => self
                        .topics
                        .ui(ui, &m.capture, &m.decoders, &mut self.pending),
                    Tab::Sessions => {
                        self.sessions
                            .ui(ui, &m.capture, &m.devices, &mut self.pending)
                    }
                    Tab::Qos => self.qos.ui(ui, &m.capture),
                    Tab::Log => self.log.ui(
                        ui,
                        &m.capture,
                        m.database_path(),
                        m.search.as_ref(),
                        m.searches,
                        &mut self.pending,
                    ),
                    Tab::Query => self.query.ui(
                        ui,
                        m.database_path(),
                        m.query.as_ref(),
                        m.queries,
                        &mut self.pending,
                    ),
                    Tab::Map => {
                        let routes = m
                            .scenario
                            .as_ref()
                            .map_or(&[][..], |s| s.info.routes.as_slice());
                        if let Some(id) = super::map::map_ui(
                            ui,
                            &m.positions,
                            routes,
                            self.devices_panel.selected.as_deref(),
                            |id| {
                                m.devices.is_virtual(id)
                                    && m.devices.state(id)
                                        != Some(crate::event::DeviceState::Connected)
                            },
                        ) {
                            self.sessions.selected = Some(id.clone());
                            self.devices_panel.selected = Some(id);
                        }
                    }
                    Tab::Checks => {
                        if let Some(seq) = super::checks::checks_ui(ui, m.checks.as_ref()) {
                            self.log.jump_to(seq);
                            self.settings.tab = Tab::Log;
                        }
                    }
                    Tab::Sparkplug => self.sparkplug.ui(ui, &m.sparkplug, &mut self.pending),
                    Tab::Contract => {
                        if let Some(seq) = super::contract::contract_ui(ui, m.contract.as_ref()) {
                            self.log.jump_to(seq);
                            self.settings.tab = Tab::Log;
                        }
                    }
                }
            });
    }
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_started = Some(Instant::now());
        if self.drain(DRAIN_BUDGET) {
            ctx.request_repaint();
        }
        self.handle_dropped_files(ctx);
        self.record_verdicts();
        self.handle_shortcuts(ctx);
        self.frame_bench_logic(ctx);
        if self.model.scenario.is_some() {
            // The scenario clock and the rates move even without new traffic.
            ctx.request_repaint_after(Duration::from_secs(1));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| status_ui(ui, &self.model, &self.frames));
        if self.settings.show_devices {
            egui::Panel::left("devices")
                .resizable(true)
                .default_size(300.0)
                .size_range(220.0..=600.0)
                .show(ui, |ui| {
                    let before = self.devices_panel.selected.clone();
                    let scenario = self
                        .model
                        .scenario
                        .as_ref()
                        .map(|s| (s.info.ron.as_str(), s.info.path.as_path()));
                    self.devices_panel.ui(
                        ui,
                        &self.model.capture,
                        &mut self.model.devices,
                        &self.model.faults,
                        scenario,
                        &mut self.pending,
                    );
                    if self.devices_panel.selected != before
                        && self.devices_panel.selected.is_some()
                    {
                        self.sessions.selected = self.devices_panel.selected.clone();
                    }
                });
        }
        if self.settings.show_traffic {
            egui::Panel::bottom("traffic")
                .resizable(true)
                .default_size(170.0)
                .size_range(100.0..=500.0)
                .show(ui, |ui| {
                    let timeline = self
                        .model
                        .scenario
                        .as_ref()
                        .map(|r| r.info.timeline.as_slice())
                        .unwrap_or_default();
                    if !timeline.is_empty() {
                        egui::Panel::right("timeline")
                            .resizable(true)
                            .default_size(420.0)
                            .show(ui, |ui| {
                                super::faults::timeline_ui(ui, timeline, &self.model.faults)
                            });
                    }
                    self.traffic.ui(
                        ui,
                        &self.model.capture,
                        &self.topics.plotted_topics(),
                        &self.model.faults,
                    );
                });
        }
        egui::CentralPanel::default().show(ui, |ui| self.central_ui(ui));
        if let Some(ModalAction::UsePort(port)) = self.modals.ui(&ctx, self.model.export) {
            self.change_port(port);
        }
        self.toasts.ui(&ctx);
        self.send_pending();
        if let Some(t0) = self.logic_started.take() {
            let took = t0.elapsed();
            self.frames.push(took);
            if let Some(run) = &mut self.frame_bench {
                run.record(self.settings.tab, took);
            }
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if !self.ephemeral {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }
}
