//! A scenario's timeline: faults scheduled at a time or after a device
//! event. The faults themselves are [`Fault`]s, one kind per file in
//! `src/fault/`, written in the file as the engine runs them.

use serde::{Deserialize, Serialize};

use crate::event::{DeviceState, TimelineItem};
use crate::fault::Fault;
use crate::time::Dur;

/// One scheduled fault: `at` a time after the scenario starts, or `after` a
/// device event ("drone-3 connected", "car-7 offline"), plus an optional `delay`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    #[serde(default)]
    pub at: Option<Dur>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub delay: Dur,
    pub fault: Fault,
}

impl TimelineEntry {
    /// The device event this entry waits for: (client id, state).
    pub fn trigger(&self) -> Option<(String, DeviceState)> {
        let after = self.after.as_deref()?;
        let (id, what) = after.trim().rsplit_once(' ')?;
        use DeviceState::*;
        let state = match what {
            "connected" => Connected,
            "offline" | "disconnected" => Offline,
            "reconnecting" => Reconnecting,
            _ => return None,
        };
        Some((id.trim().to_string(), state))
    }

    /// What the UI shows for this entry.
    pub fn item(&self) -> TimelineItem {
        TimelineItem {
            when: self.when(),
            label: self.fault.label(),
        }
    }

    pub fn when(&self) -> String {
        match (&self.at, &self.after) {
            (Some(at), _) => format!("at {at}"),
            (None, Some(a)) if self.delay.0.is_zero() => format!("after {a}"),
            (None, Some(a)) => format!("{} after {a}", self.delay),
            _ => String::new(),
        }
    }
}
