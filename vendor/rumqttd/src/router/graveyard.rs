use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use crate::protocol::{Publish, PublishProperties};

use super::{
    scheduler::{PauseReason, Tracker},
    ConnectionEvents,
};

pub struct Graveyard {
    connections: HashMap<String, SavedState>,
    /// MQTT Workbench patch: when expired sessions were last dropped.
    swept: Instant,
}

impl Graveyard {
    pub fn new() -> Graveyard {
        Graveyard {
            connections: HashMap::new(),
            swept: Instant::now(),
        }
    }

    /// Add a new connection.
    /// Return tracker of previous connection if connection id already exists
    pub fn retrieve(&mut self, id: &str) -> Option<SavedState> {
        let mut saved = self.connections.remove(id)?;
        // MQTT Workbench patch (MQTT 5 §3.1.2.11.2): an expired session is gone.
        if saved
            .session_state
            .as_ref()
            .is_some_and(|s| s.expires.is_some_and(|at| at <= Instant::now()))
        {
            saved.session_state = None;
        }
        Some(saved)
    }

    /// MQTT Workbench patch: drops the state of expired sessions, at most once
    /// a second (a fleet that never comes back must not hold it for ever).
    fn sweep(&mut self) {
        let now = Instant::now();
        if now.duration_since(self.swept) < Duration::from_secs(1) {
            return;
        }
        self.swept = now;
        for saved in self.connections.values_mut() {
            if saved
                .session_state
                .as_ref()
                .is_some_and(|s| s.expires.is_some_and(|at| at <= now))
            {
                saved.session_state = None;
            }
        }
    }

    /// Save connection tracker
    pub fn save_state(
        &mut self,
        mut tracker: Tracker,
        subscriptions: HashSet<String>,
        metrics: ConnectionEvents,
        unacked_pubrels: VecDeque<u16>,
        incoming_qos2: VecDeque<(Publish, Option<PublishProperties>)>,
        expires: Option<Instant>,
        inflight: Vec<(u16, usize, (u64, u64))>,
    ) {
        self.sweep();
        tracker.pause(PauseReason::Busy);
        let id = tracker.id.clone();

        let session_state = SessionState {
            tracker,
            subscriptions,
            unacked_pubrels,
            incoming_qos2,
            expires,
            inflight,
        };

        self.connections.insert(
            id,
            SavedState {
                session_state: Some(session_state),
                metrics,
            },
        );
    }

    /// Save only metrics for connection
    pub fn save_metrics(&mut self, id: String, metrics: ConnectionEvents) {
        self.connections.insert(
            id,
            SavedState {
                session_state: None,
                metrics,
            },
        );
    }
}

#[derive(Debug)]
pub struct SavedState {
    pub session_state: Option<SessionState>,
    pub metrics: ConnectionEvents,
}

#[derive(Debug)]
pub struct SessionState {
    pub tracker: Tracker,
    pub subscriptions: HashSet<String>,
    // used for pubrel in qos2
    pub unacked_pubrels: VecDeque<u16>,
    /// MQTT Workbench patch: QoS 2 messages received (PUBREC sent) and not yet
    /// released by the client's PUBREL.
    pub incoming_qos2: VecDeque<(Publish, Option<PublishProperties>)>,
    /// MQTT Workbench patch: when the session expires (None: never).
    pub expires: Option<Instant>,
    /// MQTT Workbench patch: (packet id, filter, offset) of what was in flight.
    pub inflight: Vec<(u16, usize, (u64, u64))>,
}
