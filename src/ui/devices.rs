//! Devices panel: virtual devices by fleet, external clients, and the
//! buttons that inject client faults.

use egui::{Color32, RichText};

use super::faults::NetControls;
use super::theme;
use crate::capture::Capture;
use crate::command::Command;
use crate::event::DeviceState;
use crate::fault::{DeviceAction, FaultKey, Target};
use crate::model::{DeviceList, FaultLog};

pub fn state_color(state: Option<DeviceState>) -> Color32 {
    match state {
        Some(DeviceState::Connected) => theme::OK,
        Some(DeviceState::Connecting | DeviceState::Reconnecting) => theme::WARN,
        Some(DeviceState::Offline) => theme::ERROR,
        Some(DeviceState::Stopped) | None => Color32::GRAY,
    }
}

#[derive(Default)]
pub struct DevicesPanel {
    pub selected: Option<String>,
    /// A fleet chosen as the fault target (its template id).
    selected_fleet: Option<String>,
    filter: String,
    net: NetControls,
    /// External clients matching the filter, cached by (sessions seen, devices generation, filter).
    external: Vec<String>,
    external_key: Option<(usize, u64, u64, String)>,
    /// The live edit of the selected fleet.
    edit: Option<FleetEdit>,
}

/// What can be changed on a running fleet, and the scenario it belongs to.
pub struct FleetEdit {
    fleet: String,
    /// The running scenario, parsed from its RON, and where it came from.
    scenario: crate::scenario::Scenario,
    path: std::path::PathBuf,
    count: u32,
    /// Per publish entry: period (ms; None: once per connect), QoS, retain.
    publishes: Vec<(String, Option<u64>, u8, bool)>,
}

impl FleetEdit {
    fn new(fleet: &str, ron: &str, path: &std::path::Path) -> Option<FleetEdit> {
        let scenario = crate::scenario::Scenario::parse(ron, path).ok()?;
        let d = scenario.devices.iter().find(|d| d.id == fleet)?;
        Some(FleetEdit {
            fleet: fleet.to_string(),
            count: d.count,
            publishes: d
                .publish
                .iter()
                .map(|p| {
                    (
                        p.topic.clone(),
                        p.every.map(|e| e.0.as_millis() as u64),
                        p.qos.0,
                        p.retain,
                    )
                })
                .collect(),
            path: path.to_path_buf(),
            scenario,
        })
    }

    /// The scenario with this fleet's edits applied.
    pub fn edited(&self) -> crate::scenario::Scenario {
        let mut s = self.scenario.clone();
        if let Some(d) = s.devices.iter_mut().find(|d| d.id == self.fleet) {
            d.count = self.count.max(1);
            for (p, (_, every, qos, retain)) in d.publish.iter_mut().zip(&self.publishes) {
                p.every =
                    every.map(|ms| crate::time::Dur(std::time::Duration::from_millis(ms.max(1))));
                p.qos = crate::scenario::Qos(*qos);
                p.retain = *retain;
            }
        }
        s
    }
}

