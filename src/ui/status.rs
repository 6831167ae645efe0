//! The status bar: broker, clients, rates, what the capture holds and lost,
//! the running scenario, and the window's own cost per frame.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use egui::{Color32, RichText};

use super::format;
use super::theme;
use crate::event::BrokerState;
use crate::model::Model;

/// CPU time of recent frames (logic + ui).
#[derive(Default)]
pub struct FrameStats {
    /// Newest last; at most 240.
    pub recent: VecDeque<Duration>,
    last_log: Option<Instant>,
}

impl FrameStats {
    pub fn push(&mut self, d: Duration) {
        if self.recent.len() >= 240 {
            self.recent.pop_front();
        }
        self.recent.push_back(d);
        // MQTT_WORKBENCH_FRAME_LOG=1 prints frame times every 5 s (for measuring).
        if std::env::var_os("MQTT_WORKBENCH_FRAME_LOG").is_some()
            && self
                .last_log
                .is_none_or(|t| t.elapsed() > Duration::from_secs(5))
        {
            self.last_log = Some(Instant::now());
            let (avg, max) = self.summary();
            eprintln!(
                "frame time over {} frames: avg {avg:.2} ms, max {max:.2} ms",
                self.recent.len()
            );
        }
    }

    /// (average, worst) in milliseconds.
    pub fn summary(&self) -> (f64, f64) {
        let n = self.recent.len().max(1) as f64;
        let avg = self.recent.iter().map(|d| d.as_secs_f64()).sum::<f64>() / n * 1000.0;
        let max = self
            .recent
            .iter()
            .max()
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0);
        (avg, max)
    }
}

pub fn status_ui(ui: &mut egui::Ui, model: &Model, frames: &FrameStats) {
    let now = crate::time::now_us();
    let c = &model.capture;
    ui.horizontal(|ui| {
        let (dot, text, listeners) = broker_text(model);
        let health_why = model.broker_health.as_ref().map(|h| h.why.clone());
        ui.label(RichText::new("●").color(dot));
        let label = ui.label(text);
        match (health_why, listeners) {
            (Some(why), _) => {
                label.on_hover_text(format!("The embedded broker stopped answering: {why}"));
            }
            (None, Some(urls)) => {
                label.on_hover_text(urls);
            }
            (None, None) => {}
        }
        ui.separator();
        let clients = format::count(c.connected_clients() as u64);
        if c.sessions.len() >= c.limits.max_sessions {
            // Past the bound the broker still serves every client; the
            // capture just stops following new ones.
            ui.label(format!("Clients {clients}+"))
                .on_hover_text(format!(
                    "The capture follows {} client sessions (its bound): more are \
                 connected, served and tapped, but not listed. The devices' own \
                 connect count is beside the scenario.",
                    format::count(c.limits.max_sessions as u64)
                ));
        } else {
            ui.label(format!("Clients {clients}"));
        }
        ui.separator();
        ui.label(format!(
            "{} msg/s in · {} msg/s out",
            c.rates.published_per_s(now),
            c.rates.delivered_per_s(now)
        ));
        ui.separator();
        ui.label(format!(
            "captured {} · evicted {}",
            format::count(c.len() as u64),
            format::count(c.evicted)
        ));
        let d = model.drops;
        let drops = RichText::new(format!("dropped {}", format::count(d.total())));
        ui.label(if d.total() > 0 {
            drops.color(theme::ERROR)
        } else {
            drops
        })
        .on_hover_text(format!(
            "Events lost because a queue was full:\n\
                 tap → engine: {} wire events\n\
                 devices → engine: {} state reports\n\
                 engine → window: {} items (the window fell behind)",
            d.tap_queue, d.device_queue, d.consumer
        ));
        database_ui(ui, model);
        let failures = model.devices.failures();
        if failures > 0 {
            ui.label(
                RichText::new(format!("device sends lost {}", format::count(failures)))
                    .color(theme::ERROR),
            )
            .on_hover_text(
                "Publishes and acknowledgements the virtual devices' MQTT clients refused \
                     (request queue full); each device shows its own count",
            );
        }
        ui.separator();
        match &model.scenario {
            Some(r) => {
                let s = r.started.elapsed().as_secs();
                ui.label(format!(
                    "▶ {}  {:02}:{:02}:{:02}",
                    r.info.name,
                    s / 3600,
                    (s / 60) % 60,
                    s % 60
                ))
                .on_hover_text(r.info.path.display().to_string());
                ramp_ui(ui, model);
                if let Some(checks) = model.checks.as_ref().filter(|c| !c.is_empty()) {
                    let passed = checks
                        .verdicts()
                        .filter(|v| v.state == crate::checks::VerdictState::Passed)
                        .count();
                    let failed = checks.failed();
                    let text = RichText::new(format!("checks: {passed} passed, {failed} failed"));
                    ui.label(if failed > 0 {
                        text.color(theme::ERROR)
                    } else {
                        text
                    })
                    .on_hover_text("The scenario's expectations: see the Checks tab (Ctrl+5)");
                }
            }
            None => match &model.opened_capture {
                Some(p) => {
                    ui.label(format!(
                        "Viewing capture {}",
                        p.file_name()
                            .map(|n| n.to_string_lossy())
                            .unwrap_or_default()
                    ))
                    .on_hover_text(p.display().to_string());
                }
                None => {
                    ui.label("No scenario running");
                }
            },
        }
        ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
            let (avg, max) = frames.summary();
            ui.weak(format!("{avg:.1} ms/frame")).on_hover_text(format!(
                "CPU time per frame over the last {} frames: average {avg:.2} ms, max {max:.2} ms",
                frames.recent.len()
            ));
        });
    });
}

