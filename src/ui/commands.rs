//! Every action the menus, buttons and the keyboard offer, in one table: its
//! label, its shortcut and its tooltip (after rerun's `UICommand`). The table
//! knows nothing of the app; `command_handling.rs` runs the commands and
//! `menu.rs` lays them out.

use std::path::PathBuf;

use egui::{Key, KeyboardShortcut, Modifiers};
use serde::{Deserialize, Serialize};

/// Publishes the publish panel's message.
pub const PUBLISH_SHORTCUT: KeyboardShortcut =
    KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);

/// The commands without an argument, declared once: the enum and
/// [`UiCommand::all`] come from this list.
macro_rules! ui_commands {
    ($($v:ident),* $(,)?) => {
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum UiCommand {
            $($v,)*
            /// Show an inspector tab.
            ShowTab(Tab),
            /// Open this scenario file (File → Open recent, Shipped scenarios).
            OpenScenarioFile(PathBuf),
            /// Dark (true) or light theme.
            SetDark(bool),
        }

        impl UiCommand {
            /// Every command without a file argument: those without an
            /// argument, one per tab, and both themes. Shortcuts are read
            /// from here.
            pub fn all() -> impl Iterator<Item = UiCommand> {
                [$(UiCommand::$v),*]
                    .into_iter()
                    .chain(Tab::ALL.into_iter().map(UiCommand::ShowTab))
                    .chain([UiCommand::SetDark(true), UiCommand::SetDark(false)])
            }
        }
    };
}

ui_commands! {
    Publish,
    TogglePublish,
    OpenScenario,
    StopScenario,
    OpenCapture,
    SaveCapture,
    ToggleCaptureDb,
    ExportLog,
    OpenSpec,
    ExportSpec,
    ClearCapture,
    Quit,
    StartBroker,
    StopBroker,
    RestartBroker,
    ColdRestartBroker,
    ChangePort,
    CopyCaPath,
    SaveCaCertificate,
    CopySubscribeCommand,
    ToggleDevices,
    ToggleTraffic,
    About,
}

impl UiCommand {
    pub fn label(&self) -> String {
        match self {
            UiCommand::Publish => "Publish the message",
            UiCommand::TogglePublish => "Publish panel",
            UiCommand::OpenScenario => "Open scenario…",
            UiCommand::StopScenario => "Stop scenario",
            UiCommand::OpenCapture => "Open capture…",
            UiCommand::SaveCapture => "Save capture…",
            UiCommand::ToggleCaptureDb => "Keep capture in a database…",
            UiCommand::ExportLog => "Export log…",
            UiCommand::OpenSpec => "Open AsyncAPI…",
            UiCommand::ExportSpec => "Export AsyncAPI…",
            UiCommand::ClearCapture => "Clear capture",
            UiCommand::Quit => "Quit",
            UiCommand::StartBroker => "Start",
            UiCommand::StopBroker => "Stop (keeps sessions)",
            UiCommand::RestartBroker => "Restart (keeps sessions)",
            UiCommand::ColdRestartBroker => "Cold restart (loses sessions)",
            UiCommand::ChangePort => "Change port…",
            UiCommand::CopyCaPath => "Copy CA certificate path",
            UiCommand::SaveCaCertificate => "Save CA certificate…",
            UiCommand::CopySubscribeCommand => "Copy a mosquitto_sub command",
            UiCommand::ToggleDevices => "Devices panel",
            UiCommand::ToggleTraffic => "Traffic plot",
            UiCommand::ShowTab(t) => t.label(),
            UiCommand::OpenScenarioFile(p) => return p.display().to_string(),
            UiCommand::SetDark(true) => "Dark",
            UiCommand::SetDark(false) => "Light",
            UiCommand::About => "About MQTT Workbench",
        }
        .to_string()
    }

    pub fn tooltip(&self) -> &'static str {
        match self {
            UiCommand::RestartBroker => {
                "Every client is cut; persistent sessions are kept (session present on reconnect)"
            }
            UiCommand::ColdRestartBroker => {
                "A fresh broker: sessions, queued and retained messages are lost"
            }
            UiCommand::ClearCapture => {
                "Forget every captured message; the broker and the devices keep running"
            }
            UiCommand::ExportLog => "Save the message log as CSV or JSON Lines",
            UiCommand::OpenSpec => {
                "Import an AsyncAPI 3.0 or 2.6 document as a scenario and check every message against it (Contract tab)"
            }
            UiCommand::ExportSpec => {
                "Write an AsyncAPI 3.0 document from the captured traffic: channels, payload schemas, bindings"
            }
            UiCommand::OpenCapture => {
                "Open a recorded capture (run --record, Save capture) for inspection"
            }
            UiCommand::SaveCapture => {
                "Save every frame, both legs, faults and timing: open it again, replay it, test it"
            }
            UiCommand::ToggleCaptureDb => {
                "Write every frame to an SQLite file as it is captured: search all of it, query it with SQL (Query tab)"
            }
            _ => "",
        }
    }

    pub fn shortcut(&self) -> Option<KeyboardShortcut> {
        let cmd = |key| Some(KeyboardShortcut::new(Modifiers::COMMAND, key));
        match self {
            UiCommand::Publish => Some(PUBLISH_SHORTCUT),
            UiCommand::TogglePublish => cmd(Key::P),
            UiCommand::OpenScenario => cmd(Key::O),
            UiCommand::ExportLog => cmd(Key::E),
            UiCommand::ClearCapture => cmd(Key::L),
            UiCommand::Quit => cmd(Key::Q),
            UiCommand::ShowTab(Tab::Topics) => cmd(Key::Num1),
            UiCommand::ShowTab(Tab::Sessions) => cmd(Key::Num2),
            UiCommand::ShowTab(Tab::Qos) => cmd(Key::Num3),
            UiCommand::ShowTab(Tab::Log) => cmd(Key::Num4),
            UiCommand::ShowTab(Tab::Checks) => cmd(Key::Num5),
            UiCommand::ShowTab(Tab::Map) => cmd(Key::Num6),
            UiCommand::ShowTab(Tab::Query) => cmd(Key::Num7),
            UiCommand::ShowTab(Tab::Contract) => cmd(Key::Num8),
            UiCommand::ShowTab(Tab::Sparkplug) => cmd(Key::Num9),
            _ => None,
        }
    }
}

/// The inspector tabs of the central panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    Topics,
    Sessions,
    Qos,
    Log,
    Checks,
    Contract,
    Sparkplug,
    Map,
    Query,
}

impl Tab {
    pub const ALL: [Tab; 9] = [
        Tab::Topics,
        Tab::Sessions,
        Tab::Qos,
        Tab::Log,
        Tab::Checks,
        Tab::Contract,
        Tab::Sparkplug,
        Tab::Map,
        Tab::Query,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Tab::Topics => "Topics",
            Tab::Sessions => "Sessions",
            Tab::Qos => "QoS flows",
            Tab::Log => "Message log",
            Tab::Checks => "Checks",
            Tab::Contract => "Contract",
            Tab::Sparkplug => "Sparkplug",
            Tab::Map => "Map",
            Tab::Query => "Query",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortcuts_are_unique_and_every_command_has_a_label() {
        let mut seen = Vec::new();
        for cmd in UiCommand::all() {
            assert!(!cmd.label().is_empty());
            if let Some(sc) = cmd.shortcut() {
                assert!(!seen.contains(&sc), "{cmd:?} reuses a shortcut");
                seen.push(sc);
            }
        }
    }
}