impl DevicesPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        devices: &mut DeviceList,
        faults: &FaultLog,
        scenario: Option<(&str, &std::path::Path)>,
        out: &mut Vec<Command>,
    ) {
        // The fleet's live edit follows the fleet selection and the running scenario.
        match (&self.selected_fleet, scenario) {
            (Some(f), Some((ron, path)))
                if self
                    .edit
                    .as_ref()
                    .is_none_or(|e| &e.fleet != f || e.path != path) =>
            {
                self.edit = FleetEdit::new(f, ron, path);
            }
            (None, _) | (_, None) => self.edit = None,
            _ => {}
        }
        // Pause state is view state; the engine only hears Pause/Resume.
        let mut pause_change: Option<(Target, bool)> = None;
        ui.horizontal(|ui| {
            ui.heading("Devices");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if !devices.is_empty() {
                    ui.label(format!(
                        "{}/{} connected",
                        devices.connected(),
                        devices.len()
                    ));
                }
            });
        });
        ui.add(
            egui::TextEdit::singleline(&mut self.filter)
                .hint_text("Filter clients…")
                .desired_width(f32::INFINITY),
        );
        ui.separator();
        self.selected_ui(ui, capture, devices, faults, out, &mut pause_change);
        self.fleet_faults_ui(ui, faults, out);
        egui::ScrollArea::vertical().auto_shrink([false, false]).show(ui, |ui| {
            if devices.is_empty() {
                ui.weak("No virtual devices: open a scenario (File → Open scenario…).");
            }
            for f in devices.fleets() {
                let (fleet, ids, connected) = (&f.id, &f.members, f.connected);
                if ids.len() == 1 && !fleet.contains("{i}") {
                    self.device_row(ui, capture, devices, &ids[0]);
                    continue;
                }
                egui::CollapsingHeader::new(RichText::new(format!("{fleet}  ×{}  ({connected} connected)", ids.len())).strong())
                    .id_salt(fleet)
                    .default_open(ids.len() <= 12)
                    .show(ui, |ui| {
                        let target = Target::Fleet(fleet.clone());
                        ui.horizontal_wrapped(|ui| {
                            fleet_buttons(ui, &target, devices, out, &mut pause_change);
                            let chosen = self.selected_fleet.as_deref() == Some(fleet.as_str());
                            if ui.add(egui::Button::new("Network faults").small().selected(chosen)).on_hover_text("Latency, loss, partitions… for the whole fleet").clicked() {
                                self.selected_fleet = if chosen { None } else { Some(fleet.clone()) };
                            }
                        });
                        let visible: Vec<&String> = ids.iter().filter(|id| self.matches(id)).collect();
                        let row_h = ui.spacing().interact_size.y;
                        egui::ScrollArea::vertical()
                            .id_salt(("fleet-rows", fleet))
                            .max_height(360.0)
                            .auto_shrink([false, true])
                            .show_rows(ui, row_h, visible.len(), |ui, range| {
                                for id in &visible[range] {
                                    self.device_row(ui, capture, devices, id);
                                }
                            });
                    });
            }
            self.refresh_external(capture, devices);
            let external = std::mem::take(&mut self.external);
            ui.add_space(8.0);
            ui.label(RichText::new(format!("External clients ({})", external.len())).strong())
                .on_hover_text("Clients that connected to the broker port themselves: your backend, mosquitto_sub, …");
            if external.is_empty() {
                ui.weak("Connect your own clients to the broker port (status bar) to see them here.");
            }
            let row_h = ui.spacing().interact_size.y;
            egui::ScrollArea::vertical()
                .id_salt("external-rows")
                .max_height(360.0)
                .auto_shrink([false, true])
                .show_rows(ui, row_h, external.len(), |ui, range| {
                    for id in &external[range] {
                        self.device_row(ui, capture, devices, id);
                    }
                });
            self.external = external;
        });
        if let Some((target, paused)) = pause_change {
            devices.set_paused(&target, paused);
        }
    }

    /// Sessions are never removed (only cleared, which bumps the capture's generation).
    fn refresh_external(&mut self, capture: &Capture, devices: &DeviceList) {
        let key = (
            capture.sessions.len(),
            capture.clears,
            devices.generation,
            self.filter.clone(),
        );
        if self.external_key.as_ref() == Some(&key) {
            return;
        }
        self.external = capture
            .sessions
            .keys()
            .filter(|id| !devices.is_virtual(id) && self.matches(id))
            .map(|id| id.to_string())
            .collect();
        self.external
            .sort_by_cached_key(|id| super::format::natural_key(id));
        self.external_key = Some(key);
    }

    fn matches(&self, id: &str) -> bool {
        self.filter.is_empty() || id.to_lowercase().contains(&self.filter.to_lowercase())
    }

    fn device_row(&mut self, ui: &mut egui::Ui, capture: &Capture, devices: &DeviceList, id: &str) {
        let session = capture.sessions.get(id).map(|s| &**s);
        let state = shown_state(devices, session, id);
        ui.horizontal(|ui| {
            ui.label(RichText::new("●").color(state_color(state)))
                .on_hover_text(state.map_or("unknown", |s| s.label()));
            let selected = self.selected.as_deref() == Some(id);
            if ui.selectable_label(selected, id).clicked() {
                self.selected = if selected { None } else { Some(id.to_string()) };
            }
            if devices.is_paused(id) {
                ui.weak("paused");
            }
            if let Some(e) = devices
                .get(id)
                .and_then(|d| d.script.as_ref())
                .and_then(|s| s.error.as_ref())
            {
                ui.label(
                    RichText::new("script error")
                        .small()
                        .color(theme::ERROR),
                )
                .on_hover_text(e);
            }
            if let Some(d) = devices.get(id)
                && d.publish_failed + d.ack_failed > 0
            {
                ui.label(
                    RichText::new(format!("lost {}", d.publish_failed + d.ack_failed))
                        .small()
                        .color(theme::ERROR),
                )
                .on_hover_text(format!(
                    "The client's request queue was full: {} publishes and {} acknowledgements were never sent",
                    d.publish_failed, d.ack_failed
                ));
            }
            if let Some(s) = session {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.weak(format!("↑{} ↓{}", s.published, s.received))
                        .on_hover_text("PUBLISH frames sent ↑ and received ↓");
                });
            }
        });
    }

    /// Change the fleet while it runs: size, and each publish's period, QoS
    /// and retain flag. Apply reloads the scenario as a difference (the other
    /// devices keep their connections); Save writes it back to its file.
    fn fleet_edit_ui(&mut self, ui: &mut egui::Ui, out: &mut Vec<Command>) {
        let Some(edit) = &mut self.edit else {
            return;
        };
        egui::CollapsingHeader::new("Edit the fleet")
            .id_salt("fleet-edit")
            .show(ui, |ui| {
                ui.horizontal(|ui| {
                    ui.label("Devices");
                    ui.add(egui::DragValue::new(&mut edit.count).range(1..=20_000));
                });
                let fleet = edit.fleet.clone();
                let spec = edit.scenario.devices.iter_mut().find(|d| d.id == fleet);
                let mut payloads: Vec<_> = spec
                    .map(|d| d.publish.iter_mut().map(|p| &mut p.payload).collect())
                    .unwrap_or_default();
                for (k, (topic, every, qos, retain)) in edit.publishes.iter_mut().enumerate() {
                    ui.label(RichText::new(topic.as_str()).monospace().small());
                    // The payload's generators: their numeric parameters.
                    if let Some(payload) = payloads.get_mut(k) {
                        for (field, g) in payload.generators_mut() {
                            let params = g.params_mut();
                            if params.is_empty() {
                                continue;
                            }
                            ui.horizontal_wrapped(|ui| {
                                if !field.is_empty() {
                                    ui.weak(field);
                                }
                                for (name, x) in params {
                                    ui.label(name);
                                    ui.add(egui::DragValue::new(x).speed(0.1).max_decimals(4));
                                }
                            });
                        }
                    }
                    ui.horizontal(|ui| {
                        if let Some(ms) = every {
                            ui.label("every");
                            ui.add(egui::DragValue::new(ms).range(1..=3_600_000).suffix(" ms"));
                        } else {
                            ui.weak("once per connect");
                        }
                        ui.label("QoS");
                        for q in 0..3u8 {
                            ui.selectable_value(qos, q, q.to_string());
                        }
                        ui.checkbox(retain, "Retain");
                    });
                }
                ui.horizontal(|ui| {
                    if ui
                        .button("Apply")
                        .on_hover_text("Devices of this fleet restart with the change (a new size only adds or removes devices); every other device keeps its connection")
                        .clicked()
                    {
                        let s = edit.edited();
                        out.push(Command::ReloadScenario(crate::command::ScenarioSource::Text {
                            origin: edit.path.clone(),
                            ron: s.to_ron(),
                        }));
                        edit.scenario = s;
                    }
                    let is_file = edit.path.extension().is_some_and(|e| e == "ron") && edit.path.is_absolute();
                    if ui
                        .add_enabled(is_file, egui::Button::new("Save scenario"))
                        .on_hover_text(format!(
                            "Write the edited scenario to {} (comments in the file are not kept)",
                            edit.path.display()
                        ))
                        .clicked()
                    {
                        out.push(Command::SaveScenario {
                            path: edit.path.clone(),
                            ron: edit.edited().to_ron(),
                        });
                    }
                });
                ui.weak("Saving rewrites the file as plain RON: its comments are not kept.");
            });
    }

    fn fleet_faults_ui(&mut self, ui: &mut egui::Ui, faults: &FaultLog, out: &mut Vec<Command>) {
        let Some(fleet) = self.selected_fleet.clone() else {
            return;
        };
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            ui.horizontal(|ui| {
                ui.label(RichText::new(format!("Fleet {fleet}")).strong());
                if ui.small_button("Close").clicked() {
                    self.selected_fleet = None;
                }
            });
            let current = faults
                .net
                .iter()
                .find(|(k, _)| matches!(k, FaultKey::Client(c) if fleet_matches(&fleet, c)))
                .map(|(_, f)| f);
            self.net
                .ui(ui, &Target::Fleet(fleet.clone()), true, current, out);
            self.fleet_edit_ui(ui, out);
        });
        ui.separator();
    }

    fn selected_ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        devices: &DeviceList,
        faults: &FaultLog,
        out: &mut Vec<Command>,
        pause_change: &mut Option<(Target, bool)>,
    ) {
        let Some(id) = self.selected.clone() else {
            return;
        };
        let is_virtual = devices.is_virtual(&id);
        let session = capture.sessions.get(id.as_str()).map(|s| &**s);
        if !is_virtual && session.is_none() {
            self.selected = None;
            return;
        }
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.set_width(ui.available_width());
            let state = shown_state(devices, session, &id);
            ui.horizontal(|ui| {
                ui.label(RichText::new("●").color(state_color(state)));
                ui.label(RichText::new(&id).strong());
                ui.weak(state.map_or("", |s| s.label()));
            });
            let target = Target::Device(id.clone());
            ui.horizontal_wrapped(|ui| {
                if is_virtual {
                    if ui
                        .button("Disconnect")
                        .on_hover_text("Send DISCONNECT, then close: the will is discarded")
                        .clicked()
                    {
                        out.push(Command::Device(target.clone(), DeviceAction::Disconnect));
                    }
                    if ui
                        .button("Drop")
                        .on_hover_text(
                            "Close the socket without DISCONNECT: the broker publishes the will",
                        )
                        .clicked()
                    {
                        out.push(Command::Device(target.clone(), DeviceAction::Drop));
                    }
                    if ui.button("Reconnect").clicked() {
                        out.push(Command::Device(target.clone(), DeviceAction::Reconnect));
                    }
                    let paused = devices.is_paused(&id);
                    if ui
                        .button(if paused { "Resume" } else { "Pause" })
                        .on_hover_text("Stop or resume publishing; the connection stays")
                        .clicked()
                    {
                        out.push(Command::Device(
                            target.clone(),
                            if paused {
                                DeviceAction::Resume
                            } else {
                                DeviceAction::Pause
                            },
                        ));
                        *pause_change = Some((target.clone(), !paused));
                    }
                } else if session.is_some_and(|s| s.connected) {
                    if ui
                        .button("Drop")
                        .on_hover_text(
                            "Cut the connection at the tap: the broker publishes the will",
                        )
                        .clicked()
                    {
                        out.push(Command::Device(target.clone(), DeviceAction::Drop));
                    }
                } else {
                    ui.weak("external client, offline");
                }
            });
            if let Some(script) = devices.get(&id).and_then(|d| d.script.clone()) {
                script_ui(ui, &script);
            }
            egui::CollapsingHeader::new("Network and client faults")
                .id_salt("device-faults")
                .default_open(faults.net_for(&id).is_some())
                .show(ui, |ui| {
                    self.net
                        .ui(ui, &target, is_virtual, faults.net_for(&id), out);
                });
        });
        ui.separator();
    }
}

