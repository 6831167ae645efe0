//! The empty workspace: what the broker listens on, and the shipped scenarios
//! to open (read once, on a thread of their own, never per frame).

use std::path::PathBuf;
use std::sync::mpsc;

use egui::RichText;

use super::theme;
use crate::event::BrokerState;
use crate::scenario::Scenario;

/// A shipped scenario as the welcome screen lists it.
#[derive(Debug, Clone)]
pub struct Shipped {
    pub path: PathBuf,
    pub name: String,
    pub about: String,
}

pub struct Welcome {
    loading: Option<mpsc::Receiver<Vec<Shipped>>>,
    shipped: Vec<Shipped>,
}

impl Welcome {
    /// Start reading the shipped scenarios; `wake` repaints when they are in.
    pub fn new(wake: impl Fn() + Send + 'static) -> Welcome {
        let (tx, rx) = mpsc::sync_channel(1);
        let spawned = std::thread::Builder::new()
            .name("shipped-scenarios".into())
            .spawn(move || {
                let list = crate::sim::shipped_scenarios()
                    .into_iter()
                    .map(|path| match Scenario::load(&path) {
                        Ok(s) => Shipped {
                            path,
                            name: s.name,
                            about: s.description,
                        },
                        Err(e) => Shipped {
                            name: path.display().to_string(),
                            about: e.to_string(),
                            path,
                        },
                    })
                    .collect();
                let _ = tx.send(list);
                wake();
            });
        Welcome {
            loading: spawned.ok().map(|_| rx),
            shipped: Vec::new(),
        }
    }

    /// The shipped scenarios read so far (empty until the thread is done).
    pub fn shipped(&mut self) -> &[Shipped] {
        if let Some(rx) = &self.loading
            && let Ok(list) = rx.try_recv()
        {
            self.shipped = list;
            self.loading = None;
        }
        &self.shipped
    }

    /// Draws the screen; returns the scenario clicked, or `Err(())` for "Open scenario…".
    pub fn ui(&mut self, ui: &mut egui::Ui, broker: &BrokerState) -> Option<Result<PathBuf, ()>> {
        let mut picked = None;
        ui.add_space(theme::SECTION_GAP);
        ui.vertical_centered(|ui| {
            ui.heading(RichText::new("MQTT Workbench").size(28.0));
            ui.label("Run a broker and a fleet of virtual devices, and watch MQTT as it happens.");
            ui.add_space(8.0);
            match broker {
                BrokerState::Running { public, .. } => {
                    ui.label(format!(
                        "The broker is listening: connect your own clients to mqtt://{public}"
                    ));
                }
                BrokerState::Starting => {
                    ui.horizontal(|ui| {
                        ui.spinner();
                        ui.label("Starting the broker…");
                    });
                }
                _ => {}
            }
            ui.add_space(16.0);
            ui.label(RichText::new("Open a shipped scenario").strong());
            ui.add_space(theme::SMALL_GAP);
            let loading = self.loading.is_some();
            let shipped = self.shipped().to_vec();
            if shipped.is_empty() {
                ui.label(if loading {
                    "(reading the shipped scenarios…)"
                } else {
                    "(no shipped scenarios found)"
                });
            }
            egui::Grid::new("shipped")
                .num_columns(2)
                .spacing([16.0, 8.0])
                .show(ui, |ui| {
                    for s in &shipped {
                        if ui.button(RichText::new(&s.name).strong()).clicked() {
                            picked = Some(Ok(s.path.clone()));
                        }
                        ui.label(&s.about);
                        ui.end_row();
                    }
                });
            ui.add_space(16.0);
            if ui.button("Open scenario…").clicked() {
                picked = Some(Err(()));
            }
            ui.weak("or drop a .ron file on this window");
        });
        picked
    }
}
