//! MQTT Workbench: an embedded MQTT broker, a wire tap that sees every packet,
//! scenario-driven virtual devices, live inspectors and a headless CLI.
//!
//! The engine (`broker`, `tap`, `sim`, `capture`, `export`) never imports
//! egui; the UI (`ui`) never touches sockets. See `protocol` for the two
//! message types that cross between them.

pub mod bench;
pub mod broker;
pub mod capture;
pub mod cli;
pub mod engine;
pub mod export;
pub mod protocol;
pub mod sim;
pub mod sys;
pub mod tap;

/// Versions shown in --version and the About dialog.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
pub mod ui;

/// Versions of the main components, for the About dialog.
pub mod about {
    pub const RUMQTTD: &str = "0.20";
    pub const RUMQTTC: &str = "0.25";
    pub const EGUI: &str = "0.37";
}
