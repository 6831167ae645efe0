//! `Ordered(on)`: each subscriber receives each publisher's messages on `on`
//! in the order they were published.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::MAX_ENTRIES;
use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window};
use super::spec::VerdictState;
use crate::wire::topic_matches;

/// Each subscriber receives each publisher's messages on `on` in the order published.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Ordered {
    pub on: String,
}

/// (subscriber, publisher, topic).
type Stream = (Arc<str>, Arc<str>, Arc<str>);

impl CheckKind for Ordered {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.filter(&self.on)
    }

    fn needs_origins(&self) -> bool {
        true
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Order {
            on: self.on.clone(),
            count: 0,
            last_index: HashMap::new(),
        })
    }
}

struct Order {
    on: String,
    /// Deliveries seen.
    count: u64,
    /// Each stream's last index delivered.
    last_index: HashMap<Stream, u64>,
}

impl Evaluate for Order {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        let o = f.origin?;
        if !(f.delivered && topic_matches(f.topic, &self.on)) {
            return None;
        }
        self.count += 1;
        let k = (f.ev.client_id.clone(), o.publisher.clone(), f.topic.clone());
        let last = self.last_index.get(&k).copied().unwrap_or(0);
        if o.index < last {
            let evidence = format!(
                "{} received {}'s message #{} on {} after #{} (at {:.3} s)",
                f.ev.client_id,
                o.publisher,
                o.index,
                f.topic,
                last,
                w.at(f.ev.t_us)
            );
            return f.decide(VerdictState::Failed, evidence);
        }
        if self.last_index.len() < MAX_ENTRIES {
            self.last_index.insert(k, o.index);
        }
        None
    }

    fn finish(&mut self, now_us: u64, _w: &Window) -> Decision {
        let on = &self.on;
        if self.count == 0 {
            Decision::at(
                VerdictState::NotTriggered,
                format!("no delivery on {on}"),
                now_us,
            )
        } else {
            Decision::at(
                VerdictState::Passed,
                format!(
                    "{} deliveries on {on}, each publisher's in order",
                    self.count
                ),
                now_us,
            )
        }
    }

    fn progress(&self, _w: &Window) -> String {
        format!("{} deliveries so far, all in order", self.count)
    }
}
