//! Fault injection in the window: network/client fault controls for the
//! selected device or fleet, the fault log (plot markers), and the scenario's
//! timeline with what has fired.

use std::time::Duration;

use egui::RichText;

use super::format;
use super::theme;
use crate::command::Command;
use crate::event::TimelineItem;
use crate::fault::{Fault, NetFault, Target};
use crate::model::FaultLog;

/// Values of the network-fault controls (view state).
pub struct NetControls {
    latency_ms: u32,
    jitter_ms: u32,
    drop_pct: f64,
    stall_pct: f64,
    stall_ms: u32,
    bandwidth: u64,
    partition_s: u64,
    takeover_s: u64,
}

impl Default for NetControls {
    fn default() -> Self {
        NetControls {
            latency_ms: 300,
            jitter_ms: 100,
            drop_pct: 10.0,
            stall_pct: 10.0,
            stall_ms: 500,
            bandwidth: 2048,
            partition_s: 10,
            takeover_s: 5,
        }
    }
}

impl NetControls {
    /// Network and client fault buttons for `target`; pushes `Command::Inject`.
    /// Client faults (acking) are offered only for virtual devices.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        target: &Target,
        virtual_device: bool,
        current: Option<&NetFault>,
        out: &mut Vec<Command>,
    ) {
        ui.horizontal_wrapped(|ui| {
            ui.weak("network:");
            match current {
                Some(f) if !f.is_clear() => {
                    ui.colored_label(theme::WARN, f.describe());
                }
                _ => {
                    ui.weak("no faults");
                }
            }
        });
        self.network_ui(ui, target, out);
        self.client_faults_ui(ui, target, virtual_device, out);
    }

    /// Latency, loss, bandwidth and partition: a value and a button each.
    fn network_ui(&mut self, ui: &mut egui::Ui, target: &Target, out: &mut Vec<Command>) {
        let inject = |out: &mut Vec<Command>, f: Fault| out.push(Command::Inject(f));
        egui::Grid::new(("net-controls", format!("{target:?}")))
            .num_columns(3)
            .spacing([6.0, 4.0])
            .show(ui, |ui| {
                let l = ui.label("Latency");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::DragValue::new(&mut self.latency_ms)
                            .range(0..=60_000)
                            .suffix(" ms"),
                    )
                    .labelled_by(l.id);
                    ui.weak("±");
                    ui.add(
                        egui::DragValue::new(&mut self.jitter_ms)
                            .range(0..=60_000)
                            .suffix(" ms"),
                    )
                    .labelled_by(l.id);
                });
                if ui.button("Set latency").clicked() {
                    inject(
                        out,
                        Fault::Latency(crate::fault::Latency {
                            target: target.clone(),
                            ms: self.latency_ms,
                            jitter_ms: self.jitter_ms,
                            duration: None,
                        }),
                    );
                }
                ui.end_row();
                let l = ui.label("Loss").on_hover_text(
                    "drop: frames discarded whole; stall: frames held, as TCP retransmission does",
                );
                ui.horizontal(|ui| {
                    ui.add(
                        egui::DragValue::new(&mut self.drop_pct)
                            .range(0.0..=100.0)
                            .suffix("% drop"),
                    )
                    .labelled_by(l.id);
                    ui.add(
                        egui::DragValue::new(&mut self.stall_pct)
                            .range(0.0..=100.0)
                            .suffix("% stall"),
                    )
                    .labelled_by(l.id);
                    ui.add(
                        egui::DragValue::new(&mut self.stall_ms)
                            .range(0..=60_000)
                            .suffix(" ms"),
                    )
                    .labelled_by(l.id);
                });
                if ui.button("Set loss").clicked() {
                    inject(
                        out,
                        Fault::Loss(crate::fault::Loss {
                            target: target.clone(),
                            drop_pct: self.drop_pct,
                            stall_pct: self.stall_pct,
                            stall_ms: self.stall_ms,
                            duration: None,
                        }),
                    );
                }
                ui.end_row();
                let l = ui.label("Bandwidth");
                ui.add(
                    egui::DragValue::new(&mut self.bandwidth)
                        .range(1..=1_000_000_000)
                        .suffix(" B/s"),
                )
                .labelled_by(l.id);
                if ui.button("Cap bandwidth").clicked() {
                    inject(
                        out,
                        Fault::Bandwidth(crate::fault::Bandwidth {
                            target: target.clone(),
                            bytes_per_s: self.bandwidth,
                            duration: None,
                        }),
                    );
                }
                ui.end_row();
                let l = ui.label("Partition");
                ui.add(
                    egui::DragValue::new(&mut self.partition_s)
                        .range(1..=3600)
                        .suffix(" s"),
                )
                .labelled_by(l.id);
                ui.horizontal(|ui| {
                    let d = Duration::from_secs(self.partition_s);
                    if ui
                        .button("Hold")
                        .on_hover_text("Nothing passes; delivered when it heals")
                        .clicked()
                    {
                        inject(
                            out,
                            Fault::Partition(crate::fault::Partition {
                                target: target.clone(),
                                duration: crate::time::Dur(d),
                                hold: true,
                            }),
                        );
                    }
                    if ui
                        .button("Cut")
                        .on_hover_text("Nothing passes; discarded")
                        .clicked()
                    {
                        inject(
                            out,
                            Fault::Partition(crate::fault::Partition {
                                target: target.clone(),
                                duration: crate::time::Dur(d),
                                hold: false,
                            }),
                        );
                    }
                });
                ui.end_row();
            });
    }

    /// Half-dead, clear, acking (virtual devices only) and takeover (one client).
    fn client_faults_ui(
        &mut self,
        ui: &mut egui::Ui,
        target: &Target,
        virtual_device: bool,
        out: &mut Vec<Command>,
    ) {
        let inject = |out: &mut Vec<Command>, f: Fault| out.push(Command::Inject(f));
        ui.horizontal_wrapped(|ui| {
            if ui
                .button("Half-dead")
                .on_hover_text("Stop reading: the broker's keepalive expires and the will fires")
                .clicked()
            {
                inject(
                    out,
                    Fault::HalfDead(crate::fault::HalfDead {
                        target: target.clone(),
                        duration: None,
                    }),
                );
            }
            if ui.button("Clear network").clicked() {
                inject(
                    out,
                    Fault::ClearNetwork(crate::fault::ClearNetwork {
                        target: target.clone(),
                    }),
                );
            }
            if virtual_device
                && ui
                    .button("Stop acking")
                    .on_hover_text(
                        "No PUBACK/PUBREC: the broker redelivers with DUP after a reconnect",
                    )
                    .clicked()
            {
                inject(
                    out,
                    Fault::StopAcking(crate::fault::StopAcking {
                        target: target.clone(),
                    }),
                );
            }
            if virtual_device && ui.button("Resume acking").clicked() {
                inject(
                    out,
                    Fault::ResumeAcking(crate::fault::ResumeAcking {
                        target: target.clone(),
                    }),
                );
            }
            if let Target::Device(id) = target
                && ui
                    .button("Takeover")
                    .on_hover_text(format!(
                        "A second client connects as \"{id}\" for {} s",
                        self.takeover_s
                    ))
                    .clicked()
            {
                inject(
                    out,
                    Fault::Takeover(crate::fault::Takeover {
                        client: id.clone(),
                        hold: crate::time::Dur(Duration::from_secs(self.takeover_s)),
                    }),
                );
            }
        });
    }
}

/// The scenario's timeline: each entry, and when it fired.
pub fn timeline_ui(ui: &mut egui::Ui, timeline: &[TimelineItem], log: &FaultLog) {
    ui.strong(format!("Timeline ({} faults)", timeline.len()));
    egui::ScrollArea::vertical()
        .id_salt("timeline")
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for (i, e) in timeline.iter().enumerate() {
                ui.horizontal(|ui| {
                    match log.fired.get(&i) {
                        Some(t) => ui.label(
                            RichText::new(format!("fired {}", format::time_of_day(*t)))
                                .color(theme::WARN),
                        ),
                        None => ui.weak("pending"),
                    };
                    ui.weak(&e.when);
                    ui.label(&e.label);
                });
            }
        });
}
