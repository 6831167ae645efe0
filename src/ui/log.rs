//! Message log: every captured PUBLISH, virtualized, filterable (topic,
//! client, QoS, leg, payload), following the tail; with a capture database,
//! the same search over everything it holds, page by page.

use std::collections::VecDeque;

use egui::RichText;
use egui_extras::{Column, TableBuilder};

use super::{format, theme};
use crate::capture::Capture;
use crate::checks::{PayloadCheck, PayloadMatcher};
use crate::command::Command;
use crate::database::{SearchPage, SearchSpec};
use crate::wire::topic_matches;
use crate::wire::{Direction, PacketKind, WireEvent};

/// Database matches kept on show (older pages stop there).
const MAX_FOUND: usize = 5_000;

#[derive(Debug, Clone, PartialEq, Eq)]
struct Filter {
    topic: String,
    client: String,
    qos: [bool; 3],
    /// 0 both, 1 published only, 2 delivered only.
    direction: u8,
    payload: PayloadFilter,
}

/// A payload predicate, in the checks' language (`PayloadCheck`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct PayloadFilter {
    /// 0 text the payload contains, 1 a regex, 2 a JSON field.
    mode: u8,
    text: String,
    /// Mode 2: the field ("pos.lat") and how it compares with `text`.
    field: String,
    /// 0 equals, 1 above, 2 below.
    op: u8,
}

impl PayloadFilter {
    /// The predicate, or None when there is none; Err: why it cannot be one.
    fn check(&self) -> Result<Option<PayloadCheck>, String> {
        let text = self.text.trim();
        Ok(Some(match self.mode {
            _ if text.is_empty() => return Ok(None),
            0 => PayloadCheck::Contains(text.to_string()),
            1 => PayloadCheck::Regex(text.to_string()),
            _ => {
                let field = self.field.trim();
                if field.is_empty() {
                    return Err("enter the JSON field (e.g. temp or pos.lat)".into());
                }
                let number = || {
                    text.parse::<f64>()
                        .map_err(|_| format!("\"{text}\": expected a number to compare with"))
                };
                let mut check = PayloadCheck::Json {
                    field: field.to_string(),
                    equals: None,
                    above: None,
                    below: None,
                    outside: None,
                    inside: None,
                };
                if let PayloadCheck::Json {
                    equals,
                    above,
                    below,
                    ..
                } = &mut check
                {
                    match self.op {
                        0 => *equals = Some(text.to_string()),
                        1 => *above = Some(number()?),
                        _ => *below = Some(number()?),
                    }
                }
                check
            }
        }))
    }
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
    /// The payload predicate of `rows_for`, compiled (Err: why not).
    matcher: Result<Option<PayloadMatcher>, String>,
    /// The database search on show: its pages so far (newest first) and
    /// the model's answer count when the last one arrived.
    found: Vec<(i64, WireEvent)>,
    found_next: Option<i64>,
    found_error: Option<String>,
    searched: Option<SearchSpec>,
    seen_searches: u64,
    scanned: u64,
    /// Where clients reach the broker (for "copy as mosquitto_pub command").
    pub broker: Option<std::net::SocketAddr>,
}

