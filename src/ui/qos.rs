//! QoS inspector: every QoS 1/2 flow, and for a selected one the message's
//! handshake as a timeline on both legs.

use std::collections::VecDeque;

use egui::{Color32, RichText, Stroke, pos2, vec2};
use egui_extras::{Column, TableBuilder};

use super::format;
use super::theme;
use crate::capture::{Capture, Flow, FlowState};
use crate::wire::Direction;

#[derive(Default)]
pub struct QosPanel {
    filter: String,
    incomplete_only: bool,
    selected: Option<u64>,
    rows: FlowRows,
}

/// The flow ids a filtered view shows, oldest first: extended as flows
/// arrive (text filters), rebuilt only when the filter or the set of
/// incomplete flows changes. Unfiltered, rows index the flows directly.
#[derive(Default)]
struct FlowRows {
    ids: VecDeque<u64>,
    key: Option<(String, bool, u64, u64)>,
    /// Next flow id to look at (text filter only).
    scanned_to: u64,
}

impl FlowRows {
    fn refresh(&mut self, capture: &Capture, filter: &str, incomplete_only: bool) {
        let flows = &capture.flows;
        let changes = if incomplete_only {
            flows.incomplete_changes
        } else {
            0
        };
        let key = (filter.to_string(), incomplete_only, changes, capture.clears);
        let hit = |fl: &Flow| {
            filter.is_empty()
                || fl.client_id.to_lowercase().contains(filter)
                || fl.topic.to_lowercase().contains(filter)
        };
        if self.key.as_ref() != Some(&key) {
            self.ids.clear();
            self.scanned_to = 0;
            if incomplete_only {
                self.ids = flows
                    .incomplete_iter()
                    .filter(|f| hit(f))
                    .map(|f| f.id)
                    .collect();
            }
            self.key = Some(key);
        }
        if !incomplete_only && !filter.is_empty() {
            let end = flows.first_id() + flows.len() as u64;
            for id in self.scanned_to.max(flows.first_id())..end {
                if flows.get(id).is_some_and(hit) {
                    self.ids.push_back(id);
                }
            }
            self.scanned_to = end;
            while self.ids.front().is_some_and(|&id| id < flows.first_id()) {
                self.ids.pop_front();
            }
        }
    }

    /// Rows shown and the flow of row `i` (newest first).
    fn len(&self, capture: &Capture, unfiltered: bool) -> usize {
        if unfiltered {
            capture.flows.len()
        } else {
            self.ids.len()
        }
    }

    fn get<'a>(&self, capture: &'a Capture, unfiltered: bool, i: usize) -> Option<&'a Flow> {
        let flows = &capture.flows;
        let id = if unfiltered {
            (flows.first_id() + flows.len() as u64).checked_sub(1 + i as u64)?
        } else {
            *self.ids.get(self.ids.len().checked_sub(1 + i)?)?
        };
        flows.get(id)
    }
}

fn state_color(s: FlowState) -> Color32 {
    match s {
        FlowState::Complete => theme::OK,
        FlowState::Open => theme::WARN,
        _ => theme::ERROR,
    }
}

