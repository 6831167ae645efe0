//! The publish panel: send a message by hand as the workbench's own client
//! or as a virtual device; topic completion from the topic tree, a JSON
//! check, QoS and retain, a history and saved snippets (kept with the
//! settings). Ctrl+Enter publishes.

use bytes::Bytes;
use egui::RichText;
use serde::{Deserialize, Serialize};

use super::theme;
use crate::capture::Capture;
use crate::command::{Command, PublishRequest, Publisher, WORKBENCH_CLIENT_ID};
use crate::model::DeviceList;

/// Messages kept in the history, and snippets at most.
pub const MAX_HISTORY: usize = 20;
pub const MAX_SNIPPETS: usize = 50;
/// Bytes of a payload kept in history or snippets (bigger ones are not kept).
const MAX_KEPT_PAYLOAD: usize = 16 * 1024;

/// A message as the panel remembers it (history and snippets).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Draft {
    pub name: String,
    pub topic: String,
    pub payload: String,
    pub qos: u8,
    pub retain: bool,
    /// MQTT 5 properties.
    pub properties: crate::command::MessageProperties,
}

/// What the publish panel remembers between runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PublishMemory {
    /// Newest first.
    pub history: Vec<Draft>,
    pub snippets: Vec<Draft>,
}

impl PublishMemory {
    pub fn remember(&mut self, d: &Draft) {
        if d.payload.len() > MAX_KEPT_PAYLOAD {
            return;
        }
        self.history.retain(|h| {
            (&h.topic, &h.payload, h.qos, h.retain) != (&d.topic, &d.payload, d.qos, d.retain)
        });
        self.history.insert(0, d.clone());
        self.history.truncate(MAX_HISTORY);
    }
}

#[derive(Default)]
pub struct PublishPanel {
    pub draft: Draft,
    pub json: bool,
    pub from: Option<String>,
    snippet_name: String,
    /// Send this file's bytes instead of the text (read by the engine when published).
    pub file: Option<std::path::PathBuf>,
    /// The user asked to pick a payload file (the window opens the dialog).
    pub wants_file: bool,
}

impl PublishPanel {
    /// Why the draft cannot be sent, if it cannot.
    pub fn problem(&self) -> Option<String> {
        let t = self.draft.topic.trim();
        if t.is_empty() {
            return Some("enter a topic".into());
        }
        if t.contains(['+', '#']) {
            return Some("a topic to publish to has no wildcards (+, #)".into());
        }
        if t.chars().next().is_some_and(|c| !c.is_ascii()) {
            return Some(
                "the embedded broker (rumqttd 0.20) crashes on a topic starting with a non-ASCII \
                 character: start it with an ASCII one"
                    .into(),
            );
        }
        if self.json
            && let Err(e) = serde_json::from_str::<serde_json::Value>(&self.draft.payload)
        {
            return Some(format!(
                "not JSON: line {}, column {}: {e}",
                e.line(),
                e.column()
            ));
        }
        None
    }

    /// The command for the draft (None, with the reason shown, when it cannot be sent).
    pub fn command(&self) -> Option<Command> {
        if self.problem().is_some() {
            return None;
        }
        Some(Command::Publish(PublishRequest {
            from: match &self.from {
                Some(id) => Publisher::Device(id.clone()),
                None => Publisher::Workbench,
            },
            topic: self.draft.topic.trim().to_string(),
            payload: Bytes::from(self.draft.payload.clone().into_bytes()),
            qos: self.draft.qos,
            retain: self.draft.retain,
            properties: self.draft.properties.clone(),
            payload_file: self.file.clone(),
        }))
    }

