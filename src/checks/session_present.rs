//! `SessionPresent(client)`: every reconnect of `client` with a persistent
//! session (Clean Session 0 / Clean Start 0) finds its session.

use serde::{Deserialize, Serialize};

use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window};
use super::spec::VerdictState;
use crate::wire::{PacketKind, WireDetail};

/// Every reconnect of `client` with a persistent session finds its session.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct SessionPresent {
    pub client: String,
}

impl CheckKind for SessionPresent {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.client(&self.client)
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Reconnects {
            client: self.client.clone(),
            connacks: 0,
            persistent: false,
        })
    }
}

struct Reconnects {
    client: String,
    /// Successful CONNACKs seen.
    connacks: u64,
    /// The last CONNECT asked for a persistent session.
    persistent: bool,
}

impl Evaluate for Reconnects {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        if !f.is_from(&self.client) {
            return None;
        }
        match (&f.ev.kind, &f.ev.detail) {
            (PacketKind::Connect, WireDetail::Connect { clean_session, .. }) => {
                self.persistent = !clean_session;
                None
            }
            (
                PacketKind::ConnAck,
                WireDetail::ConnAck {
                    session_present,
                    code: 0,
                },
            ) => {
                self.connacks += 1;
                if self.connacks >= 2 && self.persistent {
                    let evidence = format!(
                        "{} reconnected at {:.3} s: session present = {}",
                        self.client,
                        w.at(f.ev.t_us),
                        *session_present as u8
                    );
                    f.decide(Decision::pass_if(*session_present), evidence)
                } else {
                    None
                }
            }
            _ => None,
        }
    }

    fn finish(&mut self, now_us: u64, _w: &Window) -> Decision {
        Decision::at(
            VerdictState::NotTriggered,
            format!(
                "{} never reconnected with a persistent session",
                self.client
            ),
            now_us,
        )
    }

    fn progress(&self, _w: &Window) -> String {
        format!("waiting for {} to reconnect", self.client)
    }
}
