//! `Loss(target, drop_pct, stall_pct, stall_ms, duration)`: `drop_pct` of
//! frames discarded whole, `stall_pct` held `stall_ms` (TCP-style loss).

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, NetFault, Target, for_duration};
use crate::time::Dur;

/// `drop_pct`: frames discarded whole; `stall_pct`: frames held `stall_ms` (TCP-style loss).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Loss {
    pub target: Target,
    #[serde(default)]
    pub drop_pct: f64,
    #[serde(default)]
    pub stall_pct: f64,
    #[serde(default)]
    pub stall_ms: u32,
    #[serde(default)]
    pub duration: Option<Dur>,
}

impl FaultKind for Loss {
    fn label(&self) -> String {
        format!(
            "loss on {}: drop {}%, stall {}% by {} ms{}",
            self.target.label(),
            self.drop_pct,
            self.stall_pct,
            self.stall_ms,
            for_duration(&self.duration)
        )
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn effect(&self) -> Effect {
        let (d, s, ms) = (
            self.drop_pct.clamp(0.0, 100.0),
            self.stall_pct.clamp(0.0, 100.0),
            self.stall_ms,
        );
        Effect::Net {
            what: "loss",
            duration: self.duration.map(|d| d.0),
            change: Box::new(move |f: &mut NetFault| {
                f.drop_pct = d;
                f.stall_pct = s;
                f.stall_ms = ms;
            }),
            undo: |f| {
                f.drop_pct = 0.0;
                f.stall_pct = 0.0;
                f.stall_ms = 0;
            },
        }
    }
}
