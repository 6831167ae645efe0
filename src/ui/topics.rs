//! Topic inspector: a live topic tree with a filter, and for the selected
//! topic its stats, payload viewer, value plot and message history.

use std::collections::{HashMap, HashSet};

use egui::RichText;
use egui_extras::{Column, TableBuilder};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::payload::{self, PayloadView, Shown};
use super::theme;
use crate::codec::Decoders;

use super::format;
use crate::capture::{Capture, TopicStats};
use crate::command::Command;
use crate::wire::Direction;
use crate::wire::topic_matches;

/// Cached numeric series of one (topic, JSON field).
#[derive(Default)]
struct Series {
    /// Store sequence number of the last message looked at.
    next_seq: u64,
    points: Vec<[f64; 2]>,
}

const MAX_SERIES_POINTS: usize = 20_000;

#[derive(Default)]
pub struct TopicsPanel {
    filter: String,
    pub selected: Option<String>,
    /// A message picked in the history table (store sequence number).
    selected_msg: Option<u64>,
    view: PayloadView,
    /// JSON field plotted for the selected topic (None: the whole payload as a number).
    field: Option<String>,
    /// Extra series overlaid on the plot.
    pinned: Vec<(String, Option<String>)>,
    /// Nodes whose open/closed state differs from the default (open above depth 2).
    toggled: HashSet<usize>,
    /// The tree rows shown, cached by (tree structure, clears, filter, toggles).
    rows: Vec<usize>,
    rows_key: Option<(u64, u64, String, u64)>,
    toggles: u64,
    /// The capture's clear count these caches belong to.
    clears: u64,
    /// Retained messages to clear once the user confirms: (where, topics).
    pub confirm_clear: Option<(String, Vec<String>)>,
    series: HashMap<(String, Option<String>), Series>,
    /// Points drawn per series in the last frame (label, count): what the plot shows.
    pub last_plot: Vec<(String, usize)>,
    /// The model's decoders (codec per topic, Sparkplug aliases), as of `decoders_generation`.
    decoders: Decoders,
    decoders_generation: Option<u64>,
}

impl TopicsPanel {
    /// Topics shown on the value plot (the selection and the pinned ones), for the traffic plot.
    pub fn plotted_topics(&self) -> Vec<String> {
        let mut t: Vec<String> = self.pinned.iter().map(|(t, _)| t.clone()).collect();
        if let Some(s) = &self.selected
            && !t.contains(s)
        {
            t.insert(0, s.clone());
        }
        t
    }

    pub fn select(&mut self, topic: &str, capture: &Capture) {
        if self.selected.as_deref() != Some(topic) {
            self.selected = Some(topic.to_string());
            self.selected_msg = None;
            // Plot the first numeric field by default (or the payload itself when it is a number).
            let decoders = &self.decoders;
            self.field = capture.topics.get(topic).and_then(|st| {
                if format::number(&st.last_payload, None).is_some() {
                    None
                } else {
                    // A Sparkplug metric's value, rather than its alias or timestamp.
                    let fields = numeric_fields(decoders, topic, &st.last_payload);
                    fields
                        .iter()
                        .find(|f| f.starts_with("metrics.") && f.ends_with(".value"))
                        .or(fields.first())
                        .cloned()
                }
            });
        }
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        decoders: &Decoders,
        out: &mut Vec<Command>,
    ) {
        // A copy, refreshed when a BIRTH taught new aliases (rare).
        if self.decoders_generation != Some(decoders.generation) {
            self.decoders = decoders.clone();
            self.decoders_generation = Some(decoders.generation);
            self.series.clear();
            // Fields may have new names now (aliases learned from a BIRTH).
            if let Some(topic) = self.selected.take() {
                self.select(&topic, capture);
            }
        }
        self.confirm_clear_ui(ui.ctx(), out);
        // A cleared capture numbers its tree nodes and messages afresh.
        if self.clears != capture.clears {
            self.clears = capture.clears;
            self.series.clear();
            self.toggled.clear();
            self.toggles += 1;
            self.selected_msg = None;
        }
        egui::Panel::left("topic-tree")
            .resizable(true)
            .default_size(380.0)
            .size_range(240.0..=800.0)
            .show(ui, |ui| self.tree_ui(ui, capture));
        egui::CentralPanel::default().show(ui, |ui| match self.selected.clone() {
            Some(topic) => match capture.topics.get(&topic) {
                Some(st) => self.detail_ui(ui, capture, &topic, st),
                None => {
                    ui.weak(format!("{topic}: no longer captured"));
                }
            },
            None => {
                ui.add_space(20.0);
                ui.vertical_centered(|ui| {
                    ui.weak("Select a topic to see its messages, payload and chart.");
                });
            }
        });
    }

