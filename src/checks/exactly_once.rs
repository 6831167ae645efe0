//! `ExactlyOnce(on)`: no subscriber receives a QoS 2 message published on
//! `on` twice.

use std::collections::HashSet;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::MAX_ENTRIES;
use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window, text};
use super::spec::VerdictState;
use crate::wire::topic_matches;

/// No subscriber receives a QoS 2 message published on `on` twice.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct ExactlyOnce {
    pub on: String,
}

impl CheckKind for ExactlyOnce {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.filter(&self.on)
    }

    fn needs_origins(&self) -> bool {
        true
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Once {
            on: self.on.clone(),
            count: 0,
            delivered: HashSet::new(),
        })
    }
}

struct Once {
    on: String,
    /// QoS 2 deliveries seen.
    count: u64,
    /// (subscriber, publish id) delivered.
    delivered: HashSet<(Arc<str>, u64)>,
}

impl Evaluate for Once {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        let o = f.origin?;
        if !(f.delivered && topic_matches(f.topic, &self.on) && o.qos == 2) {
            return None;
        }
        self.count += 1;
        if !self.delivered.insert((f.ev.client_id.clone(), o.id))
            && self.delivered.len() < MAX_ENTRIES
        {
            let evidence = format!(
                "{} received {} \"{}\" (published by {}) a second time at {:.3} s",
                f.ev.client_id,
                f.topic,
                text(f.payload),
                o.publisher,
                w.at(f.ev.t_us)
            );
            return f.decide(VerdictState::Failed, evidence);
        }
        None
    }

    fn finish(&mut self, now_us: u64, _w: &Window) -> Decision {
        let on = &self.on;
        if self.count == 0 {
            Decision::at(
                VerdictState::NotTriggered,
                format!("no QoS 2 message on {on} was delivered"),
                now_us,
            )
        } else {
            Decision::at(
                VerdictState::Passed,
                format!("{} QoS 2 deliveries on {on}, none twice", self.count),
                now_us,
            )
        }
    }

    fn progress(&self, _w: &Window) -> String {
        format!("{} QoS 2 deliveries so far, none twice", self.count)
    }
}
