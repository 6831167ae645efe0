//! What a check kind implements, and what the evaluator hands it.

use std::collections::HashSet;
use std::sync::Arc;

use bytes::Bytes;

use super::payload::{PayloadCheck, Payloads};
use super::spec::{Anchor, VerdictState};
use crate::wire::WireEvent;

/// A check kind's spec: the fields a scenario writes inside `Kind(…)`.
pub trait CheckKind {
    /// The kind's own rules against the scenario it is in. `Err` is the
    /// message shown after `expectation "name": `.
    fn validate(&self, cx: &Validation<'_>) -> Result<(), String>;

    /// When its window opens, for kinds that have a window (`after:`).
    fn after(&self) -> Option<&Anchor> {
        None
    }

    /// Whether it needs deliveries matched to their publish ([`Origin`]).
    fn needs_origins(&self) -> bool {
        false
    }

    /// The payload predicates it uses (their regexes compile once per run).
    fn payload_checks(&self) -> Vec<&PayloadCheck> {
        Vec::new()
    }

    /// A fresh evaluator for one run.
    fn evaluator(&self) -> Box<dyn Evaluate>;
}

/// One expectation being evaluated during a run.
pub trait Evaluate: Send {
    /// A frame went by; `Some` decides the verdict (the first decision stands).
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision>;

    /// Time passed: a window that ran out by `now_us` decides.
    fn tick(&mut self, _now_us: u64, _w: &Window) -> Option<Decision> {
        None
    }

    /// The run ended at `now_us` with the verdict still pending.
    fn finish(&mut self, now_us: u64, w: &Window) -> Decision;

    /// What a pending expectation has seen so far.
    fn progress(&self, w: &Window) -> String;
}

/// When an expectation's window opened, and when the run started (µs).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    /// None: not yet (its anchor has not happened).
    pub opened_us: Option<u64>,
    pub start_us: u64,
}

impl Window {
    /// Seconds from the start of the run to `t_us`.
    pub fn at(&self, t_us: u64) -> f64 {
        seconds(t_us.saturating_sub(self.start_us))
    }
}

/// A verdict: passed, failed or not triggered, with its evidence.
#[derive(Debug, Clone)]
pub struct Decision {
    pub state: VerdictState,
    pub evidence: String,
    /// The capture sequence number of the frame that decided it.
    pub seq: Option<u64>,
    pub t_us: Option<u64>,
}

impl Decision {
    /// Decided by no single frame, at `t_us`.
    pub fn at(state: VerdictState, evidence: String, t_us: u64) -> Decision {
        Decision {
            state,
            evidence,
            seq: None,
            t_us: Some(t_us),
        }
    }

    /// Passed if `ok`, else failed.
    pub fn pass_if(ok: bool) -> VerdictState {
        if ok {
            VerdictState::Passed
        } else {
            VerdictState::Failed
        }
    }
}

/// A message by what identifies it on the wire: (topic, payload).
pub type Key = (Arc<str>, Bytes);

/// Where a published message came from.
#[derive(Debug, Clone)]
pub struct Origin {
    pub publisher: Arc<str>,
    pub t_us: u64,
    pub qos: u8,
    /// Publish number, unique in the run.
    pub id: u64,
    /// Index in its publisher's stream on its topic.
    pub index: u64,
}

/// One frame as every check sees it.
pub struct Frame<'a> {
    pub ev: &'a WireEvent,
    /// Its capture sequence number.
    pub seq: u64,
    pub topic: &'a Arc<str>,
    pub payload: &'a Bytes,
    pub key: &'a Key,
    /// A PUBLISH a client sent (not dropped by a fault or refused).
    pub published: bool,
    /// A PUBLISH the broker sent a subscriber.
    pub delivered: bool,
    /// The publish a delivery matches (kinds that ask for origins).
    pub origin: Option<&'a Origin>,
    /// This frame opened the expectation's window (it is the trigger).
    pub just_opened: bool,
    pub(super) payloads: &'a Payloads,
    /// How payloads decode per topic, for `Json` predicates on payloads that
    /// are not JSON (None: no check needs it).
    pub(super) decoders: Option<&'a crate::codec::Decoders>,
}