/// The broker's part of the bar: its colour, its text, and (running) every
/// listener's URL for the hover.
fn broker_text(model: &Model) -> (Color32, String, Option<String>) {
    let mut listeners = None;
    let (dot, text) = match &model.broker {
        BrokerState::Starting => (theme::WARN, "Broker starting…".to_string()),
        BrokerState::Running {
            public,
            upstream,
            tls,
            ws,
        } => {
            // The plain URL in full; the other listeners by scheme (their
            // URLs are in the hover and the Broker menu), so the bar fits.
            let mut urls = vec![format!("mqtt://{public}")];
            let mut more = Vec::new();
            if let Some(t) = tls {
                urls.push(format!("mqtts://{}", t.addr));
                more.push("mqtts");
            }
            if let Some(u) = &ws.ws {
                urls.push(u.clone());
                more.push("ws");
            }
            if let Some(u) = &ws.wss {
                urls.push(u.clone());
                more.push("wss");
            }
            let text = match more.is_empty() {
                true => format!("Broker {} → {upstream}", urls[0]),
                false => format!("Broker {} + {} → {upstream}", urls[0], more.join(" · ")),
            };
            listeners = Some(format!("{}\nforwarding to {upstream}", urls.join("\n")));
            (theme::OK, text)
        }
        BrokerState::Stopped => (Color32::GRAY, "Broker stopped".to_string()),
        BrokerState::Failed { error, .. } => (theme::ERROR, format!("Broker failed: {error}")),
    };
    // The health probe's news outranks "running": a broker that stopped
    // answering is red until it answers again, then amber with its count.
    let (dot, text) = match &model.broker_health {
        Some(h) if !h.answering => (
            theme::ERROR,
            format!("Broker not answering: restarting (restart #{})", h.restarts),
        ),
        Some(h) => (
            theme::WARN,
            format!("{text} · restarted {}× (it stopped answering)", h.restarts),
        ),
        None => (dot, text),
    };
    (dot, text, listeners)
}

/// While devices wait for their first CONNACK: how many connected, how
/// fast, and (amber) why the waiting ones failed.
fn ramp_ui(ui: &mut egui::Ui, model: &Model) {
    let r = &model.ramp;
    if !r.ramping() {
        return;
    }
    let text = RichText::new(format!(
        "connecting {} / {} · {:.0}/s",
        format::count(r.status.devices - r.status.waiting),
        format::count(r.status.devices),
        r.rate
    ));
    let mut hover = format!(
        "Virtual devices: {} connected now, {} still waiting for their first CONNACK",
        r.status.connected, r.status.waiting
    );
    for (why, n) in &r.status.failing {
        hover.push_str(&format!("\n{n} last failed with: {why}"));
    }
    ui.label(if r.status.failing.is_empty() {
        text
    } else {
        text.color(theme::WARN)
    })
    .on_hover_text(hover);
}

/// The capture database's writer: frames written, size, and what it lost.
fn database_ui(ui: &mut egui::Ui, model: &Model) {
    let Some(db) = model.database.as_ref().filter(|_| model.database_open) else {
        return;
    };
    ui.separator();
    let text = RichText::new(format!(
        "db {} · {:.0} MiB",
        format::count(db.written),
        db.bytes as f64 / (1024.0 * 1024.0)
    ));
    let lost = db.lost();
    ui.label(if lost > 0 {
        text.color(theme::ERROR)
    } else {
        text
    })
    .on_hover_text(format!(
        "Capture database {}\n{} frames written, {} removed by retention\n\
             {} not written ({} dropped: the writer fell behind; {} failed){}",
        db.path.display(),
        db.written,
        db.retired,
        lost,
        db.dropped,
        db.failed,
        db.error
            .as_ref()
            .map(|e| format!("\nlast error: {e}"))
            .unwrap_or_default()
    ));
}
