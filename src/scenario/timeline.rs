//! A scenario's timeline: faults scheduled at a time or after a device
//! event, as the file writes them, and their conversion to the engine's
//! [`Fault`]s.

use serde::{Deserialize, Serialize};

use crate::event::{DeviceState, TimelineItem};
use crate::fault::{Fault, Target};
use crate::time::Dur;

/// One scheduled fault: `at` a time after the scenario starts, or `after` a
/// device event ("drone-3 connected", "car-7 offline"), plus an optional `delay`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TimelineEntry {
    #[serde(default)]
    pub at: Option<Dur>,
    #[serde(default)]
    pub after: Option<String>,
    #[serde(default)]
    pub delay: Dur,
    pub fault: FaultSpec,
}

impl TimelineEntry {
    /// The device event this entry waits for: (client id, state).
    pub fn trigger(&self) -> Option<(String, DeviceState)> {
        let after = self.after.as_deref()?;
        let (id, what) = after.trim().rsplit_once(' ')?;
        use DeviceState::*;
        let state = match what {
            "connected" => Connected,
            "offline" | "disconnected" => Offline,
            "reconnecting" => Reconnecting,
            _ => return None,
        };
        Some((id.trim().to_string(), state))
    }

    /// What the UI shows for this entry.
    pub fn item(&self) -> TimelineItem {
        TimelineItem {
            when: self.when(),
            label: self.fault.to_fault().label(),
        }
    }

    pub fn when(&self) -> String {
        match (&self.at, &self.after) {
            (Some(at), _) => format!("at {at}"),
            (None, Some(a)) if self.delay.0.is_zero() => format!("after {a}"),
            (None, Some(a)) => format!("{} after {a}", self.delay),
            _ => String::new(),
        }
    }
}

fn default_takeover_hold() -> Dur {
    Dur::secs(5)
}
fn default_hold() -> bool {
    true
}

/// Who a scheduled fault acts on, as written in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub enum TargetSpec {
    /// One virtual device by client id.
    Device(String),
    /// Every device of a scenario entry (fleet) by its template id.
    Fleet(String),
    /// Every virtual device.
    All,
}

impl TargetSpec {
    pub fn to_target(&self) -> Target {
        match self {
            TargetSpec::Device(d) => Target::Device(d.clone()),
            TargetSpec::Fleet(f) => Target::Fleet(f.clone()),
            TargetSpec::All => Target::All,
        }
    }
}

/// A fault in a scenario's timeline, as written in the file. The engine runs
/// [`Fault`](crate::fault::Fault)s: see [`FaultSpec::to_fault`].
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum FaultSpec {
    /// Graceful DISCONNECT (no will).
    Disconnect(TargetSpec),
    /// Abrupt close without DISCONNECT (the will fires).
    Drop(TargetSpec),
    Reconnect(TargetSpec),
    Pause(TargetSpec),
    Resume(TargetSpec),
    /// Stop sending PUBACK/PUBREC: the broker redelivers with DUP after a reconnect.
    StopAcking(TargetSpec),
    ResumeAcking(TargetSpec),
    /// Added delay on every frame both ways; `duration` ends it (else until cleared).
    Latency {
        target: TargetSpec,
        ms: u32,
        #[serde(default)]
        jitter_ms: u32,
        #[serde(default)]
        duration: Option<Dur>,
    },
    /// `drop_pct`: frames discarded whole; `stall_pct`: frames held `stall_ms` (TCP-style loss).
    Loss {
        target: TargetSpec,
        #[serde(default)]
        drop_pct: f64,
        #[serde(default)]
        stall_pct: f64,
        #[serde(default)]
        stall_ms: u32,
        #[serde(default)]
        duration: Option<Dur>,
    },
    Bandwidth {
        target: TargetSpec,
        bytes_per_s: u64,
        #[serde(default)]
        duration: Option<Dur>,
    },
    /// Nothing passes for `duration`; `hold: true` delivers it afterwards, false discards it.
    Partition {
        target: TargetSpec,
        duration: Dur,
        #[serde(default = "default_hold")]
        hold: bool,
    },
    /// The tap stops reading: keepalive expires at the broker (1.5 × keepalive), the will fires.
    HalfDead {
        target: TargetSpec,
        #[serde(default)]
        duration: Option<Dur>,
    },
    /// Remove every network fault of a target.
    ClearNetwork(TargetSpec),
    /// A second client connects with the same id and holds the session for `hold`.
    Takeover {
        client: String,
        #[serde(default = "default_takeover_hold")]
        hold: Dur,
    },
    /// Restart the broker's listeners: every client is cut, sessions are kept.
    RestartBroker,
    /// Restart the broker from scratch: sessions, queued messages and retained messages are lost.
    ColdRestartBroker,
}

