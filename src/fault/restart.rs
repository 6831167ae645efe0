//! `RestartBroker` (the listeners restart: every client is cut, sessions are
//! kept) and `ColdRestartBroker` (from scratch: sessions, queued and retained
//! messages are lost). Only the embedded broker can be restarted.

use serde::{Deserialize, Serialize};

use super::{Effect, FaultKind};

/// Restart the broker's listeners: every client is cut, sessions are kept.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RestartBroker;

impl FaultKind for RestartBroker {
    fn label(&self) -> String {
        "broker restart (sessions kept)".into()
    }

    fn effect(&self) -> Effect {
        Effect::RestartBroker { cold: false }
    }
}

/// Restart the broker from scratch: sessions, queued and retained messages are lost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ColdRestartBroker;

impl FaultKind for ColdRestartBroker {
    fn label(&self) -> String {
        "broker cold restart (sessions lost)".into()
    }

    fn effect(&self) -> Effect {
        Effect::RestartBroker { cold: true }
    }
}