    /// Publish the draft: push the command and remember it. False if it cannot be sent.
    pub fn send(&mut self, out: &mut Vec<Command>, memory: &mut PublishMemory) -> bool {
        match self.command() {
            Some(cmd) => {
                out.push(cmd);
                memory.remember(&self.draft);
                true
            }
            None => false,
        }
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        devices: &DeviceList,
        memory: &mut PublishMemory,
        out: &mut Vec<Command>,
    ) {
        self.header_ui(ui, devices);
        self.topic_ui(ui, capture);
        self.payload_ui(ui);
        self.properties_ui(ui);
        let problem = self.problem();
        self.send_ui(ui, problem.as_deref(), memory, out);
        self.memory_ui(ui, problem.is_none(), memory);
    }

    /// The heading, and whom to publish as (the workbench or a virtual device).
    fn header_ui(&mut self, ui: &mut egui::Ui, devices: &DeviceList) {
        ui.horizontal(|ui| {
            ui.heading("Publish");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let shown = self
                    .from
                    .clone()
                    .unwrap_or_else(|| WORKBENCH_CLIENT_ID.into());
                egui::ComboBox::from_id_salt("publish-as")
                    .selected_text(shown)
                    .width(150.0)
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut self.from, None, WORKBENCH_CLIENT_ID)
                            .on_hover_text("The workbench's own MQTT client");
                        for f in devices.fleets() {
                            for id in f.members.iter().take(200) {
                                ui.selectable_value(&mut self.from, Some(id.clone()), id);
                            }
                        }
                    });
                ui.weak("as");
            });
        });
        if let Some(id) = &self.from
            && !devices.is_virtual(id)
        {
            self.from = None;
        }
    }

    /// The topic, with completions from the captured topics.
    fn topic_ui(&mut self, ui: &mut egui::Ui, capture: &Capture) {
        let label = ui.label("Topic");
        let topic_edit = ui
            .add(
                egui::TextEdit::singleline(&mut self.draft.topic)
                    .hint_text("e.g. cellar/cooler-1/setpoint")
                    .desired_width(f32::INFINITY),
            )
            .labelled_by(label.id);
        // Completion from the captured topics: the first few that contain what was typed.
        let typed = self.draft.topic.trim().to_string();
        if topic_edit.has_focus() && !typed.is_empty() {
            // The first six by name (the topics are hashed, in no order).
            let mut suggestions: Vec<&String> = Vec::with_capacity(7);
            for t in capture.topics.keys() {
                if t != &typed && t.contains(typed.as_str()) {
                    let at = suggestions.partition_point(|s| *s < t);
                    if at < 6 {
                        suggestions.insert(at, t);
                        suggestions.truncate(6);
                    }
                }
            }
            for t in suggestions {
                if ui.small_button(t).clicked() {
                    self.draft.topic = t.clone();
                }
            }
        }
    }

    /// The payload: text, JSON or a file's bytes.
    fn payload_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label("Payload");
            if ui
                .selectable_label(self.file.is_none() && !self.json, "Text")
                .clicked()
            {
                self.json = false;
                self.file = None;
            }
            if ui
                .selectable_label(self.file.is_none() && self.json, "JSON")
                .clicked()
            {
                self.json = true;
                self.file = None;
            }
            if ui
                .selectable_label(self.file.is_some(), "File…")
                .on_hover_text("Send a file's bytes (at most 1 MiB), e.g. a binary payload")
                .clicked()
            {
                self.wants_file = true;
            }
            if self.json
                && ui.small_button("Pretty").clicked()
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&self.draft.payload)
                && let Ok(pretty) = serde_json::to_string_pretty(&v)
            {
                self.draft.payload = pretty;
            }
            ui.weak(format!("{} B", self.draft.payload.len()));
        });
        if let Some(f) = self.file.clone() {
            ui.horizontal(|ui| {
                ui.label(
                    RichText::new(format!(
                        "bytes of {}",
                        f.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ))
                    .monospace(),
                )
                .on_hover_text(f.display().to_string());
                if ui.small_button("×").on_hover_text("Back to text").clicked() {
                    self.file = None;
                }
            });
        } else {
            ui.add(
                egui::TextEdit::multiline(&mut self.draft.payload)
                    .code_editor()
                    .desired_rows(6)
                    .desired_width(f32::INFINITY)
                    .hint_text(if self.json {
                        "{\"on\": true}"
                    } else {
                        "message text"
                    }),
            );
        }
    }

    /// QoS, retain and the Publish button, with what stops it.
    fn send_ui(
        &mut self,
        ui: &mut egui::Ui,
        problem: Option<&str>,
        memory: &mut PublishMemory,
        out: &mut Vec<Command>,
    ) {
        if self.json && problem.is_none() {
            ui.colored_label(theme::OK, "valid JSON");
        }
        ui.horizontal(|ui| {
            ui.label("QoS");
            for q in 0..3u8 {
                ui.selectable_value(&mut self.draft.qos, q, q.to_string());
            }
            ui.checkbox(&mut self.draft.retain, "Retain");
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                let shortcut = ui.ctx().format_shortcut(&super::commands::PUBLISH_SHORTCUT);
                let button =
                    egui::Button::new(RichText::new("Publish").strong()).shortcut_text(shortcut);
                let response = ui.add_enabled(problem.is_none(), button);
                if response.clicked() {
                    self.send(out, memory);
                }
            });
        });
        if let Some(p) = problem
            && !(p == "enter a topic" && self.draft.topic.is_empty())
        {
            ui.colored_label(theme::ERROR, p);
        }
    }

    /// Saving the draft as a snippet; the snippets and the history.
    fn memory_ui(&mut self, ui: &mut egui::Ui, sendable: bool, memory: &mut PublishMemory) {
        ui.separator();
        ui.horizontal(|ui| {
            ui.add(
                egui::TextEdit::singleline(&mut self.snippet_name)
                    .hint_text("snippet name")
                    .desired_width(140.0),
            );
            if ui
                .add_enabled(
                    !self.snippet_name.trim().is_empty() && sendable,
                    egui::Button::new("Save snippet"),
                )
                .clicked()
                && memory.snippets.len() < MAX_SNIPPETS
            {
                let mut d = self.draft.clone();
                d.name = self.snippet_name.trim().to_string();
                memory.snippets.retain(|s| s.name != d.name);
                memory.snippets.push(d);
                self.snippet_name.clear();
            }
        });
        egui::ScrollArea::vertical()
            .id_salt("publish-memory")
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if !memory.snippets.is_empty() {
                    ui.label(RichText::new("Snippets").strong());
                    let mut remove = None;
                    for (i, s) in memory.snippets.iter().enumerate() {
                        ui.horizontal(|ui| {
                            if ui
                                .small_button("×")
                                .on_hover_text("Delete the snippet")
                                .clicked()
                            {
                                remove = Some(i);
                            }
                            if ui
                                .button(&s.name)
                                .on_hover_text(format!("{} ← {}", s.topic, preview(&s.payload)))
                                .clicked()
                            {
                                self.draft = s.clone();
                            }
                        });
                    }
                    if let Some(i) = remove {
                        memory.snippets.remove(i);
                    }
                    ui.add_space(theme::GAP);
                }
                ui.label(RichText::new(format!("History ({})", memory.history.len())).strong());
                if memory.history.is_empty() {
                    ui.weak("Messages you publish are listed here; click one to send it again.");
                }
                for h in memory.history.clone() {
                    let text = format!("{}  ← {}", h.topic, preview(&h.payload));
                    if ui
                        .selectable_label(false, RichText::new(text).monospace().small())
                        .on_hover_text(format!(
                            "QoS {}{}",
                            h.qos,
                            if h.retain { ", retained" } else { "" }
                        ))
                        .clicked()
                    {
                        self.draft = h;
                    }
                }
            });
    }
}

