//! MQTT Workbench: an embedded MQTT broker, a wire tap that sees every packet,
//! scenario-driven virtual devices, live inspectors and a headless CLI.
//!
//! The engine (`broker`, `tap`, `sim`, `capture`, `export`, `engine`,
//! `protocol`) and the `model` never import egui; the UI (`ui`) never touches
//! sockets and never blocks. `protocol` (the Command and Event types) is a leaf;
//! `model` applies Events for every consumer: window, CLI, benchmarks, tests.

pub mod bench;
pub mod broker;
pub mod capture;
pub mod checks;
pub mod cli;
pub mod codec;
pub mod command;
pub mod contract;
pub mod database;
pub mod engine;
pub mod event;
pub mod export;
pub mod fault;
pub mod model;
pub mod positions;
pub mod replay;
pub mod scenario;
pub mod sim;
pub mod sparkplug;
pub mod struct_variant;
pub mod sys;
pub mod tap;
pub mod time;
pub mod tls;
pub mod wire;

/// Versions shown in --version and the About dialog.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub mod ui;

/// Locked versions of the main components (from Cargo.lock at build time).
pub mod about {
    pub const RUMQTTD: &str = env!("MQTT_WORKBENCH_RUMQTTD_VERSION");
    pub const RUMQTTC: &str = env!("MQTT_WORKBENCH_RUMQTTC_VERSION");
    pub const EGUI: &str = env!("MQTT_WORKBENCH_EGUI_VERSION");
    pub const EFRAME: &str = env!("MQTT_WORKBENCH_EFRAME_VERSION");

    /// One line for `--version`.
    pub fn long_version() -> String {
        format!(
            "{} (rumqttd {RUMQTTD}, rumqttc {RUMQTTC}, egui {EGUI}, eframe {EFRAME})",
            crate::VERSION
        )
    }
}