impl QosPanel {
    pub fn ui(&mut self, ui: &mut egui::Ui, capture: &Capture) {
        egui::Panel::bottom("flow-timeline")
            .resizable(true)
            .default_size(300.0)
            .size_range(160.0..=700.0)
            .show(ui, |ui| {
                match self.selected.and_then(|id| capture.flows.get(id)) {
                    Some(f) => timeline_ui(ui, capture, f),
                    None => {
                        ui.weak("Select a flow to see its handshake on both legs.");
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| self.table_ui(ui, capture));
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, capture: &Capture) {
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(format!(
                    "QoS 1/2 flows: {} complete, {} incomplete",
                    format::count(capture.flows.completed),
                    capture.flows.incomplete()
                ))
                .strong(),
            );
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("client or topic")
                    .desired_width(180.0),
            );
            ui.checkbox(&mut self.incomplete_only, "incomplete only");
        });
        let f = self.filter.trim().to_lowercase();
        let unfiltered = f.is_empty() && !self.incomplete_only;
        self.rows.refresh(capture, &f, self.incomplete_only);
        let n_rows = self.rows.len(capture, unfiltered);
        // A click anywhere on a row selects it (a selectable label would take it).
        ui.style_mut().interaction.selectable_labels = false;
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        TableBuilder::new(ui)
            .id_salt("flows")
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::exact(96.0))
            .column(Column::exact(150.0))
            .column(Column::initial(160.0).resizable(true))
            .column(Column::initial(190.0).resizable(true))
            .column(Column::exact(36.0))
            .column(Column::exact(44.0))
            .column(Column::initial(300.0).resizable(true))
            .column(Column::exact(70.0))
            .column(Column::remainder())
            .header(20.0, |mut h| {
                format::header_cells(
                    &mut h,
                    &[
                        "Time (UTC)",
                        "Leg",
                        "Client",
                        "Topic",
                        "QoS",
                        "pkid",
                        "Steps",
                        "Duration",
                        "State",
                    ],
                )
            })
            .body(|body| {
                body.rows(18.0, n_rows, |mut row| {
                    let Some(fl) = self.rows.get(capture, unfiltered, row.index()) else {
                        return;
                    };
                    row.set_selected(self.selected == Some(fl.id));
                    row.col(|ui| {
                        ui.label(
                            fl.steps
                                .first()
                                .map(|s| format::time_of_day(s.t_us))
                                .unwrap_or_default(),
                        );
                    });
                    row.col(|ui| {
                        ui.label(match fl.leg {
                            Direction::ClientToBroker => "publisher → broker",
                            Direction::BrokerToClient => "broker → subscriber",
                        });
                    });
                    row.col(|ui| {
                        ui.label(&*fl.client_id);
                    });
                    row.col(|ui| {
                        ui.label(&*fl.topic);
                    });
                    row.col(|ui| {
                        ui.label(fl.qos.to_string());
                    });
                    row.col(|ui| {
                        ui.label(fl.pkid.to_string());
                    });
                    row.col(|ui| {
                        let mut t = fl.step_names().join(" → ");
                        if fl.redeliveries() > 0 {
                            t.push_str(&format!("  (resent ×{})", fl.redeliveries()));
                        }
                        ui.label(t);
                    });
                    row.col(|ui| {
                        ui.label(format::duration_us(fl.duration_us()));
                    });
                    row.col(|ui| {
                        ui.label(RichText::new(fl.state.label()).color(state_color(fl.state)));
                        if fl.deviation.is_some() {
                            ui.label(RichText::new("!").color(theme::WARN))
                                .on_hover_text(fl.deviation.clone().unwrap_or_default());
                        }
                    });
                    if row.response().clicked() {
                        self.selected = Some(fl.id);
                    }
                });
            });
    }
}

/// Legs of the same message: the publisher's flow and every delivery linked to it.
fn related<'a>(capture: &'a Capture, f: &'a Flow) -> (Option<u64>, Vec<&'a Flow>) {
    let origin_seq = match f.leg {
        Direction::ClientToBroker => f.steps.first().map(|s| s.seq),
        Direction::BrokerToClient => f.origin,
    };
    let Some(origin) = origin_seq else {
        return (None, vec![f]);
    };
    let mut legs: Vec<&Flow> = capture
        .flows
        .iter()
        .filter(|x| {
            (x.leg == Direction::ClientToBroker && x.steps.first().is_some_and(|s| s.seq == origin))
                || (x.leg == Direction::BrokerToClient && x.origin == Some(origin))
        })
        .take(16)
        .collect();
    if !legs.iter().any(|x| x.id == f.id) {
        legs.push(f);
    }
    (Some(origin), legs)
}

