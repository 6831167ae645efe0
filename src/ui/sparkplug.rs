//! Sparkplug: every Sparkplug B edge node the tap sees (virtual or the
//! user's own) as groups → edge nodes → devices, each online or offline
//! with its `bdSeq`, last `seq`, birth and death times; primary hosts with
//! their STATE. The selected node's or device's metrics (name, alias, type,
//! value, timestamp, engineering units) update live; *Rebirth* sends the
//! node an NCMD `Node Control/Rebirth`, and a value typed in the Write
//! column goes out as an NCMD/DCMD, from the workbench's own client.

use egui::{Color32, RichText};
use egui_extras::{Column, TableBuilder};

use super::{format, theme};
use crate::command::{Command, MessageProperties, PublishRequest, Publisher};
use crate::sparkplug::observe::{MetricView, NodeView, Observer};
use crate::sparkplug::proto::type_name;
use crate::sparkplug::{self as spb, Kind};

/// (group, edge node, device — None for the node itself).
pub type Selection = (String, String, Option<String>);

/// The view's own state: the selection and the values being typed.
#[derive(Default)]
pub struct SparkplugView {
    pub selected: Option<Selection>,
    /// The Write column's text per metric name (of the selection).
    edits: std::collections::HashMap<String, String>,
    /// What the last write did: (is an error, text).
    status: Option<(bool, String)>,
    /// The tree's order ("edge-2" before "edge-10"), kept until the observer's topology moves.
    order: Option<(u64, Order)>,
}

/// Nodes with their devices, and hosts, in natural order.
#[derive(Default)]
struct Order {
    nodes: Vec<((String, String), Vec<String>)>,
    hosts: Vec<String>,
}

impl Order {
    fn of(o: &Observer) -> Order {
        let mut nodes: Vec<((String, String), Vec<String>)> = o
            .nodes
            .iter()
            .map(|(k, n)| {
                let mut devices: Vec<String> = n.devices.keys().cloned().collect();
                devices.sort_by_cached_key(|d| format::natural_key(d));
                (k.clone(), devices)
            })
            .collect();
        nodes.sort_by_cached_key(|((g, n), _)| (format::natural_key(g), format::natural_key(n)));
        let mut hosts: Vec<String> = o.hosts.keys().cloned().collect();
        hosts.sort_by_cached_key(|h| format::natural_key(h));
        Order { nodes, hosts }
    }
}

fn dot(ui: &mut egui::Ui, online: bool) {
    let (color, text) = if online {
        (theme::OK, "●")
    } else {
        (Color32::GRAY, "○")
    };
    ui.label(RichText::new(text).color(color))
        .on_hover_text(if online { "online" } else { "offline" });
}

