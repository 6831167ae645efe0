//! `Bandwidth(target, bytes_per_s, duration)`: the target's connections
//! carry at most `bytes_per_s` each way.

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, NetFault, Target, for_duration};
use crate::time::Dur;

/// A bandwidth cap on every connection of the target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Bandwidth {
    pub target: Target,
    pub bytes_per_s: u64,
    #[serde(default)]
    pub duration: Option<Dur>,
}

impl FaultKind for Bandwidth {
    fn label(&self) -> String {
        format!(
            "bandwidth {} B/s on {}{}",
            self.bytes_per_s,
            self.target.label(),
            for_duration(&self.duration)
        )
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn effect(&self) -> Effect {
        let bps = self.bytes_per_s;
        Effect::Net {
            what: "bandwidth",
            duration: self.duration.map(|d| d.0),
            change: Box::new(move |f: &mut NetFault| f.bandwidth_bps = bps),
            undo: |f| f.bandwidth_bps = 0,
        }
    }
}