impl FaultSpec {
    /// The fault the engine runs for this entry.
    pub fn to_fault(&self) -> Fault {
        let d = |d: &Option<Dur>| d.map(|d| d.0);
        match self {
            FaultSpec::Disconnect(t) => Fault::Disconnect(t.to_target()),
            FaultSpec::Drop(t) => Fault::Drop(t.to_target()),
            FaultSpec::Reconnect(t) => Fault::Reconnect(t.to_target()),
            FaultSpec::Pause(t) => Fault::Pause(t.to_target()),
            FaultSpec::Resume(t) => Fault::Resume(t.to_target()),
            FaultSpec::StopAcking(t) => Fault::StopAcking(t.to_target()),
            FaultSpec::ResumeAcking(t) => Fault::ResumeAcking(t.to_target()),
            FaultSpec::Latency {
                target,
                ms,
                jitter_ms,
                duration,
            } => Fault::Latency {
                target: target.to_target(),
                ms: *ms,
                jitter_ms: *jitter_ms,
                duration: d(duration),
            },
            FaultSpec::Loss {
                target,
                drop_pct,
                stall_pct,
                stall_ms,
                duration,
            } => Fault::Loss {
                target: target.to_target(),
                drop_pct: *drop_pct,
                stall_pct: *stall_pct,
                stall_ms: *stall_ms,
                duration: d(duration),
            },
            FaultSpec::Bandwidth {
                target,
                bytes_per_s,
                duration,
            } => Fault::Bandwidth {
                target: target.to_target(),
                bytes_per_s: *bytes_per_s,
                duration: d(duration),
            },
            FaultSpec::Partition {
                target,
                duration,
                hold,
            } => Fault::Partition {
                target: target.to_target(),
                duration: duration.0,
                hold: *hold,
            },
            FaultSpec::HalfDead { target, duration } => Fault::HalfDead {
                target: target.to_target(),
                duration: d(duration),
            },
            FaultSpec::ClearNetwork(t) => Fault::ClearNetwork(t.to_target()),
            FaultSpec::Takeover { client, hold } => Fault::Takeover {
                client: client.clone(),
                hold: hold.0,
            },
            FaultSpec::RestartBroker => Fault::RestartBroker,
            FaultSpec::ColdRestartBroker => Fault::ColdRestartBroker,
        }
    }

    /// The target named by this entry (for validation).
    pub fn target(&self) -> Option<&TargetSpec> {
        match self {
            FaultSpec::Disconnect(t)
            | FaultSpec::Drop(t)
            | FaultSpec::Reconnect(t)
            | FaultSpec::Pause(t)
            | FaultSpec::Resume(t)
            | FaultSpec::StopAcking(t)
            | FaultSpec::ResumeAcking(t)
            | FaultSpec::ClearNetwork(t) => Some(t),
            FaultSpec::Latency { target, .. }
            | FaultSpec::Loss { target, .. }
            | FaultSpec::Bandwidth { target, .. }
            | FaultSpec::Partition { target, .. }
            | FaultSpec::HalfDead { target, .. } => Some(target),
            FaultSpec::Takeover { .. }
            | FaultSpec::RestartBroker
            | FaultSpec::ColdRestartBroker => None,
        }
    }
}
