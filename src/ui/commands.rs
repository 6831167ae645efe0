//! Every action the menus and the keyboard offer, in one table: its label,
//! its shortcut and what it does (after rerun's `UICommand`).

use egui::{Key, KeyboardShortcut, Modifiers};

use super::app::WorkbenchApp;
use super::settings::Tab;
use crate::command::Command;
use crate::event::BrokerState;
use crate::fault::Fault;

/// Publishes the publish panel's message.
pub const PUBLISH_SHORTCUT: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UiCommand {
    Publish,
    TogglePublish,
    OpenScenario,
    StopScenario,
    ExportLog,
    ClearCapture,
    Quit,
    StartBroker,
    StopBroker,
    RestartBroker,
    ColdRestartBroker,
    ChangePort,
    ToggleDevices,
    ToggleTraffic,
    ShowTab(Tab),
    About,
}

impl UiCommand {
    /// Every command that has a keyboard shortcut is in here.
    pub const ALL: [UiCommand; 21] = [
        UiCommand::Publish,
        UiCommand::TogglePublish,
        UiCommand::OpenScenario,
        UiCommand::StopScenario,
        UiCommand::ExportLog,
        UiCommand::ClearCapture,
        UiCommand::Quit,
        UiCommand::StartBroker,
        UiCommand::StopBroker,
        UiCommand::RestartBroker,
        UiCommand::ColdRestartBroker,
        UiCommand::ChangePort,
        UiCommand::ToggleDevices,
        UiCommand::ToggleTraffic,
        UiCommand::ShowTab(Tab::Topics),
        UiCommand::ShowTab(Tab::Sessions),
        UiCommand::ShowTab(Tab::Qos),
        UiCommand::ShowTab(Tab::Log),
        UiCommand::ShowTab(Tab::Checks),
        UiCommand::ShowTab(Tab::Map),
        UiCommand::About,
    ];

    pub fn label(self) -> &'static str {
        match self {
            UiCommand::Publish => "Publish the message",
            UiCommand::TogglePublish => "Publish panel",
            UiCommand::OpenScenario => "Open scenario…",
            UiCommand::StopScenario => "Stop scenario",
            UiCommand::ExportLog => "Export log…",
            UiCommand::ClearCapture => "Clear capture",
            UiCommand::Quit => "Quit",
            UiCommand::StartBroker => "Start",
            UiCommand::StopBroker => "Stop (keeps sessions)",
            UiCommand::RestartBroker => "Restart (keeps sessions)",
            UiCommand::ColdRestartBroker => "Cold restart (loses sessions)",
            UiCommand::ChangePort => "Change port…",
            UiCommand::ToggleDevices => "Devices panel",
            UiCommand::ToggleTraffic => "Traffic plot",
            UiCommand::ShowTab(t) => t.label(),
            UiCommand::About => "About MQTT Workbench",
        }
    }

    pub fn tooltip(self) -> &'static str {
        match self {
            UiCommand::RestartBroker => {
                "Every client is cut; persistent sessions are kept (session present on reconnect)"
            }
            UiCommand::ColdRestartBroker => {
                "A fresh broker: sessions, queued and retained messages are lost"
            }
            UiCommand::ClearCapture => {
                "Forget every captured message; the broker and the devices keep running"
            }
            UiCommand::ExportLog => "Save the message log as CSV or JSON Lines",
            _ => "",
        }
    }

    pub fn shortcut(self) -> Option<KeyboardShortcut> {
        let cmd = |key| Some(KeyboardShortcut::new(Modifiers::COMMAND, key));
        match self {
            UiCommand::Publish => Some(PUBLISH_SHORTCUT),
            UiCommand::TogglePublish => cmd(Key::P),
            UiCommand::OpenScenario => cmd(Key::O),
            UiCommand::ExportLog => cmd(Key::E),
            UiCommand::ClearCapture => cmd(Key::L),
            UiCommand::Quit => cmd(Key::Q),
            UiCommand::ShowTab(Tab::Topics) => cmd(Key::Num1),
            UiCommand::ShowTab(Tab::Sessions) => cmd(Key::Num2),
            UiCommand::ShowTab(Tab::Qos) => cmd(Key::Num3),
            UiCommand::ShowTab(Tab::Log) => cmd(Key::Num4),
            UiCommand::ShowTab(Tab::Checks) => cmd(Key::Num5),
            UiCommand::ShowTab(Tab::Map) => cmd(Key::Num6),
            _ => None,
        }
    }
}

