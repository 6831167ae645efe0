//! The application: owns the capture and the engine handle, drains events in
//! `logic()`, draws menus, status bar and panels in `ui()`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use serde::{Deserialize, Serialize};

use super::devices::{DeviceList, DevicesPanel};
use super::faults::FaultLog;
use super::log::LogPanel;
use super::qos::QosPanel;
use super::sessions::SessionsPanel;
use super::topics::TopicsPanel;
use super::traffic::TrafficPanel;
use super::{DialogResult, Dialogs, format};
use crate::capture::Capture;
use crate::engine::{self, EngineConfig, EngineError, EngineHandle};
use crate::protocol::{BrokerState, Command, Event};
use crate::sim::Scenario;

/// How long `logic()` may spend feeding the capture per frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(8);
/// Repaint at most this often for traffic (user input repaints at once).
const TRAFFIC_REPAINT: Duration = Duration::from_millis(33);
const MAX_RECENT: usize = 10;
const SETTINGS_VERSION: u32 = 1;

/// What the window starts with.
pub struct AppConfig {
    pub engine: EngineConfig,
    /// A scenario to open and run at start.
    pub scenario: Option<PathBuf>,
    pub dialogs: Box<dyn Dialogs>,
    /// The port came from the command line: it wins over the saved one.
    pub port_from_cli: bool,
    /// Keep settings out of eframe storage (tests).
    pub ephemeral: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    Topics,
    Sessions,
    Qos,
    Log,
}

impl Tab {
    const ALL: [Tab; 4] = [Tab::Topics, Tab::Sessions, Tab::Qos, Tab::Log];
    fn label(self) -> &'static str {
        match self {
            Tab::Topics => "Topics",
            Tab::Sessions => "Sessions",
            Tab::Qos => "QoS flows",
            Tab::Log => "Message log",
        }
    }
}

/// Persisted between runs (never the captured traffic).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub version: u32,
    pub port: u16,
    pub dark: bool,
    pub show_devices: bool,
    pub show_traffic: bool,
    pub tab: Tab,
    pub recent: Vec<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: SETTINGS_VERSION,
            port: 1883,
            dark: true,
            show_devices: true,
            show_traffic: true,
            tab: Tab::Topics,
            recent: Vec::new(),
        }
    }
}

struct Toast {
    text: String,
    error: bool,
    until: Instant,
}

struct Running {
    name: String,
    path: PathBuf,
    started: Instant,
    scenario: Box<Scenario>,
}

/// The port-in-use dialog, or the change-port dialog.
struct PortDialog {
    message: Option<String>,
    port: u16,
}

#[derive(Default)]
struct FrameStats {
    /// CPU time of recent frames (logic + ui), newest last.
    recent: VecDeque<Duration>,
    last_log: Option<Instant>,
}