impl Default for LogPanel {
    fn default() -> Self {
        LogPanel {
            filter: Filter {
                topic: String::new(),
                client: String::new(),
                qos: [true; 3],
                direction: 0,
                payload: PayloadFilter::default(),
            },
            rows: VecDeque::new(),
            rows_for: None,
            next_seq: 0,
            follow: true,
            highlight: None,
            scroll_pending: false,
            matcher: Ok(None),
            found: Vec::new(),
            found_next: None,
            found_error: None,
            searched: None,
            seen_searches: 0,
            scanned: 0,
            broker: None,
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
    fn accepts(&self, e: &WireEvent, payload: Option<&PayloadMatcher>) -> bool {
        if let Some(m) = payload
            && !m.matches(e.payload.as_deref().unwrap_or(&[]))
        {
            return false;
        }
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
            self.matcher = key
                .0
                .payload
                .check()
                .and_then(|c| c.map(PayloadMatcher::new).transpose());
            self.rows_for = Some(key);
        }
        let matcher = self.matcher.as_ref().ok().and_then(|m| m.as_ref());
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
                && filter.accepts(e, matcher)
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

    /// `database`: the capture database searches read, if any; `page` and
    /// `answers`: the model's last search page and its answer count.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        database: Option<&std::path::Path>,
        page: Option<&Result<Box<SearchPage>, String>>,
        answers: u64,
        out: &mut Vec<Command>,
    ) {
        self.take_page(page, answers);
        self.filters_ui(ui);
        self.payload_ui(ui, database, out);
        if self.searched.is_some() {
            self.found_ui(ui, capture, out);
        }
        self.live_ui(ui, capture);
    }

    /// A new page of the database search on show: appended (or the error).
    fn take_page(&mut self, page: Option<&Result<Box<SearchPage>, String>>, answers: u64) {
        if answers == self.seen_searches {
            return;
        }
        self.seen_searches = answers;
        match page {
            Some(Ok(p)) if Some(&p.spec) == self.searched.as_ref() => {
                self.found.extend(p.rows.iter().cloned());
                self.found.truncate(MAX_FOUND);
                self.found_next = p.next_before.filter(|_| self.found.len() < MAX_FOUND);
                self.scanned += p.scanned;
                self.found_error = None;
            }
            Some(Err(e)) => self.found_error = Some(e.clone()),
            _ => {}
        }
    }

    fn filters_ui(&mut self, ui: &mut egui::Ui) {
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
    }

    /// The payload predicate, and the search over the database.
    fn payload_ui(
        &mut self,
        ui: &mut egui::Ui,
        database: Option<&std::path::Path>,
        out: &mut Vec<Command>,
    ) {
        let p = &mut self.filter.payload;
        ui.horizontal_wrapped(|ui| {
            let label = ui.label("Payload");
            egui::ComboBox::from_id_salt("log-payload-mode")
                .width(90.0)
                .selected_text(["contains", "regex", "JSON field"][p.mode.min(2) as usize])
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut p.mode, 0, "contains");
                    ui.selectable_value(&mut p.mode, 1, "regex");
                    ui.selectable_value(&mut p.mode, 2, "JSON field");
                });
            if p.mode == 2 {
                ui.add(
                    egui::TextEdit::singleline(&mut p.field)
                        .hint_text("field, e.g. temp")
                        .desired_width(100.0),
                );
                egui::ComboBox::from_id_salt("log-payload-op")
                    .width(40.0)
                    .selected_text(["=", ">", "<"][p.op.min(2) as usize])
                    .show_ui(ui, |ui| {
                        ui.selectable_value(&mut p.op, 0, "=");
                        ui.selectable_value(&mut p.op, 1, ">");
                        ui.selectable_value(&mut p.op, 2, "<");
                    });
            }
            ui.add(
                egui::TextEdit::singleline(&mut p.text)
                    .hint_text(["text", "regex, e.g. temp\\d+", "value"][p.mode.min(2) as usize])
                    .desired_width(160.0),
            )
            .labelled_by(label.id);
            let check = p.check().and_then(|c| {
                if let Some(c) = &c {
                    PayloadMatcher::new(c.clone())?;
                }
                Ok(c)
            });
            let hover = match database {
                Some(path) => format!("Search every message in {}", path.display()),
                None => "Turn on File → Keep capture in a database… (or --capture-db) to search \
                         beyond what is in memory"
                    .to_string(),
            };
            let search = ui
                .add_enabled(
                    database.is_some() && check.is_ok(),
                    egui::Button::new("Search database"),
                )
                .on_hover_text(hover)
                .on_disabled_hover_text("no capture database, or the predicate is not valid");
            if search.clicked()
                && let Ok(check) = &check
            {
                let spec = SearchSpec {
                    topic: self.filter.topic.clone(),
                    client: self.filter.client.clone(),
                    payload: check.clone(),
                };
                self.found.clear();
                self.found_next = None;
                self.found_error = None;
                self.scanned = 0;
                self.searched = Some(spec.clone());
                out.push(Command::SearchCapture { spec, before: None });
            }
            if self.searched.is_some()
                && ui
                    .small_button("×")
                    .on_hover_text("Close the search")
                    .clicked()
            {
                self.searched = None;
                self.found.clear();
            }
            if let Err(e) = check {
                ui.colored_label(theme::ERROR, e);
            }
        });
    }

    /// The database search's results, newest first, with a button for older ones.
    fn found_ui(&mut self, ui: &mut egui::Ui, capture: &Capture, out: &mut Vec<Command>) {
        ui.horizontal(|ui| {
            ui.strong(format!(
                "Database: {} match(es), newest first ({} scanned)",
                format::count(self.found.len() as u64),
                format::count(self.scanned)
            ));
            if let (Some(before), Some(spec)) = (self.found_next, &self.searched)
                && ui.button("Older…").clicked()
            {
                out.push(Command::SearchCapture {
                    spec: spec.clone(),
                    before: Some(before),
                });
                self.found_next = None;
            }
            if let Some(e) = &self.found_error {
                ui.colored_label(theme::ERROR, e);
            }
        });
        let found = &self.found;
        let broker = self.broker;
        let v5 = capture.v5_frames > 0;
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        egui::ScrollArea::horizontal()
            .id_salt("log-found-h")
            .show(ui, |ui| {
                let table = TableBuilder::new(ui)
                    .id_salt("log-found")
                    .striped(true)
                    .max_scroll_height(180.0);
                message_columns(table, false, v5)
                    .header(20.0, |mut h| message_header(&mut h, false, v5))
                    .body(|body| {
                        body.rows(18.0, found.len(), |mut row| {
                            let (_, e) = &found[row.index()];
                            leading_cells(&mut row, e, broker);
                            format::message_cells(&mut row, e, 160, v5);
                        });
                    });
            });
        ui.separator();
    }

    /// The in-memory capture's matching messages, following the tail.
    fn live_ui(&mut self, ui: &mut egui::Ui, capture: &Capture) {
        self.refresh(capture);
        ui.label(
            RichText::new(format!(
                "{} messages",
                format::count(self.rows.len() as u64)
            ))
            .weak(),
        );
        let rows = &self.rows;
        let broker = self.broker;
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
                message_columns(table, true, v5)
                    .header(20.0, |mut h| message_header(&mut h, true, v5))
                    .body(|body| {
                        body.rows(18.0, rows.len(), |mut row| {
                            let seq = rows[row.index()];
                            let Some(e) = capture.get(seq) else {
                                return;
                            };
                            row.set_selected(highlight == Some(seq));
                            leading_cells(&mut row, e, broker);
                            row.col(|ui| {
                                // Publish → delivery: when the broker delivered what a client published.
                                let latency = (e.dir == Direction::BrokerToClient)
                                    .then(|| capture.origin_of(e).and_then(|o| capture.get(o)))
                                    .flatten()
                                    .map(|o| e.t_us.saturating_sub(o.t_us));
                                if let Some(us) = latency {
                                    ui.label(format!("{:.1} ms", us as f64 / 1000.0))
                                        .on_hover_text(
                                            "from the publish to this delivery, at the tap",
                                        );
                                }
                            });
                            format::message_cells(&mut row, e, 160, v5);
                        });
                    });
            });
    }
}

