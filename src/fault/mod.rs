//! Faults and device controls: what they act on ([`Target`]), what they are
//! ([`Fault`]: one file per kind here, each with its spec, label, validation
//! and [`Effect`]), the network faults a connection carries ([`NetFault`]),
//! and their marks on the timeline ([`FaultMarker`]). Scenario timelines and
//! the Faults panel produce them; the engine carries out their effects
//! (`Engine::inject`), the tap's pumps the network ones (`tap::faults`).

mod bandwidth;
mod clear_network;
mod device;
mod half_dead;
mod latency;
mod loss;
mod partition;
mod restart;
mod takeover;

use std::collections::HashSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use bandwidth::Bandwidth;
pub use clear_network::ClearNetwork;
pub use device::{Disconnect, Drop, Pause, Reconnect, Resume, ResumeAcking, StopAcking};
pub use half_dead::HalfDead;
pub use latency::Latency;
pub use loss::Loss;
pub use partition::Partition;
pub use restart::{ColdRestartBroker, RestartBroker};
pub use takeover::Takeover;

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

/// A fault kind: what a scenario's timeline entry or a click injects.
pub trait FaultKind {
    /// What the fault does, in a few words (plot markers, logs, timeline).
    fn label(&self) -> String;

    /// The devices or connections it acts on, if any.
    fn target(&self) -> Option<&Target> {
        None
    }

    /// Its own rules against the scenario, beyond a known target. `Err` is
    /// the message shown for the timeline entry.
    fn validate(&self, _cx: &FaultValidation<'_>) -> Result<(), String> {
        Ok(())
    }

    /// What the engine does for it.
    fn effect(&self) -> Effect;
}

/// What the engine does for a fault, in the few ways it can act.
pub enum Effect {
    /// A client-side action on the target's devices.
    Device(DeviceAction),
    /// A network fault on the target's connections: `change` applies it,
    /// `undo` removes it after `duration` (else it stays until cleared).
    Net {
        what: &'static str,
        duration: Option<Duration>,
        change: Box<dyn Fn(&mut NetFault) + Send + Sync>,
        undo: fn(&mut NetFault),
    },
    /// Remove every network fault of the target.
    ClearNetwork,
    /// A second client connects with `client`'s id and holds it for `hold`.
    Takeover { client: String, hold: Duration },
    /// Restart the embedded broker: warm keeps sessions, cold loses them.
    RestartBroker { cold: bool },
}

/// What a fault kind's validation can ask about the scenario.
pub struct FaultValidation<'a> {
    /// The client ids of the scenario's devices (fleets expanded).
    pub devices: &'a HashSet<String>,
}

crate::kinds_enum! {
    dispatch FaultKind;
    /// A fault to inject, from a click or a scenario's timeline (`fault:`),
    /// one kind per file here: `Drop(Device("a"))`,
    /// `Latency(target: All, ms: 200, duration: "3s")`, `RestartBroker`.
    #[derive(Debug, Clone, PartialEq)]
    pub enum Fault {
        /// Graceful DISCONNECT (no will).
        Disconnect(Disconnect) newtype,
        /// Abrupt close without DISCONNECT (the will fires).
        Drop(Drop) newtype,
        /// Connect again after Disconnect or Drop.
        Reconnect(Reconnect) newtype,
        /// Stop publishing (stay connected).
        Pause(Pause) newtype,
        /// Resume publishing.
        Resume(Resume) newtype,
        /// Stop sending PUBACK/PUBREC: the broker redelivers with DUP after a reconnect.
        StopAcking(StopAcking) newtype,
        /// Acknowledge again.
        ResumeAcking(ResumeAcking) newtype,
        /// Added delay on every frame both ways.
        Latency(Latency),
        /// Frames discarded or held (TCP-style loss).
        Loss(Loss),
        /// A bandwidth cap.
        Bandwidth(Bandwidth),
        /// Nothing passes for a while; held or discarded.
        Partition(Partition),
        /// The tap stops reading: the broker's keepalive expires.
        HalfDead(HalfDead),
        /// Remove every network fault of a target.
        ClearNetwork(ClearNetwork) newtype,
        /// A second client takes over a client id.
        Takeover(Takeover),
        /// Restart the broker's listeners: every client is cut, sessions are kept.
        RestartBroker(RestartBroker) unit,
        /// Restart the broker from scratch: sessions, queued and retained messages are lost.
        ColdRestartBroker(ColdRestartBroker) unit,
    }
}

impl Fault {
    /// The fault a device action is (one path for clicks and the timeline).
    pub fn device(target: Target, action: DeviceAction) -> Fault {
        device::fault(target, action)
    }

    /// The device action this fault is, if it is one.
    pub fn device_action(&self) -> Option<(&Target, DeviceAction)> {
        match self.kind().effect() {
            Effect::Device(action) => self.kind().target().map(|t| (t, action)),
            _ => None,
        }
    }

    /// What the fault does, in a few words (plot markers, logs, timeline).
    pub fn label(&self) -> String {
        self.kind().label()
    }
}

/// " for 3s" when a fault has a duration.
pub(crate) fn for_duration(d: &Option<crate::time::Dur>) -> String {
    d.map(|d| format!(" for {}", humantime::format_duration(d.0)))
        .unwrap_or_default()
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
