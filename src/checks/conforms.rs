//! `Conforms(spec, channels)`: every message published on the named
//! channels of an AsyncAPI document (all of them if none are named)
//! conforms to its payload schema and MQTT bindings. The document is read
//! when the scenario is loaded (`Scenario::load_contract`); every frame is
//! checked here against it (live, offline over a recording, with another
//! document than the one a recording was marked with).

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::kind::{CheckKind, Decision, Evaluate, Frame, Validation, Window, text};
use super::spec::VerdictState;
use crate::contract::Contract;
use crate::wire::PacketKind;

/// Messages on `channels` of `spec` conform to their schemas and bindings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Conforms {
    /// The AsyncAPI document, relative to the scenario's folder (absent: the
    /// scenario's `spec`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<PathBuf>,
    /// Channel addresses (`cars/{carId}/telemetry`); empty: every channel.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub channels: Vec<String>,
    /// The document, once loaded.
    #[serde(skip)]
    pub contract: Option<Arc<Contract>>,
}

impl PartialEq for Conforms {
    fn eq(&self, other: &Conforms) -> bool {
        self.spec == other.spec
            && self.channels == other.channels
            && self.contract == other.contract
    }
}

impl CheckKind for Conforms {
    fn validate(&self, _cx: &Validation<'_>) -> Result<(), String> {
        if let Some(c) = self.channels.iter().find(|c| c.trim().is_empty()) {
            return Err(format!(
                "channel {c:?}: expected a channel address such as \"cars/{{carId}}/telemetry\""
            ));
        }
        Ok(())
    }

    fn evaluator(&self) -> Box<dyn Evaluate> {
        Box::new(Conform {
            contract: self.contract.clone(),
            channels: self.channels.clone(),
            messages: 0,
        })
    }
}

struct Conform {
    contract: Option<Arc<Contract>>,
    channels: Vec<String>,
    messages: u64,
}

impl Conform {
    fn covers(&self) -> String {
        if self.channels.is_empty() {
            "its channels".into()
        } else {
            self.channels.join(", ")
        }
    }
}

impl Evaluate for Conform {
    fn on_wire(&mut self, f: &Frame<'_>, w: &mut Window) -> Option<Decision> {
        if !f.published || f.ev.kind != PacketKind::Publish {
            return None;
        }
        let contract = self.contract.as_ref()?;
        // Checked here, not read from the frame's mark: a recording keeps the
        // marks of the document it was recorded against, which may differ.
        let mark = &contract.check(f.topic, f.payload, f.ev.qos, f.ev.retain);
        let channel = mark.channel.as_deref()?;
        if !self.channels.is_empty() && !self.channels.iter().any(|c| c == channel) {
            return None;
        }
        self.messages += 1;
        if mark.violations.is_empty() {
            return None;
        }
        let evidence = format!(
            "{} published on {} (channel {channel}) at {:.3} s: {}; payload {}",
            f.ev.client_id,
            f.topic,
            w.at(f.ev.t_us),
            crate::contract::describe(&mark.violations),
            text(f.payload)
        );
        f.decide(VerdictState::Failed, evidence)
    }

    fn finish(&mut self, now_us: u64, _w: &Window) -> Decision {
        let Some(contract) = &self.contract else {
            return Decision::at(
                VerdictState::Failed,
                "the AsyncAPI document was not loaded (name it with `spec:` in the scenario or the check)".into(),
                now_us,
            );
        };
        if self.messages == 0 {
            return Decision::at(
                VerdictState::NotTriggered,
                format!(
                    "no message on {} of {}",
                    self.covers(),
                    contract.path.display()
                ),
                now_us,
            );
        }
        Decision::at(
            VerdictState::Passed,
            format!(
                "{} messages on {}, each conforms to {}",
                self.messages,
                self.covers(),
                contract.path.display()
            ),
            now_us,
        )
    }

    fn progress(&self, _w: &Window) -> String {
        format!("{} messages so far, all conform", self.messages)
    }
}