    fn is_open(&self, node: usize, depth: u16, filtering: bool) -> bool {
        filtering || ((depth < 2) != self.toggled.contains(&node))
    }

    /// The visible rows of the tree (node indices in display order), rebuilt
    /// only when topics appear, the filter changes or a node opens or closes.
    fn refresh_rows(&mut self, capture: &Capture) {
        let filter = self.filter.trim().to_string();
        let key = (
            capture.tree.structure_changes,
            capture.clears,
            filter.clone(),
            self.toggles,
        );
        if self.rows_key.as_ref() == Some(&key) {
            return;
        }
        let tree = &capture.tree;
        // With a filter: the matching topics and their ancestors.
        let keep: Option<HashSet<usize>> = (!filter.is_empty()).then(|| {
            let lower = filter.to_lowercase();
            let mut keep = HashSet::new();
            for (i, t) in tree.topic_nodes() {
                let hit = if filter.contains(['+', '#']) {
                    topic_matches(t, &filter)
                } else {
                    t.to_lowercase().contains(&lower)
                };
                if hit {
                    keep.insert(i);
                    keep.extend(tree.ancestors(i));
                }
            }
            keep
        });
        let mut rows = Vec::new();
        let mut stack: Vec<usize> = tree.root().ordered.iter().rev().copied().collect();
        while let Some(i) = stack.pop() {
            if keep.as_ref().is_some_and(|k| !k.contains(&i)) {
                continue;
            }
            let Some(node) = tree.node(i) else { continue };
            rows.push(i);
            if self.is_open(i, node.depth, keep.is_some()) {
                stack.extend(node.ordered.iter().rev().copied());
            }
        }
        self.rows = rows;
        self.rows_key = Some(key);
    }

