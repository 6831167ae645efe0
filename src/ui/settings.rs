//! What the window remembers between runs (never the captured traffic).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::commands::Tab;

pub const SETTINGS_VERSION: u32 = 1;
pub const MAX_RECENT: usize = 10;

/// Persisted between runs with eframe's storage.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub version: u32,
    pub port: u16,
    pub dark: bool,
    pub show_devices: bool,
    pub show_traffic: bool,
    pub tab: Tab,
    pub recent: Vec<PathBuf>,
    pub show_publish: bool,
    /// The publish panel's history and snippets.
    pub publish: super::publish::PublishMemory,
    /// The capture database the window writes (off: None), reopened on start.
    pub capture_db: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: SETTINGS_VERSION,
            port: 1883,
            dark: true,
            show_devices: true,
            show_traffic: true,
            tab: Tab::Topics,
            recent: Vec::new(),
            show_publish: false,
            publish: super::publish::PublishMemory::default(),
            capture_db: None,
        }
    }
}

impl Settings {
    /// Put `path` first in the recent list.
    pub fn remember(&mut self, path: &std::path::Path) {
        self.recent.retain(|p| p != path);
        self.recent.insert(0, path.to_path_buf());
        self.recent.truncate(MAX_RECENT);
    }
}
