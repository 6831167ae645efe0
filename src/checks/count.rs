//! `Count(on, payload, at_least, at_most, after, within, delivered)`: how
//! many messages are published (or delivered) on `on` from `after` on, for
//! `within` or until the run ends, is within the bounds (`at_most: 0`: none).

use serde::{Deserialize, Serialize};

use super::kind::with_trigger;
use super::kind::{
    CheckKind, Decision, Evaluate, Frame, Validation, Window, anchor_text, seconds, text,
};
use super::payload::PayloadCheck;
use super::spec::{Anchor, VerdictState};
use crate::time::Dur;
use crate::wire::topic_matches;

/// How many messages are published on `on` from `after` on (for `within`,
/// or until the run ends): `at_least`, `at_most` (0: none).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Count {
    pub on: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_least: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_most: Option<u64>,
    #[serde(default)]
    pub after: Anchor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within: Option<Dur>,
    /// Count deliveries to subscribers (each subscriber's) instead of publishes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
}

impl CheckKind for Count {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.filter(&self.on)?;
        cx.anchor(&self.after)?;
        match (self.at_least, self.at_most) {
            (None, None) => Err("expected `at_least`, `at_most` or both".into()),
            (Some(l), Some(h)) if l > h => Err(format!("at_least {l} is more than at_most {h}")),
            _ => Ok(()),
        }
    }

    fn after(&self) -> Option<&Anchor> {
        Some(&self.after)
    }

    fn payload_checks(&self) -> Vec<&PayloadCheck> {
        with_trigger(&self.payload, &self.after)
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Counting {
            spec: self.clone(),
            count: 0,
        })
    }
}

struct Counting {
    spec: Count,
    count: u64,
}

impl Counting {
    fn bounds(&self) -> String {
        match (self.spec.at_least, self.spec.at_most) {
            (Some(l), Some(h)) => format!("expected {l} to {h}"),
            (Some(l), None) => format!("expected at least {l}"),
            (None, Some(0)) => "expected none".into(),
            (None, Some(h)) => format!("expected at most {h}"),
            (None, None) => "no bound".into(),
        }
    }

    fn within_bounds(&self) -> bool {
        let n = self.count;
        self.spec.at_least.is_none_or(|l| n >= l) && self.spec.at_most.is_none_or(|h| n <= h)
    }
}

impl Evaluate for Counting {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        let Count {
            on,
            payload: want,
            at_least,
            at_most,
            within,
            delivered: count_deliveries,
            ..
        } = &self.spec;
        let seen = if *count_deliveries {
            f.delivered
        } else {
            f.published
        };
        let opened = w.opened_us?;
        let ev = f.ev;
        let in_window =
            ev.t_us >= opened && within.is_none_or(|w| ev.t_us - opened <= w.0.as_micros() as u64);
        if !(seen && in_window && topic_matches(f.topic, on) && f.payload_is(want)) {
            return None;
        }
        self.count += 1;
        if at_most.is_some_and(|m| self.count > m) {
            let evidence = format!(
                "message {} on {on} (at most {} expected): {} {} {} \"{}\" at {:.3} s",
                self.count,
                at_most.unwrap_or(0),
                ev.client_id,
                if *count_deliveries {
                    "received"
                } else {
                    "published"
                },
                f.topic,
                text(f.payload),
                w.at(ev.t_us)
            );
            f.decide(VerdictState::Failed, evidence)
        } else if at_most.is_none() && at_least.is_some_and(|l| self.count >= l) {
            let evidence = format!(
                "{} messages on {on} by {:.3} s (the last: {} published {} \"{}\")",
                self.count,
                w.at(ev.t_us),
                ev.client_id,
                f.topic,
                text(f.payload)
            );
            f.decide(VerdictState::Passed, evidence)
        } else {
            None
        }
    }

    fn tick(&mut self, now_us: u64, w: &Window) -> Option<Decision> {
        let within = self.spec.within?;
        let opened = w.opened_us?;
        (now_us > opened + within.0.as_micros() as u64).then(|| {
            let evidence = format!(
                "{} messages on {} in {} from {:.3} s ({})",
                self.count,
                self.spec.on,
                humantime::format_duration(within.0),
                w.at(opened),
                self.bounds()
            );
            Decision::at(Decision::pass_if(self.within_bounds()), evidence, now_us)
        })
    }

    fn finish(&mut self, now_us: u64, w: &Window) -> Decision {
        let on = &self.spec.on;
        match (w.opened_us, self.spec.within) {
            (None, _) => Decision::at(
                VerdictState::NotTriggered,
                format!(
                    "its trigger ({}) never happened",
                    anchor_text(&self.spec.after)
                ),
                now_us,
            ),
            (Some(opened), Some(within)) => Decision::at(
                VerdictState::NotTriggered,
                format!(
                    "the run ended {:.1} s into the {} window ({} messages on {on} so far)",
                    seconds(now_us.saturating_sub(opened)),
                    humantime::format_duration(within.0),
                    self.count
                ),
                now_us,
            ),
            (Some(_), None) => Decision::at(
                Decision::pass_if(self.within_bounds()),
                format!("{} messages on {on} ({})", self.count, self.bounds()),
                now_us,
            ),
        }
    }

    fn progress(&self, w: &Window) -> String {
        match w.opened_us {
            None => format!("waiting for {}", anchor_text(&self.spec.after)),
            Some(_) => format!("{} so far", self.count),
        }
    }
}
