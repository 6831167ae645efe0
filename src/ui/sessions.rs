//! Session inspector: every client the tap has seen, connected or not.

use std::sync::Arc;

use egui::RichText;
use egui_extras::{Column, TableBuilder};

use super::devices::{shown_state, state_color};
use super::format;
use super::theme;
use crate::capture::{Capture, Session, SessionEventKind};
use crate::command::Command;
use crate::fault::{DeviceAction, Target};
use crate::model::DeviceList;

#[derive(Default)]
pub struct SessionsPanel {
    filter: String,
    pub selected: Option<String>,
    only_connected: bool,
    /// Every client id in natural order (car-2 before car-10), re-sorted only when clients appear.
    /// The capture's own keys (shared, not copied).
    order: Vec<Arc<str>>,
    order_key: (usize, u64),
    /// The ids shown, cached by (order, filter, connected-only, connection changes).
    shown: Vec<Arc<str>>,
    shown_key: Option<((usize, u64), String, bool, u64)>,
}

impl SessionsPanel {
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        capture: &Capture,
        devices: &DeviceList,
        out: &mut Vec<Command>,
    ) {
        egui::Panel::right("session-detail")
            .resizable(true)
            .default_size(460.0)
            .size_range(320.0..=900.0)
            .show(ui, |ui| {
                match self
                    .selected
                    .as_ref()
                    .and_then(|id| capture.sessions.get(id.as_str()))
                {
                    Some(s) => detail_ui(ui, capture, s, devices, out),
                    None => {
                        ui.weak("Select a client to see its will, subscriptions and history.");
                    }
                }
            });
        egui::CentralPanel::default().show(ui, |ui| {
            failed_ui(ui, capture);
            self.table_ui(ui, capture, devices)
        });
    }

    fn table_ui(&mut self, ui: &mut egui::Ui, capture: &Capture, devices: &DeviceList) {
        ui.horizontal(|ui| {
            ui.label(RichText::new(format!("Clients ({})", capture.sessions.len())).strong());
            ui.add(
                egui::TextEdit::singleline(&mut self.filter)
                    .hint_text("Filter by client id")
                    .desired_width(200.0),
            );
            ui.checkbox(&mut self.only_connected, "connected only");
        });
        let f = self.filter.to_lowercase();
        let order_key = (capture.sessions.len(), capture.clears);
        if self.order_key != order_key {
            self.order = capture.sessions.keys().cloned().collect();
            self.order.sort_by_cached_key(|id| format::natural_key(id));
            self.order_key = order_key;
        }
        let connected_changes = if self.only_connected {
            capture.session_changes
        } else {
            0
        };
        let shown_key = (order_key, f.clone(), self.only_connected, connected_changes);
        if self.shown_key.as_ref() != Some(&shown_key) {
            let only_connected = self.only_connected;
            self.shown = self
                .order
                .iter()
                .filter(|id| f.is_empty() || id.to_lowercase().contains(&f))
                .filter(|id| {
                    !only_connected || capture.sessions.get(*id).is_some_and(|s| s.connected)
                })
                .cloned()
                .collect();
            self.shown_key = Some(shown_key);
        }
        let ids = &self.shown;
        // A click anywhere on a row selects it (a selectable label would take it).
        ui.style_mut().interaction.selectable_labels = false;
        ui.style_mut().wrap_mode = Some(egui::TextWrapMode::Truncate);
        TableBuilder::new(ui)
            .id_salt("sessions")
            .striped(true)
            .sense(egui::Sense::click())
            .column(Column::exact(18.0))
            .column(Column::initial(180.0).resizable(true))
            // Room for "3.1.1 WSS".
            .column(Column::exact(72.0))
            .column(Column::exact(84.0))
            .column(Column::exact(70.0))
            .column(Column::exact(44.0))
            .column(Column::exact(60.0))
            .column(Column::exact(60.0))
            .column(Column::remainder())
            .header(20.0, |mut h| {
                format::header_cells(
                    &mut h,
                    &[
                        "",
                        "Client",
                        "MQTT",
                        "Session",
                        "Keepalive",
                        "Subs",
                        "Sent",
                        "Recv",
                        "Last event",
                    ],
                )
            })
            .body(|body| {
                body.rows(18.0, ids.len(), |mut row| {
                    let Some(s) = capture.sessions.get(&ids[row.index()]) else {
                        return;
                    };
                    row.set_selected(self.selected.as_deref() == Some(&s.client_id));
                    let state = shown_state(devices, Some(s), &s.client_id);
                    row.col(|ui| {
                        ui.label(RichText::new("●").color(state_color(state)));
                    });
                    row.col(|ui| {
                        ui.label(&s.client_id);
                    });
                    row.col(|ui| {
                        let (mark, hover) = match s.scheme() {
                            "wss" => (" WSS", "over WebSockets over TLS (wss://)"),
                            "ws" => (" WS", "over WebSockets (ws://)"),
                            "tls" => (" TLS", "over TLS"),
                            _ => ("", "over TCP"),
                        };
                        ui.label(format!("{}{mark}", protocol_name(s.protocol)))
                            .on_hover_text(hover);
                    });
                    row.col(|ui| {
                        ui.label(if s.clean_session {
                            "clean"
                        } else {
                            "persistent"
                        });
                    });
                    row.col(|ui| {
                        if s.keep_alive_s == 0 {
                            ui.label("none");
                        } else {
                            ui.label(format!("{} s", s.keep_alive_s));
                        }
                    });
                    row.col(|ui| {
                        ui.label(s.subscriptions.len().to_string());
                    });
                    row.col(|ui| {
                        ui.label(format::count(s.published));
                    });
                    row.col(|ui| {
                        ui.label(format::count(s.received));
                    });
                    row.col(|ui| {
                        ui.label(s.history.back().map(event_text).unwrap_or_default());
                    });
                    if row.response().clicked() {
                        self.selected = Some(s.client_id.clone());
                    }
                });
            });
    }
}

