//! The topic view's payload viewer: a payload as decoded tree, text or hex,
//! or as a diff against the previous message on its topic (field by field
//! for anything the decoders read as a tree: `codec::diff`).

use std::collections::VecDeque;

use egui::RichText;

use super::{format, theme};
use crate::capture::Capture;
use crate::codec::Decoders;
use crate::codec::diff::{self, FieldChange, LineChange, PayloadDiff};
use crate::wire::WireEvent;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PayloadView {
    #[default]
    Auto,
    Json,
    Text,
    Hex,
    /// What changed since the previous message on the topic.
    Diff,
}

/// What the viewer shows.
pub struct Shown<'a> {
    pub topic: &'a str,
    pub payload: &'a [u8],
    /// A message picked in the history (not the latest).
    pub selected: bool,
    /// The message before it on the topic, in the same direction.
    pub previous: Option<&'a WireEvent>,
}

/// Entries looked back through for the previous message, at most.
const LOOK_BACK: usize = 10_000;

/// The message before `seq` in `history` (a topic's, in order) that went the
/// same way (published after published, delivered after delivered) and is
/// still stored.
pub fn previous_on_topic(capture: &Capture, history: &VecDeque<u64>, seq: u64) -> Option<u64> {
    let dir = capture.get(seq)?.dir;
    let at = history.partition_point(|&q| q < seq);
    history
        .range(..at)
        .rev()
        .take(LOOK_BACK)
        .copied()
        .take_while(|&q| q >= capture.first_seq())
        .find(|&q| capture.get(q).is_some_and(|e| e.dir == dir))
}

pub fn payload_ui(
    ui: &mut egui::Ui,
    view: &mut PayloadView,
    decoders: &Decoders,
    shown: &Shown<'_>,
    height: f32,
) {
    let (topic, payload) = (shown.topic, shown.payload);
    let codec = decoders.codec(topic);
    let decoded = (codec != crate::codec::Codec::Json)
        .then(|| decoders.decode(topic, payload))
        .flatten()
        .and_then(|v| serde_json::to_string_pretty(&v).ok());
    // Wraps in a narrow column (the chart beside it keeps its half).
    ui.horizontal_wrapped(|ui| {
        ui.label(
            RichText::new(if shown.selected {
                "Payload (selected message)"
            } else {
                "Payload (latest)"
            })
            .strong(),
        );
        for (v, label) in [
            (PayloadView::Auto, "Auto"),
            (PayloadView::Json, "JSON"),
            (PayloadView::Text, "Text"),
            (PayloadView::Hex, "Hex"),
        ] {
            ui.selectable_value(view, v, label);
        }
        ui.selectable_value(view, PayloadView::Diff, "Diff")
            .on_hover_text("What changed since the previous message on this topic");
        ui.weak(format::bytes(payload.len() as u64));
    });
    if codec != crate::codec::Codec::Json {
        ui.weak(if decoded.is_some() {
            format!("{} (decoded)", codec.name())
        } else {
            format!("not {}", codec.name())
        });
    }
    let text = match *view {
        PayloadView::Diff => {
            return egui::ScrollArea::vertical()
                .id_salt("payload")
                .max_height(height.max(80.0))
                .auto_shrink([false, true])
                .show(ui, |ui| diff_ui(ui, decoders, shown))
                .inner;
        }
        PayloadView::Auto => decoded.clone().unwrap_or_else(|| {
            format::pretty_json(payload).unwrap_or_else(|| match std::str::from_utf8(payload) {
                Ok(s) => s.to_string(),
                Err(_) => format::hex_dump(payload),
            })
        }),
        PayloadView::Json => decoded
            .clone()
            .or_else(|| format::pretty_json(payload))
            .unwrap_or_else(|| "(not a JSON object or array)".into()),
        PayloadView::Text => String::from_utf8_lossy(payload).into_owned(),
        PayloadView::Hex => format::hex_dump(payload),
    };
    egui::ScrollArea::vertical()
        .id_salt("payload")
        .max_height(height.max(80.0))
        .auto_shrink([false, true])
        .show(ui, |ui| {
            ui.add(egui::Label::new(RichText::new(text).monospace()).selectable(true));
        });
}

/// A JSON value in one line, shortened.
fn short(v: &serde_json::Value) -> String {
    let s = v.to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

fn diff_ui(ui: &mut egui::Ui, decoders: &Decoders, shown: &Shown<'_>) {
    let Some(prev) = shown.previous else {
        ui.weak("No earlier message on this topic in the capture to compare with.");
        return;
    };
    ui.weak(format!(
        "compared with the previous message at {} ({})",
        format::time_of_day(prev.t_us),
        prev.client_id
    ));
    let was = prev.payload.as_deref().unwrap_or_default();
    let mono = |s: String, c: egui::Color32| RichText::new(s).monospace().color(c);
    match diff::diff(decoders, shown.topic, was, shown.payload) {
        PayloadDiff::Same => {
            ui.label("The same payload, byte for byte.");
        }
        PayloadDiff::Fields(changes) if changes.is_empty() => {
            ui.label("The same fields and values (only the encoding differs).");
        }
        PayloadDiff::Fields(changes) => {
            ui.label(format!(
                "{} field{} changed",
                changes.len(),
                if changes.len() == 1 { "" } else { "s" }
            ));
            egui::Grid::new("payload-diff")
                .num_columns(2)
                .spacing([12.0, 2.0])
                .striped(true)
                .show(ui, |ui| {
                    for c in &changes {
                        ui.label(RichText::new(c.path()).monospace());
                        match c {
                            FieldChange::Changed { was, now, .. } => {
                                ui.label(mono(
                                    format!("{} → {}", short(was), short(now)),
                                    theme::WARN,
                                ));
                            }
                            FieldChange::Added { now, .. } => {
                                ui.label(mono(format!("+ {}", short(now)), theme::OK));
                            }
                            FieldChange::Removed { was, .. } => {
                                ui.label(mono(format!("− {}", short(was)), theme::ERROR));
                            }
                        }
                        ui.end_row();
                    }
                });
        }
        PayloadDiff::Lines(lines) => {
            for l in lines {
                match l {
                    LineChange::Same(t) => ui.label(RichText::new(format!("  {t}")).monospace()),
                    LineChange::Added(t) => ui.label(mono(format!("+ {t}"), theme::OK)),
                    LineChange::Removed(t) => ui.label(mono(format!("− {t}"), theme::ERROR)),
                };
            }
        }
        PayloadDiff::Bytes {
            was,
            now,
            first_difference,
        } => {
            ui.label(format!(
                "binary: {was} → {now} bytes, first difference at byte {first_difference}"
            ));
        }
    }
}
