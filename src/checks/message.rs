//! `Message(on, payload, after, within, delivered)`: a message on `on`
//! (matching `payload`) is published — or, with `delivered: true`, delivered —
//! within `within` after the window opens at `after`.

use serde::{Deserialize, Serialize};

use super::kind::with_trigger;
use super::kind::{
    CheckKind, Decision, Evaluate, Frame, Validation, Window, anchor_text, seconds, text,
};
use super::payload::PayloadCheck;
use super::spec::{Anchor, VerdictState};
use crate::time::Dur;
use crate::wire::topic_matches;

/// A message published on `on` (matching `payload`) within `within` after `after`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Message {
    pub on: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadCheck>,
    #[serde(default)]
    pub after: Anchor,
    pub within: Dur,
    /// Look at deliveries to subscribers instead of publishes (wills and
    /// retained messages are delivered without being published).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered: bool,
}

impl CheckKind for Message {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.filter(&self.on)?;
        cx.anchor(&self.after)
    }

    fn after(&self) -> Option<&Anchor> {
        Some(&self.after)
    }

    fn payload_checks(&self) -> Vec<&PayloadCheck> {
        with_trigger(&self.payload, &self.after)
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(self.clone())
    }
}

impl Evaluate for Message {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        let seen = if self.delivered {
            f.delivered
        } else {
            f.published
        };
        // The trigger message itself is not the awaited one.
        if f.just_opened {
            return None;
        }
        let opened = w.opened_us?;
        let ev = f.ev;
        if !(seen
            && ev.t_us >= opened
            && topic_matches(f.topic, &self.on)
            && f.payload_is(&self.payload))
        {
            return None;
        }
        let late = ev.t_us - opened > self.within.0.as_micros() as u64;
        let evidence = format!(
            "{} {} {} \"{}\" at {:.3} s ({:.3} s after the window opened)",
            ev.client_id,
            if self.delivered {
                "received"
            } else {
                "published"
            },
            f.topic,
            text(f.payload),
            w.at(ev.t_us),
            seconds(ev.t_us - opened)
        );
        f.decide(Decision::pass_if(!late), evidence)
    }

    fn tick(&mut self, now_us: u64, w: &Window) -> Option<Decision> {
        let opened = w.opened_us?;
        (now_us > opened + self.within.0.as_micros() as u64).then(|| {
            let evidence = format!(
                "no message on {} within {} after {:.3} s",
                self.on,
                humantime::format_duration(self.within.0),
                w.at(opened)
            );
            Decision::at(VerdictState::Failed, evidence, now_us)
        })
    }

    fn finish(&mut self, now_us: u64, w: &Window) -> Decision {
        let evidence = match w.opened_us {
            None => format!("its trigger ({}) never happened", anchor_text(&self.after)),
            // The run ended inside the window: not decided either way.
            Some(opened) => format!(
                "the run ended {:.1} s into the {} window, before any message on {}",
                seconds(now_us.saturating_sub(opened)),
                humantime::format_duration(self.within.0),
                self.on
            ),
        };
        Decision::at(VerdictState::NotTriggered, evidence, now_us)
    }

    fn progress(&self, w: &Window) -> String {
        match w.opened_us {
            None => format!("waiting for {}", anchor_text(&self.after)),
            Some(_) => "window open".into(),
        }
    }
}
