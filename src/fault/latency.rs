//! `Latency(target, ms, jitter_ms, duration)`: added delay on every frame
//! both ways; `duration` ends it (else it stays until cleared).

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, NetFault, Target, for_duration};
use crate::time::Dur;

/// Added delay on every frame both ways; `duration` ends it (else until cleared).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct Latency {
    pub target: Target,
    pub ms: u32,
    #[serde(default)]
    pub jitter_ms: u32,
    #[serde(default)]
    pub duration: Option<Dur>,
}

impl FaultKind for Latency {
    fn label(&self) -> String {
        format!(
            "latency {}±{} ms on {}{}",
            self.ms,
            self.jitter_ms,
            self.target.label(),
            for_duration(&self.duration)
        )
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn effect(&self) -> Effect {
        let (ms, jitter_ms) = (self.ms, self.jitter_ms);
        Effect::Net {
            what: "latency",
            duration: self.duration.map(|d| d.0),
            change: Box::new(move |f: &mut NetFault| {
                f.latency_ms = ms;
                f.jitter_ms = jitter_ms;
            }),
            undo: |f| {
                f.latency_ms = 0;
                f.jitter_ms = 0;
            },
        }
    }
}