/// A scripted device's script: its error, state, vars and last log line.
fn script_ui(ui: &mut egui::Ui, s: &crate::event::ScriptView) {
    ui.horizontal(|ui| {
        ui.weak("script");
        ui.label(RichText::new(&s.file).monospace());
        if !s.state.is_empty() {
            ui.weak("state");
            ui.label(&s.state);
        }
    });
    if let Some(e) = &s.error {
        ui.label(RichText::new(e).monospace().color(theme::ERROR));
    }
    if !s.vars.is_empty() {
        egui::Grid::new("script-vars")
            .num_columns(2)
            .spacing([12.0, 2.0])
            .show(ui, |ui| {
                for (k, v) in &s.vars {
                    ui.weak(k);
                    ui.label(RichText::new(v).monospace());
                    ui.end_row();
                }
            });
    }
    if let Some(l) = &s.last_log {
        ui.horizontal(|ui| {
            ui.weak("log");
            ui.label(l);
        });
    }
}

/// A virtual device's own state, else what the tap saw of an external client.
pub fn shown_state(
    devices: &DeviceList,
    session: Option<&crate::capture::Session>,
    id: &str,
) -> Option<DeviceState> {
    devices.state(id).or_else(|| {
        session.map(|s| {
            if s.connected {
                DeviceState::Connected
            } else {
                DeviceState::Offline
            }
        })
    })
}