/// "3.1.1", "5", or "—" before a CONNECT was seen.
/// The TLS session and WebSocket request of a session's connection.
fn link_facts_ui(ui: &mut egui::Ui, link: Option<&crate::wire::LinkInfo>) {
    let Some(link) = link else {
        return;
    };
    if let Some(t) = &link.tls {
        ui.weak("TLS");
        ui.label(format!("{} · {}", t.version, t.cipher));
        ui.end_row();
        ui.weak("SNI");
        ui.label(t.sni.as_deref().unwrap_or("(none sent)"));
        ui.end_row();
        if let Some(c) = &t.client_cert {
            ui.weak("client certificate");
            ui.label(c);
            ui.end_row();
        }
    }
    if let Some(w) = &link.ws {
        ui.weak("WebSocket");
        ui.label(format!(
            "{} · subprotocol {}",
            w.path,
            w.subprotocol.as_deref().unwrap_or("(none offered)")
        ));
        ui.end_row();
        for (name, v) in [("origin", &w.origin), ("user agent", &w.user_agent)] {
            if let Some(v) = v {
                ui.weak(name);
                ui.label(v);
                ui.end_row();
            }
        }
    }
}

/// Connections that ended before a CONNECT, newest first, with why.
fn failed_ui(ui: &mut egui::Ui, capture: &Capture) {
    if capture.failed_total == 0 {
        return;
    }
    let title = RichText::new(format!(
        "Failed connections ({})",
        crate::ui::format::count(capture.failed_total)
    ))
    .color(crate::ui::theme::WARN);
    egui::CollapsingHeader::new(title)
        .id_salt("failed-connections")
        .default_open(true)
        .show(ui, |ui| {
            egui::ScrollArea::vertical()
                .id_salt("failed-scroll")
                .max_height(140.0)
                .show(ui, |ui| {
                    for f in capture.failed_connections.iter().rev() {
                        ui.horizontal_wrapped(|ui| {
                            ui.monospace(crate::ui::format::time_of_day(f.t_us));
                            ui.label(f.origin());
                            ui.label(RichText::new(f.why()).color(crate::ui::theme::ERROR));
                        });
                    }
                });
        });
    ui.separator();
}

