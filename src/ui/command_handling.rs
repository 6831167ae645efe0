//! Running the command table (`commands.rs`): whether a command can run now,
//! what it does, and the widgets that offer it (menu entries, checkboxes,
//! selectable entries) and the shortcuts, all through [`WorkbenchApp::run_command`].

use super::app::WorkbenchApp;
use super::commands::UiCommand;
use crate::command::Command;
use crate::event::{BrokerState, TlsInfo};
use crate::fault::{self, Fault};

impl WorkbenchApp {
    /// The TLS listener's details, when it has a generated CA.
    fn tls_with_ca(&self) -> Option<(TlsInfo, std::path::PathBuf)> {
        match &self.model.broker {
            BrokerState::Running { tls: Some(t), .. } => t.ca.clone().map(|ca| ((**t).clone(), ca)),
            _ => None,
        }
    }

    /// A mosquitto_sub command that subscribes to everything over TLS.
    pub(super) fn subscribe_command(&self) -> Option<String> {
        let (t, ca) = self.tls_with_ca()?;
        let mut cmd = format!(
            "mosquitto_sub -h localhost -p {} --cafile '{}'",
            t.addr.port(),
            ca.display()
        );
        if let (true, Some(c), Some(k)) = (t.client_cert_required, &t.client_cert, &t.client_key) {
            cmd += &format!(" --cert '{}' --key '{}'", c.display(), k.display());
        }
        cmd += " -t '#' -v";
        Some(cmd)
    }

    /// Whether a command can run now (menus grey out the others).
    pub fn command_enabled(&self, cmd: &UiCommand) -> bool {
        let running = matches!(self.model.broker, BrokerState::Running { .. });
        let embedded = self.broker_embedded();
        match cmd {
            UiCommand::StopScenario => self.model.scenario.is_some(),
            UiCommand::ExportLog => self.model.export.is_none(),
            UiCommand::StartBroker => embedded && !running,
            UiCommand::StopBroker | UiCommand::RestartBroker | UiCommand::ColdRestartBroker => {
                embedded && running
            }
            UiCommand::CopyCaPath
            | UiCommand::SaveCaCertificate
            | UiCommand::CopySubscribeCommand => self.tls_with_ca().is_some(),
            _ => true,
        }
    }

    /// Run a command from a menu, a button or a shortcut.
    pub fn run_command(&mut self, ctx: &egui::Context, cmd: UiCommand) {
        if !self.command_enabled(&cmd) {
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
            UiCommand::OpenScenarioFile(path) => self.open_scenario(&path),
            UiCommand::StopScenario => self.pending.push(Command::StopScenario),
            UiCommand::OpenCapture => self.open_capture_dialog(),
            UiCommand::SaveCapture => self.save_capture_dialog(),
            UiCommand::ToggleCaptureDb => self.toggle_capture_db(),
            UiCommand::ExportLog => self.export_dialog(),
            UiCommand::OpenSpec => self.open_spec_dialog(),
            UiCommand::ExportSpec => self.export_spec_dialog(),
            UiCommand::ClearCapture => self.model.capture.clear(),
            UiCommand::Quit => ctx.send_viewport_cmd(egui::ViewportCommand::Close),
            UiCommand::StartBroker => self.pending.push(Command::StartBroker),
            UiCommand::StopBroker => self.pending.push(Command::StopBroker),
            UiCommand::RestartBroker => self
                .pending
                .push(Command::Inject(Fault::RestartBroker(fault::RestartBroker))),
            UiCommand::ColdRestartBroker => self.pending.push(Command::Inject(
                Fault::ColdRestartBroker(fault::ColdRestartBroker),
            )),
            UiCommand::ChangePort => self.modals.ask_port(None, self.port()),
            UiCommand::CopyCaPath => {
                if let Some((_, ca)) = self.tls_with_ca() {
                    ctx.copy_text(ca.display().to_string());
                }
            }
            UiCommand::SaveCaCertificate => {
                if let Some((_, ca)) = self.tls_with_ca() {
                    self.save_ca_dialog(ca);
                }
            }
            UiCommand::CopySubscribeCommand => {
                if let Some(cmd) = self.subscribe_command() {
                    ctx.copy_text(cmd);
                }
            }
            UiCommand::ToggleDevices => self.settings.show_devices = !self.settings.show_devices,
            UiCommand::ToggleTraffic => self.settings.show_traffic = !self.settings.show_traffic,
            UiCommand::ShowTab(t) => self.settings.tab = t,
            UiCommand::SetDark(dark) => {
                self.settings.dark = dark;
                ctx.set_theme(if dark {
                    egui::Theme::Dark
                } else {
                    egui::Theme::Light
                });
            }
            UiCommand::About => self.modals.about = true,
        }
    }

    /// A menu entry for `cmd`: its label, shortcut and tooltip from the table
    /// (`hover` overrides the tooltip).
    pub fn command_button(&mut self, ui: &mut egui::Ui, cmd: UiCommand) {
        self.command_button_with(ui, cmd, None);
    }

    pub fn command_button_with(&mut self, ui: &mut egui::Ui, cmd: UiCommand, hover: Option<&str>) {
        let mut button = egui::Button::new(cmd.label());
        if let Some(sc) = cmd.shortcut() {
            button = button.shortcut_text(ui.ctx().format_shortcut(&sc));
        }
        self.offer(ui, cmd, button, hover);
    }

    /// A selectable menu entry for `cmd` (a tab, a theme), shown selected when `on`.
    pub fn command_selectable(&mut self, ui: &mut egui::Ui, cmd: UiCommand, on: bool) {
        let mut button = egui::Button::selectable(on, cmd.label());
        if let Some(sc) = cmd.shortcut() {
            button = button.shortcut_text(ui.ctx().format_shortcut(&sc));
        }
        self.offer(ui, cmd, button, None);
    }

    /// A checkbox for a toggling command, checked when `on`.
    pub fn command_checkbox(&mut self, ui: &mut egui::Ui, cmd: UiCommand, on: bool) {
        let mut checked = on;
        if ui.checkbox(&mut checked, cmd.label()).changed() {
            self.run_command(&ui.ctx().clone(), cmd);
        }
    }

    fn offer(
        &mut self,
        ui: &mut egui::Ui,
        cmd: UiCommand,
        button: egui::Button,
        hover: Option<&str>,
    ) {
        let mut response = ui.add_enabled(self.command_enabled(&cmd), button);
        let tip = hover.unwrap_or(cmd.tooltip());
        if !tip.is_empty() {
            response = response.on_hover_text(tip);
        }
        if response.clicked() {
            ui.close();
            self.run_command(&ui.ctx().clone(), cmd);
        }
    }

    /// Run the commands whose shortcut was pressed this frame.
    pub fn handle_shortcuts(&mut self, ctx: &egui::Context) {
        for cmd in UiCommand::all() {
            if let Some(sc) = cmd.shortcut()
                && ctx.input_mut(|i| i.consume_shortcut(&sc))
            {
                self.run_command(ctx, cmd);
            }
        }
    }
}
