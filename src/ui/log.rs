//! Message log: every captured PUBLISH, virtualized, filterable, following the tail.

use std::collections::VecDeque;

use egui::RichText;
use egui_extras::{Column, TableBuilder};

use super::format;
use crate::capture::Capture;
use crate::wire::topic_matches;
use crate::wire::{Direction, PacketKind, WireEvent};

#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    topic: String,
    client: String,
    qos: [bool; 3],
    /// 0 both, 1 published only, 2 delivered only.
    direction: u8,
}

pub struct LogPanel {
    filter: Filter,
    /// Matching store sequence numbers, oldest first: extended on new events,
    /// trimmed on eviction, rebuilt when the filter changes or the capture is cleared.
    rows: VecDeque<u64>,
    rows_for: Option<(Filter, u64)>,
    next_seq: u64,
    follow: bool,
    /// A frame to show and mark (from the Checks tab), scrolled to once.
    highlight: Option<u64>,
    scroll_pending: bool,
}

impl Default for LogPanel {
    fn default() -> Self {
        LogPanel {
            filter: Filter {
                topic: String::new(),
                client: String::new(),
                qos: [true; 3],
                direction: 0,
            },
            rows: VecDeque::new(),
            rows_for: None,
            next_seq: 0,
            follow: true,
            highlight: None,
            scroll_pending: false,
        }
    }
}

impl Filter {
    /// The same filter with its texts trimmed and lower-cased once.
    fn normalized(&self) -> Filter {
        Filter {
            topic: self.topic.trim().to_string(),
            client: self.client.to_lowercase(),
            ..self.clone()
        }
    }

    /// `self` must be [`Filter::normalized`].
    fn accepts(&self, e: &WireEvent) -> bool {
        if e.kind != PacketKind::Publish || !self.qos.get(e.qos as usize).copied().unwrap_or(true) {
            return false;
        }
        match (self.direction, e.dir) {
            (1, Direction::BrokerToClient) | (2, Direction::ClientToBroker) => return false,
            _ => {}
        }
        if !self.client.is_empty() && !e.client_id.to_lowercase().contains(&self.client) {
            return false;
        }
        let topic = e.topic.as_deref().unwrap_or_default();
        let t = self.topic.as_str();
        t.is_empty()
            || if t.contains(['+', '#']) {
                topic_matches(topic, t)
            } else {
                topic.to_lowercase().contains(&t.to_lowercase())
            }
    }
}

impl LogPanel {
    fn refresh(&mut self, capture: &Capture) {
        let key = (self.filter.normalized(), capture.clears);
        if self.rows_for.as_ref() != Some(&key) {
            self.rows.clear();
            self.next_seq = 0;
            self.rows_for = Some(key);
        }
        let Some((filter, _)) = &self.rows_for else {
            return;
        };
        let first = capture.first_seq();
        while self.rows.front().is_some_and(|&s| s < first) {
            self.rows.pop_front();
        }
        let start = self.next_seq.max(first);
        for seq in start..capture.end_seq() {
            if let Some(e) = capture.get(seq)
                && filter.accepts(e)
            {
                self.rows.push_back(seq);
            }
        }
        self.next_seq = capture.end_seq();
    }

    /// Show this frame: clear the filters (it must be a row), stop following,
    /// scroll to it and mark it.
    pub fn jump_to(&mut self, seq: u64) {
        self.filter = LogPanel::default().filter;
        self.follow = false;
        self.highlight = Some(seq);
        self.scroll_pending = true;
    }

    /// The frame marked by [`LogPanel::jump_to`].
    pub fn highlighted(&self) -> Option<u64> {
        self.highlight
    }

    /// Store sequence numbers of the rows shown (for tests and the log's own use).
    pub fn rows(&self) -> &VecDeque<u64> {
        &self.rows
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, capture: &Capture) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Topic");
            ui.add(
                egui::TextEdit::singleline(&mut self.filter.topic)
                    .hint_text("text or filter a/+/b")
                    .desired_width(180.0),
            );
            ui.label("Client");
            ui.add(egui::TextEdit::singleline(&mut self.filter.client).desired_width(120.0));
            ui.label("QoS");
            for q in 0..3 {
                ui.checkbox(&mut self.filter.qos[q], q.to_string());
            }
            egui::ComboBox::from_id_salt("log-dir")
                .selected_text(
                    ["both legs", "published", "delivered"][self.filter.direction as usize],
                )
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter.direction, 0, "both legs");
                    ui.selectable_value(&mut self.filter.direction, 1, "published");
                    ui.selectable_value(&mut self.filter.direction, 2, "delivered");
                });
            ui.checkbox(&mut self.follow, "follow");
        });
        self.refresh(capture);
        ui.label(
            RichText::new(format!(
                "{} messages",
                format::count(self.rows.len() as u64)
            ))
            .weak(),
        );
        let rows = &self.rows;
        let highlight = self.highlight;
        let scroll_to = if std::mem::take(&mut self.scroll_pending) {
            highlight.and_then(|h| rows.binary_search(&h).ok())
        } else {
            None
        };
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        let v5 = capture.v5_frames > 0;
        // Wider than the area (a narrow window, the publish panel open): scroll sideways.
        egui::ScrollArea::horizontal()
            .id_salt("log-h")
            .show(ui, |ui| {
                let mut table = TableBuilder::new(ui)
                    .id_salt("message-log")
                    .striped(true)
                    .stick_to_bottom(self.follow);
                if let Some(row) = scroll_to {
                    table = table.scroll_to_row(row, Some(egui::Align::Center));
                }
                table
                    .column(Column::exact(96.0))
                    .column(Column::exact(24.0))
                    .column(Column::initial(150.0).resizable(true))
                    .column(Column::initial(200.0).resizable(true))
                    .column(Column::exact(34.0))
                    .column(Column::exact(28.0))
                    .column(Column::exact(28.0))
                    .column(Column::exact(60.0))
                    .column(Column::exact(64.0))
                    .columns(Column::initial(120.0).resizable(true), v5 as usize)
                    .column(Column::remainder())
                    .header(20.0, |mut h| {
                        format::header_cells(
                            &mut h,
                            &format::message_headers(
                                &[
                                    "Time (UTC)",
                                    "",
                                    "Client",
                                    "Topic",
                                    "QoS",
                                    "Ret",
                                    "Dup",
                                    "Size",
                                    "Network",
                                ],
                                v5,
                            ),
                        )
                    })
                    .body(|body| {
                        body.rows(18.0, rows.len(), |mut row| {
                            let seq = rows[row.index()];
                            let Some(e) = capture.get(seq) else {
                                return;
                            };
                            row.set_selected(highlight == Some(seq));
                            row.col(|ui| {
                                ui.label(format::time_of_day(e.t_us));
                            });
                            row.col(|ui| {
                                ui.label(if e.dir == Direction::ClientToBroker {
                                    "→"
                                } else {
                                    "←"
                                })
                                .on_hover_text(
                                    if e.dir == Direction::ClientToBroker {
                                        "published by the client"
                                    } else {
                                        "delivered to the client"
                                    },
                                );
                            });
                            row.col(|ui| {
                                ui.label(&*e.client_id);
                            });
                            row.col(|ui| {
                                ui.label(e.topic.as_deref().unwrap_or_default());
                            });
                            format::message_cells(&mut row, e, 160, v5);
                        });
                    });
            });
    }
}
