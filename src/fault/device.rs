//! The device controls: `Disconnect`, `Drop`, `Reconnect`, `Pause`,
//! `Resume`, `StopAcking`, `ResumeAcking`, each on a target
//! (`Drop(Device("drone-3"))`, `Pause(Fleet("drone-{i}"))`, `Reconnect(All)`).
//! The engine hands them to the virtual devices as a [`DeviceAction`].

use serde::{Deserialize, Serialize};

use super::{DeviceAction, Effect, Fault, FaultKind, Target};

macro_rules! device_control {
    ($($(#[$doc:meta])* $kind:ident: $label:literal),* $(,)?) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
            #[serde(transparent)]
            pub struct $kind {
                pub target: Target,
            }

            impl FaultKind for $kind {
                fn label(&self) -> String {
                    format!($label, self.target.label())
                }

                fn target(&self) -> Option<&Target> {
                    Some(&self.target)
                }

                fn effect(&self) -> Effect {
                    Effect::Device(DeviceAction::$kind)
                }
            }
        )*

        /// The fault a device action is.
        pub(super) fn fault(target: Target, action: DeviceAction) -> Fault {
            match action {
                $(DeviceAction::$kind => $kind { target }.into()),*
            }
        }
    };
}

device_control! {
    /// Send DISCONNECT and close: the broker discards the will.
    Disconnect: "disconnect {}",
    /// Close the socket without DISCONNECT: the broker publishes the will.
    Drop: "drop {}",
    /// Connect again after Disconnect or Drop.
    Reconnect: "reconnect {}",
    /// Stop publishing (stay connected).
    Pause: "pause {}",
    /// Resume publishing.
    Resume: "resume {}",
    /// Stop acknowledging QoS 1/2 messages (the broker redelivers with DUP on reconnect).
    StopAcking: "{} stops acking",
    /// Acknowledge again.
    ResumeAcking: "{} acks again",
}