impl Frame<'_> {
    /// The payload passes `check` (no check: any payload).
    pub fn payload_is(&self, check: &Option<PayloadCheck>) -> bool {
        self.payloads.matches_decoded(check, self.payload, || {
            self.decoders?.decode(self.topic, self.payload)
        })
    }

    /// This frame decides the verdict.
    pub fn decide(&self, state: VerdictState, evidence: String) -> Option<Decision> {
        Some(Decision {
            state,
            evidence,
            seq: Some(self.seq),
            t_us: Some(self.ev.t_us),
        })
    }

    /// The frame's client id is `client`.
    pub fn is_from(&self, client: &str) -> bool {
        &*self.ev.client_id == client
    }
}

/// What a kind's validation can ask about the scenario.
pub struct Validation<'a> {
    /// The client ids of the scenario's devices (fleets expanded).
    pub devices: &'a HashSet<String>,
    /// Without devices, any client id is the user's own.
    pub any_client: bool,
    /// Entries in the scenario's timeline.
    pub timeline_len: usize,
}

impl Validation<'_> {
    /// `f` is a valid MQTT topic filter.
    pub fn filter(&self, f: &str) -> Result<(), String> {
        if crate::wire::valid_filter(f) {
            Ok(())
        } else {
            Err(format!("\"{f}\" is not a valid topic filter"))
        }
    }

    /// `c` names one client of the scenario.
    pub fn client(&self, c: &str) -> Result<(), String> {
        if c.contains('{') {
            return Err(format!(
                "\"{c}\": name one client (e.g. \"drone-3\"), not a template"
            ));
        }
        if self.any_client || self.devices.contains(c) {
            return Ok(());
        }
        let mut known: Vec<&str> = self.devices.iter().map(String::as_str).collect();
        known.sort();
        let more = if known.len() > 8 { ", …" } else { "" };
        known.truncate(8);
        Err(format!(
            "no client \"{c}\" in this scenario (devices: {}{more})",
            known.join(", ")
        ))
    }

    /// `a` refers to something the scenario has.
    pub fn anchor(&self, a: &Anchor) -> Result<(), String> {
        match a {
            Anchor::Fault(n) if *n == 0 || *n > self.timeline_len => Err(format!(
                "`after: Fault({n})`: the timeline has {} entries (numbered from 1)",
                self.timeline_len
            )),
            Anchor::Message { on, .. } => self.filter(on),
            _ => Ok(()),
        }
    }
}

pub(super) fn seconds(us: u64) -> f64 {
    us as f64 / 1e6
}

/// A payload as evidence: its text (80 characters at most), or its size.
pub(crate) fn text(payload: &[u8]) -> String {
    match std::str::from_utf8(payload) {
        Ok(t) if !t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') => {
            if t.chars().count() > 80 {
                format!("{}…", t.chars().take(80).collect::<String>())
            } else {
                t.to_string()
            }
        }
        _ => format!("{} bytes, binary", payload.len()),
    }
}

/// A windowed kind's payload predicates: its own and its trigger message's.
pub(super) fn with_trigger<'a>(
    payload: &'a Option<PayloadCheck>,
    after: &'a Anchor,
) -> Vec<&'a PayloadCheck> {
    let mut v: Vec<&PayloadCheck> = payload.iter().collect();
    if let Anchor::Message {
        payload: Some(p), ..
    } = after
    {
        v.push(p);
    }
    v
}

/// An anchor in words ("timeline entry 2").
pub(super) fn anchor_text(a: &Anchor) -> String {
    match a {
        Anchor::Start => "the start".into(),
        Anchor::At(d) => format!("{} after the start", humantime::format_duration(d.0)),
        Anchor::Fault(n) => format!("timeline entry {n}"),
        Anchor::Message { on, .. } => format!("a message on {on}"),
    }
}