    fn tree_ui(&mut self, ui: &mut egui::Ui, capture: &Capture) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Topics ({})", capture.topics.len())).strong());
        });
        ui.add(
            egui::TextEdit::singleline(&mut self.filter)
                .hint_text("Filter: text, or a topic filter like sensors/+/temp")
                .desired_width(f32::INFINITY),
        );
        ui.separator();
        self.refresh_rows(capture);
        let now = crate::time::now_us();
        let filtering = !self.filter.trim().is_empty();
        if capture.topics.is_empty() {
            ui.weak("No messages yet.");
        }
        let rows = std::mem::take(&mut self.rows);
        let row_h = ui.spacing().interact_size.y;
        egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show_rows(ui, row_h, rows.len(), |ui, range| {
                for &i in &rows[range] {
                    let Some(node) = capture.tree.node(i) else {
                        continue;
                    };
                    ui.horizontal(|ui| {
                        ui.add_space(f32::from(node.depth) * 14.0);
                        if node.children.is_empty() {
                            ui.add_space(18.0);
                        } else {
                            let open = self.is_open(i, node.depth, filtering);
                            let (rect, resp) = ui
                                .allocate_exact_size(egui::vec2(14.0, 14.0), egui::Sense::click());
                            egui::collapsing_header::paint_default_icon(
                                ui,
                                if open { 1.0 } else { 0.0 },
                                &resp.clone().with_new_rect(rect.shrink(2.5)),
                            );
                            if resp.clicked() && !filtering {
                                if !self.toggled.insert(i) {
                                    self.toggled.remove(&i);
                                }
                                self.toggles += 1;
                            }
                            ui.add_space(theme::SMALL_GAP);
                        }
                        match &node.topic {
                            Some(t) => self.topic_row(ui, capture, &node.name, t, now),
                            None => {
                                let response = ui.label(RichText::new(&*node.name).strong());
                                response.context_menu(|ui| {
                                    let retained = retained_under(capture, i);
                                    let path = node_path(capture, i);
                                    if ui
                                        .add_enabled(
                                            !retained.is_empty(),
                                            egui::Button::new(format!(
                                                "Clear retained messages under {path}/… ({})",
                                                retained.len()
                                            )),
                                        )
                                        .clicked()
                                    {
                                        self.confirm_clear = Some((format!("{path}/#"), retained));
                                        ui.close();
                                    }
                                });
                                let plural = if node.topics == 1 { "" } else { "s" };
                                ui.weak(format!(
                                    "({} topic{plural}, {} msgs)",
                                    node.topics, node.total
                                ));
                            }
                        }
                    });
                }
            });
        self.rows = rows;
    }

    /// "Clear N retained messages under …?" with Clear and Cancel.
    fn confirm_clear_ui(&mut self, ctx: &egui::Context, out: &mut Vec<Command>) {
        let Some((place, topics)) = &self.confirm_clear else {
            return;
        };
        let mut close = false;
        egui::Modal::new(egui::Id::unique("clear-retained")).show(ctx, |ui| {
            ui.set_width(440.0);
            ui.heading("Clear retained messages");
            let n = topics.len();
            ui.label(format!(
                "Clear {n} retained message{} on {place}? The workbench's client publishes an \
                 empty retained message to each topic; the broker then forgets it.",
                if n == 1 { "" } else { "s" }
            ));
            for t in topics.iter().take(8) {
                ui.monospace(t);
            }
            if n > 8 {
                ui.weak(format!("… and {} more", n - 8));
            }
            ui.horizontal(|ui| {
                if ui.button(format!("Clear {n}")).clicked() {
                    out.push(Command::ClearRetained(topics.clone()));
                    close = true;
                }
                if ui.button("Cancel").clicked() {
                    close = true;
                }
            });
        });
        if close {
            self.confirm_clear = None;
        }
    }

    fn topic_row(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        name: &str,
        topic: &str,
        now: u64,
    ) {
        let Some(st) = capture.topics.get(topic) else {
            return;
        };
        ui.horizontal(|ui| {
            let selected = self.selected.as_deref() == Some(topic);
            let response = ui
                .selectable_label(selected, RichText::new(name).strong())
                .on_hover_text(topic);
            if response.clicked() {
                self.select(topic, capture);
            }
            if st.retained.is_some() {
                response.context_menu(|ui| {
                    if ui.button("Clear retained message…").clicked() {
                        self.confirm_clear = Some((topic.to_string(), vec![topic.to_string()]));
                        ui.close();
                    }
                });
            }
            if st.retained.is_some() {
                ui.label(RichText::new("R").small().color(theme::WARN))
                    .on_hover_text("The broker holds a retained message on this topic");
            }
            if st.wills > 0 {
                ui.label(RichText::new("will").small().color(theme::ERROR))
                    .on_hover_text(format!("{} will deliveries", st.wills));
            }
            ui.weak(format!("= {}", format::preview(&st.last_payload, 40)));
            let rate = st.rate_per_s(now);
            ui.weak(format!(
                "({}{})",
                st.published + st.broker_originated,
                if rate > 0 {
                    format!(", {rate}/s")
                } else {
                    String::new()
                }
            ));
        });
    }

    fn detail_ui(&mut self, ui: &mut egui::Ui, capture: &Capture, topic: &str, st: &TopicStats) {
        let now = crate::time::now_us();
        ui.horizontal(|ui| {
            ui.heading(topic);
            if ui
                .small_button("Copy")
                .on_hover_text("Copy the topic name")
                .clicked()
            {
                ui.ctx().copy_text(topic.to_string());
            }
        });
        egui::Grid::new("topic-stats")
            .num_columns(8)
            .spacing([18.0, 4.0])
            .show(ui, |ui| {
                ui.weak("published");
                ui.label(format::count(st.published));
                ui.weak("delivered");
                ui.label(format::count(st.delivered));
                ui.weak("rate");
                ui.label(format!("{}/s", st.rate_per_s(now)));
                ui.weak("last QoS");
                ui.label(st.last_qos.to_string());
                ui.end_row();
                ui.weak("retained");
                ui.label(
                    st.retained
                        .as_ref()
                        .map_or("—".to_string(), |r| format::preview(r, 24)),
                );
                ui.weak("wills");
                ui.label(st.wills.to_string());
                ui.weak("last");
                ui.label(if st.last_t_us > 0 {
                    format::time_of_day(st.last_t_us)
                } else {
                    "—".into()
                });
                ui.weak("bytes");
                ui.label(format::bytes(st.bytes));
                ui.end_row();
            });
        ui.separator();
        let payload = self
            .selected_msg
            .and_then(|s| capture.get(s))
            .and_then(|e| e.payload.clone())
            .unwrap_or_else(|| st.last_payload.clone());
        // The message shown, and the one before it in the same direction (for the diff).
        let seq = self.selected_msg.or_else(|| st.history.back().copied());
        let previous = seq
            .and_then(|s| payload::previous_on_topic(capture, &st.history, s))
            .and_then(|p| capture.get(p));
        let avail = ui.available_height();
        ui.columns(2, |cols| {
            let shown = Shown {
                topic,
                payload: &payload,
                selected: self.selected_msg.is_some(),
                previous,
            };
            payload::payload_ui(
                &mut cols[0],
                &mut self.view,
                &self.decoders,
                &shown,
                avail * 0.45,
            );
            self.plot_ui(&mut cols[1], capture, topic, st, avail * 0.45);
        });
        ui.separator();
        self.history_ui(ui, capture, st);
    }

    fn plot_ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        topic: &str,
        st: &TopicStats,
        height: f32,
    ) {
        let fields = numeric_fields(&self.decoders, topic, &st.last_payload);
        let whole_is_number = format::number(&st.last_payload, None).is_some();
        ui.horizontal(|ui| {
            ui.label(RichText::new("Chart").strong());
            let current = self.field.clone().unwrap_or_else(|| "(payload)".into());
            egui::ComboBox::from_id_salt("plot-field")
                .selected_text(current)
                .show_ui(ui, |ui| {
                    if whole_is_number {
                        ui.selectable_value(&mut self.field, None, "(payload)");
                    }
                    for f in &fields {
                        ui.selectable_value(&mut self.field, Some(f.clone()), f);
                    }
                });
            let key = (topic.to_string(), self.field.clone());
            if !self.pinned.contains(&key)
                && ui
                    .button("Pin")
                    .on_hover_text("Keep this series on the chart to compare topics")
                    .clicked()
            {
                self.pinned.push(key);
            }
        });
        let mut remove = None;
        if !self.pinned.is_empty() {
            ui.horizontal_wrapped(|ui| {
                for (i, (t, f)) in self.pinned.iter().enumerate() {
                    if ui
                        .small_button(format!("× {}", series_label(t, f.as_deref())))
                        .clicked()
                    {
                        remove = Some(i);
                    }
                }
            });
        }
        if let Some(i) = remove {
            self.pinned.remove(i);
        }
        let mut wanted: Vec<(String, Option<String>)> =
            vec![(topic.to_string(), self.field.clone())];
        for p in &self.pinned {
            if !wanted.contains(p) {
                wanted.push(p.clone());
            }
        }
        // Only the series on the chart are kept.
        self.series.retain(|k, _| wanted.contains(k));
        let columns = (ui.available_width() as usize).max(100);
        let mut lines = Vec::new();
        self.last_plot.clear();
        for (t, f) in wanted {
            let pts = self.series_points(capture, &t, f.as_deref());
            let reduced = reduce(pts, columns);
            let label = series_label(&t, f.as_deref());
            self.last_plot.push((label.clone(), reduced.len()));
            lines.push(Line::new(label, PlotPoints::from(reduced)));
        }
        Plot::new("topic-plot")
            .height(height.max(120.0))
            .legend(Legend::default())
            .x_axis_formatter(|mark, _| {
                format::time_of_day((mark.value * 1e6) as u64)
                    .chars()
                    .take(8)
                    .collect()
            })
            .label_formatter(|pos| {
                Some(match pos {
                    egui_plot::HoverPosition::NearDataPoint {
                        plot_name,
                        position,
                        ..
                    } => {
                        format!(
                            "{plot_name}\n{}  {:.3}",
                            format::time_of_day((position.x * 1e6) as u64),
                            position.y
                        )
                    }
                    egui_plot::HoverPosition::Elsewhere { position } => {
                        format!(
                            "{}  {:.3}",
                            format::time_of_day((position.x * 1e6) as u64),
                            position.y
                        )
                    }
                })
            })
            .show(ui, |plot_ui| {
                for l in lines {
                    plot_ui.line(l);
                }
            });
    }

    /// Points of (topic, field), updated incrementally from the store.
    fn series_points(
        &mut self,
        capture: &Capture,
        topic: &str,
        field: Option<&str>,
    ) -> &[[f64; 2]] {
        let s = self
            .series
            .entry((topic.to_string(), field.map(str::to_string)))
            .or_default();
        if let Some(st) = capture.topics.get(topic) {
            // The history is in order: start at the first message not seen yet.
            let from = st.history.partition_point(|&q| q < s.next_seq);
            for &seq in st.history.range(from..) {
                if let Some(e) = capture.get(seq)
                    && let Some(v) = e
                        .payload
                        .as_deref()
                        .and_then(|p| number(&self.decoders, topic, p, field))
                {
                    s.points.push([e.t_us as f64 / 1e6, v]);
                }
            }
            s.next_seq = capture.end_seq();
        }
        if s.points.len() > MAX_SERIES_POINTS {
            let cut = s.points.len() - MAX_SERIES_POINTS;
            s.points.drain(..cut);
        }
        &s.points
    }

    fn history_ui(&mut self, ui: &mut egui::Ui, capture: &Capture, st: &TopicStats) {
        // Newest first, without copying: entries before the store's first
        // sequence number were evicted (the history is trimmed lazily).
        let history = &st.history;
        let stale = history.partition_point(|&q| q < capture.first_seq());
        let shown = history.len() - stale;
        ui.label(RichText::new(format!("History ({shown} stored)")).strong());
        let row_h = 18.0;
        // A click anywhere on a row selects it (a selectable label would take it).
        ui.style_mut().interaction.selectable_labels = false;
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        let v5 = capture.v5_frames > 0;
        TableBuilder::new(ui)
            .id_salt("topic-history")
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::exact(96.0))
            .column(Column::initial(150.0).resizable(true))
            .column(Column::exact(36.0))
            .column(Column::exact(30.0))
            .column(Column::exact(30.0))
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
                            "Client",
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
                body.rows(row_h, shown, |mut row| {
                    let seq = history[history.len() - 1 - row.index()];
                    let Some(e) = capture.get(seq) else { return };
                    row.set_selected(self.selected_msg == Some(seq));
                    row.col(|ui| {
                        ui.label(format::time_of_day(e.t_us));
                    });
                    row.col(|ui| {
                        let who = if e.dir == Direction::BrokerToClient {
                            format!("broker → {}", e.client_id)
                        } else {
                            e.client_id.to_string()
                        };
                        ui.label(who);
                    });
                    format::message_cells(&mut row, e, 120, v5);
                    if row.response().clicked() {
                        self.selected_msg = if self.selected_msg == Some(seq) {
                            None
                        } else {
                            Some(seq)
                        };
                    }
                });
            });
    }
}