impl FrameStats {
    fn push(&mut self, d: Duration) {
        if self.recent.len() >= 240 {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
        // MQTT_WORKBENCH_FRAME_LOG=1 prints frame times every 5 s (for measuring).
        if std::env::var_os("MQTT_WORKBENCH_FRAME_LOG").is_some()
            && self
                .last_log
                .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
        {
            self.last_log = Some(Instant::now());
            let (avg, max) = self.summary();
            eprintln!(
                "frame time over {} frames: avg {avg:.2} ms, max {max:.2} ms",
                self.recent.len()
            );
        }
    }

    fn summary(&self) -> (f64, f64) {
        let n = self.recent.len().max(1) as f64;
        let avg = self.recent.iter().map(|d| d.as_secs_f64()).sum::<f64>() / n * 1000.0;
        let max = self
            .recent
            .iter()
            .max()
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        (avg, max)
    }
}

pub struct WorkbenchApp {
    rt: Arc<tokio::runtime::Runtime>,
    engine_cfg: EngineConfig,
    engine: Option<EngineHandle>,
    pub capture: Capture,
    pub devices: DeviceList,
    running: Option<Running>,
    broker: BrokerState,
    pub settings: Settings,
    ephemeral: bool,
    dialogs: Box<dyn Dialogs>,
    toasts: Vec<Toast>,
    port_dialog: Option<PortDialog>,
    show_about: bool,
    pub topics: TopicsPanel,
    sessions: SessionsPanel,
    qos: QosPanel,
    log: LogPanel,
    traffic: TrafficPanel,
    devices_panel: DevicesPanel,
    pending: Vec<Command>,
    pub faults: FaultLog,
    frames: FrameStats,
    logic_started: Option<Instant>,
    repaint_ctx: egui::Context,
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
        let rt = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("engine")
                .enable_all()
                .build()
                .expect("a tokio runtime can be built"),
        );
        let mut app = WorkbenchApp {
            rt,
            engine_cfg,
            engine: None,
            capture: Capture::default(),
            devices: DeviceList::default(),
            running: None,
            broker: BrokerState::Stopped,
            settings,
            ephemeral: config.ephemeral,
            dialogs: config.dialogs,
            toasts: Vec::new(),
            port_dialog: None,
            show_about: false,
            topics: TopicsPanel::default(),
            sessions: SessionsPanel::default(),
            qos: QosPanel::default(),
            log: LogPanel::default(),
            traffic: TrafficPanel::default(),
            devices_panel: DevicesPanel::default(),
            pending: Vec::new(),
            faults: FaultLog::default(),
            frames: FrameStats::default(),
            logic_started: None,
            repaint_ctx: cc.egui_ctx.clone(),
        };
        app.start_engine();
        if let Some(path) = config.scenario {
            app.open_scenario(&path);
        }
        app
    }

    fn start_engine(&mut self) {
        self.engine = None;
        let cfg = self.engine_cfg.clone();
        match self.rt.block_on(engine::start(cfg)) {
            Ok(handle) => {
                let ctx = self.repaint_ctx.clone();
                handle.set_waker(Arc::new(move || ctx.request_repaint_after(TRAFFIC_REPAINT)));
                self.broker = BrokerState::Running {
                    public: handle.tap_addr,
                    upstream: handle.upstream.clone(),
                };
                self.engine = Some(handle);
                self.port_dialog = None;
            }
            Err(e) => {
                let port = match &e {
                    EngineError::PortInUse { port, .. } => {
                        free_port_after(self.engine_cfg.listen, *port)
                    }
                    _ => self.engine_cfg.listen.port(),
                };
                self.broker = BrokerState::Failed(e.to_string());
                self.port_dialog = Some(PortDialog {
                    message: Some(e.to_string()),
                    port,
                });
            }
        }
    }

    /// Restart the engine listening on `port`; re-run the scenario if one was running.
    fn change_port(&mut self, port: u16) {
        self.engine_cfg.listen.set_port(port);
        self.settings.port = port;
        if let Some(h) = self.engine.take() {
            drop(h); // the engine stops its devices and closes its sockets
        }
        self.start_engine();
        if self.engine.is_some()
            && let Some(r) = &self.running
        {
            let scenario = r.scenario.clone();
            self.capture.clear();
            self.devices.clear();
            self.pending.push(Command::LoadScenario(scenario));
        }
    }

    pub fn toast(&mut self, error: bool, text: impl Into<String>) {
        let text = text.into();
        if error {
            tracing::warn!("{text}");
        }
        self.toasts.push(Toast {
            text,
            error,
            until: Instant::now() + Duration::from_secs(if error { 10 } else { 5 }),
        });
        if self.toasts.len() > 6 {
            self.toasts.remove(0);
        }
    }

    /// Parse and run a scenario; errors become a toast naming file:line:column.
    pub fn open_scenario(&mut self, path: &Path) {
        match Scenario::load(path) {
            Ok(s) => {
                self.capture.clear();
                self.devices.clear();
                self.faults.clear();
                self.topics = TopicsPanel::default();
                self.sessions = SessionsPanel::default();
                self.qos = QosPanel::default();
                self.log = LogPanel::default();
                self.traffic = TrafficPanel::default();
                let scenario = Box::new(s);
                self.running = Some(Running {
                    name: scenario.name.clone(),
                    path: path.to_path_buf(),
                    started: Instant::now(),
                    scenario: scenario.clone(),
                });
                self.pending.push(Command::LoadScenario(scenario));
                self.settings.recent.retain(|p| p != path);
                self.settings.recent.insert(0, path.to_path_buf());
                self.settings.recent.truncate(MAX_RECENT);
            }
            Err(e) => self.toast(true, e.to_string()),
        }
    }

    fn stop_scenario(&mut self) {
        self.pending.push(Command::StopScenario);
        self.running = None;
    }

    fn open_dialog(&mut self) {
        match self.dialogs.open_scenario() {
            DialogResult::Picked(p) => self.open_scenario(&p),
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Drop a .ron file on the window, \
                 or pass it on the command line: mqtt-workbench FILE.ron",
            ),
        }
    }

    pub fn export_dialog(&mut self) {
        match self.dialogs.save_export("mqtt-log.csv") {
            DialogResult::Picked(path) => {
                if crate::export::Format::from_path(&path).is_none() {
                    self.toast(true, format!("{}: choose a .csv or .jsonl file name", path.display()));
                    return;
                }
                let rows = Arc::new(crate::export::rows(&self.capture));
                if rows.is_empty() {
                    self.toast(true, "Nothing to export yet: no messages captured");
                    return;
                }
                self.pending.push(Command::Export { path, rows });
            }
            DialogResult::Cancelled => {}
            DialogResult::Unavailable => self.toast(
                true,
                "No file dialog could open (install xdg-desktop-portal or zenity). Use the headless CLI: \
                 mqtt-workbench run SCENARIO --export log.csv",
            ),
        }
    }

    /// Feed engine events into the capture, for at most `budget`. True if more are waiting.
    fn drain(&mut self, budget: Duration) -> bool {
        let Some(handle) = &self.engine else {
            return false;
        };
        let t0 = Instant::now();
        let mut notices = Vec::new();
        let mut more = true;
        while more && t0.elapsed() < budget {
            let Ok(ev) = handle.events.try_recv() else {
                more = false;
                break;
            };
            match ev {
                Event::Wire(batch) => self.capture.ingest_batch(batch),
                Event::Devices(batch) => {
                    for d in batch {
                        self.devices.set(d.client_id, d.fleet, d.state);
                    }
                }
                Event::Fault {
                    t_us,
                    label,
                    timeline,
                } => self.faults.record(t_us, label, timeline),
                Event::NetFaults(rules) => self.faults.net = rules,
                Event::ScenarioStarted { devices, .. } => self.devices.declare(devices),
                Event::ScenarioStopped => self.devices.stop_all(),
                Event::Broker(state) => self.broker = state,
                Event::Notice { error, text } => notices.push((error, text)),
            }
        }
        self.capture.dropped = handle.dropped();
        let waiting = more && !handle.events.is_empty();
        for (error, text) in notices {
            self.toast(error, text);
        }
        waiting
    }

    fn send_pending(&mut self) {
        for cmd in self.pending.drain(..) {
            let Some(h) = &self.engine else {
                self.toasts.push(Toast {
                    text: "The broker is not running: choose a free port first".into(),
                    error: true,
                    until: Instant::now() + Duration::from_secs(6),
                });
                break;
            };
            if !h.send(cmd) {
                self.toasts.push(Toast {
                    text: "The engine is busy; try again".into(),
                    error: true,
                    until: Instant::now() + Duration::from_secs(6),
                });
            }
        }
    }

    fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                if ui
                    .add(egui::Button::new("Open scenario…").shortcut_text("Ctrl+O"))
                    .clicked()
                {
                    ui.close();
                    self.open_dialog();
                }
                ui.menu_button("Open recent", |ui| {
                    if self.settings.recent.is_empty() {
                        ui.label("(none yet)");
                    }
                    for p in self.settings.recent.clone() {
                        if ui.button(p.display().to_string()).clicked() {
                            ui.close();
                            self.open_scenario(&p);
                        }
                    }
                });
                ui.menu_button("Shipped scenarios", |ui| {
                    for p in crate::sim::shipped_scenarios() {
                        let name = p
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if ui.button(name).clicked() {
                            ui.close();
                            self.open_scenario(&p);
                        }
                    }
                });
                if ui
                    .add_enabled(self.running.is_some(), egui::Button::new("Stop scenario"))
                    .clicked()
                {
                    ui.close();
                    self.stop_scenario();
                }
                ui.separator();
                if ui
                    .add(egui::Button::new("Export log…").shortcut_text("Ctrl+E"))
                    .clicked()
                {
                    ui.close();
                    self.export_dialog();
                }
                if ui.button("Clear capture").clicked() {
                    ui.close();
                    self.capture.clear();
                }
                ui.separator();
                if ui
                    .add(egui::Button::new("Quit").shortcut_text("Ctrl+Q"))
                    .clicked()
                {
                    ui.ctx().send_viewport_cmd(egui::ViewportCommand::Close);
                }
            });
            ui.menu_button("Broker", |ui| {
                let running = matches!(self.broker, BrokerState::Running { .. });
                let embedded =
                    matches!(self.engine_cfg.upstream, crate::broker::Upstream::Embedded);
                ui.label(format!(
                    "Clients connect to port {}",
                    self.engine_cfg.listen.port()
                ));
                ui.add_enabled_ui(embedded && self.engine.is_some(), |ui| {
                    if ui
                        .add_enabled(!running, egui::Button::new("Start"))
                        .clicked()
                    {
                        ui.close();
                        self.pending.push(Command::StartBroker);
                    }
                    if ui
                        .add_enabled(running, egui::Button::new("Stop (keeps sessions)"))
                        .clicked()
                    {
                        ui.close();
                        self.pending.push(Command::StopBroker);
                    }
                    if ui
                        .add_enabled(running, egui::Button::new("Restart (keeps sessions)"))
                        .on_hover_text("Every client is cut; persistent sessions are kept (session present on reconnect)")
                        .clicked()
                    {
                        ui.close();
                        self.pending.push(Command::Inject(crate::sim::scenario::Fault::RestartBroker));
                    }
                    if ui
                        .add_enabled(running, egui::Button::new("Cold restart (loses sessions)"))
                        .on_hover_text("A fresh broker: sessions, queued and retained messages are lost")
                        .clicked()
                    {
                        ui.close();
                        self.pending.push(Command::Inject(crate::sim::scenario::Fault::ColdRestartBroker));
                    }
                });
                if ui.button("Change port…").clicked() {
                    ui.close();
                    self.port_dialog = Some(PortDialog {
                        message: None,
                        port: self.engine_cfg.listen.port(),
                    });
                }
            });
            ui.menu_button("View", |ui| {
                ui.checkbox(&mut self.settings.show_devices, "Devices panel");
                ui.checkbox(&mut self.settings.show_traffic, "Traffic plot");
                ui.separator();
                for t in Tab::ALL {
                    if ui
                        .selectable_label(self.settings.tab == t, t.label())
                        .clicked()
                    {
                        self.settings.tab = t;
                        ui.close();
                    }
                }
                ui.separator();
                let mut dark = self.settings.dark;
                ui.horizontal(|ui| {
                    ui.selectable_value(&mut dark, true, "Dark");
                    ui.selectable_value(&mut dark, false, "Light");
                });
                if dark != self.settings.dark {
                    self.settings.dark = dark;
                    ui.ctx().set_theme(if dark {
                        egui::Theme::Dark
                    } else {
                        egui::Theme::Light
                    });
                }
            });
            ui.menu_button("Help", |ui| {
                if ui.button("About MQTT Workbench").clicked() {
                    ui.close();
                    self.show_about = true;
                }
            });
        });
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        let now = crate::tap::now_us();
        ui.horizontal(|ui| {
            let (dot, text) = match &self.broker {
                BrokerState::Running { public, upstream } => (
                    Color32::from_rgb(76, 175, 80),
                    format!("Broker mqtt://{public} → {upstream}"),
                ),
                BrokerState::Stopped => (Color32::GRAY, "Broker stopped".to_string()),
                BrokerState::Failed(e) => (Color32::from_rgb(229, 57, 53), format!("Broker failed: {e}")),
            };
            ui.label(RichText::new("●").color(dot));
            ui.label(text);
            ui.separator();
            ui.label(format!("Clients {}", self.capture.connected_clients()));
            ui.separator();
            ui.label(format!(
                "{} msg/s in · {} msg/s out",
                self.capture.rates.published_per_s(now),
                self.capture.rates.delivered_per_s(now)
            ));
            ui.separator();
            let drops = RichText::new(format!("dropped {}", format::count(self.capture.dropped)));
            ui.label(format!(
                "captured {} · evicted {}",
                format::count(self.capture.len() as u64),
                format::count(self.capture.evicted)
            ));
            ui.label(if self.capture.dropped > 0 { drops.color(Color32::from_rgb(229, 57, 53)) } else { drops });
            ui.separator();
            match &self.running {
                Some(r) => {
                    let s = r.started.elapsed().as_secs();
                    ui.label(format!("▶ {}  {:02}:{:02}:{:02}", r.name, s / 3600, (s / 60) % 60, s % 60))
                        .on_hover_text(r.path.display().to_string());
                }
                None => {
                    ui.label("No scenario running");
                }
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let (avg, max) = self.frames.summary();
                ui.weak(format!("{avg:.1} ms/frame")).on_hover_text(format!(
                    "CPU time per frame over the last {} frames: average {avg:.2} ms, max {max:.2} ms",
                    self.frames.recent.len()
                ));
            });
        });
    }

    fn welcome_ui(&mut self, ui: &mut egui::Ui) {
        ui.add_space(24.0);
        ui.vertical_centered(|ui| {
            ui.heading(RichText::new("MQTT Workbench").size(28.0));
            ui.label("Run a broker and a fleet of virtual devices, and watch MQTT as it happens.");
            ui.add_space(8.0);
            if let BrokerState::Running { public, .. } = &self.broker {
                ui.label(format!(
                    "The broker is listening: connect your own clients to mqtt://{public}"
                ));
            }
            ui.add_space(16.0);
            ui.label(RichText::new("Open a shipped scenario").strong());
            ui.add_space(4.0);
            let shipped = crate::sim::shipped_scenarios();
            if shipped.is_empty() {
                ui.label("(no shipped scenarios found)");
            }
            egui::Grid::new("shipped")
                .num_columns(2)
                .spacing([16.0, 8.0])
                .show(ui, |ui| {
                    for p in shipped {
                        let (name, about) = match Scenario::load(&p) {
                            Ok(s) => (s.name, s.description),
                            Err(e) => (p.display().to_string(), e.to_string()),
                        };
                        if ui.button(RichText::new(&name).strong()).clicked() {
                            self.open_scenario(&p);
                        }
                        ui.label(about);
                        ui.end_row();
                    }
                });
            ui.add_space(16.0);
            if ui.button("Open scenario…").clicked() {
                self.open_dialog();
            }
            ui.weak("or drop a .ron file on this window");
        });
    }

    fn dialogs_ui(&mut self, ctx: &egui::Context) {
        if let Some(dialog) = &mut self.port_dialog {
            let mut apply = None;
            let mut close = false;
            egui::Modal::new(egui::Id::unique("port_dialog")).show(ctx, |ui| {
                ui.set_width(420.0);
                ui.heading("Broker port");
                if let Some(m) = &dialog.message {
                    ui.colored_label(Color32::from_rgb(229, 57, 53), m);
                    ui.label("Another broker may be running. Clients can connect to MQTT Workbench on another port:");
                }
                ui.horizontal(|ui| {
                    let label = ui.label("Port");
                    ui.add(egui::DragValue::new(&mut dialog.port).range(1..=65535)).labelled_by(label.id);
                    if ui.button(format!("Use port {}", dialog.port)).clicked() {
                        apply = Some(dialog.port);
                    }
                    if dialog.message.is_none() && ui.button("Cancel").clicked() {
                        close = true;
                    }
                });
            });
            if close {
                self.port_dialog = None;
            }
            if let Some(port) = apply {
                self.change_port(port);
            }
        }
        if self.show_about {
            egui::Window::new("About MQTT Workbench")
                .open(&mut self.show_about)
                .collapsible(false)
                .resizable(false)
                .show(ctx, |ui| {
                    ui.heading(format!("MQTT Workbench {}", crate::VERSION));
                    ui.label("Design and test IoT systems before the hardware arrives.");
                    ui.label(format!("License: {}", env!("CARGO_PKG_LICENSE")));
                    ui.separator();
                    ui.label(format!("Broker: rumqttd {}", crate::about::RUMQTTD));
                    ui.label(format!("Client: rumqttc {}", crate::about::RUMQTTC));
                    ui.label(format!(
                        "GUI: egui {} / eframe {}",
                        crate::about::EGUI,
                        crate::about::EGUI
                    ));
                });
        }
    }

    fn toasts_ui(&mut self, ctx: &egui::Context) {
        let now = Instant::now();
        self.toasts.retain(|t| t.until > now);
        if let Some(next) = self.toasts.iter().map(|t| t.until).min() {
            ctx.request_repaint_after(next - now);
        }
        if self.toasts.is_empty() {
            return;
        }
        egui::Area::new(egui::Id::unique("toasts"))
            .anchor(egui::Align2::RIGHT_BOTTOM, [-12.0, -36.0])
            .order(egui::Order::Foreground)
            .show(ctx, |ui| {
                let mut dismiss = None;
                for (i, t) in self.toasts.iter().enumerate() {
                    let fill = if t.error {
                        Color32::from_rgb(120, 28, 28)
                    } else {
                        Color32::from_rgb(27, 94, 32)
                    };
                    egui::Frame::popup(ui.style()).fill(fill).show(ui, |ui| {
                        ui.set_max_width(520.0);
                        ui.horizontal(|ui| {
                            ui.label(RichText::new(&t.text).color(Color32::WHITE));
                            if ui.small_button("×").clicked() {
                                dismiss = Some(i);
                            }
                        });
                    });
                }
                if let Some(i) = dismiss {
                    self.toasts.remove(i);
                }
            });
    }

    /// Texts of the toasts on screen (for tests and the log).
    pub fn toast_texts(&self) -> Vec<String> {
        self.toasts.iter().map(|t| t.text.clone()).collect()
    }

    pub fn tap_addr(&self) -> Option<SocketAddr> {
        self.engine.as_ref().map(|e| e.tap_addr)
    }

    fn handle_input(&mut self, ctx: &egui::Context) {
        let (dropped, open, export, quit) = ctx.input_mut(|i| {
            let files: Vec<PathBuf> = i
                .raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .collect();
            (
                files,
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::O),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::E),
                i.consume_key(egui::Modifiers::COMMAND, egui::Key::Q),
            )
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
        if open {
            self.open_dialog();
        }
        if export {
            self.export_dialog();
        }
        if quit {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        }
    }
}

