//! `Will(client, published, after, within)`: after `client`'s connection
//! ends the `after` way, its will is (or, `published: false`, is not)
//! delivered to a subscriber within `within` (default 5 s).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window, seconds, text};
use super::spec::VerdictState;
use crate::time::Dur;
use crate::wire::{CloseReason, PacketKind, WireDetail};

/// After `client`'s connection ends the `after` way, its will is (or is
/// not) delivered to a subscriber within `within` (default 5 s).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Will {
    pub client: String,
    #[serde(default = "yes")]
    pub published: bool,
    #[serde(default)]
    pub after: DisconnectKind,
    #[serde(default = "five_seconds")]
    pub within: Dur,
}

fn yes() -> bool {
    true
}

fn five_seconds() -> Dur {
    Dur::secs(5)
}

/// How a connection ended, for [`Will`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
pub enum DisconnectKind {
    /// Without DISCONNECT: dropped, timed out, closed by a fault.
    #[default]
    Abrupt,
    /// With DISCONNECT.
    Graceful,
    Any,
}

impl CheckKind for Will {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.client(&self.client)
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Watching {
            spec: self.clone(),
            will: None,
            deadline_us: None,
        })
    }
}

struct Watching {
    spec: Will,
    /// The client's will (topic, payload) from its last CONNECT.
    will: Option<(String, Bytes)>,
    /// When the window closes, once the connection ended the awaited way.
    deadline_us: Option<u64>,
}

impl Evaluate for Watching {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        let ev = f.ev;
        let client = &self.spec.client;
        if f.is_from(client) {
            match (&ev.kind, &ev.detail) {
                (PacketKind::Connect, WireDetail::Connect { will, .. }) => {
                    self.will = will.as_ref().map(|w| (w.topic.clone(), w.payload.clone()));
                }
                (PacketKind::Closed, WireDetail::Closed(reason)) if self.deadline_us.is_none() => {
                    let graceful = *reason == CloseReason::Graceful;
                    let matches = match self.spec.after {
                        DisconnectKind::Abrupt => !graceful,
                        DisconnectKind::Graceful => graceful,
                        DisconnectKind::Any => true,
                    };
                    if matches && self.will.is_some() {
                        self.deadline_us = Some(ev.t_us + self.spec.within.0.as_micros() as u64);
                        w.opened_us = Some(ev.t_us);
                    }
                }
                _ => {}
            }
        }
        if f.delivered
            && let (Some(deadline), Some((wt, wp))) = (self.deadline_us, &self.will)
            && ev.t_us <= deadline
            && **f.topic == **wt
            && f.payload == wp
        {
            let evidence = format!(
                "{client}'s will ({wt} \"{}\") delivered to {} at {:.3} s",
                text(wp),
                ev.client_id,
                w.at(ev.t_us)
            );
            return f.decide(Decision::pass_if(self.spec.published), evidence);
        }
        None
    }

    fn tick(&mut self, now_us: u64, w: &Window) -> Option<Decision> {
        let deadline = self.deadline_us?;
        (now_us > deadline).then(|| {
            let evidence = format!(
                "no will from {} delivered within {} after its connection ended at {:.3} s",
                self.spec.client,
                humantime::format_duration(self.spec.within.0),
                w.at(w.opened_us.unwrap_or(w.start_us))
            );
            Decision::at(Decision::pass_if(!self.spec.published), evidence, now_us)
        })
    }

    fn finish(&mut self, now_us: u64, w: &Window) -> Decision {
        let client = &self.spec.client;
        if self.deadline_us.is_some() {
            // The run ended inside the window: decide on what was seen.
            let evidence = format!(
                "no will from {client} delivered in the {:.1} s between its connection ending and the end of the run",
                seconds(now_us.saturating_sub(w.opened_us.unwrap_or(now_us)))
            );
            Decision::at(Decision::pass_if(!self.spec.published), evidence, now_us)
        } else {
            Decision::at(
                VerdictState::NotTriggered,
                format!("{client}'s connection never ended that way (or it had no will)"),
                now_us,
            )
        }
    }

    fn progress(&self, _w: &Window) -> String {
        match self.deadline_us {
            None => format!("waiting for {}'s connection to end", self.spec.client),
            Some(_) => "window open".into(),
        }
    }
}