impl WorkbenchApp {
    /// Whether a command can run now (menus grey out the others).
    pub fn command_enabled(&self, cmd: UiCommand) -> bool {
        let running = matches!(self.model.broker, BrokerState::Running { .. });
        let embedded = self.broker_embedded();
        match cmd {
            UiCommand::StopScenario => self.model.scenario.is_some(),
            UiCommand::ExportLog => self.model.export.is_none(),
            UiCommand::StartBroker => embedded && !running,
            UiCommand::StopBroker | UiCommand::RestartBroker | UiCommand::ColdRestartBroker => {
                embedded && running
            }
            _ => true,
        }
    }

    /// Run a command from a menu, a button or a shortcut.
    pub fn run_command(&mut self, ctx: &egui::Context, cmd: UiCommand) {
        if !self.command_enabled(cmd) {
            return;
        }
        match cmd {
            UiCommand::Publish => {
                if !self
                    .publish
                    .send(&mut self.pending, &mut self.settings.publish)
                    && let Some(why) = self.publish.problem()
                {
                    self.toast(true, format!("Not published: {why}"));
                }
            }
            UiCommand::TogglePublish => self.settings.show_publish = !self.settings.show_publish,
            UiCommand::OpenScenario => self.open_dialog(),
            UiCommand::StopScenario => self.pending.push(Command::StopScenario),
            UiCommand::ExportLog => self.export_dialog(),
            UiCommand::ClearCapture => self.model.capture.clear(),
            UiCommand::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            UiCommand::StartBroker => self.pending.push(Command::StartBroker),
            UiCommand::StopBroker => self.pending.push(Command::StopBroker),
            UiCommand::RestartBroker => self.pending.push(Command::Inject(Fault::RestartBroker(
                crate::fault::RestartBroker,
            ))),
            UiCommand::ColdRestartBroker => self.pending.push(Command::Inject(
                Fault::ColdRestartBroker(crate::fault::ColdRestartBroker),
            )),
            UiCommand::ChangePort => self.modals.ask_port(None, self.port()),
            UiCommand::ToggleDevices => self.settings.show_devices = !self.settings.show_devices,
            UiCommand::ToggleTraffic => self.settings.show_traffic = !self.settings.show_traffic,
            UiCommand::ShowTab(t) => self.settings.tab = t,
            UiCommand::About => self.modals.about = true,
        }
    }

    /// A menu entry for `cmd`: its label, shortcut and tooltip from the table.
    pub fn command_button(&mut self, ui: &mut egui::Ui, cmd: UiCommand) {
        let mut button = egui::Button::new(cmd.label());
        if let Some(sc) = cmd.shortcut() {
            button = button.shortcut_text(ui.ctx().format_shortcut(&sc));
        }
        let mut response = ui.add_enabled(self.command_enabled(cmd), button);
        if !cmd.tooltip().is_empty() {
            response = response.on_hover_text(cmd.tooltip());
        }
        if response.clicked() {
            ui.close();
            self.run_command(&ui.ctx().clone(), cmd);
        }
    }

    /// Run the commands whose shortcut was pressed this frame.
    pub fn handle_shortcuts(&mut self, ctx: &egui::Context) {
        for cmd in UiCommand::ALL {
            if let Some(sc) = cmd.shortcut()
                && ctx.input_mut(|i| i.consume_shortcut(&sc))
            {
                self.run_command(ctx, cmd);
            }
        }
    }

