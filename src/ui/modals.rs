//! Modal windows: the broker port (when it is taken, or on request), About,
//! and an export's progress.

use egui::RichText;

use super::theme;
use crate::model::ExportProgress;

struct PortDialog {
    /// Why it opened (the port is taken), or None when the user asked.
    message: Option<String>,
    port: u16,
}

#[derive(Default)]
pub struct Modals {
    port: Option<PortDialog>,
    pub about: bool,
}

/// What the user chose in a modal this frame.
pub enum ModalAction {
    UsePort(u16),
}

impl Modals {
    pub fn ask_port(&mut self, message: Option<String>, port: u16) {
        self.port = Some(PortDialog { message, port });
    }

    pub fn ui(
        &mut self,
        ctx: &egui::Context,
        export: Option<ExportProgress>,
    ) -> Option<ModalAction> {
        let mut action = None;
        if let Some(dialog) = &mut self.port {
            let mut close = false;
            egui::Modal::new(egui::Id::unique("port_dialog")).show(ctx, |ui| {
                ui.set_width(420.0);
                ui.heading("Broker port");
                if let Some(m) = &dialog.message {
                    ui.colored_label(theme::ERROR, m);
                    ui.label(
                        "Another broker may be running. Clients can connect to MQTT Workbench on another port:",
                    );
                }
                ui.horizontal(|ui| {
                    let label = ui.label("Port");
                    ui.add(egui::DragValue::new(&mut dialog.port).range(1..=65535))
                        .labelled_by(label.id);
                    if ui.button(format!("Use port {}", dialog.port)).clicked() {
                        action = Some(ModalAction::UsePort(dialog.port));
                    }
                    if dialog.message.is_none() && ui.button("Cancel").clicked() {
                        close = true;
                    }
                });
            });
            if close || action.is_some() {
                self.port = None;
            }
        }
        if self.about {
            egui::Window::new("About MQTT Workbench")
                .open(&mut self.about)
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
                        crate::about::EFRAME
                    ));
                });
        }
        if let Some(p) = export {
            egui::Window::new("Exporting")
                .collapsible(false)
                .resizable(false)
                .anchor(egui::Align2::CENTER_TOP, [0.0, 48.0])
                .show(ctx, |ui| {
                    ui.set_width(320.0);
                    let fraction = if p.total == 0 {
                        0.0
                    } else {
                        p.done as f32 / p.total as f32
                    };
                    ui.add(egui::ProgressBar::new(fraction).show_percentage());
                    ui.label(RichText::new(format!(
                        "{} of {} messages written",
                        super::format::count(p.done),
                        super::format::count(p.total)
                    )));
                });
        }
        action
    }
}