impl PublishPanel {
    /// MQTT 5 properties (sent by the workbench's client and MQTT 5 devices).
    fn properties_ui(&mut self, ui: &mut egui::Ui) {
        let p = &mut self.draft.properties;
        let title = if p.is_empty() {
            "MQTT 5 properties".to_string()
        } else {
            "MQTT 5 properties (set)".to_string()
        };
        egui::CollapsingHeader::new(title)
            .id_salt("publish-v5")
            .show(ui, |ui| {
                egui::Grid::new("publish-v5-grid")
                    .num_columns(2)
                    .show(ui, |ui| {
                        for (label, value, hint) in [
                            ("Content type", &mut p.content_type, "application/json"),
                            ("Response topic", &mut p.response_topic, "replies/my-app"),
                            ("Correlation data", &mut p.correlation_data, "req-42"),
                        ] {
                            ui.label(label);
                            ui.add(
                                egui::TextEdit::singleline(value)
                                    .hint_text(hint)
                                    .desired_width(f32::INFINITY),
                            );
                            ui.end_row();
                        }
                        ui.label("Message expiry");
                        ui.horizontal(|ui| {
                            ui.add(
                                egui::DragValue::new(&mut p.message_expiry_s)
                                    .range(0..=u32::MAX)
                                    .suffix(" s"),
                            );
                            ui.weak("0: never");
                        });
                        ui.end_row();
                        ui.label("Payload format");
                        ui.checkbox(&mut p.payload_utf8, "UTF-8 text");
                        ui.end_row();
                    });
                ui.label("User properties");
                let mut remove = None;
                for (i, (k, v)) in p.user_properties.iter_mut().enumerate() {
                    ui.horizontal(|ui| {
                        ui.add(
                            egui::TextEdit::singleline(k)
                                .hint_text("key")
                                .desired_width(90.0),
                        );
                        ui.add(
                            egui::TextEdit::singleline(v)
                                .hint_text("value")
                                .desired_width(120.0),
                        );
                        if ui.small_button("×").clicked() {
                            remove = Some(i);
                        }
                    });
                }
                if let Some(i) = remove {
                    p.user_properties.remove(i);
                }
                if ui.small_button("+ user property").clicked() && p.user_properties.len() < 32 {
                    p.user_properties.push((String::new(), String::new()));
                }
                ui.weak(
                    "Sent by the workbench's own client (MQTT 5) and MQTT 5 devices; a 3.1.1 \
                     subscriber receives the message without them.",
                );
            });
    }
}

