//! Faults and device controls: what they act on ([`Target`]), what they are
//! ([`Fault`]), the network faults a connection carries ([`NetFault`]), and
//! their marks on the timeline ([`FaultMarker`]). The engine applies them
//! (`Engine::inject`), the tap's pumps carry out the network ones
//! (`tap::faults`), scenario timelines and the Faults panel produce them.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::wire::ConnId;

/// What a device command or fault acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// One virtual device by client id.
    Device(String),
    /// Every device of a scenario entry (fleet) by its template id.
    Fleet(String),
    /// Every virtual device.
    All,
}

/// Client-side faults and controls for virtual devices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceAction {
    /// Send DISCONNECT and close: the broker discards the will.
    Disconnect,
    /// Close the socket without DISCONNECT: the broker publishes the will.
    Drop,
    /// Connect again after Disconnect or Drop.
    Reconnect,
    /// Stop publishing (stay connected).
    Pause,
    /// Resume publishing.
    Resume,
    /// Stop acknowledging QoS 1/2 messages (the broker redelivers with DUP on reconnect).
    StopAcking,
    /// Acknowledge again.
    ResumeAcking,
}

/// How a network partition treats the traffic it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PartitionMode {
    /// Traffic is buffered and delivered when the partition heals.
    Hold,
    /// Traffic is discarded.
    Cut,
}

/// The network faults applied to one connection (both directions).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NetFault {
    pub latency_ms: u32,
    pub jitter_ms: u32,
    pub drop_pct: f64,
    pub stall_pct: f64,
    pub stall_ms: u32,
    pub bandwidth_bps: u64,
    pub partition: Option<PartitionMode>,
    pub stalled: bool,
}

impl NetFault {
    pub fn is_clear(&self) -> bool {
        *self == NetFault::default()
    }

    /// Short description for the UI and logs.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if self.latency_ms > 0 || self.jitter_ms > 0 {
            parts.push(format!(
                "latency {} ms ± {} ms",
                self.latency_ms, self.jitter_ms
            ));
        }
        if self.drop_pct > 0.0 {
            parts.push(format!("drop {:.0}% of frames", self.drop_pct));
        }
        if self.stall_pct > 0.0 {
            parts.push(format!(
                "stall {:.0}% of frames by {} ms",
                self.stall_pct, self.stall_ms
            ));
        }
        if self.bandwidth_bps > 0 {
            parts.push(format!("bandwidth {} B/s", self.bandwidth_bps));
        }
        match self.partition {
            Some(PartitionMode::Hold) => parts.push("partitioned (held)".into()),
            Some(PartitionMode::Cut) => parts.push("partitioned (cut)".into()),
            None => {}
        }
        if self.stalled {
            parts.push("half-dead (not reading)".into());
        }
        if parts.is_empty() {
            "no faults".into()
        } else {
            parts.join(", ")
        }
    }
}

/// Which connections a network fault applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum FaultKey {
    Client(String),
    Conn(ConnId),
    All,
}

/// A fault to inject, from a click or a scenario's timeline. (The scenario
/// file has its own, similar-looking schema; it converts into this.)
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Graceful DISCONNECT (no will).
    Disconnect(Target),
    /// Abrupt close without DISCONNECT (the will fires).
    Drop(Target),
    Reconnect(Target),
    Pause(Target),
    Resume(Target),
    /// Stop sending PUBACK/PUBREC: the broker redelivers with DUP after a reconnect.
    StopAcking(Target),
    ResumeAcking(Target),
    /// Added delay on every frame both ways; `duration` ends it (else until cleared).
    Latency {
        target: Target,
        ms: u32,
        jitter_ms: u32,
        duration: Option<Duration>,
    },
    /// `drop_pct`: frames discarded whole; `stall_pct`: frames held `stall_ms` (TCP-style loss).
    Loss {
        target: Target,
        drop_pct: f64,
        stall_pct: f64,
        stall_ms: u32,
        duration: Option<Duration>,
    },
    Bandwidth {
        target: Target,
        bytes_per_s: u64,
        duration: Option<Duration>,
    },
    /// Nothing passes for `duration`; `hold` delivers it afterwards, else it is discarded.
    Partition {
        target: Target,
        duration: Duration,
        hold: bool,
    },
    /// The tap stops reading: keepalive expires at the broker (1.5 × keepalive), the will fires.
    HalfDead {
        target: Target,
        duration: Option<Duration>,
    },
    /// Remove every network fault of a target.
    ClearNetwork(Target),
    /// A second client connects with the same id and holds the session for `hold`.
    Takeover {
        client: String,
        hold: Duration,
    },
    /// Restart the broker's listeners: every client is cut, sessions are kept.
    RestartBroker,
    /// Restart the broker from scratch: sessions, queued and retained messages are lost.
    ColdRestartBroker,
}

