//! Contract: the running scenario's AsyncAPI document against the wire.
//! Each channel with its messages and violations and the first offending
//! payload (a click opens that frame in the Message log); the topics no
//! channel declares; the document's warnings. (File → Open AsyncAPI… and
//! File → Export AsyncAPI… are the app's dialogs, `app.rs`.)

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};

use super::theme;
use crate::contract::{Tally, describe};

/// Draw the view; returns the capture sequence number of the offending frame
/// the user clicked, if any.
pub fn contract_ui(ui: &mut egui::Ui, tally: Option<&Tally>) -> Option<u64> {
    let Some(tally) = tally else {
        ui.add_space(theme::SECTION_GAP);
        ui.vertical_centered(|ui| {
            ui.weak("No AsyncAPI contract is checked in this run.");
            ui.weak(
                "File → Open AsyncAPI… imports a document as a scenario and checks its traffic; \
                 a scenario names one with `spec: \"api.yaml\"` (or `mqtt-workbench run --spec api.yaml`). \
                 Every PUBLISH on a declared channel is then validated against its payload schema and bindings.",
            );
        });
        return None;
    };
    let c = &tally.contract;
    let (messages, violations) = tally.totals();
    ui.horizontal(|ui| {
        let title = if c.title.is_empty() {
            "AsyncAPI document"
        } else {
            &c.title
        };
        ui.strong(title);
        ui.weak(format!("AsyncAPI {} · {}", c.version, c.path.display()));
        ui.separator();
        ui.label(format!(
            "{messages} messages on {} channels",
            c.channels.len()
        ));
        ui.separator();
        ui.label(if violations > 0 {
            RichText::new(format!("{violations} broke the contract"))
                .color(theme::ERROR)
                .strong()
        } else {
            RichText::new("0 violations").color(theme::OK)
        });
        ui.separator();
        let undeclared = format!("{} on undeclared topics", tally.undeclared_messages);
        if tally.undeclared_messages > 0 {
            ui.label(RichText::new(undeclared).color(theme::WARN));
        } else {
            ui.weak(undeclared);
        }
    });
    ui.add_space(theme::SMALL_GAP);
    let mut clicked = None;
    ui.style_mut().interaction.selectable_labels = false;
    ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
    let undeclared: Vec<_> = tally.undeclared.iter().collect();
    let rows = tally.channels.len() + undeclared.len();
    TableBuilder::new(ui)
        .id_salt("contract")
        .striped(true)
        .sense(egui::Sense::click())
        .column(Column::initial(260.0).resizable(true))
        .column(Column::exact(80.0))
        .column(Column::exact(80.0))
        .column(Column::remainder())
        .header(20.0, |mut h| {
            for title in ["Channel", "Messages", "Violations", "First violation"] {
                h.col(|ui| {
                    ui.strong(title);
                });
            }
        })
        .body(|body| {
            body.rows(20.0, rows, |mut row| {
                let i = row.index();
                if let Some((address, t)) = tally.channels.get(i) {
                    row.col(|ui| {
                        ui.monospace(&**address);
                    });
                    row.col(|ui| {
                        if t.messages == 0 {
                            ui.weak("0");
                        } else {
                            ui.label(t.messages.to_string());
                        }
                    });
                    row.col(|ui| {
                        if t.violations > 0 {
                            ui.label(RichText::new(t.violations.to_string()).color(theme::ERROR).strong());
                        } else if t.messages > 0 {
                            ui.label(RichText::new("0").color(theme::OK));
                        } else {
                            ui.weak("–");
                        }
                    });
                    row.col(|ui| match &t.first {
                        Some(o) => {
                            let text = format!("{} on {}: {}", o.client, o.topic, describe(&o.violations));
                            ui.label(RichText::new(&text).color(theme::ERROR)).on_hover_text(format!(
                                "{text}\n\npayload: {}\n\nClick to open the frame in the Message log",
                                o.payload
                            ));
                        }
                        None if t.messages > 0 => {
                            ui.weak("every message conforms");
                        }
                        None => {
                            ui.weak("no message yet");
                        }
                    });
                    if row.response().clicked() {
                        clicked = t.first.as_ref().map(|o| o.seq);
                    }
                } else if let Some((topic, n)) = undeclared.get(i - tally.channels.len()) {
                    row.col(|ui| {
                        ui.label(RichText::new(&***topic).monospace().color(theme::WARN));
                    });
                    row.col(|ui| {
                        ui.label(n.to_string());
                    });
                    row.col(|ui| {
                        ui.weak("–");
                    });
                    row.col(|ui| {
                        ui.label(RichText::new("undeclared: no channel of the document has this topic").color(Color32::GRAY));
                    });
                }
            });
        });
    if !c.warnings.is_empty() {
        ui.add_space(theme::GAP);
        ui.collapsing(
            format!("{} parts of the document not used", c.warnings.len()),
            |ui| {
                for w in c.warnings.iter().take(200) {
                    ui.weak(w.to_string());
                }
            },
        );
    }
    clicked
}
