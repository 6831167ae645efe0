//! `QueuedDelivered(client)`: every QoS 1/2 message published on `client`'s
//! subscriptions while it was offline is delivered to it after it comes back.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::MAX_ENTRIES;
use super::kind::{CheckKind, Decision, Evaluate, Frame, Key, Validation, Window, text};
use super::spec::VerdictState;
use crate::wire::{PacketKind, WireDetail, topic_matches};

/// Every QoS 1/2 message published on `client`'s subscriptions while it
/// was offline is delivered to it after it comes back.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct QueuedDelivered {
    pub client: String,
}

impl CheckKind for QueuedDelivered {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.client(&self.client)
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Queue {
            client: self.client.clone(),
            filters: Vec::new(),
            online: false,
            was_offline_with_queue: false,
            waiting: HashMap::new(),
        })
    }
}

struct Queue {
    client: String,
    /// The client's subscriptions.
    filters: Vec<String>,
    online: bool,
    was_offline_with_queue: bool,
    /// Messages waiting for delivery → (seq, t_us) of their publish.
    waiting: HashMap<Key, (u64, u64)>,
}

impl Evaluate for Queue {
    fn on_wire(&mut self, f: &Frame<'_>, _w: &mut Window) -> Option<Decision> {
        let ev = f.ev;
        if f.is_from(&self.client) {
            match (&ev.kind, &ev.detail) {
                (PacketKind::Subscribe, WireDetail::Subscribe(filters)) => {
                    for (filter, _) in filters {
                        if !self.filters.contains(filter) {
                            self.filters.push(filter.clone());
                        }
                    }
                }
                (PacketKind::ConnAck, WireDetail::ConnAck { code: 0, .. }) => self.online = true,
                (PacketKind::Closed, _) => self.online = false,
                _ => {}
            }
            if f.delivered {
                self.waiting.remove(f.key);
            }
        } else if f.published
            && !self.online
            && ev.qos > 0
            && self.waiting.len() < MAX_ENTRIES
            && self
                .filters
                .iter()
                .any(|filter| topic_matches(f.topic, filter))
        {
            self.was_offline_with_queue = true;
            self.waiting.insert(f.key.clone(), (f.seq, ev.t_us));
        }
        None
    }

    fn finish(&mut self, now_us: u64, _w: &Window) -> Decision {
        let client = &self.client;
        if !self.was_offline_with_queue {
            Decision::at(
                VerdictState::NotTriggered,
                format!("nothing was queued for {client} while it was offline"),
                now_us,
            )
        } else if let Some(((topic, payload), (seq, _))) =
            self.waiting.iter().min_by_key(|(_, (seq, _))| *seq)
        {
            Decision {
                seq: Some(*seq),
                ..Decision::at(
                    VerdictState::Failed,
                    format!(
                        "{} message(s) published while {client} was offline never reached it; the first: {topic} \"{}\"",
                        self.waiting.len(),
                        text(payload)
                    ),
                    now_us,
                )
            }
        } else {
            Decision::at(
                VerdictState::Passed,
                format!("everything queued for {client} while offline was delivered"),
                now_us,
            )
        }
    }

    fn progress(&self, _w: &Window) -> String {
        format!(
            "{} message(s) queued for {} not delivered yet",
            self.waiting.len(),
            self.client
        )
    }
}
