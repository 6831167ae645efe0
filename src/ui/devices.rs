//! Devices panel: virtual devices by fleet, external clients, and the
//! buttons that inject client faults.

use std::collections::{HashMap, HashSet};

use egui::{Color32, RichText};

use super::faults::{FaultLog, NetControls};
use crate::capture::Capture;
use crate::protocol::{Command, DeviceAction, DeviceState, Target};

/// Virtual devices of the running scenario and their states (fed by engine events).
#[derive(Default)]
pub struct DeviceList {
    /// (fleet template id, client ids) in scenario order.
    fleets: Vec<(String, Vec<String>)>,
    states: HashMap<String, DeviceState>,
    paused: HashSet<String>,
}

impl DeviceList {
    pub fn declare(&mut self, devices: Vec<(String, String)>) {
        self.fleets.clear();
        for (id, fleet) in devices {
            match self.fleets.iter_mut().find(|(f, _)| *f == fleet) {
                Some((_, ids)) => ids.push(id),
                None => self.fleets.push((fleet, vec![id])),
            }
        }
    }

    pub fn set(&mut self, id: String, fleet: String, state: DeviceState) {
        if !self.states.contains_key(&id) && !self.fleets.iter().any(|(_, ids)| ids.contains(&id)) {
            match self.fleets.iter_mut().find(|(f, _)| *f == fleet) {
                Some((_, ids)) => ids.push(id.clone()),
                None => self.fleets.push((fleet, vec![id.clone()])),
            }
        }
        self.states.insert(id, state);
    }

    pub fn stop_all(&mut self) {
        for s in self.states.values_mut() {
            *s = DeviceState::Stopped;
        }
    }

    pub fn clear(&mut self) {
        *self = DeviceList::default();
    }

    pub fn state(&self, id: &str) -> Option<DeviceState> {
        self.states.get(id).copied()
    }

    pub fn is_virtual(&self, id: &str) -> bool {
        self.states.contains_key(id)
            || self
                .fleets
                .iter()
                .any(|(_, ids)| ids.iter().any(|i| i == id))
    }

    pub fn len(&self) -> usize {
        self.fleets.iter().map(|(_, ids)| ids.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn connected(&self) -> usize {
        self.states
            .values()
            .filter(|s| **s == DeviceState::Connected)
            .count()
    }

    fn set_paused(&mut self, target: &Target, paused: bool) {
        let ids: Vec<String> = match target {
            Target::Device(id) => vec![id.clone()],
            Target::Fleet(f) => self
                .fleets
                .iter()
                .filter(|(n, _)| n == f)
                .flat_map(|(_, ids)| ids.clone())
                .collect(),
            Target::All => self
                .fleets
                .iter()
                .flat_map(|(_, ids)| ids.clone())
                .collect(),
        };
        for id in ids {
            if paused {
                self.paused.insert(id);
            } else {
                self.paused.remove(&id);
            }
        }
    }
}

pub fn state_color(state: Option<DeviceState>) -> Color32 {
    match state {
        Some(DeviceState::Connected) => Color32::from_rgb(76, 175, 80),
        Some(DeviceState::Connecting | DeviceState::Reconnecting) => Color32::from_rgb(255, 179, 0),
        Some(DeviceState::Offline) => Color32::from_rgb(229, 57, 53),
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
}

impl DevicesPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        devices: &mut DeviceList,
        faults: &FaultLog,
        out: &mut Vec<Command>,
    ) {
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
            for (fleet, ids) in &devices.fleets {
                if ids.len() == 1 && !fleet.contains("{i}") {
                    self.device_row(ui, capture, devices, &ids[0]);
                    continue;
                }
                let connected = ids.iter().filter(|id| devices.state(id) == Some(DeviceState::Connected)).count();
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
            let external: Vec<&String> = capture
                .sessions
                .keys()
                .filter(|id| !devices.is_virtual(id) && self.matches(id))
                .collect();
            ui.add_space(8.0);
            ui.label(RichText::new(format!("External clients ({})", external.len())).strong())
                .on_hover_text("Clients that connected to the broker port themselves: your backend, mosquitto_sub, …");
            if external.is_empty() {
                ui.weak("Connect your own clients to the broker port (status bar) to see them here.");
            }
            for id in external {
                self.device_row(ui, capture, devices, id);
            }
        });
        if let Some((target, paused)) = pause_change {
            devices.set_paused(&target, paused);
        }
    }

    fn matches(&self, id: &str) -> bool {
        self.filter.is_empty() || id.to_lowercase().contains(&self.filter.to_lowercase())
    }

    fn device_row(&mut self, ui: &mut egui::Ui, capture: &Capture, devices: &DeviceList, id: &str) {
        let session = capture.sessions.get(id);
        let state = shown_state(devices, session, id);
        ui.horizontal(|ui| {
            ui.label(RichText::new("●").color(state_color(state)))
                .on_hover_text(state.map_or("unknown", |s| s.label()));
            let selected = self.selected.as_deref() == Some(id);
            if ui.selectable_label(selected, id).clicked() {
                self.selected = if selected { None } else { Some(id.to_string()) };
            }
            if devices.paused.contains(id) {
                ui.weak("paused");
            }
            if let Some(s) = session {
                ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                    ui.weak(format!("↑{} ↓{}", s.published, s.received))
                        .on_hover_text("PUBLISH frames sent ↑ and received ↓");
                });
            }
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
            let current = faults.net.iter().find(|(k, _)| matches!(k, crate::tap::faults::FaultKey::Client(c) if fleet_matches(&fleet, c))).map(|(_, f)| f);
            self.net.ui(ui, &Target::Fleet(fleet.clone()), current, out);
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
        let session = capture.sessions.get(&id);
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
                    let paused = devices.paused.contains(&id);
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
            egui::CollapsingHeader::new("Network and client faults")
                .id_salt("device-faults")
                .default_open(faults.net_for(&id).is_some())
                .show(ui, |ui| {
                    self.net.ui(ui, &target, faults.net_for(&id), out);
                });
        });
        ui.separator();
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
    let any_paused = matches!(target, Target::Fleet(f) if devices.fleets.iter().any(|(n, ids)| n == f && ids.iter().any(|i| devices.paused.contains(i))));
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
