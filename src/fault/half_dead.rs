//! `HalfDead(target, duration)`: the tap stops reading the target's
//! connections; the broker's keepalive expires (1.5 × keepalive) and the
//! will fires.

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, NetFault, Target, for_duration};
use crate::time::Dur;

/// The tap stops reading: keepalive expires at the broker, the will fires.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct HalfDead {
    pub target: Target,
    #[serde(default)]
    pub duration: Option<Dur>,
}

impl FaultKind for HalfDead {
    fn label(&self) -> String {
        format!(
            "{} half-dead{}",
            self.target.label(),
            for_duration(&self.duration)
        )
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn effect(&self) -> Effect {
        Effect::Net {
            what: "half-dead",
            duration: self.duration.map(|d| d.0),
            change: Box::new(|f: &mut NetFault| f.stalled = true),
            undo: |f| f.stalled = false,
        }
    }
}