/// Whether a client id belongs to a fleet template like "drone-{i}".
fn fleet_matches(template: &str, id: &str) -> bool {
    match template.split_once("{i}") {
        Some((pre, post)) => {
            id.len() > pre.len() + post.len()
                && id.starts_with(pre)
                && id.ends_with(post)
                && id[pre.len()..id.len() - post.len()]
                    .chars()
                    .all(|c| c.is_ascii_digit())
        }
        None => template == id,
    }
}

fn fleet_buttons(
    ui: &mut egui::Ui,
    target: &Target,
    devices: &DeviceList,
    out: &mut Vec<Command>,
    pause_change: &mut Option<(Target, bool)>,
) {
    let name = match target {
        Target::Fleet(f) => f.clone(),
        _ => "all".into(),
    };
    if ui
        .small_button("Disconnect all")
        .on_hover_text(format!("Graceful DISCONNECT for every {name}"))
        .clicked()
    {
        out.push(Command::Device(target.clone(), DeviceAction::Disconnect));
    }
    if ui
        .small_button("Drop all")
        .on_hover_text(format!("Abrupt drop of every {name}: wills fire"))
        .clicked()
    {
        out.push(Command::Device(target.clone(), DeviceAction::Drop));
    }
    if ui
        .small_button("Reconnect all")
        .on_hover_text("A reconnect storm: every device at once")
        .clicked()
    {
        out.push(Command::Device(target.clone(), DeviceAction::Reconnect));
    }
    let any_paused = devices.any_paused(target);
    if ui
        .small_button(if any_paused {
            "Resume all"
        } else {
            "Pause all"
        })
        .clicked()
    {
        out.push(Command::Device(
            target.clone(),
            if any_paused {
                DeviceAction::Resume
            } else {
                DeviceAction::Pause
            },
        ));
        *pause_change = Some((target.clone(), !any_paused));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fleet_edit_changes_size_period_and_generator_parameters() {
        let ron = r#"Scenario(name: "e", devices: [
            (id: "s-{i}", count: 2, publish: [(topic: "t/{id}", every: "1s",
                payload: Json({"v": Sine(center: 10.0, amplitude: 2.0, period: "60s")}))]),
            (id: "other"),
        ])"#;
        let mut edit = FleetEdit::new("s-{i}", ron, std::path::Path::new("/tmp/e.ron"))
            .expect("the fleet is found");
        edit.count = 5;
        edit.publishes[0].1 = Some(250);
        let d = &mut edit.scenario.devices[0];
        for (_, g) in d.publish[0].payload.generators_mut() {
            for (name, x) in g.params_mut() {
                if name == "amplitude" {
                    *x = 7.5;
                }
            }
        }
        let s = edit.edited();
        let d = &s.devices[0];
        assert_eq!(d.count, 5);
        assert_eq!(d.publish[0].every.map(|e| e.0.as_millis()), Some(250));
        let again = crate::scenario::Scenario::parse(&s.to_ron(), std::path::Path::new("x.ron"))
            .expect("the edited scenario is valid RON");
        assert_eq!(again.devices[0].count, 5);
        assert!(s.to_ron().contains("amplitude: 7.5"), "{}", s.to_ron());
        assert_eq!(
            again.devices[1].id, "other",
            "the other devices are untouched"
        );
    }
}
