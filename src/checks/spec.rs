//! What every expectation shares: its name and check, the anchor its window
//! opens on, and its verdict.

use serde::{Deserialize, Serialize};

use super::Check;
use super::payload::PayloadCheck;
use crate::time::Dur;

/// One named expectation of a scenario: what must (or must not) be seen on
/// the wire. Evaluated live by [`Checks`](super::Checks).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expectation {
    pub name: String,
    pub check: Check,
}

/// When an expectation's window opens.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub enum Anchor {
    /// When the scenario starts.
    #[default]
    Start,
    /// This long after the start.
    At(Dur),
    /// When the scenario's timeline entry number N (1-based) fires.
    Fault(usize),
    /// When a message matching this is first published.
    Message {
        on: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        payload: Option<PayloadCheck>,
    },
}

/// Where an expectation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VerdictState {
    Pending,
    Passed,
    Failed,
    /// What it waits for never happened (no reconnect, no trigger): neither passed nor failed.
    NotTriggered,
}

/// An expectation's verdict with its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub name: String,
    pub state: VerdictState,
    /// What was seen (or not): the frame, the time, the value.
    pub evidence: String,
    /// The capture sequence number of the frame that decided it, if one did.
    pub seq: Option<u64>,
    /// When it was decided (µs since the epoch).
    pub t_us: Option<u64>,
}