fn preview(payload: &str) -> String {
    let one_line: String = payload.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 40 {
        format!("{}…", one_line.chars().take(40).collect::<String>())
    } else {
        one_line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_are_checked_before_they_are_sent() {
        let mut p = PublishPanel::default();
        assert_eq!(p.problem().as_deref(), Some("enter a topic"));
        p.draft.topic = "a/+".into();
        assert!(p.problem().is_some_and(|e| e.contains("wildcards")));
        p.draft.topic = "a/b".into();
        p.json = true;
        p.draft.payload = "{\"on\": tru}".into();
        assert!(
            p.problem()
                .is_some_and(|e| e.starts_with("not JSON: line 1, column"))
        );
        p.draft.payload = "{\"on\": true}".into();
        assert!(p.problem().is_none());
        let mut out = Vec::new();
        let mut memory = PublishMemory::default();
        assert!(p.send(&mut out, &mut memory));
        assert!(
            matches!(&out[0], Command::Publish(r) if r.topic == "a/b" && r.from == Publisher::Workbench)
        );
        assert_eq!(memory.history.len(), 1);
        // The same message again is not listed twice; the history is bounded.
        p.send(&mut out, &mut memory);
        assert_eq!(memory.history.len(), 1);
        for i in 0..30 {
            p.draft.topic = format!("t/{i}");
            p.send(&mut out, &mut memory);
        }
        assert_eq!(memory.history.len(), MAX_HISTORY);
        assert_eq!(memory.history[0].topic, "t/29");
    }
}