fn timeline_ui(ui: &mut egui::Ui, capture: &Capture, f: &Flow) {
    let (origin, legs) = related(capture, f);
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("Message on {}", f.topic)).strong());
        if let Some(o) = origin.and_then(|s| capture.get(s)) {
            ui.weak(format!(
                "published by {} at QoS {} · {}",
                o.client_id,
                o.qos,
                format::time_of_day(o.t_us)
            ));
            if o.qos == 0 {
                ui.weak("(QoS 0 on the publisher leg: no handshake)");
            }
        }
    });
    let t0 = legs
        .iter()
        .filter_map(|l| l.steps.first())
        .map(|s| s.t_us)
        .min()
        .unwrap_or(0);
    let t1 = legs
        .iter()
        .filter_map(|l| l.steps.last())
        .map(|s| s.t_us)
        .max()
        .unwrap_or(t0)
        .max(t0 + 1);
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for leg in legs {
                leg_ui(ui, leg, t0, t1, leg.id == f.id);
            }
        });
}

fn leg_ui(ui: &mut egui::Ui, leg: &Flow, t0: u64, t1: u64, highlighted: bool) {
    let title = match leg.leg {
        Direction::ClientToBroker => format!("{} → broker", leg.client_id),
        Direction::BrokerToClient => format!("broker → {}", leg.client_id),
    };
    ui.horizontal(|ui| {
        let t = RichText::new(&title).strong();
        ui.label(if highlighted { t.underline() } else { t });
        ui.label(RichText::new(leg.state.label()).color(state_color(leg.state)));
        ui.weak(format!(
            "QoS {} · pkid {} · {}",
            leg.qos,
            leg.pkid,
            format::duration_us(leg.duration_us())
        ));
        if leg.state != FlowState::Complete {
            let missing = match (leg.qos, leg.steps.len()) {
                (1, _) => "PUBACK",
                (2, 1) => "PUBREC",
                (2, 2) => "PUBREL",
                _ => "PUBCOMP",
            };
            ui.colored_label(theme::ERROR, format!("incomplete: no {missing}"));
        }
    });
    if leg.queued_offline {
        ui.weak(format!(
            "queued by the broker while {} was offline; delivered on reconnect",
            leg.client_id
        ));
    }
    if let Some(d) = &leg.deviation {
        ui.colored_label(theme::WARN, format!("(!) broker deviation: {d}"));
    }
    let width = ui.available_width().max(200.0);
    let (rect, _) = ui.allocate_exact_size(vec2(width, 52.0), egui::Sense::hover());
    let painter = ui.painter_at(rect);
    let visuals = ui.visuals();
    let y = rect.center().y;
    // Clocks of two threads may step back a little: never subtract below zero.
    let x_of = |t: u64| {
        rect.left()
            + 40.0
            + (rect.width() - 120.0)
                * (t.saturating_sub(t0) as f32 / t1.saturating_sub(t0).max(1) as f32)
    };
    painter.line_segment(
        [pos2(rect.left() + 30.0, y), pos2(rect.right() - 20.0, y)],
        Stroke::new(1.0, visuals.weak_text_color()),
    );
    let mut prev: Option<u64> = None;
    for (k, s) in leg.steps.iter().enumerate() {
        let x = x_of(s.t_us);
        let toward_broker = s.dir == Direction::ClientToBroker;
        let color = if s.dup {
            theme::WARN
        } else if toward_broker {
            theme::QOS1
        } else {
            theme::QOS2
        };
        painter.circle_filled(pos2(x, y), 5.0, color);
        let above = k % 2 == 0;
        let label = format!(
            "{}{}{}",
            s.kind.name(),
            if s.dup { " DUP" } else { "" },
            s.reason
                .filter(|&r| r != 0)
                .map(|r| format!(" 0x{r:02X}"))
                .unwrap_or_default()
        );
        painter.text(
            pos2(x, if above { y - 8.0 } else { y + 8.0 }),
            if above {
                egui::Align2::CENTER_BOTTOM
            } else {
                egui::Align2::CENTER_TOP
            },
            match prev {
                Some(p) => format!("{label} +{}", format::duration_us(s.t_us.saturating_sub(p))),
                None => label,
            },
            egui::FontId::proportional(11.0),
            visuals.text_color(),
        );
        prev = Some(s.t_us);
    }
    ui.add_space(theme::SMALL_GAP);
}
