//! `ClearNetwork(target)`: every network fault of the target is removed.

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind, Target};

/// Remove every network fault of a target.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct ClearNetwork {
    pub target: Target,
}

impl FaultKind for ClearNetwork {
    fn label(&self) -> String {
        format!("clear network faults of {}", self.target.label())
    }

    fn target(&self) -> Option<&Target> {
        Some(&self.target)
    }

    fn effect(&self) -> Effect {
        Effect::ClearNetwork
    }
}