/// One line of the tree.
enum Row<'a> {
    Group(&'a str),
    Node(&'a str, &'a str, &'a NodeView),
    Device(
        &'a str,
        &'a str,
        &'a str,
        &'a crate::sparkplug::observe::DeviceView,
    ),
    Hosts,
    Host(&'a str, &'a crate::sparkplug::observe::HostView),
}

/// The tree's lines in `order`: each group, its edge nodes and their devices; then the hosts.
fn tree_rows<'a>(o: &'a Observer, order: &'a Order) -> Vec<Row<'a>> {
    let mut rows = Vec::with_capacity(order.nodes.len() + order.hosts.len() + 2);
    let mut group: Option<&str> = None;
    for (key, devices) in &order.nodes {
        let Some(node) = o.nodes.get(key) else {
            continue;
        };
        let (g, n) = (key.0.as_str(), key.1.as_str());
        if group != Some(g) {
            group = Some(g);
            rows.push(Row::Group(g));
        }
        rows.push(Row::Node(g, n, node));
        rows.extend(
            devices
                .iter()
                .filter_map(|d| Some(Row::Device(g, n, d, node.devices.get(d)?))),
        );
    }
    if !order.hosts.is_empty() {
        rows.push(Row::Hosts);
        rows.extend(
            order
                .hosts
                .iter()
                .filter_map(|id| Some(Row::Host(id, o.hosts.get(id)?))),
        );
    }
    rows
}

/// "1 edge node", "2 edge nodes".
fn count(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

fn when(t_us: Option<u64>) -> String {
    t_us.map_or_else(|| "—".into(), format::time_of_day)
}

fn show_u64(v: Option<u64>) -> String {
    v.map_or_else(|| "—".into(), |v| v.to_string())
}

impl SparkplugView {
    pub fn ui(&mut self, ui: &mut egui::Ui, o: &Observer, out: &mut Vec<Command>) {
        if o.nodes.is_empty() && o.hosts.is_empty() {
            ui.add_space(theme::SECTION_GAP);
            ui.vertical_centered(|ui| {
                ui.weak("No Sparkplug B traffic yet.");
                ui.weak(
                    "Edge nodes and primary hosts show here as soon as they publish on spBv1.0/…: \
                     virtual ones (`sparkplug: EdgeNode(…)` in a scenario, see the shipped \
                     Sparkplug scenario) and your own, connected to the workbench's broker.",
                );
            });
            return;
        }
        ui.horizontal(|ui| {
            ui.strong(format!(
                "{} ({} online)",
                count(o.nodes.len() as u64, "edge node"),
                o.online_nodes()
            ));
            ui.separator();
            ui.label(count(o.hosts.len() as u64, "primary host"));
            ui.separator();
            ui.label(count(o.messages, "Sparkplug message"));
            if o.dropped > 0 {
                ui.separator();
                ui.label(
                    RichText::new(format!("{} not kept (bounds)", o.dropped)).color(theme::WARN),
                )
                .on_hover_text("Nodes, devices, metrics or hosts past the view's bounds");
            }
        });
        ui.add_space(theme::SMALL_GAP);
        egui::Panel::left("sparkplug_tree")
            .resizable(true)
            .default_size(300.0)
            .size_range(220.0..=520.0)
            .show(ui, |ui| self.tree_ui(ui, o));
        egui::CentralPanel::default()
            .frame(egui::Frame::NONE.inner_margin(egui::Margin::symmetric(8, 0)))
            .show(ui, |ui| self.detail_ui(ui, o, out));
    }

    /// The tree as rows, only the visible ones drawn (thousands of nodes stay cheap).
    fn tree_ui(&mut self, ui: &mut egui::Ui, o: &Observer) {
        if self.order.as_ref().is_none_or(|(t, _)| *t != o.topology) {
            self.order = Some((o.topology, Order::of(o)));
        }
        let order = self.order.take().unwrap_or_default();
        let rows = tree_rows(o, &order.1);
        let row_height = ui.spacing().interact_size.y + ui.spacing().item_spacing.y;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show_rows(ui, row_height, rows.len(), |ui, range| {
                for row in &rows[range] {
                    match *row {
                        Row::Group(g) => {
                            ui.label(RichText::new(format!("Group {g}")).strong());
                        }
                        Row::Node(g, n, node) => self.node_row_ui(ui, g, n, node),
                        Row::Device(g, n, d, dev) => {
                            ui.horizontal(|ui| {
                                ui.add_space(28.0);
                                dot(ui, dev.online);
                                let picked = self.selected.as_ref().is_some_and(|(sg, sn, sd)| {
                                    sg == g && sn == n && sd.as_deref() == Some(d)
                                });
                                if ui
                                    .selectable_label(picked, d)
                                    .on_hover_ui(|ui| {
                                        ui.label(format!(
                                            "device {d} · born {} · died {}",
                                            when(dev.birth_us),
                                            when(dev.death_us)
                                        ));
                                    })
                                    .clicked()
                                {
                                    self.select(Some((g.into(), n.into(), Some(d.into()))));
                                }
                            });
                        }
                        Row::Hosts => {
                            ui.label(RichText::new("Primary hosts").strong());
                        }
                        Row::Host(id, h) => {
                            ui.horizontal(|ui| {
                                ui.add_space(12.0);
                                dot(ui, h.online);
                                ui.label(id).on_hover_ui(|ui| {
                                    ui.label(format!(
                                        "STATE from client {} at {}; timestamp {}",
                                        h.client,
                                        format::time_of_day(h.t_us),
                                        show_u64(h.timestamp_ms)
                                    ));
                                });
                            });
                        }
                    }
                }
            });
        self.order = Some(order);
    }

    fn node_row_ui(&mut self, ui: &mut egui::Ui, g: &str, n: &str, node: &NodeView) {
        ui.horizontal(|ui| {
            ui.add_space(12.0);
            dot(ui, node.online);
            let picked = self
                .selected
                .as_ref()
                .is_some_and(|(sg, sn, sd)| sg == g && sn == n && sd.is_none());
            if ui
                .selectable_label(picked, n)
                .on_hover_ui(|ui| {
                    ui.label(format!("edge node {n} (client {})", node.client));
                })
                .clicked()
            {
                self.select(Some((g.to_string(), n.to_string(), None)));
            }
            ui.weak(format!(
                "bdSeq {} · seq {}",
                show_u64(node.bd_seq),
                show_u64(node.last_seq)
            ));
        });
    }

    fn select(&mut self, sel: Option<Selection>) {
        if self.selected != sel {
            self.edits.clear();
            self.status = None;
        }
        self.selected = sel;
    }

    fn detail_ui(&mut self, ui: &mut egui::Ui, o: &Observer, out: &mut Vec<Command>) {
        // The first node until the user picks one.
        if self.selected.is_none() {
            self.selected = o
                .nodes
                .keys()
                .next()
                .map(|(g, n)| (g.clone(), n.clone(), None));
        }
        let Some((g, n, dev)) = self.selected.clone() else {
            ui.weak("Pick an edge node or a device on the left.");
            return;
        };
        let Some(node) = o.nodes.get(&(g.clone(), n.clone())) else {
            ui.weak("Pick an edge node or a device on the left.");
            return;
        };
        let device = dev.as_ref().and_then(|d| node.devices.get(d));
        ui.horizontal(|ui| {
            let title = match &dev {
                Some(d) => format!("{g} / {n} / {d}"),
                None => format!("{g} / {n}"),
            };
            ui.heading(title);
            let online = device.map_or(node.online, |d| d.online);
            ui.label(if online {
                RichText::new("online").color(theme::OK).strong()
            } else {
                RichText::new("offline").color(theme::ERROR).strong()
            });
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui
                    .button("Rebirth")
                    .on_hover_text(format!(
                        "Send NCMD {} = true to {n}: it publishes its NBIRTH and every DBIRTH again",
                        spb::REBIRTH
                    ))
                    .clicked()
                {
                    out.push(publish(
                        spb::node_topic(&g, Kind::NCmd, &n),
                        spb::rebirth_payload(crate::time::now_us() / 1000),
                    ));
                }
            });
        });
        let (birth, death) = match device {
            Some(d) => (d.birth_us, d.death_us),
            None => (node.birth_us, node.death_us),
        };
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("bdSeq {}", show_u64(node.bd_seq)));
            ui.separator();
            ui.label(format!("last seq {}", show_u64(node.last_seq)));
            ui.separator();
            ui.label(format!("born {}", when(birth)));
            ui.separator();
            ui.label(format!("died {}", when(death)));
            ui.separator();
            ui.label(format!("client {}", node.client));
            if let Some(asked) = node.rebirth_asked_us {
                ui.separator();
                ui.label(
                    RichText::new(format!("rebirth asked at {}", format::time_of_day(asked)))
                        .color(theme::WARN),
                );
            }
        });
        match &self.status {
            Some((true, e)) => {
                ui.label(RichText::new(e).color(theme::ERROR));
            }
            Some((false, sent)) => {
                ui.weak(sent);
            }
            None => {}
        }
        ui.add_space(theme::SMALL_GAP);
        let metrics = device.map_or(&node.metrics, |d| &d.metrics);
        if metrics.is_empty() {
            ui.weak("No BIRTH seen yet: press Rebirth to ask the node for its metrics.");
            return;
        }
        let topic = match &dev {
            Some(d) => spb::device_topic(&g, Kind::DCmd, &n, d),
            None => spb::node_topic(&g, Kind::NCmd, &n),
        };
        self.metrics_ui(ui, metrics, &topic, out);
    }

    fn metrics_ui(
        &mut self,
        ui: &mut egui::Ui,
        metrics: &[MetricView],
        topic: &str,
        out: &mut Vec<Command>,
    ) {
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        let mut write = None;
        TableBuilder::new(ui)
            .id_salt("sparkplug_metrics")
            .striped(true)
            .column(Column::initial(200.0).at_least(120.0).resizable(true))
            .column(Column::exact(50.0))
            .column(Column::exact(80.0))
            .column(Column::initial(140.0).at_least(80.0).resizable(true))
            .column(Column::exact(96.0))
            .column(Column::exact(60.0))
            .column(Column::remainder().at_least(150.0))
            .header(20.0, |mut h| {
                format::header_cells(
                    &mut h,
                    &[
                        "Metric",
                        "Alias",
                        "Type",
                        "Value",
                        "Timestamp",
                        "Units",
                        "Write",
                    ],
                )
            })
            .body(|body| {
                body.rows(24.0, metrics.len(), |mut row| {
                    let m = &metrics[row.index()];
                    let mut name_id = None;
                    row.col(|ui| {
                        name_id = Some(ui.label(&m.name).id);
                    });
                    row.col(|ui| {
                        ui.monospace(show_u64(m.alias));
                    });
                    row.col(|ui| {
                        ui.label(type_name(m.datatype));
                    });
                    row.col(|ui| {
                        let v = match &m.value {
                            serde_json::Value::String(s) => s.clone(),
                            v => v.to_string(),
                        };
                        ui.monospace(v);
                    });
                    row.col(|ui| {
                        ui.label(
                            m.timestamp_ms
                                .map_or_else(|| "—".into(), |t| format::time_of_day(t * 1000)),
                        );
                    });
                    row.col(|ui| {
                        ui.label(m.units.as_deref().unwrap_or(""));
                    });
                    row.col(|ui| {
                        if m.name == spb::REBIRTH || m.name == "bdSeq" {
                            return;
                        }
                        let text = self.edits.entry(m.name.clone()).or_default();
                        ui.horizontal(|ui| {
                            let mut edit = ui.add(
                                egui::TextEdit::singleline(text)
                                    .desired_width(80.0)
                                    .hint_text("value"),
                            );
                            if let Some(id) = name_id {
                                // Screen readers (and the GUI tests) name the field by its metric.
                                edit = edit.labelled_by(id);
                            }
                            let enter =
                                edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
                            if (ui
                                .small_button("Write")
                                .on_hover_text(format!("Send {topic} writing {}", m.name))
                                .clicked()
                                || enter)
                                && !text.trim().is_empty()
                            {
                                write = Some((m.name.clone(), m.datatype, text.clone()));
                            }
                        });
                    });
                });
            });
        if let Some((name, datatype, text)) = write {
            match spb::parse_value(datatype, &text) {
                Ok(v) => {
                    self.status = Some((
                        false,
                        format!(
                            "sent {topic}: {name} = {} (a writable metric comes back in the next DATA)",
                            text.trim()
                        ),
                    ));
                    let ts = crate::time::now_us() / 1000;
                    out.push(publish(
                        topic.to_string(),
                        spb::write_payload(&name, datatype, v, ts),
                    ));
                }
                Err(e) => self.status = Some((true, format!("{name}: {e}"))),
            }
        }
    }
}

