//! `AtLeastOnce(on)`: every QoS 1/2 message published on `on` is delivered
//! at least once (duplicates are counted and shown in the evidence).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::MAX_ENTRIES;
use super::kind::{CheckKind, Decision, Evaluate, Frame, Key, Validation, Window, seconds, text};
use super::spec::VerdictState;
use crate::wire::topic_matches;

/// A QoS 1/2 message younger than this at the end of a run may still be in flight.
const IN_FLIGHT_US: u64 = 2_000_000;

/// Every QoS 1/2 message published on `on` is delivered at least once
/// (duplicates are counted and shown).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct AtLeastOnce {
    pub on: String,
}

impl CheckKind for AtLeastOnce {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.filter(&self.on)
    }

    fn needs_origins(&self) -> bool {
        true
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Deliveries {
            on: self.on.clone(),
            undelivered: HashMap::new(),
            deliveries: HashMap::new(),
            duplicates: 0,
            published: 0,
        })
    }
}

struct Deliveries {
    on: String,
    /// Publish id → (key, t_us, seq) not delivered yet.
    undelivered: HashMap<u64, (Key, u64, u64)>,
    /// Publish id → deliveries.
    deliveries: HashMap<u64, u32>,
    duplicates: u64,
    published: u64,
}

impl Evaluate for Deliveries {
    fn on_wire(&mut self, f: &Frame<'_>, _w: &mut Window) -> Option<Decision> {
        if !topic_matches(f.topic, &self.on) {
            return None;
        }
        let o = f.origin?;
        if f.published && o.qos > 0 && self.undelivered.len() < MAX_ENTRIES {
            self.published += 1;
            self.undelivered
                .insert(o.id, (f.key.clone(), f.ev.t_us, f.seq));
        }
        if f.delivered {
            self.undelivered.remove(&o.id);
            let n = self.deliveries.entry(o.id).or_insert(0);
            *n += 1;
            if *n > 1 {
                self.duplicates += 1;
            }
        }
        None
    }

    fn finish(&mut self, now_us: u64, w: &Window) -> Decision {
        let on = &self.on;
        // Messages published in the last moments may still be on their way;
        // but with no delivery at all, nothing is.
        let any_delivered = !self.deliveries.is_empty();
        let missing: Vec<_> = self
            .undelivered
            .values()
            .filter(|(_, t, _)| !any_delivered || *t + IN_FLIGHT_US < now_us)
            .collect();
        let in_flight = self.undelivered.len() - missing.len();
        if self.published == 0 {
            Decision::at(
                VerdictState::NotTriggered,
                format!("no QoS 1/2 message was published on {on}"),
                now_us,
            )
        } else if let Some(((topic, payload), t, seq)) =
            missing.iter().min_by_key(|(_, _, seq)| *seq)
        {
            Decision {
                seq: Some(*seq),
                ..Decision::at(
                    VerdictState::Failed,
                    format!(
                        "{} of {} QoS 1/2 messages on {on} never delivered; the first: {topic} \"{}\" at {:.3} s ({} duplicate deliveries)",
                        missing.len(),
                        self.published,
                        text(payload),
                        seconds(t.saturating_sub(w.start_us)),
                        self.duplicates
                    ),
                    now_us,
                )
            }
        } else {
            Decision::at(
                VerdictState::Passed,
                format!(
                    "{} QoS 1/2 messages on {on} all delivered ({} duplicate deliveries{})",
                    self.published - in_flight as u64,
                    self.duplicates,
                    if in_flight > 0 {
                        format!("; {in_flight} published in the last 2 s still on their way")
                    } else {
                        String::new()
                    }
                ),
                now_us,
            )
        }
    }

    fn progress(&self, _w: &Window) -> String {
        format!(
            "{} published, {} not delivered yet; decided when the run ends",
            self.published,
            self.undelivered.len()
        )
    }
}