/// The columns both tables have (the live log adds the latency).
fn message_columns(table: TableBuilder<'_>, latency: bool, v5: bool) -> TableBuilder<'_> {
    table
        .column(Column::exact(96.0))
        .column(Column::exact(24.0))
        .column(Column::initial(150.0).resizable(true))
        .column(Column::initial(200.0).resizable(true))
        .columns(Column::exact(64.0), latency as usize)
        .column(Column::exact(34.0))
        .column(Column::exact(28.0))
        .column(Column::exact(28.0))
        .column(Column::exact(60.0))
        .column(Column::exact(64.0))
        .columns(Column::initial(120.0).resizable(true), v5 as usize)
        .column(Column::remainder())
}

fn message_header(h: &mut egui_extras::TableRow<'_, '_>, latency: bool, v5: bool) {
    let mut head = vec!["Time (UTC)", "", "Client", "Topic"];
    if latency {
        head.push("Latency");
    }
    head.extend(["QoS", "Ret", "Dup", "Size", "Network"]);
    format::header_cells(h, &format::message_headers(&head, v5));
}

/// Time, direction, client and topic (right-click: copy as mosquitto_pub).
fn leading_cells(
    row: &mut egui_extras::TableRow<'_, '_>,
    e: &WireEvent,
    broker: Option<std::net::SocketAddr>,
) {
    row.col(|ui| {
        ui.label(format::time_of_day(e.t_us));
    });
    row.col(|ui| {
        let published = e.dir == Direction::ClientToBroker;
        ui.label(if published { "→" } else { "←" })
            .on_hover_text(if published {
                "published by the client"
            } else {
                "delivered to the client"
            });
    });
    row.col(|ui| {
        ui.label(&*e.client_id);
    });
    row.col(|ui| {
        ui.label(e.topic.as_deref().unwrap_or_default())
            .on_hover_text("Right-click: copy as a mosquitto_pub command")
            .context_menu(|ui| {
                if ui.button("Copy as mosquitto_pub command").clicked() {
                    ui.ctx().copy_text(format::mosquitto_pub(e, broker));
                    ui.close();
                }
            });
    });
}
