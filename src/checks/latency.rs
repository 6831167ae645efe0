//! `Latency(on, percentile, under)`: publish → delivery latency on `on` at
//! `percentile` is under `under`, decided when the run ends.

use serde::{Deserialize, Serialize};

use super::MAX_ENTRIES;
use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window};
use super::spec::VerdictState;
use crate::time::Dur;
use crate::wire::{Injected, topic_matches};

/// Publish → delivery latency on `on` at `percentile` is under `under`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub struct Latency {
    pub on: String,
    pub percentile: f64,
    pub under: Dur,
}

impl CheckKind for Latency {
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String> {
        cx.filter(&self.on)?;
        if !(self.percentile > 0.0 && self.percentile <= 100.0) {
            return Err(format!(
                "percentile {}: expected more than 0 and at most 100",
                self.percentile
            ));
        }
        Ok(())
    }

    fn needs_origins(&self) -> bool {
        true
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Samples {
            spec: self.clone(),
            samples: Vec::new(),
        })
    }
}

struct Samples {
    spec: Latency,
    /// Latency samples (µs).
    samples: Vec<u64>,
}

impl Evaluate for Samples {
    fn on_wire(&mut self, f: &Frame<'_>, _w: &mut Window) -> Option<Decision> {
        if f.delivered
            && topic_matches(f.topic, &self.spec.on)
            && let Some(o) = f.origin
            && self.samples.len() < MAX_ENTRIES
        {
            // A frame an injected fault delays reaches the subscriber that much later.
            let delay_us = match f.ev.injected {
                Some(Injected::Delayed(ms)) => ms as u64 * 1000,
                _ => 0,
            };
            self.samples
                .push((f.ev.t_us + delay_us).saturating_sub(o.t_us));
        }
        None
    }

    fn finish(&mut self, now_us: u64, _w: &Window) -> Decision {
        let Latency {
            on,
            percentile,
            under,
        } = &self.spec;
        let s = &mut self.samples;
        if s.is_empty() {
            return Decision::at(
                VerdictState::NotTriggered,
                format!("no delivery on {on} to measure"),
                now_us,
            );
        }
        s.sort_unstable();
        let rank = ((percentile / 100.0) * s.len() as f64).ceil() as usize;
        let p = s[rank.clamp(1, s.len()) - 1];
        Decision::at(
            Decision::pass_if(p < under.0.as_micros() as u64),
            format!(
                "p{percentile} publish → delivery latency on {on}: {:.1} ms over {} deliveries (bound {} ms)",
                p as f64 / 1000.0,
                s.len(),
                under.0.as_millis()
            ),
            now_us,
        )
    }

    fn progress(&self, _w: &Window) -> String {
        format!(
            "{} deliveries measured; decided when the run ends",
            self.samples.len()
        )
    }
}