fn protocol_name(level: u8) -> &'static str {
    match level {
        3 => "3.1",
        4 => "3.1.1",
        5 => "5",
        _ => "—",
    }
}

fn event_text(e: &crate::capture::SessionEvent) -> String {
    let what = match &e.kind {
        SessionEventKind::Connected {
            session_present,
            clean_session,
        } => format!(
            "connected ({}{})",
            if *clean_session {
                "clean"
            } else {
                "persistent"
            },
            if *session_present {
                ", session present"
            } else {
                ""
            }
        ),
        SessionEventKind::Refused(code) => format!("refused (CONNACK code {code})"),
        SessionEventKind::Disconnected(r) => r.label(),
    };
    format!("{}  {what}", format::time_of_day(e.t_us))
}

fn detail_ui(
    ui: &mut egui::Ui,
    capture: &Capture,
    s: &Session,
    devices: &DeviceList,
    out: &mut Vec<Command>,
) {
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading(&s.client_id);
                let kind = if devices.is_virtual(&s.client_id) {
                    "virtual device"
                } else {
                    "external client"
                };
                ui.weak(kind);
            });
            ui.horizontal(|ui| {
                let (c, t) = if s.connected {
                    (theme::OK, "connected")
                } else {
                    (theme::ERROR, "offline")
                };
                ui.label(RichText::new(format!("● {t}")).color(c));
                if s.connected
                    && ui
                        .button("Drop")
                        .on_hover_text("Cut the connection: the will fires")
                        .clicked()
                {
                    out.push(Command::Device(
                        Target::Device(s.client_id.clone()),
                        DeviceAction::Drop,
                    ));
                }
            });
            facts_ui(ui, s);
            will_ui(ui, capture, s);
            state_ui(ui, capture, s);
        });
}

/// The session's settings and counts, one per row.
fn facts_ui(ui: &mut egui::Ui, s: &Session) {
    egui::Grid::new("session-facts")
        .num_columns(2)
        .spacing([12.0, 4.0])
        .show(ui, |ui| {
            ui.weak("session");
            ui.label(if s.clean_session {
                "clean (discarded on disconnect)"
            } else {
                "persistent (kept while offline)"
            });
            ui.end_row();
            ui.weak("protocol");
            ui.label(format!("MQTT {}", protocol_name(s.protocol)));
            ui.end_row();
            for (what, props) in [("CONNECT", &s.connect_props), ("CONNACK", &s.connack_props)] {
                if let Some(p) = props {
                    ui.weak(what);
                    ui.add(egui::Label::new(p.summary()).wrap());
                    ui.end_row();
                }
            }
            ui.weak("keepalive");
            if s.keep_alive_s == 0 {
                ui.label("none (0): the broker never times this client out");
            } else {
                ui.label(format!(
                    "{} s (broker gives up after {:.0} s of silence)",
                    s.keep_alive_s,
                    s.keep_alive_s as f64 * 1.5
                ));
            }
            ui.end_row();
            ui.weak("peer");
            let peer = match s.peer {
                Some(p) if p == crate::wire::IN_PROCESS_PEER => "in-process".into(),
                Some(p) => p.to_string(),
                None => "—".into(),
            };
            ui.label(match s.scheme() {
                "wss" => format!("{peer} over WebSockets over TLS"),
                "ws" => format!("{peer} over WebSockets"),
                "tls" => format!("{peer} over TLS"),
                _ => peer,
            });
            ui.end_row();
            link_facts_ui(ui, s.link.as_deref());
            if let Some(u) = &s.username {
                ui.weak("username");
                ui.label(u);
                ui.end_row();
            }
            ui.weak("messages");
            ui.label(format!("{} sent, {} received", s.published, s.received));
            ui.end_row();
            if s.from_offline_queue > 0 {
                ui.weak("offline queue");
                ui.label(format!(
                    "{} delivered on this connection were queued while it was offline",
                    s.from_offline_queue
                ));
                ui.end_row();
            }
        });
}

