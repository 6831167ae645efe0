//! Device behaviour: reactions to messages and small state machines.

use serde::{Deserialize, Serialize};

use super::{Payload, Qos};
use crate::time::Dur;

/// A condition on device state.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Cond {
    Above { var: String, value: f64 },
    Below { var: String, value: f64 },
    Outside { var: String, min: f64, max: f64 },
    Inside { var: String, min: f64, max: f64 },
    StateIs(String),
}

/// A reaction to a message on a topic.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Reaction {
    /// Topic filter (templated): reacts to messages matching it.
    pub on: String,
    pub actions: Vec<Action>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
pub enum Action {
    /// Set a var from the message: a number, or a JSON object's field of that name or "value".
    SetVarFromPayload(String),
    SetVar(String, f64),
    SetState(String),
    /// Publish a message (templated; `{payload}` is the received payload).
    Publish {
        topic: String,
        payload: Payload,
        #[serde(default)]
        qos: Qos,
        #[serde(default)]
        retain: bool,
    },
    /// MQTT 5 request/response: publish to the received message's response
    /// topic, echoing its correlation data (templated; `{payload}` is the request).
    Respond {
        payload: Payload,
        #[serde(default)]
        qos: Qos,
    },
}

/// A small state machine for appliances: timed transitions, reactions set states.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StateMachine {
    pub initial: String,
    #[serde(default)]
    pub transitions: Vec<Transition>,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub after: Dur,
}