fn series_label(topic: &str, field: Option<&str>) -> String {
    match field {
        Some(f) => format!("{topic} · {f}"),
        None => topic.to_string(),
    }
}

/// Topics under tree node `i` whose retained message the broker holds.
pub fn retained_under(capture: &Capture, i: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![i];
    while let Some(n) = stack.pop() {
        let Some(node) = capture.tree.node(n) else {
            continue;
        };
        if let Some(t) = &node.topic
            && capture
                .topics
                .get(&**t)
                .is_some_and(|st| st.retained.is_some())
        {
            out.push(t.to_string());
        }
        stack.extend(node.children.values().copied());
    }
    out.sort();
    out
}

/// The topic path of tree node `i` ("drones/drone-1").
fn node_path(capture: &Capture, i: usize) -> String {
    let tree = &capture.tree;
    let mut parts: Vec<&str> = tree
        .ancestors(i)
        .into_iter()
        .filter_map(|a| tree.node(a).map(|n| &*n.name))
        .collect();
    if let Some(n) = tree.node(i) {
        parts.push(&n.name);
    }
    parts.join("/")
}

/// Reduce to about two points (min and max) per pixel column.
pub fn reduce(points: &[[f64; 2]], columns: usize) -> Vec<[f64; 2]> {
    if points.len() <= columns * 2 {
        return points.to_vec();
    }
    let (x0, x1) = (points[0][0], points[points.len() - 1][0]);
    let width = (x1 - x0).max(f64::EPSILON);
    let mut out = Vec::with_capacity(columns * 2);
    let mut i = 0;
    for c in 0..columns {
        let end_x = x0 + width * (c + 1) as f64 / columns as f64;
        let start = i;
        while i < points.len() && (points[i][0] <= end_x || c == columns - 1) {
            i += 1;
        }
        if i == start {
            continue;
        }
        let bucket = &points[start..i];
        let (mut lo, mut hi) = (bucket[0], bucket[0]);
        for p in bucket {
            if p[1] < lo[1] {
                lo = *p;
            }
            if p[1] > hi[1] {
                hi = *p;
            }
        }
        if lo[0] <= hi[0] {
            out.push(lo);
            if hi != lo {
                out.push(hi);
            }
        } else {
            out.push(hi);
            out.push(lo);
        }
    }
    out
}

