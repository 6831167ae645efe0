//! The menu bar: every entry is a command of the table (`commands.rs`), run
//! through `command_handling.rs`.

use super::app::WorkbenchApp;
use super::commands::{Tab, UiCommand};
use crate::event::BrokerState;

impl WorkbenchApp {
    pub fn menu_ui(&mut self, ui: &mut egui::Ui) {
        egui::MenuBar::new().ui(ui, |ui| {
            ui.menu_button("File", |ui| self.file_menu(ui));
            ui.menu_button("Broker", |ui| self.broker_menu(ui));
            ui.menu_button("View", |ui| self.view_menu(ui));
            ui.menu_button("Help", |ui| self.command_button(ui, UiCommand::About));
        });
    }

    fn file_menu(&mut self, ui: &mut egui::Ui) {
        self.command_button(ui, UiCommand::OpenScenario);
        ui.menu_button("Open recent", |ui| {
            if self.settings.recent.is_empty() {
                ui.label("(none yet)");
            }
            for p in self.settings.recent.clone() {
                self.command_button(ui, UiCommand::OpenScenarioFile(p));
            }
        });
        ui.menu_button("Shipped scenarios", |ui| {
            for s in self.welcome.shipped().to_vec() {
                let name = s
                    .path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let cmd = UiCommand::OpenScenarioFile(s.path);
                if ui.button(name).on_hover_text(&s.about).clicked() {
                    ui.close();
                    self.run_command(&ui.ctx().clone(), cmd);
                }
            }
        });
        self.command_button(ui, UiCommand::StopScenario);
        ui.separator();
        self.command_button(ui, UiCommand::OpenCapture);
        self.command_button(ui, UiCommand::SaveCapture);
        let on = self.model.database_open;
        self.command_checkbox(ui, UiCommand::ToggleCaptureDb, on);
        self.command_button(ui, UiCommand::ExportLog);
        ui.separator();
        self.command_button(ui, UiCommand::OpenSpec);
        self.command_button(ui, UiCommand::ExportSpec);
        ui.separator();
        self.command_button(ui, UiCommand::ClearCapture);
        ui.separator();
        self.command_button(ui, UiCommand::Quit);
    }

    fn broker_menu(&mut self, ui: &mut egui::Ui) {
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
        if let BrokerState::Running { ws, .. } = &self.model.broker {
            for url in ws.ws.iter().chain(&ws.wss).cloned().collect::<Vec<_>>() {
                ui.separator();
                ui.horizontal(|ui| {
                    ui.label(format!("WebSocket: {url}"));
                    if ui
                        .small_button("Copy")
                        .on_hover_text("Copy the URL for a web client (MQTT.js, MQTTX)")
                        .clicked()
                    {
                        ui.ctx().copy_text(url.clone());
                    }
                });
            }
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
                let path = ca.display().to_string();
                self.command_button_with(ui, UiCommand::CopyCaPath, Some(&path));
                self.command_button(ui, UiCommand::SaveCaCertificate);
                let sub = self.subscribe_command().unwrap_or_default();
                self.command_button_with(ui, UiCommand::CopySubscribeCommand, Some(&sub));
            }
        }
    }

    fn view_menu(&mut self, ui: &mut egui::Ui) {
        let s = &self.settings;
        let (devices, traffic, publish) = (s.show_devices, s.show_traffic, s.show_publish);
        self.command_checkbox(ui, UiCommand::ToggleDevices, devices);
        self.command_checkbox(ui, UiCommand::ToggleTraffic, traffic);
        self.command_checkbox(ui, UiCommand::TogglePublish, publish);
        ui.separator();
        for t in Tab::ALL {
            let on = self.settings.tab == t;
            self.command_selectable(ui, UiCommand::ShowTab(t), on);
        }
        ui.separator();
        let dark = self.settings.dark;
        ui.horizontal(|ui| {
            self.command_selectable(ui, UiCommand::SetDark(true), dark);
            self.command_selectable(ui, UiCommand::SetDark(false), !dark);
        });
    }
}
