//! The desktop window (eframe/egui). Panels read the [`Model`](crate::model::Model)
//! and push [`Command`](crate::command::Command)s; nothing here touches a
//! socket or waits for the engine, which runs on a runtime owned by `main`.

mod app;
mod checks;
mod command_handling;
mod commands;
mod contract;
mod devices;
mod faults;
mod format;
mod frame_bench;
mod log;
mod map;
mod menu;
mod modals;
mod payload;
mod publish;
mod qos;
mod query;
mod sessions;
mod settings;
mod sparkplug;
mod status;
mod theme;
mod toasts;
mod topics;
mod traffic;
mod welcome;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub use app::{AppConfig, WorkbenchApp};
pub use commands::{Tab, UiCommand};
pub use frame_bench::FrameBench;
pub use publish::{Draft, PublishMemory, PublishPanel};
pub use settings::Settings;

/// File dialogs behind a seam so tests can answer them.
pub trait Dialogs {
    /// Ask for a scenario file to open.
    fn open_scenario(&mut self) -> DialogResult;
    /// Ask where to save the message log; `default_name` e.g. "mqtt-log.csv".
    fn save_export(&mut self, default_name: &str) -> DialogResult;
    /// Ask for a file whose bytes to publish.
    fn payload_file(&mut self) -> DialogResult {
        DialogResult::Unavailable
    }
    /// Ask for a recorded capture to open.
    fn open_capture(&mut self) -> DialogResult {
        DialogResult::Unavailable
    }
    /// Ask where to save the whole capture.
    fn save_capture(&mut self, _default_name: &str) -> DialogResult {
        DialogResult::Unavailable
    }
    /// Ask where to save a PEM certificate (the generated CA).
    fn save_certificate(&mut self, _default_name: &str) -> DialogResult {
        DialogResult::Unavailable
    }
    /// Ask for the capture database to write (new or existing).
    fn capture_database(&mut self) -> DialogResult {
        DialogResult::Unavailable
    }
    /// Ask for an AsyncAPI document to import.
    fn open_spec(&mut self) -> DialogResult {
        DialogResult::Unavailable
    }
    /// Ask where to write an AsyncAPI document.
    fn save_spec(&mut self, _default_name: &str) -> DialogResult {
        DialogResult::Unavailable
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogResult {
    Picked(PathBuf),
    Cancelled,
    /// No dialog could be shown (no xdg portal and no zenity).
    Unavailable,
}

/// rfd's native dialogs, on the UI thread.
pub struct NativeDialogs;

/// rfd returns None at once when no dialog can open; a person takes longer to cancel.
const NO_DIALOG_THRESHOLD: Duration = Duration::from_millis(150);

fn classify(picked: Option<PathBuf>, started: Instant) -> DialogResult {
    match picked {
        Some(p) => DialogResult::Picked(p),
        None if started.elapsed() < NO_DIALOG_THRESHOLD => DialogResult::Unavailable,
        None => DialogResult::Cancelled,
    }
}

impl Dialogs for NativeDialogs {
    fn open_scenario(&mut self) -> DialogResult {
        let started = Instant::now();
        let mut d = rfd::FileDialog::new().add_filter("Scenario (RON)", &["ron"]);
        if let Some(dir) = crate::sim::scenario_dirs().into_iter().find(|d| d.is_dir()) {
            d = d.set_directory(dir);
        }
        classify(d.pick_file(), started)
    }

    fn save_export(&mut self, default_name: &str) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter("CSV", &["csv"])
            .add_filter("JSON Lines", &["jsonl"])
            .set_file_name(default_name)
            .save_file();
        classify(picked, started)
    }

    fn payload_file(&mut self) -> DialogResult {
        let started = Instant::now();
        classify(rfd::FileDialog::new().pick_file(), started)
    }

    fn open_capture(&mut self) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter(
                "Recorded capture or capture database",
                &["jsonl", "sqlite", "sqlite3", "db"],
            )
            .pick_file();
        classify(picked, started)
    }

    fn save_capture(&mut self, default_name: &str) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter("Recorded capture", &["jsonl"])
            .set_file_name(default_name)
            .save_file();
        classify(picked, started)
    }

    fn open_spec(&mut self) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter("AsyncAPI document", &["yaml", "yml", "json"])
            .pick_file();
        classify(picked, started)
    }

    fn save_spec(&mut self, default_name: &str) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter("AsyncAPI document (YAML)", &["yaml", "yml"])
            .set_file_name(default_name)
            .save_file();
        classify(picked, started)
    }

    fn capture_database(&mut self) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter("Capture database (SQLite)", &["sqlite"])
            .set_file_name("mqtt-capture.sqlite")
            .save_file();
        classify(picked, started)
    }

    fn save_certificate(&mut self, default_name: &str) -> DialogResult {
        let started = Instant::now();
        let picked = rfd::FileDialog::new()
            .add_filter("PEM certificate", &["pem", "crt"])
            .set_file_name(default_name)
            .save_file();
        classify(picked, started)
    }
}

/// Open the window (blocks until it closes).
pub fn run(config: AppConfig) -> anyhow::Result<()> {
    if cfg!(target_os = "linux")
        && std::env::var_os("DISPLAY").is_none_or(|d| d.is_empty())
        && std::env::var_os("WAYLAND_DISPLAY").is_none_or(|d| d.is_empty())
    {
        anyhow::bail!("{}", NO_DISPLAY);
    }
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("MQTT Workbench")
            .with_app_id("mqtt-workbench")
            .with_inner_size([1440.0, 900.0])
            .with_min_inner_size([900.0, 560.0])
            .with_drag_and_drop(true)
            .with_icon(Arc::new(app_icon())),
        persist_window: true,
        ..Default::default()
    };
    eframe::run_native(
        "MQTT Workbench",
        options,
        Box::new(move |cc| Ok(Box::new(WorkbenchApp::new(cc, config)))),
    )
    .map_err(|e| {
        let text = e.to_string();
        if text.contains("display") || text.contains("Display") || text.contains("winit") {
            tracing::debug!("eframe: {text}");
            anyhow::anyhow!("{}", NO_DISPLAY)
        } else {
            anyhow::anyhow!("cannot open the window: {text}")
        }
    })
}

/// What a user without a display reads (and what to run instead).
pub const NO_DISPLAY: &str = "No display found (neither DISPLAY nor WAYLAND_DISPLAY is set), so the window cannot open; \
run headless instead: mqtt-workbench run SCENARIO.ron (or `mqtt-workbench run` for the broker alone)";

fn app_icon() -> egui::IconData {
    let png = include_bytes!("../../assets/icon-256.png");
    eframe::icon_data::from_png_bytes(png).unwrap_or_default()
}