/// A command as the workbench's own client sends it (QoS 0, not retained).
fn publish(topic: String, payload: Vec<u8>) -> Command {
    Command::Publish(PublishRequest {
        from: Publisher::Workbench,
        topic,
        payload: payload.into(),
        qos: 0,
        retain: false,
        properties: MessageProperties::default(),
        payload_file: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tree_lists_ids_in_natural_order() {
        let mut o = Observer::default();
        for n in ["edge-10", "edge-2", "edge-1"] {
            let mut node = NodeView::default();
            for d in ["pump-11", "pump-3"] {
                node.devices.insert(d.into(), Default::default());
            }
            o.nodes.insert(("plant".into(), n.into()), node);
        }
        let order = Order::of(&o);
        let names: Vec<&str> = order.nodes.iter().map(|((_, n), _)| n.as_str()).collect();
        assert_eq!(names, ["edge-1", "edge-2", "edge-10"]);
        assert_eq!(order.nodes[0].1, ["pump-3", "pump-11"]);
        let rows = tree_rows(&o, &order);
        assert!(matches!(rows[0], Row::Group("plant")));
        assert!(matches!(rows[1], Row::Node(_, "edge-1", _)));
        assert!(matches!(rows[2], Row::Device(_, _, "pump-3", _)));
    }
}