/// The will it registered, and whether it fired.
fn will_ui(ui: &mut egui::Ui, capture: &Capture, s: &Session) {
    ui.add_space(theme::GAP);
    ui.label(RichText::new("Last will").strong());
    match &s.will {
        Some(w) => {
            egui::Grid::new("will").num_columns(2).show(ui, |ui| {
                ui.weak("topic");
                ui.label(&w.topic);
                ui.end_row();
                ui.weak("payload");
                ui.label(format::preview(&w.payload, 80));
                ui.end_row();
                ui.weak("QoS / retain");
                ui.label(format!(
                    "{} / {}",
                    w.qos,
                    if w.retain { "retained" } else { "not retained" }
                ));
                ui.end_row();
            });
            let fired = capture.topics.get(&w.topic).map_or(0, |t| t.wills);
            if fired > 0 {
                ui.colored_label(
                    theme::ERROR,
                    format!("will delivered {fired} time(s) on {}", w.topic),
                );
            }
        }
        None => {
            ui.weak("none");
        }
    }
}

/// Subscriptions, messages in flight, the broker's deviations and the
/// connection history.
fn state_ui(ui: &mut egui::Ui, capture: &Capture, s: &Session) {
    ui.add_space(theme::GAP);
    ui.label(RichText::new(format!("Subscriptions ({})", s.subscriptions.len())).strong());
    egui::Grid::new("subs")
        .num_columns(3)
        .striped(true)
        .show(ui, |ui| {
            ui.weak("filter");
            ui.weak("requested");
            ui.weak("granted");
            ui.end_row();
            for (f, sub) in &s.subscriptions {
                ui.label(f);
                ui.label(format!("QoS {}", sub.requested_qos));
                ui.label(match sub.granted_qos {
                    None => "pending".to_string(),
                    Some(None) => "refused".to_string(),
                    Some(Some(q)) => format!("QoS {q}"),
                });
                ui.end_row();
            }
        });
    ui.add_space(theme::GAP);
    let mut inflight: Vec<_> = capture.flows.in_flight(&s.client_id).collect();
    inflight.sort_by_key(|f| f.id);
    ui.label(RichText::new(format!("Messages in flight ({})", inflight.len())).strong());
    for f in inflight.iter().rev().take(20) {
        ui.label(format!(
            "{} QoS {} pkid {} on {} — {} ({})",
            if f.leg == crate::wire::Direction::ClientToBroker {
                "→ broker"
            } else {
                "→ client"
            },
            f.qos,
            f.pkid,
            f.topic,
            f.step_names().join(" → "),
            f.state.label()
        ));
    }
    if !s.deviations.is_empty() {
        ui.add_space(theme::GAP);
        ui.label(
            RichText::new(format!(
                "Broker deviations from the spec ({})",
                s.deviations.len()
            ))
            .strong(),
        );
        for d in s.deviations.iter().rev().take(10) {
            ui.colored_label(
                theme::WARN,
                format!("! {}  {}", format::time_of_day(d.t_us), d.text),
            );
        }
    }
    ui.add_space(theme::GAP);
    ui.label(RichText::new("Connection history").strong());
    for e in s.history.iter().rev() {
        let text = event_text(e);
        match &e.kind {
            SessionEventKind::Disconnected(r) if r.fires_will() => {
                ui.colored_label(theme::ERROR, format!("{text} — will fires"));
            }
            _ => {
                ui.label(text);
            }
        }
    }
}