/// The first port after `taken` that can be bound on the same address.
fn free_port_after(listen: SocketAddr, taken: u16) -> u16 {
    (taken.saturating_add(1)..=taken.saturating_add(100))
        .find(|p| std::net::TcpListener::bind(SocketAddr::new(listen.ip(), *p)).is_ok())
        .unwrap_or(0)
}

impl eframe::App for WorkbenchApp {
    fn logic(&mut self, ctx: &egui::Context, _frame: &mut eframe::Frame) {
        self.logic_started = Some(Instant::now());
        if self.drain(DRAIN_BUDGET) {
            ctx.request_repaint();
        }
        self.handle_input(ctx);
        if self.running.is_some() {
            // The scenario clock and the rates move even without new traffic.
            ctx.request_repaint_after(Duration::from_secs(1));
        }
    }

    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        egui::Panel::top("menu").show(ui, |ui| self.menu_ui(ui));
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        if self.settings.show_devices {
            egui::Panel::left("devices")
                .resizable(true)
                .default_size(300.0)
                .size_range(220.0..=600.0)
                .show(ui, |ui| {
                    let before = self.devices_panel.selected.clone();
                    self.devices_panel.ui(
                        ui,
                        &self.capture,
                        &mut self.devices,
                        &self.faults,
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
                        .running
                        .as_ref()
                        .map(|r| r.scenario.timeline.as_slice())
                        .unwrap_or_default();
                    if !timeline.is_empty() {
                        egui::Panel::right("timeline")
                            .resizable(true)
                            .default_size(420.0)
                            .show(ui, |ui| {
                                super::faults::timeline_ui(ui, timeline, &self.faults)
                            });
                    }
                    self.traffic.ui(
                        ui,
                        &self.capture,
                        &self.topics.plotted_topics(),
                        &self.faults,
                    );
                });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if self.running.is_none() && self.capture.sessions.is_empty() {
                self.welcome_ui(ui);
                return;
            }
            ui.horizontal(|ui| {
                for t in Tab::ALL {
                    ui.selectable_value(
                        &mut self.settings.tab,
                        t,
                        RichText::new(t.label()).strong(),
                    );
                }
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    if ui
                        .button("Export…")
                        .on_hover_text("Save the message log as CSV or JSON Lines")
                        .clicked()
                    {
                        self.export_dialog();
                    }
                });
            });
            ui.separator();
            match self.settings.tab {
                Tab::Topics => self.topics.ui(ui, &self.capture, &mut self.pending),
                Tab::Sessions => {
                    self.sessions
                        .ui(ui, &self.capture, &self.devices, &mut self.pending)
                }
                Tab::Qos => self.qos.ui(ui, &self.capture),
                Tab::Log => self.log.ui(ui, &self.capture),
            }
        });
        self.dialogs_ui(&ctx);
        self.toasts_ui(&ctx);
        self.send_pending();
        if let Some(t0) = self.logic_started.take() {
            self.frames.push(t0.elapsed());
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if !self.ephemeral {
            eframe::set_value(storage, eframe::APP_KEY, &self.settings);
        }
    }
}
