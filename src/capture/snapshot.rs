//! A snapshot of the capture's stored frames, handed to the engine (save,
//! export) without copying them.

use std::sync::Arc;

use crate::wire::WireEvent;

/// Stored wire events handed to the engine without copying them: shared,
/// immutable chunks of the capture's store, oldest first.
#[derive(Debug, Clone, Default)]
pub struct EventsSnapshot {
    pub chunks: Vec<Arc<Vec<WireEvent>>>,
    /// Events at the front of the first chunk that were already evicted.
    pub skip: usize,
    /// Events in the snapshot.
    pub len: usize,
}

impl EventsSnapshot {
    pub fn iter(&self) -> impl Iterator<Item = &WireEvent> {
        self.chunks
            .iter()
            .flat_map(|c| c.iter())
            .skip(self.skip)
            .take(self.len)
    }
}
