//! What the Contract view and `run`'s summary show: per declared channel,
//! the messages seen and the violations with the first offending frame;
//! the topics no channel declares. Fed from the frames' marks
//! (`wire::ContractMark`), bounded.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::Contract;
use crate::wire::{Direction, PacketKind, Violation, WireEvent};

/// Undeclared topics remembered (more are counted, not named).
const MAX_UNDECLARED: usize = 1_000;

/// The first frame that broke a channel's contract.
#[derive(Debug, Clone, PartialEq)]
pub struct Offence {
    /// Its capture sequence number (the Message log selects it).
    pub seq: u64,
    pub t_us: u64,
    pub client: Arc<str>,
    pub topic: Arc<str>,
    /// The payload as text (at most 200 characters), or its size.
    pub payload: String,
    pub violations: Vec<Violation>,
}

/// One channel's counts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelTally {
    pub messages: u64,
    pub violations: u64,
    pub first: Option<Offence>,
    pub last_t_us: u64,
}

/// The running contract's counts.
#[derive(Debug, Clone)]
pub struct Tally {
    pub contract: Arc<Contract>,
    /// By channel address, in the contract's order of channels.
    pub channels: Vec<(Arc<str>, ChannelTally)>,
    /// Topics published on that no channel declares, with their counts.
    pub undeclared: BTreeMap<Arc<str>, u64>,
    /// Messages on undeclared topics (named or not).
    pub undeclared_messages: u64,
}

impl Tally {
    pub fn new(contract: Arc<Contract>) -> Tally {
        let channels = contract
            .channels
            .iter()
            .map(|c| (c.address.clone(), ChannelTally::default()))
            .collect();
        Tally {
            contract,
            channels,
            undeclared: BTreeMap::new(),
            undeclared_messages: 0,
        }
    }

    /// A frame went by (`seq`: its capture sequence number).
    pub fn on_wire(&mut self, ev: &WireEvent, seq: u64) {
        if ev.kind != PacketKind::Publish || ev.dir != Direction::ClientToBroker {
            return;
        }
        let Some(mark) = ev.contract.as_deref() else {
            return;
        };
        let topic = ev.topic.clone().unwrap_or_else(|| Arc::from(""));
        let Some(channel) = &mark.channel else {
            self.undeclared_messages += 1;
            if let Some(n) = self.undeclared.get_mut(&topic) {
                *n += 1;
            } else if self.undeclared.len() < MAX_UNDECLARED {
                self.undeclared.insert(topic, 1);
            }
            return;
        };
        let Some((_, t)) = self.channels.iter_mut().find(|(a, _)| a == channel) else {
            return;
        };
        t.messages += 1;
        t.last_t_us = ev.t_us;
        if !mark.violations.is_empty() {
            t.violations += 1;
            if t.first.is_none() {
                t.first = Some(Offence {
                    seq,
                    t_us: ev.t_us,
                    client: ev.client_id.clone(),
                    topic,
                    payload: payload_text(ev.payload.as_deref().unwrap_or_default()),
                    violations: mark.violations.clone(),
                });
            }
        }
    }

    /// Messages on declared channels, and how many broke the contract.
    pub fn totals(&self) -> (u64, u64) {
        self.channels
            .iter()
            .fold((0, 0), |(m, v), (_, t)| (m + t.messages, v + t.violations))
    }

    /// A few lines for a terminal: each channel's counts and first violation.
    pub fn summary(&self) -> String {
        let (messages, violations) = self.totals();
        let mut out = format!(
            "contract {} ({}): {messages} messages on declared channels, {violations} broke it; {} on undeclared topics\n",
            self.contract.path.display(),
            self.contract.title,
            self.undeclared_messages
        );
        for (address, t) in &self.channels {
            out.push_str(&format!(
                "  {address}: {} messages, {} violations\n",
                t.messages, t.violations
            ));
            if let Some(o) = &t.first {
                out.push_str(&format!(
                    "    first: {} on {}: {}\n",
                    o.client,
                    o.topic,
                    describe(&o.violations)
                ));
            }
        }
        for (topic, n) in self.undeclared.iter().take(10) {
            out.push_str(&format!("  undeclared: {topic} ({n})\n"));
        }
        out
    }
}

/// Violations in one line: `/battery maximum: …; qos: …`.
pub fn describe(violations: &[Violation]) -> String {
    violations
        .iter()
        .map(|v| {
            if v.pointer.is_empty() {
                format!("{}: {}", v.keyword, v.message)
            } else {
                format!("{} {}: {}", v.pointer, v.keyword, v.message)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn payload_text(p: &[u8]) -> String {
    match std::str::from_utf8(p) {
        Ok(t) if t.chars().count() > 200 => format!("{}…", t.chars().take(200).collect::<String>()),
        Ok(t) => t.to_string(),
        Err(_) => format!("{} bytes, binary", p.len()),
    }
}