impl Fault {
    /// The fault a device action is (one path for clicks and the timeline).
    pub fn device(target: Target, action: DeviceAction) -> Fault {
        use DeviceAction as A;
        match action {
            A::Disconnect => Fault::Disconnect(target),
            A::Drop => Fault::Drop(target),
            A::Reconnect => Fault::Reconnect(target),
            A::Pause => Fault::Pause(target),
            A::Resume => Fault::Resume(target),
            A::StopAcking => Fault::StopAcking(target),
            A::ResumeAcking => Fault::ResumeAcking(target),
        }
    }

    /// The device action this fault is, if it is one.
    pub fn device_action(&self) -> Option<(&Target, DeviceAction)> {
        use DeviceAction as A;
        Some(match self {
            Fault::Disconnect(t) => (t, A::Disconnect),
            Fault::Drop(t) => (t, A::Drop),
            Fault::Reconnect(t) => (t, A::Reconnect),
            Fault::Pause(t) => (t, A::Pause),
            Fault::Resume(t) => (t, A::Resume),
            Fault::StopAcking(t) => (t, A::StopAcking),
            Fault::ResumeAcking(t) => (t, A::ResumeAcking),
            _ => return None,
        })
    }

    /// What the fault does, in a few words (plot markers, logs, timeline).
    pub fn label(&self) -> String {
        let dur = |d: &Option<Duration>| {
            d.map(|d| format!(" for {}", humantime::format_duration(d)))
                .unwrap_or_default()
        };
        match self {
            Fault::Disconnect(x) => format!("disconnect {}", x.label()),
            Fault::Drop(x) => format!("drop {}", x.label()),
            Fault::Reconnect(x) => format!("reconnect {}", x.label()),
            Fault::Pause(x) => format!("pause {}", x.label()),
            Fault::Resume(x) => format!("resume {}", x.label()),
            Fault::StopAcking(x) => format!("{} stops acking", x.label()),
            Fault::ResumeAcking(x) => format!("{} acks again", x.label()),
            Fault::Latency {
                target,
                ms,
                jitter_ms,
                duration,
            } => format!(
                "latency {ms}±{jitter_ms} ms on {}{}",
                target.label(),
                dur(duration)
            ),
            Fault::Loss {
                target,
                drop_pct,
                stall_pct,
                stall_ms,
                duration,
            } => format!(
                "loss on {}: drop {drop_pct}%, stall {stall_pct}% by {stall_ms} ms{}",
                target.label(),
                dur(duration)
            ),
            Fault::Bandwidth {
                target,
                bytes_per_s,
                duration,
            } => format!(
                "bandwidth {bytes_per_s} B/s on {}{}",
                target.label(),
                dur(duration)
            ),
            Fault::Partition {
                target,
                duration,
                hold,
            } => format!(
                "partition {} for {} ({})",
                target.label(),
                humantime::format_duration(*duration),
                if *hold { "held" } else { "cut" }
            ),
            Fault::HalfDead { target, duration } => {
                format!("{} half-dead{}", target.label(), dur(duration))
            }
            Fault::ClearNetwork(x) => format!("clear network faults of {}", x.label()),
            Fault::Takeover { client, hold } => format!(
                "client-id takeover of {client} for {}",
                humantime::format_duration(*hold)
            ),
            Fault::RestartBroker => "broker restart (sessions kept)".into(),
            Fault::ColdRestartBroker => "broker cold restart (sessions lost)".into(),
        }
    }
}

impl Target {
    pub fn label(&self) -> String {
        match self {
            Target::Device(d) => d.clone(),
            Target::Fleet(f) => format!("fleet {f}"),
            Target::All => "everyone".into(),
        }
    }
}

/// A fault as it appears on the capture's timeline (plot markers, recordings).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FaultMarker {
    pub t_us: u64,
    pub label: String,
    /// Its index in the scenario's timeline, when the timeline fired it.
    pub timeline: Option<usize>,
}