    pub fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| {
                self.command_button(ui, UiCommand::OpenScenario);
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
                    for s in self.welcome.shipped().to_vec() {
                        let name = s
                            .path
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        if ui.button(name).on_hover_text(&s.about).clicked() {
                            ui.close();
                            self.open_scenario(&s.path);
                        }
                    }
                });
                self.command_button(ui, UiCommand::StopScenario);
                ui.separator();
                if ui
                    .button("Open capture…")
                    .on_hover_text("Open a recorded capture (run --record, Save capture) for inspection")
                    .clicked()
                {
                    ui.close();
                    self.open_capture_dialog();
                }
                if ui
                    .button("Save capture…")
                    .on_hover_text("Save every frame, both legs, faults and timing: open it again, replay it, test it")
                    .clicked()
                {
                    ui.close();
                    self.save_capture_dialog();
                }
                self.command_button(ui, UiCommand::ExportLog);
                self.command_button(ui, UiCommand::ClearCapture);
                ui.separator();
                self.command_button(ui, UiCommand::Quit);
            });
            ui.menu_button("Broker", |ui| {
                ui.label(format!("Clients connect to port {}", self.port()));
                for cmd in [
                    UiCommand::StartBroker,
                    UiCommand::StopBroker,
                    UiCommand::RestartBroker,
                    UiCommand::ColdRestartBroker,
                    UiCommand::ChangePort,
                ] {
                    self.command_button(ui, cmd);
                }
                if let BrokerState::Running { tls: Some(t), .. } = &self.model.broker {
                    let t = t.clone();
                    ui.separator();
                    ui.label(format!("TLS: mqtts://{}", t.addr));
                    if t.client_cert_required {
                        ui.weak("clients must present a certificate");
                    }
                    if let Some(ca) = &t.ca {
                        ui.weak("generated certificate for localhost, 127.0.0.1, ::1");
                        if ui
                            .button("Copy CA certificate path")
                            .on_hover_text(ca.display().to_string())
                            .clicked()
                        {
                            ui.ctx().copy_text(ca.display().to_string());
                            ui.close();
                        }
                        if ui.button("Save CA certificate…").clicked() {
                            ui.close();
                            self.save_ca_dialog(ca.clone());
                        }
                        let mut cmd = format!(
                            "mosquitto_sub -h localhost -p {} --cafile '{}'",
                            t.addr.port(),
                            ca.display()
                        );
                        if let (true, Some(c), Some(k)) =
                            (t.client_cert_required, &t.client_cert, &t.client_key)
                        {
                            cmd += &format!(" --cert '{}' --key '{}'", c.display(), k.display());
                        }
                        cmd += " -t '#' -v";
                        if ui
                            .button("Copy a mosquitto_sub command")
                            .on_hover_text(&cmd)
                            .clicked()
                        {
                            ui.ctx().copy_text(cmd);
                            ui.close();
                        }
                    }
                }
            });
            ui.menu_button("View", |ui| {
                ui.checkbox(
                    &mut self.settings.show_devices,
                    UiCommand::ToggleDevices.label(),
                );
                ui.checkbox(
                    &mut self.settings.show_traffic,
                    UiCommand::ToggleTraffic.label(),
                );
                ui.checkbox(
                    &mut self.settings.show_publish,
                    UiCommand::TogglePublish.label(),
                );
                ui.separator();
                for t in Tab::ALL {
                    let cmd = UiCommand::ShowTab(t);
                    let mut b = egui::Button::selectable(self.settings.tab == t, cmd.label());
                    if let Some(sc) = cmd.shortcut() {
                        b = b.shortcut_text(ui.ctx().format_shortcut(&sc));
                    }
                    if ui.add(b).clicked() {
                        ui.close();
                        self.settings.tab = t;
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
            ui.menu_button("Help", |ui| self.command_button(ui, UiCommand::About));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_unique_and_every_command_has_a_label() {
        let mut seen = Vec::new();
        for cmd in UiCommand::ALL {
            assert!(!cmd.label().is_empty());
            if let Some(sc) = cmd.shortcut() {
                assert!(!seen.contains(&sc), "{cmd:?} reuses a shortcut");
                seen.push(sc);
            }
        }
    }
}
