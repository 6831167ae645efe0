//! `Partition(target, duration, hold)`: nothing passes for `duration`;
//! `hold: true` (the default) delivers it afterwards, `false` discards it.

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, NetFault, PartitionMode, Target};
use crate::time::Dur;

/// Nothing passes for `duration`; `hold` delivers it afterwards, else it is discarded.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct Partition {
    pub target: Target,
    pub duration: Dur,
    #[serde(default = "yes")]
    pub hold: bool,
}

fn yes() -> bool {
    true
}

impl FaultKind for Partition {
    fn label(&self) -> String {
        format!(
            "partition {} for {} ({})",
            self.target.label(),
            humantime::format_duration(self.duration.0),
            if self.hold { "held" } else { "cut" }
        )
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn effect(&self) -> Effect {
        let mode = if self.hold {
            PartitionMode::Hold
        } else {
            PartitionMode::Cut
        };
        Effect::Net {
            what: "partition",
            duration: Some(self.duration.0),
            change: Box::new(move |f: &mut NetFault| f.partition = Some(mode)),
            undo: |f| f.partition = None,
        }
    }
}