/// Numeric fields of a payload, decoded for its topic (JSON, Sparkplug B, CBOR, MessagePack).
fn numeric_fields(decoders: &Decoders, topic: &str, payload: &[u8]) -> Vec<String> {
    decoders
        .decode(topic, payload)
        .map(|v| crate::codec::numeric_fields(&v))
        .unwrap_or_default()
}

/// The number in a payload: the whole payload, or the dotted field of its decoded value.
fn number(decoders: &Decoders, topic: &str, payload: &[u8], field: Option<&str>) -> Option<f64> {
    match field {
        None | Some("") => format::number(payload, None),
        Some(path) => crate::codec::field(&decoders.decode(topic, payload)?, path),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduce_keeps_extremes_and_bounds_count() {
        let pts: Vec<[f64; 2]> = (0..10_000)
            .map(|i| [i as f64, if i == 5000 { 100.0 } else { (i % 7) as f64 }])
            .collect();
        let r = reduce(&pts, 100);
        assert!(r.len() <= 200, "{}", r.len());
        assert!(r.iter().any(|p| p[1] == 100.0), "the spike survives");
        assert!(r.windows(2).all(|w| w[0][0] <= w[1][0]), "x stays sorted");
        assert_eq!(reduce(&pts[..50], 100).len(), 50);
    }
}
