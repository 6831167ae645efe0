//! Topic inspector: a live topic tree with a filter, and for the selected
//! topic its stats, payload viewer, value plot and message history.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::format;
use crate::capture::{Capture, TopicStats, topic_matches};
use crate::protocol::{Command, Direction};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum PayloadView {
    #[default]
    Auto,
    Json,
    Text,
    Hex,
}

#[derive(Default)]
struct TreeNode {
    children: BTreeMap<String, TreeNode>,
    /// Set when this path is itself a topic.
    topic: Option<String>,
    /// Messages in this subtree.
    total: u64,
}

impl TreeNode {
    fn insert(&mut self, topic: &str, count: u64) {
        let mut node = self;
        node.total += count;
        for part in topic.split('/') {
            node = node.children.entry(part.to_string()).or_default();
            node.total += count;
        }
        node.topic = Some(topic.to_string());
    }
}

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
    tree: TreeNode,
    tree_built: Option<(Instant, usize)>,
    series: HashMap<(String, Option<String>), Series>,
    /// Points drawn per series in the last frame (label, count): what the plot shows.
    pub last_plot: Vec<(String, usize)>,
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
            self.field = capture.topics.get(topic).and_then(|st| {
                if format::number(&st.last_payload, None).is_some() {
                    None
                } else {
                    format::numeric_fields(&st.last_payload).into_iter().next()
                }
            });
        }
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, capture: &Capture, _out: &mut Vec<Command>) {
        self.rebuild_tree(capture);
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

    fn rebuild_tree(&mut self, capture: &Capture) {
        // Counts change every frame under load: rebuild at most 4× a second, or when topics appear.
        let fresh = self.tree_built.is_some_and(|(t, n)| {
            n == capture.topics.len() && t.elapsed() < Duration::from_millis(250)
        });
        if fresh {
            return;
        }
        let mut tree = TreeNode::default();
        for (t, st) in &capture.topics {
            tree.insert(t, st.published + st.broker_originated);
        }
        self.tree = tree;
        self.tree_built = Some((Instant::now(), capture.topics.len()));
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
        let now = crate::tap::now_us();
        let filter = self.filter.trim().to_string();
        let tree = std::mem::take(&mut self.tree);
        egui::ScrollArea::both()
            .auto_shrink([false, false])
            .show(ui, |ui| {
                if capture.topics.is_empty() {
                    ui.weak("No messages yet.");
                }
                for (name, node) in &tree.children {
                    self.node_ui(ui, capture, name, node, &filter, now, 0);
                }
            });
        self.tree = tree;
    }

    #[allow(clippy::too_many_arguments)]
    fn node_ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        name: &str,
        node: &TreeNode,
        filter: &str,
        now: u64,
        depth: usize,
    ) {
        if !filter.is_empty() && !subtree_matches(node, filter) {
            return;
        }
        if node.children.is_empty() {
            if let Some(t) = &node.topic {
                self.topic_row(ui, capture, name, t, now);
            }
            return;
        }
        let id = ui.make_persistent_id((
            "topic-node",
            name,
            depth,
            node.topic.as_deref().unwrap_or(""),
            node.children.len() > 0,
            first_key(node),
        ));
        let mut state = egui::collapsing_header::CollapsingState::load_with_default_open(
            ui.ctx(),
            id,
            depth < 2,
        );
        if !filter.is_empty() {
            state.set_open(true);
        }
        state
            .show_header(ui, |ui| match &node.topic {
                Some(t) => self.topic_row(ui, capture, name, t, now),
                None => {
                    ui.label(RichText::new(name).strong());
                    ui.weak(format!(
                        "({} topics, {} msgs)",
                        count_topics(node),
                        node.total
                    ));
                }
            })
            .body(|ui| {
                for (child, n) in &node.children {
                    self.node_ui(ui, capture, child, n, filter, now, depth + 1);
                }
            });
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
            if ui
                .selectable_label(selected, RichText::new(name).strong())
                .on_hover_text(topic)
                .clicked()
            {
                self.select(topic, capture);
            }
            if st.retained.is_some() {
                ui.label(
                    RichText::new("R")
                        .small()
                        .color(Color32::from_rgb(255, 179, 0)),
                )
                .on_hover_text("The broker holds a retained message on this topic");
            }
            if st.wills > 0 {
                ui.label(
                    RichText::new("will")
                        .small()
                        .color(Color32::from_rgb(229, 57, 53)),
                )
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
        let now = crate::tap::now_us();
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
        let avail = ui.available_height();
        ui.columns(2, |cols| {
            self.payload_ui(&mut cols[0], &payload, avail * 0.45);
            self.plot_ui(&mut cols[1], capture, topic, st, avail * 0.45);
        });
        ui.separator();
        self.history_ui(ui, capture, st);
    }

    fn payload_ui(&mut self, ui: &mut egui::Ui, payload: &[u8], height: f32) {
        ui.horizontal(|ui| {
            ui.label(
                RichText::new(if self.selected_msg.is_some() {
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
                ui.selectable_value(&mut self.view, v, label);
            }
            ui.weak(format::bytes(payload.len() as u64));
        });
        let text = match self.view {
            PayloadView::Auto => {
                format::pretty_json(payload).unwrap_or_else(|| match std::str::from_utf8(payload) {
                    Ok(s) => s.to_string(),
                    Err(_) => format::hex_dump(payload),
                })
            }
            PayloadView::Json => format::pretty_json(payload)
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

    fn plot_ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        topic: &str,
        st: &TopicStats,
        height: f32,
    ) {
        let fields = format::numeric_fields(&st.last_payload);
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
            for &seq in st.history.iter().filter(|&&q| q >= s.next_seq) {
                if let Some(e) = capture.get(seq)
                    && let Some(v) = e.payload.as_deref().and_then(|p| format::number(p, field))
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
        let rows: Vec<u64> = st
            .history
            .iter()
            .rev()
            .copied()
            .filter(|&s| capture.get(s).is_some())
            .collect();
        ui.label(RichText::new(format!("History ({} stored)", rows.len())).strong());
        let row_h = 18.0;
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
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
            .column(Column::remainder())
            .header(20.0, |mut h| {
                format::header_cells(
                    &mut h,
                    &[
                        "Time (UTC)",
                        "Client",
                        "QoS",
                        "Ret",
                        "Dup",
                        "Size",
                        "Network",
                        "Payload",
                    ],
                )
            })
            .body(|body| {
                body.rows(row_h, rows.len(), |mut row| {
                    let seq = rows[row.index()];
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
                    format::message_cells(&mut row, e, 120);
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

fn first_key(node: &TreeNode) -> &str {
    node.children.keys().next().map_or("", String::as_str)
}

fn series_label(topic: &str, field: Option<&str>) -> String {
    match field {
        Some(f) => format!("{topic} · {f}"),
        None => topic.to_string(),
    }
}

fn count_topics(node: &TreeNode) -> usize {
    node.topic.is_some() as usize + node.children.values().map(count_topics).sum::<usize>()
}

fn subtree_matches(node: &TreeNode, filter: &str) -> bool {
    let hit = |t: &str| {
        if filter.contains(['+', '#']) {
            topic_matches(t, filter)
        } else {
            t.to_lowercase().contains(&filter.to_lowercase())
        }
    };
    node.topic.as_deref().is_some_and(hit)
        || node.children.values().any(|c| subtree_matches(c, filter))
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
